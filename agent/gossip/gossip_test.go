package gossip

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// cluster starts n nodes ("n0", "n1", ...) joined through n0 and waits
// until all see each other alive.
func cluster(t *testing.T, n int) ([]*Gossip, []*recorder) {
	t.Helper()
	var nodes []*Gossip
	var recs []*recorder
	for i := range n {
		var join []string
		if i > 0 {
			join = []string{nodes[0].LocalAddr()}
		}
		r := newRecorder()
		nodes = append(nodes, start(t, fastConfig(fmt.Sprintf("n%d", i), join...), r))
		recs = append(recs, r)
	}
	waitFor(t, "all nodes alive", allAlive(nodes...))
	return nodes, recs
}

func TestJoinAndMetadata(t *testing.T) {
	nodes, recs := cluster(t, 3)
	for _, o := range nodes {
		for _, n := range nodes {
			m, ok := memberOf(o, n.name)
			if !ok {
				t.Fatalf("%s does not know %s", o.name, n.name)
			}
			cfg := fastConfig(n.name)
			if !maps.Equal(m.Labels, cfg.Labels) || m.Version != cfg.Version || m.APIAddr != cfg.APIAddr {
				t.Errorf("%s sees %s with labels %v, version %q, API %q; want %v, %q, %q",
					o.name, n.name, m.Labels, m.Version, m.APIAddr, cfg.Labels, cfg.Version, cfg.APIAddr)
			}
			if m.Addr != n.LocalAddr() {
				t.Errorf("%s sees %s at %s, want %s", o.name, n.name, m.Addr, n.LocalAddr())
			}
			if m.Self != (o == n) {
				t.Errorf("%s sees %s with Self=%v", o.name, n.name, m.Self)
			}
		}
	}
	// Members returns copies: changing them changes nothing.
	ms := nodes[0].Members()
	ms[1].Labels["role"] = "changed"
	if m, _ := memberOf(nodes[0], ms[1].Name); m.Labels["role"] == "changed" {
		t.Error("Members shares its label maps")
	}
	// Each node was told of the other two.
	for i, r := range recs {
		r.mu.Lock()
		c := r.changes
		r.mu.Unlock()
		if c < 2 {
			t.Errorf("n%d: %d MemberChanged calls, want at least 2", i, c)
		}
	}
}

func TestStatusPropagates(t *testing.T) {
	nodes, _ := cluster(t, 3)
	want := sampleStatus()
	want.Node = "ignored: set by the gossip layer"
	want.Seq = 5
	before := uint64(time.Now().UnixMilli())
	nodes[1].SetStatus(want)
	self, _ := memberOf(nodes[1], "n1")
	if self.Status.Node != "n1" || self.Status.Seq < before {
		t.Fatalf("own status has node %q and seq %d, want n1 and at least the clock %d", self.Status.Node, self.Status.Seq, before)
	}
	sees := func(seq uint64, revision string) func() error {
		return func() error {
			for _, o := range nodes {
				m, _ := memberOf(o, "n1")
				if m.Status.Seq != seq || m.Status.Revision != revision {
					return fmt.Errorf("%s sees n1 status seq %d revision %q", o.name, m.Status.Seq, m.Status.Revision)
				}
			}
			return nil
		}
	}
	waitFor(t, "status reaches everyone", sees(self.Status.Seq, want.Revision))
	for _, o := range nodes {
		m, _ := memberOf(o, "n1")
		got := m.Status
		w := want
		w.Node, w.Seq = "n1", got.Seq
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s sees status %+v, want %+v", o.name, got, w)
		}
	}
	// A newer status replaces it.
	next := Status{State: "converged", Revision: "main@sha1:" + strings.Repeat("c", 40), Resources: 3}
	nodes[1].SetStatus(next)
	self2, _ := memberOf(nodes[1], "n1")
	if self2.Status.Seq <= self.Status.Seq {
		t.Fatalf("second status seq %d not above %d", self2.Status.Seq, self.Status.Seq)
	}
	waitFor(t, "newer status reaches everyone", sees(self2.Status.Seq, next.Revision))
}

func TestLargeStatusGoesOverTCP(t *testing.T) {
	nodes, _ := cluster(t, 3)
	s := Status{State: "failing", Failing: 20, Message: strings.Repeat("m", MaxStatusMessage)}
	for i := range MaxFailingAddrs + 5 {
		s.FailingAddrs = append(s.FailingAddrs, fmt.Sprintf("container.service_%03d[%s]", i, strings.Repeat("k", 90)))
	}
	nodes[2].SetStatus(s)
	self, _ := memberOf(nodes[2], "n2")
	if len(self.Status.FailingAddrs) != MaxFailingAddrs {
		t.Fatalf("%d failing addresses kept, want %d", len(self.Status.FailingAddrs), MaxFailingAddrs)
	}
	if raw, _ := Encode(self.Status); len(raw) <= maxBroadcast {
		t.Fatalf("test status is %d bytes, not larger than a gossip packet's %d", len(raw), maxBroadcast)
	}
	waitFor(t, "large status reaches everyone", func() error {
		for _, o := range nodes[:2] {
			m, _ := memberOf(o, "n2")
			if m.Status.Seq != self.Status.Seq || len(m.Status.FailingAddrs) != MaxFailingAddrs {
				return fmt.Errorf("%s sees n2 status seq %d", o.name, m.Status.Seq)
			}
		}
		return nil
	})
}

func TestSetStatusSanitizes(t *testing.T) {
	g := start(t, fastConfig("solo"), nil)
	g.SetStatus(Status{
		Revision:  "not a revision",
		Attempted: "sha1:" + hashA,
		State:     "happy",
		Resources: -3,
		Message:   strings.Repeat("é", MaxStatusMessage) + "\x1b",
		LastApply: time.Date(2026, 1, 2, 3, 4, 5, 678912345, time.UTC),
	})
	m, _ := memberOf(g, "solo")
	s := m.Status
	if s.Revision != "" || s.Attempted != "sha1:"+hashA || s.State != "" || s.Resources != 0 {
		t.Errorf("sanitized status: %+v", s)
	}
	if len(s.Message) > MaxStatusMessage || strings.Contains(s.Message, "\x1b") {
		t.Errorf("message not trimmed: %d bytes", len(s.Message))
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 678000000, time.UTC); !s.LastApply.Equal(want) {
		t.Errorf("LastApply %v, want %v", s.LastApply, want)
	}
	if _, err := Encode(s); err != nil {
		t.Errorf("sanitized status does not encode: %v", err)
	}
}

func TestRevisionReachesEachOnce(t *testing.T) {
	nodes, recs := cluster(t, 3)
	hash := strings.Repeat("ab", 20)
	nodes[0].AnnounceRevision("main", strings.ToUpper(hash)) // case is normalized
	key := "main " + hash + " n0"
	waitFor(t, "revision reaches n1 and n2", func() error {
		for i := 1; i < 3; i++ {
			if recs[i].revisions()[key] == 0 {
				return fmt.Errorf("n%d has not heard of it", i)
			}
		}
		return nil
	})
	// Announcing it again, from anyone, calls no handler again.
	nodes[0].AnnounceRevision("main", hash)
	nodes[1].AnnounceRevision("main", hash)
	waitFor(t, "all broadcasts done", quiet(nodes...))
	for i, r := range recs {
		want := 1
		if i == 0 {
			want = 0 // the announcer is not told of its own news
		}
		got := r.revisions()
		if got[key] != want || len(got) != want {
			t.Errorf("n%d was told %v, want %q %d times", i, got, key, want)
		}
	}
	// An invalid announcement is not sent.
	nodes[0].AnnounceRevision("main", "xyz")
	nodes[0].AnnounceRevision("bad..ref", hash)
	if q := nodes[0].bcast.NumQueued(); q != 0 {
		t.Errorf("%d broadcasts queued after invalid announcements", q)
	}
}

func TestWrongKeyDoesNotJoin(t *testing.T) {
	nodes, _ := cluster(t, 2)
	seed := nodes[0].LocalAddr()

	wrong := fastConfig("wrong", seed)
	wrong.Key = []byte("fedcba9876543210fedcba9876543210")
	bad := start(t, wrong, nil)
	insecure := fastConfig("insecure", seed)
	insecure.Key, insecure.Insecure = nil, true
	plain := start(t, insecure, nil)

	for _, g := range []*Gossip{bad, plain} {
		if n, err := g.ml.Join([]string{seed}); err == nil {
			t.Errorf("%s joined %d nodes, want an error", g.name, n)
		}
	}
	// A node with the right key joins the same way; by then the others
	// would have been seen too.
	good := start(t, fastConfig("good", seed), nil)
	waitFor(t, "good joins", allAlive(nodes[0], nodes[1], good))
	for _, g := range []*Gossip{bad, plain} {
		if ms := g.Members(); len(ms) != 1 {
			t.Errorf("%s sees %d members", g.name, len(ms))
		}
		for _, o := range []*Gossip{nodes[0], nodes[1], good} {
			if _, ok := memberOf(o, g.name); ok {
				t.Errorf("%s sees %s", o.name, g.name)
			}
		}
	}
}

func TestShutdownSeenDead(t *testing.T) {
	nodes, _ := cluster(t, 3)
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 seen dead", stateIs("n2", StateDead, nodes[0], nodes[1]))
	if err := nodes[2].Leave(time.Second); err == nil {
		t.Error("Leave after Shutdown succeeded")
	}
}

func TestLeaveSeenLeft(t *testing.T) {
	nodes, _ := cluster(t, 3)
	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if m, _ := memberOf(nodes[2], "n2"); m.State != StateLeft {
		t.Errorf("n2 sees itself %s", m.State)
	}
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 seen left", stateIs("n2", StateLeft, nodes[0], nodes[1]))
}

func TestRestartRejoinsAndNewStatusWins(t *testing.T) {
	nodes, _ := cluster(t, 3)
	nodes[0].SetStatus(Status{State: "converged"})
	nodes[1].SetStatus(Status{State: "drifted", Drifted: 2})
	nodes[2].SetStatus(Status{State: "failing", Failing: 1})
	old, _ := memberOf(nodes[2], "n2")
	waitFor(t, "old status known", func() error {
		if m, _ := memberOf(nodes[0], "n2"); m.Status.Seq != old.Status.Seq {
			return fmt.Errorf("n0 sees n2 status %d", m.Status.Seq)
		}
		return nil
	})
	addr := nodes[2].LocalAddr()
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 seen dead", stateIs("n2", StateDead, nodes[0], nodes[1]))

	// A new instance, same name and address, as after a reboot.
	cfg := fastConfig("n2", nodes[0].LocalAddr())
	cfg.BindAddr = addr
	cfg.Version = "test-n2-upgraded"
	again := start(t, cfg, nil)
	// It learns the others' statuses from the join's state exchange.
	waitFor(t, "restarted node learns statuses", func() error {
		for _, n := range []string{"n0", "n1"} {
			m, _ := memberOf(again, n)
			if m.Status.State == "" {
				return fmt.Errorf("n2 does not know %s's status", n)
			}
		}
		return nil
	})
	again.SetStatus(Status{State: "converged", Resources: 4})
	waitFor(t, "all alive again", allAlive(nodes[0], nodes[1], again))
	waitFor(t, "new status and version win", func() error {
		for _, o := range nodes[:2] {
			m, _ := memberOf(o, "n2")
			if m.Status.State != "converged" || m.Status.Seq <= old.Status.Seq || m.Version != "test-n2-upgraded" {
				return fmt.Errorf("%s sees n2 %s, version %s, status %+v", o.name, m.State, m.Version, m.Status)
			}
		}
		return nil
	})
}

func TestPartitionedNodeRejoins(t *testing.T) {
	a := start(t, fastConfig("a"), nil)
	b := start(t, fastConfig("b", a.LocalAddr()), nil)
	var cut *cutTransport
	c := startWith(t, fastConfig("c", a.LocalAddr()), nil, withCutTransport(&cut))
	waitFor(t, "all alive", allAlive(a, b, c))

	cut.cut.Store(true)
	waitFor(t, "c seen dead", stateIs("c", StateDead, a, b))
	waitFor(t, "c sees the others dead", stateIs("a", StateDead, c))
	waitFor(t, "c sees the others dead", stateIs("b", StateDead, c))

	// While cut off, c keeps running; its news waits.
	c.SetStatus(Status{State: "converged", Resources: 9})
	cut.cut.Store(false)
	waitFor(t, "all alive after the partition heals", allAlive(a, b, c))
	waitFor(t, "c's status reaches the others", func() error {
		for _, o := range []*Gossip{a, b} {
			if m, _ := memberOf(o, "c"); m.Status.Resources != 9 {
				return fmt.Errorf("%s sees c status %+v", o.name, m.Status)
			}
		}
		return nil
	})
}

func TestJoinRetriedUntilSeedStarts(t *testing.T) {
	port := freePort(t)
	seed := fmt.Sprintf("127.0.0.1:%d", port)
	early := start(t, fastConfig("early", seed), nil)
	waitFor(t, "a few join attempts fail", func() error {
		if n := early.attempts.Load(); n < 3 {
			return fmt.Errorf("%d attempts", n)
		}
		return nil
	})
	if ms := early.Members(); len(ms) != 1 {
		t.Fatalf("early sees %d members before the seed starts", len(ms))
	}
	cfg := fastConfig("late")
	cfg.BindAddr = seed
	late := start(t, cfg, nil)
	waitFor(t, "early joins late", allAlive(early, late))
}

func TestMalformedMessagesRejected(t *testing.T) {
	nodes, recs := cluster(t, 2)
	g := nodes[0]
	d := &delegate{g: g}
	valid, _ := Encode(Revision{Ref: "main", Hash: hashA, From: "n1"})
	state, _ := Encode(State{})
	status, _ := Encode(Status{Node: "n1", Seq: ^uint64(0)})
	bad := [][]byte{
		{},
		{0xff},
		valid[:len(valid)-1],
		append([]byte{typeRevision, 9}, valid[2:]...),
		append(append([]byte{}, valid...), make([]byte, MaxMessageSize)...),
		state, // a push/pull state in a gossip message
	}
	for _, b := range bad {
		d.NotifyMsg(b)
	}
	d.MergeRemoteState(status, false) // a gossip message in push/pull
	d.MergeRemoteState([]byte{typeState, wireVersion, 1, 0}, true)
	want := uint64(len(bad) + 2)
	waitFor(t, "all processed", quiet(g))
	if got := g.Stats().Rejected; got != want {
		t.Errorf("%d rejected, want %d", got, want)
	}
	if m, _ := memberOf(g, "n1"); m.Status.Seq != 0 {
		t.Errorf("status from a misplaced message taken: %+v", m.Status)
	}
	if got := recs[0].revisions(); len(got) != 0 {
		t.Errorf("handler told %v", got)
	}
	// The node still works.
	d.NotifyMsg(valid)
	waitFor(t, "valid message handled", func() error {
		if recs[0].revisions()["main "+hashA+" n1"] != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

func TestFullQueuesDropRatherThanBlock(t *testing.T) {
	r := newRecorder()
	r.block = make(chan struct{})
	g := start(t, fastConfig("solo"), r)
	t.Cleanup(func() { close(r.block) }) // runs before Shutdown
	d := &delegate{g: g}
	const n = 3 * queueSize
	for i := range n {
		raw, err := Encode(Revision{Ref: "main", Hash: fmt.Sprintf("%040x", i), From: "other"})
		if err != nil {
			t.Fatal(err)
		}
		d.NotifyMsg(raw) // must return at once even though the handler is stuck
	}
	waitFor(t, "drops counted", func() error {
		if len(g.inbox) > 0 {
			return fmt.Errorf("%d still to process", len(g.inbox))
		}
		if s := g.Stats(); s.Dropped < n-queueSize-1 {
			return fmt.Errorf("%d dropped", s.Dropped)
		}
		return nil
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	base := fastConfig("x")
	tests := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"oversized labels", func(c *Config) {
			c.Labels = map[string]string{"rack": strings.Repeat("r", 200), "room": strings.Repeat("o", 200), "zone": strings.Repeat("z", 200)}
		}, []string{"labels rack, room, zone", "limit 512"}},
		{"bad label key", func(c *Config) { c.Labels = map[string]string{"a=b": "c"} }, []string{"label key"}},
		{"no key", func(c *Config) { c.Key = nil }, []string{"encryption key is required"}},
		{"short key", func(c *Config) { c.Key = []byte("short") }, []string{"5 bytes"}},
		{"bad node name", func(c *Config) { c.NodeName = "a/b" }, []string{"node name"}},
		{"bad bind", func(c *Config) { c.BindAddr = "localhost:0" }, []string{"not an IP address"}},
		{"bad join", func(c *Config) { c.Join = []string{"nohostport"} }, []string{"join address"}},
		{"bad API address", func(c *Config) { c.APIAddr = "nope" }, []string{"API address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			g, err := New(context.Background(), cfg, nil)
			if err == nil {
				_ = g.Shutdown()
			}
			mustContain(t, err, tt.want...)
			if strings.Contains(err.Error(), string(testKey)) {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

func TestContextStopsJoiningOnly(t *testing.T) {
	nodes, _ := cluster(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, fastConfig("late", nodes[0].LocalAddr()), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	waitFor(t, "late joins", allAlive(nodes[0], nodes[1], g))
	cancel()
	<-g.joinDone // the join loop stops
	// The gossip itself runs on: news still flows, and Leave works.
	g.SetStatus(Status{State: "converged"})
	waitFor(t, "status after cancel", func() error {
		if m, _ := memberOf(nodes[0], "late"); m.Status.State != "converged" {
			return fmt.Errorf("n0 sees %+v", m.Status)
		}
		return nil
	})
	if err := g.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "late seen left", stateIs("late", StateLeft, nodes[0], nodes[1]))
	if err := g.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestSeqFloorIsTheClock(t *testing.T) {
	g := start(t, fastConfig("solo"), nil)
	// A status of ours from before a restart, newer than the clock, comes
	// back: ours is reissued above it.
	future := uint64(time.Now().Add(time.Hour).UnixMilli())
	g.SetStatus(Status{State: "starting"})
	raw, _ := Encode(Status{Node: "solo", State: "failing", Seq: future})
	g.mergeStatus(Status{Node: "solo", State: "failing", Seq: future}, raw, true)
	m, _ := memberOf(g, "solo")
	if m.Status.Seq <= future || m.Status.State != "starting" {
		t.Errorf("own status %+v, want state starting above seq %d", m.Status, future)
	}
}
