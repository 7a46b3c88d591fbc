package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// recorder is a Handler that records what it is told.
type recorder struct {
	mu      sync.Mutex
	revs    map[string]int // "ref hash from" -> calls
	changes int
	block   chan struct{} // when set, calls wait for it to close
}

func newRecorder() *recorder { return &recorder{revs: make(map[string]int)} }

func (r *recorder) NewRevision(ref, hash, from string) {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revs[ref+" "+hash+" "+from]++
}

func (r *recorder) MemberChanged(Member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes++
}

func (r *recorder) revisions() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.revs))
	for k, v := range r.revs {
		out[k] = v
	}
	return out
}

// testLogger logs to stderr when BERTH_GOSSIP_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BERTH_GOSSIP_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastConfig is a configuration with short intervals for tests.
func fastConfig(name string, join ...string) Config {
	return Config{
		NodeName:         name,
		BindAddr:         "127.0.0.1:0",
		Join:             join,
		Key:              testKey,
		Labels:           map[string]string{"role": "role-" + name, "zone": "z1"},
		Version:          "test-" + name,
		APIAddr:          name + ".example:7947",
		Logger:           testLogger(),
		GossipInterval:   20 * time.Millisecond,
		ProbeInterval:    100 * time.Millisecond,
		PushPullInterval: 300 * time.Millisecond,
	}
}

// start starts a node and shuts it down at the end of the test.
func start(t *testing.T, cfg Config, h Handler) *Gossip {
	t.Helper()
	return startWith(t, cfg, h, options{})
}

func startWith(t *testing.T, cfg Config, h Handler, opt options) *Gossip {
	t.Helper()
	g, err := newGossip(context.Background(), cfg, h, opt)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	return g
}

// waitFor polls cond until it returns nil; past the deadline the test fails
// with cond's last error. The deadline only bounds a hang; it asserts no
// speed.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 30s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memberOf returns the member called name in g's list.
func memberOf(g *Gossip, name string) (Member, bool) {
	for _, m := range g.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// stateIs checks that every observer sees name in the given state.
func stateIs(name, state string, observers ...*Gossip) func() error {
	return func() error {
		for _, o := range observers {
			m, ok := memberOf(o, name)
			if !ok {
				return fmt.Errorf("%s does not know %s", o.name, name)
			}
			if m.State != state {
				return fmt.Errorf("%s sees %s %s", o.name, name, m.State)
			}
		}
		return nil
	}
}

// allAlive checks that every node sees exactly the given nodes, all alive.
func allAlive(nodes ...*Gossip) func() error {
	return func() error {
		var want []string
		for _, n := range nodes {
			want = append(want, n.name)
		}
		slices.Sort(want)
		for _, n := range nodes {
			var got []string
			for _, m := range n.Members() {
				if m.State != StateAlive {
					return fmt.Errorf("%s sees %s %s", n.name, m.Name, m.State)
				}
				got = append(got, m.Name)
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s sees %v, want %v", n.name, got, want)
			}
		}
		return nil
	}
}

// quiet checks that nothing is left to send or process on any node, three
// polls in a row.
func quiet(nodes ...*Gossip) func() error {
	streak := 0
	return func() error {
		for _, n := range nodes {
			if q, in, ev := n.bcast.NumQueued(), len(n.inbox), len(n.events); q+in+ev > 0 {
				streak = 0
				return fmt.Errorf("%s: %d queued broadcasts, %d incoming, %d handler calls", n.name, q, in, ev)
			}
		}
		streak++
		if streak < 3 {
			return errors.New("not yet quiet for long")
		}
		return nil
	}
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// cutTransport is memberlist's network transport with a switch that cuts
// the node off from everyone, as a network partition would.
type cutTransport struct {
	*memberlist.NetTransport
	cut     atomic.Bool
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
}

var errCut = errors.New("partitioned")

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil
	}
	return c.NetTransport.WriteTo(b, addr)
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return c.WriteTo(b, a.Addr)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.NetTransport.DialTimeout(addr, timeout)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return c.DialTimeout(a.Addr, timeout)
}

func (c *cutTransport) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *cutTransport) StreamCh() <-chan net.Conn           { return c.streams }

func (c *cutTransport) Shutdown() error {
	close(c.done)
	return c.NetTransport.Shutdown()
}

func (c *cutTransport) forward() {
	for {
		select {
		case <-c.done:
			return
		case p := <-c.NetTransport.PacketCh():
			if c.cut.Load() {
				continue
			}
			select {
			case c.packets <- p:
			case <-c.done:
				return
			}
		case conn := <-c.NetTransport.StreamCh():
			if c.cut.Load() {
				conn.Close()
				continue
			}
			select {
			case c.streams <- conn:
			case <-c.done:
				conn.Close()
				return
			}
		}
	}
}

// withCutTransport returns options that install a cutTransport, returned
// through *out.
func withCutTransport(out **cutTransport) options {
	return options{transport: func(mc *memberlist.Config) error {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mc.BindAddr},
			BindPort:  mc.BindPort,
			Logger:    mc.Logger,
		})
		if err != nil {
			return err
		}
		if mc.BindPort == 0 {
			mc.BindPort = nt.GetAutoBindPort()
			mc.AdvertisePort = mc.BindPort
		}
		c := &cutTransport{
			NetTransport: nt,
			packets:      make(chan *memberlist.Packet),
			streams:      make(chan net.Conn),
			done:         make(chan struct{}),
		}
		go c.forward()
		mc.Transport = c
		*out = c
		return nil
	}}
}

func mustContain(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}
