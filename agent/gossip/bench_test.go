package gossip

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// spreadCounter is a Handler that notes when each node first hears of each
// hash.
type spreadCounter struct {
	mu    sync.Mutex
	heard map[string]int           // hash -> nodes that heard it
	done  map[string]chan struct{} // hash -> closed when all heard it
	want  int
}

func (s *spreadCounter) expect(hash string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.done[hash] = ch
	return ch
}

func (s *spreadCounter) NewRevision(ref, hash, from string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heard[hash]++
	if s.heard[hash] == s.want {
		if ch := s.done[hash]; ch != nil {
			close(ch)
		}
	}
}

func (s *spreadCounter) MemberChanged(Member) {}

// BenchmarkRevisionSpread50 starts 50 gossip nodes in this process on
// 127.0.0.1, each a simulated host with memberlist's LAN defaults (the real
// configuration, encrypted), announces a revision on one and measures the
// time until the 49 others have all called Handler.NewRevision. It reports
// the mean, median and worst spread and their ratios to the 2 s target and
// to the agent's 15 s poll interval. Run it with a fixed count:
//
//	go test -run '^$' -bench RevisionSpread50 -benchtime 20x ./agent/gossip/
func BenchmarkRevisionSpread50(b *testing.B) {
	const n = 50
	sc := &spreadCounter{heard: map[string]int{}, done: map[string]chan struct{}{}, want: n - 1}
	var nodes []*Gossip
	setup := time.Now()
	for i := range n {
		cfg := Config{
			NodeName: fmt.Sprintf("host-%02d", i),
			BindAddr: "127.0.0.1:0",
			Key:      testKey,
			Labels:   map[string]string{"role": "web"},
			Version:  "bench",
			APIAddr:  fmt.Sprintf("127.0.0.1:%d", 17000+i),
		}
		if i > 0 {
			cfg.Join = []string{nodes[0].LocalAddr()}
		}
		g, err := New(context.Background(), cfg, sc)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = g.Shutdown() })
		nodes = append(nodes, g)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		converged := true
		for _, g := range nodes {
			alive := 0
			for _, m := range g.Members() {
				if m.State == StateAlive {
					alive++
				}
			}
			if alive != n {
				converged = false
				break
			}
		}
		if converged {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the 50 nodes did not all see each other within 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Logf("50 nodes converged in %v", time.Since(setup).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the join gossip settle

	var spreads []time.Duration
	b.ResetTimer()
	for i := range b.N {
		hash := fmt.Sprintf("%016x%024x", time.Now().UnixNano(), i)
		done := sc.expect(hash)
		began := time.Now()
		nodes[i%n].AnnounceRevision("main", hash)
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("revision %d did not reach all 49 others within a minute", i)
		}
		spreads = append(spreads, time.Since(began))
	}
	b.StopTimer()

	slices.Sort(spreads)
	var sum time.Duration
	for _, d := range spreads {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	mean := sum / time.Duration(len(spreads))
	median := spreads[len(spreads)/2]
	worst := spreads[len(spreads)-1]
	b.ReportMetric(ms(mean), "ms/spread")
	b.ReportMetric(ms(median), "p50-ms")
	b.ReportMetric(ms(worst), "max-ms")
	b.ReportMetric(mean.Seconds()/2, "x2s-target")
	b.ReportMetric(mean.Seconds()/15, "x15s-poll")
	b.Logf("revision spread to 49 other nodes over %d runs: mean %.0f ms, median %.0f ms, worst %.0f ms; mean is %.2fx the 2 s target and %.3fx a 15 s poll interval",
		len(spreads), ms(mean), ms(median), ms(worst), mean.Seconds()/2, mean.Seconds()/15)
}
