package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Gossip.
type Config struct {
	NodeName      string
	BindAddr      string   // "host:port", e.g. "0.0.0.0:7946" or "192.0.2.1:7946"; port 0 picks one (tests); "" is "0.0.0.0:7946"
	AdvertiseAddr string   // optional "host:port" (an IP address) the others reach this node at
	Join          []string // "host:port" seeds, retried in the background until one answers
	Key           []byte   // 16, 24 or 32 bytes (AES); required unless Insecure
	Insecure      bool     // allow running without a Key (tests only)
	Labels        map[string]string
	Version       string // agent version
	APIAddr       string // the agent's API (TCP) address others can call, "" when none
	Logger        *slog.Logger
	// Tuning for tests and benchmarks: zero means memberlist's LAN defaults.
	GossipInterval, ProbeInterval, PushPullInterval time.Duration
}

// Member is a node of the cluster as this node knows it.
type Member struct {
	Name    string
	Addr    string // gossip address host:port
	Labels  map[string]string
	Version string
	APIAddr string
	// State is "alive", "dead" (failed, or unreachable) or "left" (left on
	// purpose). memberlist v0.7.0 tells no one when it suspects a node, so
	// "suspect" is never reported: a suspect node stays "alive" until
	// memberlist declares it dead.
	State  string
	Status Status // latest known; zero when none
	Self   bool
}

// Handler receives news from the other agents. Its methods are called one at
// a time from a queue, never from the gossip's own goroutines, so a slow
// handler delays later calls (and, when the queue fills up, causes them to
// be dropped) but never blocks the gossip.
type Handler interface {
	// NewRevision is called once for each (ref, hash) another agent
	// announces; from is the agent that announced it first.
	NewRevision(ref, hash, from string)
	// MemberChanged is called when another member joins, leaves, dies or
	// changes (metadata or status).
	MemberChanged(m Member)
}

// Stats counts what the gossip dropped or rejected.
type Stats struct {
	Dropped  uint64 // incoming messages or handler calls dropped because their queue was full
	Rejected uint64 // malformed messages and node metadata rejected
}

// Member states.
const (
	StateAlive = "alive"
	StateDead  = "dead"
	StateLeft  = "left"
)

const (
	// metaLabel is memberlist's packet label: it keeps berth's gossip apart
	// from other memberlist clusters on the same network.
	metaLabel = "berth"
	// queueSize bounds the incoming-message queue and the handler queue.
	queueSize = 1024
	// maxBroadcast is the largest status sent in gossip (UDP) packets;
	// larger ones go to every member over TCP.
	maxBroadcast = 1024
	// maxQueuedBroadcasts bounds the outgoing broadcast queue.
	maxQueuedBroadcasts = 4096
	// seenRevisions is how many (ref, hash) pairs are remembered.
	seenRevisions = 4096
	// deadReap and leftReap are how long dead and left members are kept.
	deadReap = 72 * time.Hour
	leftReap = 24 * time.Hour
)

// Gossip is this agent's membership in the cluster.
type Gossip struct {
	name     string
	log      *slog.Logger
	h        Handler
	ml       *memberlist.Memberlist
	bcast    *memberlist.TransmitLimitedQueue
	meta     []byte
	self     nodeMeta
	addr     string
	seeds    []string
	interval time.Duration // base interval of the join loop

	inbox  chan inbound
	events chan func(Handler)
	big    chan []byte // the latest status too large for gossip packets

	ctx          context.Context // ends at Shutdown
	cancel       context.CancelFunc
	joinCtx      context.Context // ends at Shutdown or when New's ctx is done
	joinDone     chan struct{}   // closed when the join loop has stopped
	wg           sync.WaitGroup
	closed       atomic.Bool
	lifeMu       sync.Mutex // serializes Leave and Shutdown
	shutdownOnce sync.Once
	shutdownErr  error

	alive    atomic.Int32  // other members alive
	attempts atomic.Uint64 // join attempts made (one per address)
	dropped  atomic.Uint64
	rejected atomic.Uint64

	mu        sync.Mutex
	members   map[string]*member
	statuses  map[string]statusEntry
	status    Status // this node's; Seq 0 until SetStatus
	statusRaw []byte
	seq       uint64 // highest Seq issued by or seen for this node
	seen      seenSet
	left      bool
	joined    bool // some other member was alive at the last look
}

type member struct {
	name     string
	addr     string
	meta     nodeMeta
	state    string
	since    time.Time
	leaveSeq uint64 // Seq of the last leave notice taken into account
	leaving  bool   // a leave notice came while the member was alive
}

type statusEntry struct {
	s   Status
	raw []byte // the encoded status
	at  time.Time
}

type inbound struct {
	data  []byte
	state bool // from push/pull rather than a gossip message
}

// options are test hooks.
type options struct {
	// transport, when set, may install a memberlist transport.
	transport func(mc *memberlist.Config) error
}

// New starts this node's gossip: it binds the address, starts memberlist and
// joins the seeds in the background (retried until one answers, and again
// whenever this node finds itself alone). ctx bounds that joining only: the
// gossip runs until Shutdown, so that Leave still works after ctx is done.
func New(ctx context.Context, cfg Config, h Handler) (*Gossip, error) {
	return newGossip(ctx, cfg, h, options{})
}

func newGossip(ctx context.Context, cfg Config, h Handler, opt options) (*Gossip, error) {
	if err := validNodeName(cfg.NodeName); err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	self := nodeMeta{Labels: maps.Clone(cfg.Labels), Version: cfg.Version, APIAddr: cfg.APIAddr}
	meta, err := encodeMeta(self)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	if len(cfg.Key) == 0 && !cfg.Insecure {
		return nil, errors.New("gossip: an encryption key is required (or Insecure for tests)")
	}
	if n := len(cfg.Key); n != 0 && n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip: the encryption key is %d bytes, want 16, 24 or 32", n)
	}
	bindIP, bindPort, err := splitAddr("bind address", cfg.BindAddr, "0.0.0.0:7946")
	if err != nil {
		return nil, err
	}
	for _, j := range cfg.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return nil, fmt.Errorf("gossip: join address %q is not host:port", j)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if h == nil {
		h = nopHandler{}
	}

	g := &Gossip{
		name:     cfg.NodeName,
		log:      logger.With("component", "gossip"),
		h:        h,
		meta:     meta,
		self:     self,
		seeds:    slices.Clone(cfg.Join),
		inbox:    make(chan inbound, queueSize),
		events:   make(chan func(Handler), queueSize),
		big:      make(chan []byte, 1),
		members:  make(map[string]*member),
		statuses: make(map[string]statusEntry),
		seen:     newSeenSet(seenRevisions),
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr, mc.BindPort = bindIP, bindPort
	if cfg.AdvertiseAddr != "" {
		ip, port, err := splitAddr("advertise address", cfg.AdvertiseAddr, "")
		if err != nil {
			return nil, err
		}
		if port == 0 {
			port = bindPort
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ip, port
	}
	mc.Label = metaLabel
	if len(cfg.Key) > 0 {
		kr, err := memberlist.NewKeyring(nil, slices.Clone(cfg.Key))
		if err != nil {
			return nil, fmt.Errorf("gossip: encryption key: %w", err)
		}
		mc.Keyring = kr
	}
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.DelegateProtocolMin, mc.DelegateProtocolMax, mc.DelegateProtocolVersion = 1, 1, 1
	if cfg.GossipInterval > 0 {
		mc.GossipInterval = cfg.GossipInterval
	}
	if cfg.ProbeInterval > 0 {
		mc.ProbeInterval = cfg.ProbeInterval
		if mc.ProbeTimeout > cfg.ProbeInterval/2 {
			mc.ProbeTimeout = cfg.ProbeInterval / 2
		}
	}
	if cfg.PushPullInterval > 0 {
		mc.PushPullInterval = cfg.PushPullInterval
	}
	g.interval = mc.ProbeInterval
	d := &delegate{g: g}
	mc.Delegate, mc.Events, mc.Alive = d, d, d
	mc.Logger = log.New(logBridge{g: g}, "", 0)
	g.bcast = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(g.alive.Load()) + 1 },
		RetransmitMult: mc.RetransmitMult,
	}
	if opt.transport != nil {
		if err := opt.transport(mc); err != nil {
			return nil, fmt.Errorf("gossip: %w", err)
		}
	}

	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	var stopJoin context.CancelFunc
	g.joinCtx, stopJoin = context.WithCancel(ctx)
	context.AfterFunc(g.ctx, stopJoin)
	g.joinDone = make(chan struct{})
	ml, err := memberlist.Create(mc)
	if err != nil {
		g.cancel()
		stopJoin()
		return nil, fmt.Errorf("gossip: start memberlist on %s: %w", net.JoinHostPort(bindIP, strconv.Itoa(bindPort)), err)
	}
	g.ml = ml
	g.addr = ml.LocalNode().Address()

	g.wg.Add(4)
	go g.processLoop()
	go g.dispatchLoop()
	go g.bigStatusLoop()
	go g.maintainLoop()
	g.log.Debug("gossip started", "node", g.name, "addr", g.addr, "encrypted", len(cfg.Key) > 0)
	return g, nil
}

// splitAddr parses "host:port" where host is an IP address (empty means
// 0.0.0.0).
func splitAddr(what, s, def string) (string, int, error) {
	if s == "" {
		s = def
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: %s %q is not host:port", what, s)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("gossip: %s %q: %q is not an IP address", what, s, host)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: %s %q: bad port", what, s)
	}
	return host, int(port), nil
}

// LocalAddr returns the gossip address (host:port) this node advertises.
func (g *Gossip) LocalAddr() string { return g.addr }

// Stats returns the counts of dropped and rejected items.
func (g *Gossip) Stats() Stats {
	return Stats{Dropped: g.dropped.Load(), Rejected: g.rejected.Load()}
}

// SetStatus records this host's status and broadcasts it; it is also served
// to every node this one exchanges state with. Node is set to this node's
// name and Seq to the next sequence number; fields beyond the wire limits
// are trimmed, and invalid revisions or states are cleared (and logged).
func (g *Gossip) SetStatus(s Status) {
	if g.closed.Load() {
		return
	}
	s = g.sanitize(s)
	g.mu.Lock()
	s.Seq = g.nextSeqLocked()
	raw, err := Encode(s)
	if err != nil {
		g.mu.Unlock()
		g.log.Error("gossip: status not sent", "err", err)
		return
	}
	g.status, g.statusRaw = s, raw
	g.mu.Unlock()
	g.broadcastStatus(raw)
}

// sanitize makes s fit the wire rules.
func (g *Gossip) sanitize(s Status) Status {
	s.Node = g.name
	if err := validRevision(s.Revision); err != nil {
		g.log.Warn("gossip: invalid revision in status left out", "err", err)
		s.Revision = ""
	}
	if err := validRevision(s.Attempted); err != nil {
		g.log.Warn("gossip: invalid attempted revision in status left out", "err", err)
		s.Attempted = ""
	}
	if _, ok := stateCode(s.State); !ok {
		g.log.Warn("gossip: unknown state in status left out", "state", s.State)
		s.State = ""
	}
	s.Resources = min(max(s.Resources, 0), maxCount)
	s.Drifted = min(max(s.Drifted, 0), maxCount)
	s.Failing = min(max(s.Failing, 0), maxCount)
	var addrs []string
	for _, a := range s.FailingAddrs {
		if a = sanitizeText(a, MaxFailingAddr, false); a != "" && len(addrs) < MaxFailingAddrs {
			addrs = append(addrs, a)
		}
	}
	s.FailingAddrs = addrs
	s.Message = sanitizeText(s.Message, MaxStatusMessage, true)
	if ms := s.LastApply.UnixMilli(); s.LastApply.IsZero() || ms <= 0 || ms > maxLastApplyMillis {
		s.LastApply = time.Time{}
	} else {
		s.LastApply = time.UnixMilli(ms).UTC()
	}
	return s
}

// nextSeqLocked returns a sequence number above every one issued or seen
// for this node and no lower than the wall clock in milliseconds.
func (g *Gossip) nextSeqLocked() uint64 {
	seq := g.seq + 1
	if now := uint64(time.Now().UnixMilli()); now > seq {
		seq = now
	}
	g.seq = seq
	return seq
}

// broadcastStatus spreads an encoded status of this node.
func (g *Gossip) broadcastStatus(raw []byte) {
	if len(raw) <= maxBroadcast {
		g.queue("s/"+g.name, raw)
		return
	}
	// Too large for a gossip packet: the big-status loop sends it to every
	// member over TCP. Keep only the latest.
	select {
	case <-g.big:
	default:
	}
	select {
	case g.big <- raw:
	default:
	}
}

// AnnounceRevision broadcasts that ref moved to hash (40 hex digits). The
// others call Handler.NewRevision once per (ref, hash), however often it is
// announced. An invalid ref or hash is logged and not sent.
func (g *Gossip) AnnounceRevision(ref, hash string) {
	if g.closed.Load() {
		return
	}
	v := Revision{Ref: ref, Hash: strings.ToLower(hash), From: g.name}
	raw, err := Encode(v)
	if err != nil {
		g.log.Warn("gossip: revision not announced", "err", err)
		return
	}
	g.mu.Lock()
	g.seen.add(v.Ref + "\x00" + v.Hash)
	g.mu.Unlock()
	g.queue("r/"+v.Ref, raw)
}

// Members returns every member known, this node included, dead and left
// ones too, sorted by name.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	out := make([]Member, 0, len(g.members)+1)
	for _, rec := range g.members {
		out = append(out, g.memberLocked(rec))
	}
	state := StateAlive
	if g.left {
		state = StateLeft
	}
	self := Member{
		Name: g.name, Addr: g.addr, Labels: maps.Clone(g.self.Labels),
		Version: g.self.Version, APIAddr: g.self.APIAddr, State: state, Self: true,
	}
	if g.status.Seq != 0 {
		self.Status = cloneStatus(g.status)
	}
	g.mu.Unlock()
	out = append(out, self)
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (g *Gossip) memberLocked(rec *member) Member {
	m := Member{
		Name: rec.name, Addr: rec.addr, Labels: maps.Clone(rec.meta.Labels),
		Version: rec.meta.Version, APIAddr: rec.meta.APIAddr, State: rec.state,
	}
	if e, ok := g.statuses[rec.name]; ok {
		m.Status = cloneStatus(e.s)
	}
	return m
}

func cloneStatus(s Status) Status {
	s.FailingAddrs = slices.Clone(s.FailingAddrs)
	return s
}

// Leave tells the others this node leaves on purpose (they then see it as
// "left" rather than "dead") and waits up to timeout for the news to go out.
// The node stops rejoining; call Shutdown afterwards.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.closed.Load() {
		return errors.New("gossip: leave after shutdown")
	}
	g.mu.Lock()
	g.left = true
	seq := g.nextSeqLocked()
	g.mu.Unlock()
	if raw, err := Encode(Leave{Node: g.name, Seq: seq}); err == nil {
		g.queue("l/"+g.name, raw)
	}
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops the gossip without telling the others, who will see this
// node as dead. It waits for a handler call in progress to return. It is
// safe to call more than once.
func (g *Gossip) Shutdown() error {
	g.shutdownOnce.Do(func() {
		g.lifeMu.Lock()
		g.closed.Store(true)
		g.cancel()
		err := g.ml.Shutdown()
		g.lifeMu.Unlock()
		g.wg.Wait()
		if err != nil {
			g.shutdownErr = fmt.Errorf("gossip: shutdown: %w", err)
		}
	})
	return g.shutdownErr
}

// queue hands a message to memberlist's gossip. Messages of the same name
// replace each other in the queue.
func (g *Gossip) queue(name string, raw []byte) {
	if g.closed.Load() {
		return
	}
	g.bcast.QueueBroadcast(&broadcast{name: name, msg: raw})
}

// emit queues a handler call, or drops and counts it when the queue is
// full. It never blocks.
func (g *Gossip) emit(f func(Handler)) {
	if g.closed.Load() {
		return
	}
	select {
	case g.events <- f:
	default:
		g.dropped.Add(1)
		g.log.Debug("gossip: handler queue full, event dropped")
	}
}

func (g *Gossip) dispatchLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case f := <-g.events:
			if g.ctx.Err() != nil {
				return
			}
			f(g.h)
		}
	}
}

// enqueue hands incoming bytes (copied) to the processing loop, or drops and
// counts them when its queue is full. It never blocks.
func (g *Gossip) enqueue(b []byte, state bool) {
	if g.closed.Load() {
		return
	}
	select {
	case g.inbox <- inbound{data: slices.Clone(b), state: state}:
	default:
		g.dropped.Add(1)
		g.log.Debug("gossip: incoming queue full, message dropped")
	}
}

func (g *Gossip) processLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case in := <-g.inbox:
			g.process(in)
		}
	}
}

func (g *Gossip) process(in inbound) {
	m, err := Decode(in.data)
	if err == nil {
		if _, isState := m.(State); isState != in.state {
			err = fmt.Errorf("decode gossip message: unexpected message type %d", in.data[0])
		}
	}
	if err != nil {
		g.rejected.Add(1)
		g.log.Debug("gossip: message rejected", "err", err)
		return
	}
	switch m := m.(type) {
	case Status:
		g.mergeStatus(m, in.data, true)
	case Revision:
		g.onRevision(m, in.data)
	case Leave:
		g.onLeaveNotice(m, in.data)
	case State:
		// Each status's encoding is needed for relaying in push/pull.
		r := reader{b: in.data, off: 2}
		r.uvarint()
		for _, s := range m.Statuses {
			g.mergeStatus(s, r.rawBytes("status", MaxMessageSize), false)
		}
	}
}

// mergeStatus keeps s when it is newer than the status known for its node,
// and relays it when it came in a gossip message.
func (g *Gossip) mergeStatus(s Status, raw []byte, relay bool) {
	g.mu.Lock()
	if s.Node == g.name {
		// Someone holds a status of ours newer than any we issued: from
		// before a restart with a clock set back. Reissue ours above it.
		if s.Seq > g.seq {
			g.seq = s.Seq
			if g.status.Seq != 0 {
				g.status.Seq = g.nextSeqLocked()
				if b, err := Encode(g.status); err == nil {
					g.statusRaw = b
					g.mu.Unlock()
					g.broadcastStatus(b)
					return
				}
			}
		}
		g.mu.Unlock()
		return
	}
	old, ok := g.statuses[s.Node]
	if ok && old.s.Seq >= s.Seq || !ok && len(g.statuses) >= maxStateEntries {
		g.mu.Unlock()
		return
	}
	g.statuses[s.Node] = statusEntry{s: s, raw: raw, at: time.Now()}
	if rec := g.members[s.Node]; rec != nil {
		m := g.memberLocked(rec)
		g.emit(func(h Handler) { h.MemberChanged(m) })
	}
	g.mu.Unlock()
	if relay && len(raw) <= maxBroadcast {
		g.queue("s/"+s.Node, raw)
	}
}

func (g *Gossip) onRevision(v Revision, raw []byte) {
	if v.From == g.name {
		return
	}
	key := v.Ref + "\x00" + v.Hash
	g.mu.Lock()
	if g.seen.has(key) {
		g.mu.Unlock()
		return
	}
	g.seen.add(key)
	g.emit(func(h Handler) { h.NewRevision(v.Ref, v.Hash, v.From) })
	g.mu.Unlock()
	g.queue("r/"+v.Ref, raw)
}

func (g *Gossip) onLeaveNotice(v Leave, raw []byte) {
	if v.Node == g.name {
		return
	}
	g.mu.Lock()
	rec := g.members[v.Node]
	if rec == nil || v.Seq <= rec.leaveSeq || g.statuses[v.Node].s.Seq > v.Seq {
		// Unknown member, already seen, or older than the member's
		// latest status (a notice from before a restart).
		g.mu.Unlock()
		return
	}
	rec.leaveSeq = v.Seq
	if rec.state == StateDead {
		g.setStateLocked(rec, StateLeft)
		m := g.memberLocked(rec)
		g.emit(func(h Handler) { h.MemberChanged(m) })
	} else {
		rec.leaving = true
	}
	g.mu.Unlock()
	g.queue("l/"+v.Node, raw)
}

// setStateLocked changes a member's state and the count of alive members.
func (g *Gossip) setStateLocked(rec *member, state string) {
	if rec.state == state {
		return
	}
	if rec.state == StateAlive {
		g.alive.Add(-1)
	}
	if state == StateAlive {
		g.alive.Add(1)
	}
	rec.state, rec.since = state, time.Now()
}

// onNode records a membership event from memberlist. It runs under
// memberlist's lock, so it must neither block nor call memberlist.
func (g *Gossip) onNode(n *memberlist.Node, state string) {
	if n.Name == g.name || g.closed.Load() {
		return
	}
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		// Malformed metadata is refused by NotifyAlive; this is metadata
		// of a newer version: the member is kept without it.
		meta = nodeMeta{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	rec := g.members[n.Name]
	if rec == nil {
		rec = &member{name: n.Name}
		g.members[n.Name] = rec
	}
	rec.addr = n.Address()
	rec.meta = meta
	switch state {
	case StateAlive:
		rec.leaving = false
	case StateDead:
		if rec.leaving {
			state = StateLeft
		}
		rec.leaving = false
	}
	g.setStateLocked(rec, state)
	m := g.memberLocked(rec)
	g.emit(func(h Handler) { h.MemberChanged(m) })
}

// localState encodes every status known for push/pull: this node's first,
// then the newest ones, up to the size limit.
func (g *Gossip) localState() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	entries := make([]statusEntry, 0, len(g.statuses))
	for _, e := range g.statuses {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b statusEntry) int {
		if a.s.Seq != b.s.Seq {
			if a.s.Seq > b.s.Seq {
				return -1
			}
			return 1
		}
		return strings.Compare(a.s.Node, b.s.Node)
	})
	raws := make([][]byte, 0, len(entries)+1)
	if g.statusRaw != nil {
		raws = append(raws, g.statusRaw)
	}
	for _, e := range entries {
		raws = append(raws, e.raw)
	}
	w := writer{b: make([]byte, 0, 256)}
	w.byte(typeState)
	w.byte(wireVersion)
	size := len(w.b) + 3
	n := 0
	for _, r := range raws {
		size += uvarintLen(uint64(len(r))) + len(r)
		if size > MaxStateSize || n == maxStateEntries {
			break
		}
		n++
	}
	w.uvarint(uint64(n))
	for _, r := range raws[:n] {
		w.bytes(r)
	}
	return w.b
}

// broadcast is a message in memberlist's transmit-limited queue; one of a
// given name replaces the previous one.
type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// seenSet remembers the last n keys added.
type seenSet struct {
	keys map[string]bool
	ring []string
	next int
}

func newSeenSet(n int) seenSet {
	return seenSet{keys: make(map[string]bool, n), ring: make([]string, n)}
}

func (s *seenSet) has(k string) bool { return s.keys[k] }

func (s *seenSet) add(k string) {
	if s.keys[k] {
		return
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.keys, old)
	}
	s.ring[s.next] = k
	s.next = (s.next + 1) % len(s.ring)
	s.keys[k] = true
}

type nopHandler struct{}

func (nopHandler) NewRevision(string, string, string) {}
func (nopHandler) MemberChanged(Member)               {}
