package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeSource is a ContainerSource with fixed answers.
type fakeSource struct {
	cs    []Container
	err   error
	calls atomic.Int32
	// deadline is the time left on the context of the last call.
	mu       sync.Mutex
	deadline time.Duration
}

func (f *fakeSource) Containers(ctx context.Context) ([]Container, error) {
	f.calls.Add(1)
	if d, ok := ctx.Deadline(); ok {
		f.mu.Lock()
		f.deadline = time.Until(d)
		f.mu.Unlock()
	}
	return f.cs, f.err
}

// scrape serves r's handler and parses what it answers.
func scrape(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse the scrape: %v", err)
	}
	return mfs
}

func TestAgentMetrics(t *testing.T) {
	r := New(nil)
	r.Sync(true, 200*time.Millisecond)
	r.Sync(true, 300*time.Millisecond)
	r.Sync(false, time.Second)
	r.Apply("ok", 2*time.Second)
	r.Apply("refused", 0)
	r.Apply("exploded", time.Second)
	r.DriftCheck(0, false)
	r.DriftCheck(3, true)
	r.DriftCheck(2, false)
	r.AppliedRevision("main@sha1:3f2a000000000000000000000000000000000001")
	r.AppliedRevision("main@sha1:3f2a000000000000000000000000000000000002")
	r.Members(map[string]int{"alive": 3, "dead": 1, "weird": 2})
	r.Members(map[string]int{"alive": 2, "suspect": 1})
	r.Webhook("github", true)
	r.Webhook("github", true)
	r.Webhook("gitlab", false)
	r.Webhook("../../etc", false)

	want := `
# HELP berth_agent_syncs_total Git syncs of the agent, by result (ok, error).
# TYPE berth_agent_syncs_total counter
berth_agent_syncs_total{result="error"} 1
berth_agent_syncs_total{result="ok"} 2
# HELP berth_agent_applies_total Applies of a revision or of a drift correction, by result (ok, failed, refused).
# TYPE berth_agent_applies_total counter
berth_agent_applies_total{result="failed"} 1
berth_agent_applies_total{result="ok"} 1
berth_agent_applies_total{result="refused"} 1
# HELP berth_agent_drift_checks_total Drift checks: plans of the applied revision against the live host.
# TYPE berth_agent_drift_checks_total counter
berth_agent_drift_checks_total 3
# HELP berth_agent_drift_detected_total Resource instances that drift checks found drifted.
# TYPE berth_agent_drift_detected_total counter
berth_agent_drift_detected_total 5
# HELP berth_agent_drift_corrections_total Applies that corrected drift.
# TYPE berth_agent_drift_corrections_total counter
berth_agent_drift_corrections_total 1
# HELP berth_agent_applied_revision_info The revision last applied on this host, as a label; always 1.
# TYPE berth_agent_applied_revision_info gauge
berth_agent_applied_revision_info{revision="main@sha1:3f2a000000000000000000000000000000000002"} 1
# HELP berth_agent_gossip_members Gossip members as this agent sees them, by state.
# TYPE berth_agent_gossip_members gauge
berth_agent_gossip_members{state="alive"} 2
berth_agent_gossip_members{state="dead"} 0
berth_agent_gossip_members{state="left"} 0
berth_agent_gossip_members{state="suspect"} 1
# HELP berth_agent_webhooks_total Webhook requests, by provider and result (accepted, rejected).
# TYPE berth_agent_webhooks_total counter
berth_agent_webhooks_total{provider="generic",result="accepted"} 0
berth_agent_webhooks_total{provider="generic",result="rejected"} 0
berth_agent_webhooks_total{provider="gitea",result="accepted"} 0
berth_agent_webhooks_total{provider="gitea",result="rejected"} 0
berth_agent_webhooks_total{provider="github",result="accepted"} 2
berth_agent_webhooks_total{provider="github",result="rejected"} 0
berth_agent_webhooks_total{provider="gitlab",result="accepted"} 0
berth_agent_webhooks_total{provider="gitlab",result="rejected"} 1
berth_agent_webhooks_total{provider="unknown",result="rejected"} 1
`
	names := []string{
		"berth_agent_syncs_total", "berth_agent_applies_total", "berth_agent_drift_checks_total",
		"berth_agent_drift_detected_total", "berth_agent_drift_corrections_total",
		"berth_agent_applied_revision_info", "berth_agent_gossip_members", "berth_agent_webhooks_total",
	}
	if err := testutil.GatherAndCompare(r.Gatherer(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	mfs := scrape(t, r)
	for _, c := range []struct {
		name  string
		count uint64
		sum   float64
	}{
		{"berth_agent_sync_duration_seconds", 3, 1.5},
		{"berth_agent_apply_duration_seconds", 3, 3},
	} {
		mf := mfs[c.name]
		if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.Metric) != 1 {
			t.Errorf("%s: %v", c.name, mf)
			continue
		}
		h := mf.Metric[0].GetHistogram()
		if h.GetSampleCount() != c.count || h.GetSampleSum() != c.sum {
			t.Errorf("%s: count %d sum %g, want %d %g", c.name, h.GetSampleCount(), h.GetSampleSum(), c.count, c.sum)
		}
	}
}

// The revision series goes away with an empty revision, and a second
// registry does not clash with the first: nothing is registered globally.
func TestAppliedRevisionCleared(t *testing.T) {
	r := New(nil)
	r.AppliedRevision("v1@sha1:0123456789012345678901234567890123456789")
	if n := testutil.CollectAndCount(r.revision); n != 1 {
		t.Fatalf("%d revision series", n)
	}
	r.AppliedRevision("")
	if n := testutil.CollectAndCount(r.revision); n != 0 {
		t.Fatalf("%d revision series after clearing", n)
	}
	r2 := New(&fakeSource{})
	r2.Sync(true, time.Second)
	if got := testutil.ToFloat64(r.syncs.WithLabelValues("ok")); got != 0 {
		t.Errorf("a second registry changed the first: %g", got)
	}
	if n, err := testutil.GatherAndCount(prometheus.DefaultGatherer, "berth_agent_syncs_total"); err != nil || n != 0 {
		t.Errorf("berth metrics on the default registry: %d, %v", n, err)
	}
}

func TestContainerMetrics(t *testing.T) {
	src := &fakeSource{cs: []Container{
		{
			Address: "container.web[0]", ID: "a1b2c3", Image: "nginx:1.27@sha256:abcd", Running: true,
			CPUSeconds: 12.5, MemoryUsage: 50 << 20, MemoryLimit: 256 << 20, Pids: 9,
			NetRx: 1000, NetTx: 2000, BlockRead: 4096, BlockWrite: 8192, Restarts: 2,
		},
		{Address: "container.db", ID: "d4e5f6", Image: "postgres:16", Running: true, CPUSeconds: 0.25, MemoryUsage: 1 << 30, Pids: 3},
		// A stopped container: up and restarts only.
		{Address: "container.job", ID: "0f0f0f", Image: "busybox", Running: false, CPUSeconds: 99, Restarts: 5},
		// The same labels again are dropped rather than failing the scrape.
		{Address: "container.db", ID: "d4e5f6", Image: "postgres:16", Running: true, CPUSeconds: 7},
	}}
	r := New(src)
	want := `
# HELP berth_container_up Whether the container runs (1) or not (0).
# TYPE berth_container_up gauge
berth_container_up{address="container.db",id="d4e5f6",image="postgres:16"} 1
berth_container_up{address="container.job",id="0f0f0f",image="busybox"} 0
berth_container_up{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 1
# HELP berth_container_cpu_usage_seconds_total CPU time the container used.
# TYPE berth_container_cpu_usage_seconds_total counter
berth_container_cpu_usage_seconds_total{address="container.db",id="d4e5f6",image="postgres:16"} 0.25
berth_container_cpu_usage_seconds_total{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 12.5
# HELP berth_container_memory_usage_bytes Memory the container uses.
# TYPE berth_container_memory_usage_bytes gauge
berth_container_memory_usage_bytes{address="container.db",id="d4e5f6",image="postgres:16"} 1.073741824e+09
berth_container_memory_usage_bytes{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 5.24288e+07
# HELP berth_container_memory_limit_bytes Memory limit of the container; 0 means none.
# TYPE berth_container_memory_limit_bytes gauge
berth_container_memory_limit_bytes{address="container.db",id="d4e5f6",image="postgres:16"} 0
berth_container_memory_limit_bytes{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 2.68435456e+08
# HELP berth_container_pids Processes and threads in the container.
# TYPE berth_container_pids gauge
berth_container_pids{address="container.db",id="d4e5f6",image="postgres:16"} 3
berth_container_pids{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 9
# HELP berth_container_network_receive_bytes_total Bytes the container received, on every interface but lo.
# TYPE berth_container_network_receive_bytes_total counter
berth_container_network_receive_bytes_total{address="container.db",id="d4e5f6",image="postgres:16"} 0
berth_container_network_receive_bytes_total{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 1000
# HELP berth_container_network_transmit_bytes_total Bytes the container sent, on every interface but lo.
# TYPE berth_container_network_transmit_bytes_total counter
berth_container_network_transmit_bytes_total{address="container.db",id="d4e5f6",image="postgres:16"} 0
berth_container_network_transmit_bytes_total{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 2000
# HELP berth_container_blkio_read_bytes_total Bytes the container read from block devices.
# TYPE berth_container_blkio_read_bytes_total counter
berth_container_blkio_read_bytes_total{address="container.db",id="d4e5f6",image="postgres:16"} 0
berth_container_blkio_read_bytes_total{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 4096
# HELP berth_container_blkio_write_bytes_total Bytes the container wrote to block devices.
# TYPE berth_container_blkio_write_bytes_total counter
berth_container_blkio_write_bytes_total{address="container.db",id="d4e5f6",image="postgres:16"} 0
berth_container_blkio_write_bytes_total{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 8192
# HELP berth_container_restarts_total Restarts of the container by its shim.
# TYPE berth_container_restarts_total counter
berth_container_restarts_total{address="container.db",id="d4e5f6",image="postgres:16"} 0
berth_container_restarts_total{address="container.job",id="0f0f0f",image="busybox"} 5
berth_container_restarts_total{address="container.web[0]",id="a1b2c3",image="nginx:1.27@sha256:abcd"} 2
`
	if err := testutil.GatherAndCompare(r.Gatherer(), strings.NewReader(want),
		"berth_container_up", "berth_container_cpu_usage_seconds_total", "berth_container_memory_usage_bytes",
		"berth_container_memory_limit_bytes", "berth_container_pids", "berth_container_network_receive_bytes_total",
		"berth_container_network_transmit_bytes_total", "berth_container_blkio_read_bytes_total",
		"berth_container_blkio_write_bytes_total", "berth_container_restarts_total"); err != nil {
		t.Error(err)
	}
	src.mu.Lock()
	left := src.deadline
	src.mu.Unlock()
	if left <= 0 || left > scrapeTimeout {
		t.Errorf("the source's context has %s left, want at most %s", left, scrapeTimeout)
	}

	// The handler serves the same, with the Go runtime's and the
	// process's metrics.
	mfs := scrape(t, r)
	for _, name := range []string{"berth_container_up", "berth_container_restarts_total", "berth_agent_syncs_total", "go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("the scrape has no %s", name)
		}
	}
	if mf := mfs["berth_container_cpu_usage_seconds_total"]; mf == nil || mf.GetType() != dto.MetricType_COUNTER {
		t.Errorf("cpu usage is not a counter: %v", mf)
	}
}

// A failing source fails neither the scrape nor the other metrics; the
// failure is counted.
func TestContainerSourceError(t *testing.T) {
	r := New(&fakeSource{err: errors.New("cgroups unreadable")})
	r.Sync(true, time.Second)
	scrape(t, r)
	// The handler counts a failure after it has gathered the scrape's
	// metrics: the second scrape shows the first one's.
	mfs := scrape(t, r)
	if mfs["berth_agent_syncs_total"] == nil {
		t.Error("the agent's metrics are missing")
	}
	if mfs["berth_container_up"] != nil {
		t.Error("container metrics from a failed source")
	}
	errs := mfs["promhttp_metric_handler_errors_total"]
	found := false
	for _, m := range errs.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "cause" && l.GetValue() == "gathering" && m.GetCounter().GetValue() >= 1 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the failure is not counted: %v", errs)
	}
}

// blockingSource ignores its context and answers when released.
type blockingSource struct {
	release chan struct{}
	calls   atomic.Int32
}

func (b *blockingSource) Containers(ctx context.Context) ([]Container, error) {
	b.calls.Add(1)
	<-b.release
	return []Container{{Address: "container.late", ID: "1", Running: true}}, nil
}

// A source that never answers costs scrapes the timeout, and one call,
// however many scrapes wait for it.
func TestContainerSourceStuck(t *testing.T) {
	src := &blockingSource{release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-src.release:
		default:
			close(src.release)
		}
	})
	c := newContainerCollector(src, 50*time.Millisecond)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := c.containers(); err == nil {
				t.Error("a stuck source answered")
			}
		})
	}
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Errorf("%d calls of the stuck source, want 1", n)
	}
	close(src.release)
	// Once it answers, the next scrape calls it again and gets figures.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := c.containers()
		if err == nil {
			if len(cs) != 1 || cs[0].Address != "container.late" {
				t.Errorf("containers %+v", cs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the source never came back: %v", err)
		}
	}
}

// Every method can be called while scrapes run.
func TestConcurrentUse(t *testing.T) {
	r := New(&fakeSource{cs: []Container{{Address: "container.a", ID: "a", Running: true}}})
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				r.Sync(j%2 == 0, time.Millisecond)
				r.Apply("ok", time.Millisecond)
				r.DriftCheck(j%3, j%2 == 0)
				r.AppliedRevision([]string{"main@sha1:a", "main@sha1:b"}[(i+j)%2])
				r.Members(map[string]int{"alive": j, "x": i})
				r.Webhook("gitea", j%2 == 0)
			}
		})
		wg.Go(func() {
			for range 5 {
				res, err := http.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := testutil.CollectAndCount(r.revision); n != 1 {
		t.Errorf("%d revision series, want 1", n)
	}
	if got := testutil.ToFloat64(r.applies.WithLabelValues("ok")); got != 200 {
		t.Errorf("%g applies, want 200", got)
	}
}
