package acceptance

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/agent"
)

// TestAgentBenchmark measures, on three simulated hosts with a real git
// server, the time from `git push` until every host has applied the new
// revision (one file and one container replaced per host), with a
// webhook and with polling only, and the agents' memory and CPU at idle.
// It prints figures and ratios; it asserts nothing about speed. It runs
// only when BERTH_BENCH_AGENT is set (bench/agent sets it).
func TestAgentBenchmark(t *testing.T) {
	if os.Getenv("BERTH_BENCH_AGENT") == "" {
		t.Skip("a benchmark: run bench/agent, or set BERTH_BENCH_AGENT=1")
	}
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("BERTH_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	f := newAgentFleet(t)
	var nodes []*agentNode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, f.addNode(agentOptions{
			Name: fmt.Sprintf("bench-%d", i), Labels: map[string]string{"role": "web"},
			PollInterval: "1h", DriftInterval: "60s", Linux: true,
		}))
	}
	f.startAll()

	clients := make([]*agent.Client, len(nodes))
	for i, n := range nodes {
		c, err := agent.NewClient(agent.ClientOptions{Addr: n.agentAddr()})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	config := func(round int) map[string]string {
		return map[string]string{"main.hcl": fmt.Sprintf(`
image "busybox" {
  ref = %q
}

file "page" {
  path    = "%s/page.txt"
  content = "round %d on ${host.name}\n"
}

container "app" {
  image        = image.busybox
  command      = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
  network_mode = "none"
  env          = { ROUND = "%d" }
}
`, busyboxRef, strings.Trim(f.filesHCL(), `"`), round, round)}
	}
	// converge waits until every host reports rev applied and returns the
	// time it took from start.
	converge := func(start time.Time, rev string, limit time.Duration) time.Duration {
		t.Helper()
		done := make([]bool, len(nodes))
		deadline := start.Add(limit)
		for {
			all := true
			for i, c := range clients {
				if done[i] {
					continue
				}
				st, err := c.Status(context.Background())
				if err == nil && st.Revision == rev {
					done[i] = true
					continue
				}
				all = false
			}
			if all {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the fleet did not converge on %s within %s", rev, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	hook := func(before, after string) {
		t.Helper()
		body := f.pushPayload(before, after)
		code, answer := nodes[0].postHook(t, "github", http.Header{
			"X-Github-Event":      {"push"},
			"X-Hub-Signature-256": {"sha256=" + hmacHex(f.webhookSecret, body)},
		}, body)
		if code/100 != 2 {
			t.Fatalf("webhook: %d %s", code, answer)
		}
	}

	// The first revision creates everything; it is not measured.
	prev := f.push(t, config(0), "round 0")
	hook("", prev)
	converge(time.Now(), f.rev(prev), 2*time.Minute)

	var withHook []time.Duration
	for r := 1; r <= rounds; r++ {
		h := f.push(t, config(r), fmt.Sprintf("round %d", r))
		start := time.Now()
		hook(prev, h)
		withHook = append(withHook, converge(start, f.rev(h), time.Minute))
		prev = h
		time.Sleep(time.Second)
	}

	// Polling only: the default poll interval, no webhook. The first agent
	// whose poll finds the revision announces it over gossip, and the
	// others fetch at once.
	for _, n := range nodes {
		n.shutdown()
		n.opts.PollInterval = "15s"
	}
	f.startAll()
	var polling []time.Duration
	for r := 1; r <= rounds; r++ {
		// A push comes at any moment of the agents' poll cycles.
		time.Sleep(time.Duration(mrand.Int64N(int64(15 * time.Second))))
		h := f.push(t, config(rounds+r), fmt.Sprintf("poll round %d", r))
		polling = append(polling, converge(time.Now(), f.rev(h), 2*time.Minute))
		prev = h
	}

	// Idle: every agent converged, default drift interval, polls of an
	// unchanged repository every 15 s.
	time.Sleep(5 * time.Second)
	const idle = 30 * time.Second
	before := make([]procSample, len(nodes))
	for i, n := range nodes {
		before[i] = sampleProc(t, n.cmd.Process.Pid)
	}
	time.Sleep(idle)
	var rss, anon []float64
	var cpu []float64
	for i, n := range nodes {
		after := sampleProc(t, n.cmd.Process.Pid)
		rss = append(rss, float64(after.rssKB)/1024)
		anon = append(anon, float64(after.anonKB)/1024)
		cpu = append(cpu, float64(after.ticks-before[i].ticks)/100/idle.Seconds()*100)
	}

	hookMean, pollMean := meanDur(withHook), meanDur(polling)
	report := fmt.Sprintf(`agent benchmark: 3 simulated hosts, git daemon on a fourth, one file and one container replaced per host per revision
  push to every host converged, webhook:      mean %s  median %s  max %s  (%d rounds)  ratio to the 2 s target %.2f
  push to every host converged, polling only: mean %s  median %s  max %s  (%d rounds, poll_interval 15s)  polling/webhook %.1fx
  agent at idle (%s): RSS %s MB, of which anonymous %s MB  (ratio to the 40 MB target %.2f), CPU %s %%
`,
		hookMean.Round(time.Millisecond), medianDur(withHook).Round(time.Millisecond), slices.Max(withHook).Round(time.Millisecond), rounds, hookMean.Seconds()/2,
		pollMean.Round(time.Millisecond), medianDur(polling).Round(time.Millisecond), slices.Max(polling).Round(time.Millisecond), rounds, pollMean.Seconds()/hookMean.Seconds(),
		idle, floats(rss, "%.1f"), floats(anon, "%.1f"), slices.Max(rss)/40, floats(cpu, "%.2f"))
	fmt.Print(report)
	if out := os.Getenv("BERTH_BENCH_OUT"); out != "" {
		if err := os.WriteFile(filepath.Clean(out), []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type procSample struct {
	ticks  int64
	rssKB  int64
	anonKB int64
}

// sampleProc reads a process's CPU time (user + system, in clock ticks)
// and resident set size.
func sampleProc(t *testing.T, pid int) procSample {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var rss, anon int64
	kb := func(v string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		return n
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = kb(v)
		}
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			anon = kb(v)
		}
	}
	return procSample{ticks: utime + stime, rssKB: rss, anonKB: anon}
}

func meanDur(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func medianDur(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func floats(fs []float64, format string) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf(format, f))
	}
	return strings.Join(parts, " / ")
}
