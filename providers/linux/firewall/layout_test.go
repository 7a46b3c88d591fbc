package firewall

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		must(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	must(t, err)
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestLayout(t *testing.T) {
	l := newLab(t)
	must(t, l.fw.Ensure(l.ctx))
	if p, err := l.fw.Check(l.ctx); err != nil || len(p) != 0 {
		t.Errorf("Check after Ensure = %q, %v", p, err)
	}
	// A second Ensure writes nothing: every rule keeps its handle.
	before := l.nft("-a", "list", "table", "ip", "berth")
	must(t, l.fw.Ensure(l.ctx))
	if after := l.nft("-a", "list", "table", "ip", "berth"); after != before {
		t.Errorf("a second Ensure rewrote the table:\n%s\n%s", before, after)
	}
	golden(t, "base.nft", l.nft("list", "table", "ip", "berth"))

	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "front", Bridge: "br-front", Subnet: prefix("10.89.0.0/24")}))
	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "db", Bridge: "br-db", Subnet: prefix("10.89.1.0/24"), Internal: true}))
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 8080, Proto: "tcp", Backends: []Backend{be("10.89.0.2", 80)}}))
	must(t, l.fw.Publish(l.ctx, Port{HostIP: addr("127.0.0.1"), HostPort: 8081, Proto: "tcp", Backends: []Backend{be("10.89.0.2", 81)}}))
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 5353, Proto: "udp",
		Backends: []Backend{be("10.89.0.2", 53), be("10.89.0.3", 53), be("10.89.0.4", 53)}}))
	full := l.nft("list", "table", "ip", "berth")
	golden(t, "layout.nft", full)
	// nft reads berth's table back: loaded into an empty namespace, the
	// listing lists the same. What berth writes is what the CLI can
	// express, so an administrator can save and restore it.
	other := &lab{t: t, host: newNS(t, "copy")}
	other.nft("-f", "-", full)
	if copied := other.nft("list", "table", "ip", "berth"); copied != full {
		t.Errorf("nft does not read berth's table back as it is:\n%s", copied)
	}
}

func TestOnlyBerthsTableChanges(t *testing.T) {
	l, _, _ := frontLab(t)
	// Tables named like berth's in other families, or with another
	// name, are not berth's.
	l.nft("-f", "-", `table inet berth {
	chain forward { type filter hook forward priority 5; policy accept;
		counter
	}
}
table ip6 berth {
	chain c {
		counter
	}
}
table ip berth2 {
	chain c {
		counter
	}
}
`)
	before := l.foreign()
	steps := []struct {
		name string
		do   func() error
	}{
		{"Ensure", func() error { return l.fw.Ensure(l.ctx) }},
		{"AddNetwork", func() error {
			return l.fw.AddNetwork(l.ctx, Network{Name: "front", Bridge: "br0", Subnet: prefix("10.89.0.0/24")})
		}},
		{"Publish", func() error {
			return l.fw.Publish(l.ctx, Port{HostPort: 8080, Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80), be("10.89.0.12", 80)}})
		}},
		{"traffic", func() error {
			_, err := httpGet(l.client, hostIP+":8080")
			return err
		}},
		{"FlushConntrack", func() error { return l.fw.FlushConntrack(l.ctx, "tcp", 8080) }},
		{"Unpublish", func() error { return l.fw.Unpublish(l.ctx, netip.Addr{}, 8080, "tcp") }},
		{"RemoveNetwork", func() error { return l.fw.RemoveNetwork(l.ctx, "front") }},
		{"Destroy", func() error { return l.fw.Destroy(l.ctx) }},
		{"Destroy again", func() error { return l.fw.Destroy(l.ctx) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if after := l.foreign(); after != before {
			t.Fatalf("%s changed other tables:\nbefore:\n%s\nafter:\n%s", s.name, before, after)
		}
	}
	if out := l.nft("list", "tables"); strings.Contains(out, "table ip berth\n") {
		t.Errorf("Destroy left berth's table:\n%s", out)
	}
	if ps, err := l.fw.Published(l.ctx); err != nil || len(ps) != 0 {
		t.Errorf("Published after Destroy = %v, %v", ps, err)
	}
	if p, err := l.fw.Check(l.ctx); err != nil || len(p) != 1 {
		t.Errorf("Check after Destroy = %q, %v; want the table missing", p, err)
	}
}

func TestTwoTablesInOneNamespace(t *testing.T) {
	l := newLab(t)
	var other *Firewall
	mustInNS(t, l.host, func() error {
		var err error
		other, err = Open(l.ctx, "berth2")
		return err
	})
	defer other.Close()
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 8080, Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80)}}))
	must(t, other.Publish(l.ctx, Port{HostPort: 9090, Proto: "tcp", Backends: []Backend{be("10.89.0.12", 80)}}))
	must(t, other.Destroy(l.ctx))
	// Removing from a table that is gone is not an error.
	must(t, other.Unpublish(l.ctx, netip.Addr{}, 9090, "tcp"))
	must(t, other.RemoveNetwork(l.ctx, "front"))
	if out := l.nft("list", "tables"); strings.Contains(out, "berth2") {
		t.Errorf("removing from berth2 after Destroy created it again:\n%s", out)
	}
	got, err := l.fw.Published(l.ctx)
	must(t, err)
	if len(got) != 1 || got[0].HostPort != 8080 {
		t.Errorf("Published = %v", got)
	}
}

// generations watches nftables commits in the host namespace.
type generations struct {
	l   *lab
	ch  chan *nftables.MonitorEvents
	mon *nftables.Monitor
	n   int
}

func (l *lab) watch() *generations {
	l.t.Helper()
	ns, err := os.Open("/run/netns/" + l.host)
	must(l.t, err)
	l.t.Cleanup(func() { ns.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	must(l.t, err)
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(256))
	ch, err := c.AddGenerationalMonitor(mon)
	must(l.t, err)
	l.t.Cleanup(func() { mon.Close() })
	return &generations{l: l, ch: ch, mon: mon}
}

// of runs op and returns the changes of every commit it made, one slice a
// commit: a commit of nft's own follows op, and op's are those before it.
func (g *generations) of(op func()) [][]string {
	g.l.t.Helper()
	op()
	g.n++
	marker := fmt.Sprintf("marker%d_%d", time.Now().UnixNano(), g.n)
	g.l.nft("add", "table", "ip", marker)
	var commits [][]string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case evs, ok := <-g.ch:
			if !ok {
				g.l.t.Fatal("monitor closed")
			}
			var changes []string
			for _, e := range evs.Changes {
				if e.Error != nil {
					g.l.t.Fatalf("monitor: %v", e.Error)
				}
				if tb, ok := e.Data.(*nftables.Table); ok && e.Type == nftables.MonitorEventTypeNewTable && tb.Name == marker {
					return commits
				}
				changes = append(changes, describe(e))
			}
			commits = append(commits, changes)
		case <-timeout:
			g.l.t.Fatal("no marker commit")
		}
	}
}

func describe(e *nftables.MonitorEvent) string {
	switch d := e.Data.(type) {
	case *nftables.Chain:
		return fmt.Sprintf("%d chain %s", e.Type, d.Name)
	case *nftables.Rule:
		return fmt.Sprintf("%d rule %s", e.Type, d.Chain.Name)
	case *nftables.Set:
		return fmt.Sprintf("%d set %s", e.Type, d.Name)
	case []nftables.SetElement:
		return fmt.Sprintf("%d %d elements", e.Type, len(d))
	case *nftables.Table:
		return fmt.Sprintf("%d table %s", e.Type, d.Name)
	}
	return fmt.Sprintf("%d %T", e.Type, e.Data)
}

// shape is a commit's changes with the port numbers taken out, to compare
// the same operation on two ports.
func shape(changes []string, port string) string {
	return strings.ReplaceAll(strings.Join(changes, "\n"), port, "PORT")
}

func TestPublishIsOneSmallBatch(t *testing.T) {
	l := newLab(t)
	must(t, l.fw.Ensure(l.ctx))
	one := []Backend{be("10.89.0.11", 80)}
	three := []Backend{be("10.89.0.11", 80), be("10.89.0.12", 80), be("10.89.0.13", 80)}
	ops := []struct {
		name string
		do   func(port uint16)
	}{
		{"publish", func(p uint16) { must(t, l.fw.Publish(l.ctx, Port{HostPort: p, Proto: "tcp", Backends: one})) }},
		{"three backends", func(p uint16) { must(t, l.fw.Publish(l.ctx, Port{HostPort: p, Proto: "tcp", Backends: three})) }},
		{"two backends", func(p uint16) { must(t, l.fw.Publish(l.ctx, Port{HostPort: p, Proto: "tcp", Backends: three[:2]})) }},
		{"unpublish", func(p uint16) { must(t, l.fw.Unpublish(l.ctx, netip.Addr{}, p, "tcp")) }},
	}
	// The same operations on an empty table and on one with 200 ports.
	measure := func(port uint16) map[string]string {
		g := l.watch()
		out := map[string]string{}
		for _, op := range ops {
			commits := g.of(func() { op.do(port) })
			if len(commits) != 1 {
				t.Fatalf("%s of port %d: %d commits, want 1: %q", op.name, port, len(commits), commits)
			}
			for _, c := range commits[0] {
				if strings.Contains(c, "chain") || strings.Contains(c, "rule") || strings.Contains(c, " set ") {
					if !strings.Contains(c, fmt.Sprint(port)) {
						t.Errorf("%s of port %d touched %s", op.name, port, c)
					}
				}
			}
			if len(commits[0]) > 12 {
				t.Errorf("%s of port %d: %d changes: %q", op.name, port, len(commits[0]), commits[0])
			}
			out[op.name] = shape(commits[0], fmt.Sprint(port))
		}
		return out
	}
	empty := measure(8000)
	for i := 0; i < 200; i++ {
		bs := one
		if i%2 == 0 {
			bs = three
		}
		must(t, l.fw.Publish(l.ctx, Port{HostPort: uint16(20000 + i), Proto: "tcp", Backends: bs}))
	}
	if got, err := l.fw.Published(l.ctx); err != nil || len(got) != 200 {
		t.Fatalf("Published: %d ports, %v", len(got), err)
	}
	full := measure(8001)
	for _, op := range ops {
		if empty[op.name] != full[op.name] {
			t.Errorf("%s: the commit differs with 200 ports:\nempty table:\n%s\n200 ports:\n%s", op.name, empty[op.name], full[op.name])
		}
		t.Logf("%s: %d changes in one commit, with or without 200 ports", op.name, strings.Count(full[op.name], "\n")+1)
	}
}

func BenchmarkPublishWith200(b *testing.B) {
	l := newLab(b)
	must(b, l.fw.Ensure(l.ctx))
	for i := 0; i < 200; i++ {
		must(b, l.fw.Publish(l.ctx, Port{HostPort: uint16(20000 + i), Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80)}}))
	}
	p := Port{HostPort: 8080, Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80)}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		must(b, l.fw.Publish(l.ctx, p))
		b.StopTimer()
		must(b, l.fw.Unpublish(l.ctx, netip.Addr{}, 8080, "tcp"))
		b.StartTimer()
	}
}
