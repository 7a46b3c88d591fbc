package firewall

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/berthhq/berth/providers/linux/ident"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Network is a bridge network as the firewall sees it: the bridge
// interface, the subnet of its containers, and whether it is internal (no
// traffic to or from other interfaces, no masquerade).
type Network struct {
	Name     string
	Bridge   string
	Subnet   netip.Prefix
	Internal bool
}

// NetworkState is a network as read back from the live table. Drift
// names, one sentence each, what differs from what AddNetwork writes for
// the decoded Network (a rule deleted or edited, an element added by
// hand); it is empty when the network is intact.
type NetworkState struct {
	Network
	Drift []string
}

// validNetworkName reports whether s can name a network: up to 64
// letters, digits, '_', '.' and '-', starting with a letter or digit.
func validNetworkName(s string) bool { return ident.Valid(s, 64, "", "_.-") }

func validNetwork(n Network) (Network, error) {
	if !validNetworkName(n.Name) {
		return n, fmt.Errorf("invalid network name %q (letters, digits, '_', '.', '-', at most 64)", n.Name)
	}
	if err := validIfname(n.Bridge); err != nil {
		return n, err
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Unmap().Is4() {
		return n, fmt.Errorf("subnet %v is not an IPv4 prefix", n.Subnet)
	}
	n.Subnet = netip.PrefixFrom(n.Subnet.Addr().Unmap(), n.Subnet.Bits()).Masked()
	if n.Subnet.Bits() == 0 {
		return n, fmt.Errorf("subnet %v covers every address", n.Subnet)
	}
	return n, nil
}

func validIfname(s string) error {
	if s == "" || len(s) >= 16 || s == "." || s == ".." || strings.ContainsAny(s, "/:\x00 \t\n") {
		return fmt.Errorf("invalid interface name %q", s)
	}
	return nil
}

func netChain(name, part string) string { return "net_" + name + "_" + part }

// netOfChain returns the network and part (out, in, nat) of a network
// chain name.
func netOfChain(chain string) (name, part string, ok bool) {
	rest, ok := strings.CutPrefix(chain, "net_")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", "", false
	}
	name, part = rest[:i], rest[i+1:]
	switch part {
	case "out", "in", "nat":
		return name, part, true
	}
	return "", "", false
}

var netParts = []string{"out", "in", "nat"}

// netRules returns the rules of n's chains, by part.
func netRules(n Network) map[string][]ruleSpec {
	tag := "berth:net " + n.Name
	accept, drop := verdict(expr.VerdictAccept), verdict(expr.VerdictDrop)
	sameBridge := ruleSpec{cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge), one(accept)), tag}
	if n.Internal {
		return map[string][]ruleSpec{
			"out": {sameBridge, {one(drop), tag + " internal"}},
			"in":  {{one(drop), tag + " internal"}},
			"nat": nil,
		}
	}
	return map[string][]ruleSpec{
		"out": {
			sameBridge,
			{cat(ifnameInSet(expr.MetaKeyOIFNAME, setBridges), ctStatusDNATIs(false), one(drop)), tag},
		},
		"in": {
			{cat(ctStateEstablished(), one(accept)), tag},
			{cat(ctStatusDNATIs(true), one(accept)), tag},
			{one(drop), tag},
		},
		"nat": {
			{cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, n.Bridge), one(masquerade())), tag},
			{cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge), ctStatusDNATIs(true), one(masquerade())), tag},
		},
	}
}

// interval is one range of the interval map nat_src.
type interval struct {
	first, last netip.Addr
	kind        expr.VerdictKind
	chain       string
	start, end  []byte // element keys; end nil if the range ends at the top
}

func (iv interval) prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= 32; bits++ {
		p := netip.PrefixFrom(iv.first, bits)
		if p.Masked().Addr() == iv.first && lastAddr(p) == iv.last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	if p.Bits() == 0 {
		host = ^uint32(0)
	}
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// subnetElems are the two elements of p in nat_src (one if p ends at the
// top of the address space).
func subnetElems(p netip.Prefix, chain string) []nftables.SetElement {
	a := p.Addr().As4()
	es := []nftables.SetElement{{Key: a[:], VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}}
	if next := lastAddr(p).Next(); next.IsValid() {
		n := next.As4()
		es = append(es, nftables.SetElement{Key: n[:], IntervalEnd: true})
	}
	return es
}

// intervals decodes the elements of nat_src.
func intervals(es []nftables.SetElement) []interval {
	sorted := make([]nftables.SetElement, 0, len(es))
	for _, e := range es {
		if len(e.Key) == 4 {
			sorted = append(sorted, e)
		}
	}
	sort.Slice(sorted, func(i, j int) bool {
		if c := bytes.Compare(sorted[i].Key, sorted[j].Key); c != 0 {
			return c < 0
		}
		return sorted[i].IntervalEnd && !sorted[j].IntervalEnd
	})
	var out []interval
	for i, e := range sorted {
		if e.IntervalEnd {
			continue
		}
		iv := interval{first: netip.AddrFrom4([4]byte(e.Key)), last: netip.AddrFrom4([4]byte{255, 255, 255, 255}), start: e.Key}
		iv.kind, iv.chain, _ = verdictOf(e.Val)
		if i+1 < len(sorted) && sorted[i+1].IntervalEnd {
			iv.end = sorted[i+1].Key
			iv.last = netip.AddrFrom4([4]byte(iv.end)).Prev()
		} else if i+1 < len(sorted) {
			iv.last = netip.AddrFrom4([4]byte(sorted[i+1].Key)).Prev()
		}
		out = append(out, iv)
	}
	return out
}

// netLive is the live state of every network of the table.
type netLive struct {
	l       *live
	bridges [][]byte
	fwdOut  []nftables.SetElement
	fwdIn   []nftables.SetElement
	nat     []interval
	rules   map[string][]*nftables.Rule // chain → rules
}

func (f *Firewall) readNetworks(c *nftables.Conn) (*netLive, error) {
	l, err := f.readLive(c)
	if err != nil {
		return nil, err
	}
	nl := &netLive{l: l, rules: map[string][]*nftables.Rule{}}
	if !l.exists {
		return nl, nil
	}
	es, err := f.elements(c, l, setBridges)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		nl.bridges = append(nl.bridges, e.Key)
	}
	if nl.fwdOut, err = f.elements(c, l, mapFwdOut); err != nil {
		return nil, err
	}
	if nl.fwdIn, err = f.elements(c, l, mapFwdIn); err != nil {
		return nil, err
	}
	es, err = f.elements(c, l, mapNatSrc)
	if err != nil {
		return nil, err
	}
	nl.nat = intervals(es)
	for name := range l.chains {
		if _, _, ok := netOfChain(name); ok {
			if nl.rules[name], err = f.rules(c, name); err != nil {
				return nil, err
			}
		}
	}
	return nl, nil
}

// names returns every network that has a chain or an element.
func (nl *netLive) names() []string {
	seen := map[string]bool{}
	add := func(chain string) {
		if n, _, ok := netOfChain(chain); ok {
			seen[n] = true
		}
	}
	for ch := range nl.l.chains {
		add(ch)
	}
	for _, es := range [][]nftables.SetElement{nl.fwdOut, nl.fwdIn} {
		for _, e := range es {
			_, ch, _ := verdictOf(e.Val)
			add(ch)
		}
	}
	for _, iv := range nl.nat {
		add(iv.chain)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// pointing returns the elements of es whose verdict names chain.
func pointing(es []nftables.SetElement, chain string) []nftables.SetElement {
	var out []nftables.SetElement
	for _, e := range es {
		if _, ch, _ := verdictOf(e.Val); ch == chain {
			out = append(out, e)
		}
	}
	return out
}

// pointingKey returns the elements of es whose key is the interface name.
func pointingKey(es []nftables.SetElement, name string) []nftables.SetElement {
	var out []nftables.SetElement
	for _, e := range es {
		if ifnameFromKey(e.Key) == name {
			out = append(out, e)
		}
	}
	return out
}

func (nl *netLive) hasBridge(name string) bool {
	for _, b := range nl.bridges {
		if ifnameFromKey(b) == name {
			return true
		}
	}
	return false
}

// state decodes the network name and compares it with what AddNetwork
// writes for what was decoded.
func (nl *netLive) state(name string) NetworkState {
	st := NetworkState{Network: Network{Name: name}}
	drift := func(format string, a ...any) { st.Drift = append(st.Drift, fmt.Sprintf(format, a...)) }
	out := pointing(nl.fwdOut, netChain(name, "out"))
	in := pointing(nl.fwdIn, netChain(name, "in"))
	// The bridge is the interface of the network's elements, preferably
	// one that both maps agree on (an element added by hand is drift,
	// not the network's bridge).
	for _, e := range append(append([]nftables.SetElement(nil), out...), in...) {
		name := ifnameFromKey(e.Key)
		if st.Bridge == "" {
			st.Bridge = name
		}
		if len(pointingKey(out, name)) > 0 && len(pointingKey(in, name)) > 0 {
			st.Bridge = name
			break
		}
	}
	var nat []interval
	for _, iv := range nl.nat {
		if iv.chain == netChain(name, "nat") {
			nat = append(nat, iv)
		}
	}
	if len(nat) > 0 {
		if p, ok := nat[0].prefix(); ok {
			st.Subnet = p
		} else {
			drift("nat_src range %s-%s is not a prefix", nat[0].first, nat[0].last)
		}
	}
	if rs := nl.rules[netChain(name, "out")]; len(rs) > 0 {
		internal := netRules(Network{Name: name, Bridge: st.Bridge, Internal: true})["out"]
		st.Internal = sameRule(rs[len(rs)-1], internal[len(internal)-1])
	}
	checkElems := func(set string, es []nftables.SetElement) {
		switch {
		case len(es) == 0:
			drift("%s has no element for bridge %q", set, st.Bridge)
		case len(es) > 1:
			drift("%s has %d elements for the network", set, len(es))
		default:
			kind, _, _ := verdictOf(es[0].Val)
			if ifnameFromKey(es[0].Key) != st.Bridge || kind != expr.VerdictJump {
				drift("%s element %q differs", set, ifnameFromKey(es[0].Key))
			}
		}
	}
	checkElems(mapFwdOut, out)
	checkElems(mapFwdIn, in)
	if st.Bridge != "" && !nl.hasBridge(st.Bridge) {
		drift("set bridges lacks %q", st.Bridge)
	}
	switch {
	case len(nat) == 0:
		drift("nat_src has no element for the network")
	case len(nat) > 1:
		drift("nat_src has %d ranges for the network", len(nat))
	case nat[0].kind != expr.VerdictJump:
		drift("nat_src element %s differs", nat[0].first)
	}
	want := netRules(st.Network)
	for _, part := range netParts {
		ch := netChain(name, part)
		if _, ok := nl.l.chains[ch]; !ok {
			drift("chain %s is missing", ch)
			continue
		}
		if d := diffRules(nl.rules[ch], want[part]); d != "" {
			drift("chain %s: %s", ch, d)
		}
	}
	return st
}

// Networks decodes berth's networks from the live table, sorted by name.
func (f *Firewall) Networks(ctx context.Context) ([]NetworkState, error) {
	var out []NetworkState
	err := f.read(ctx, "read networks", func(c *nftables.Conn) error {
		nl, err := f.readNetworks(c)
		if err != nil {
			return err
		}
		for _, n := range nl.names() {
			out = append(out, nl.state(n))
		}
		return nil
	})
	return out, err
}

// AddNetwork creates network n, or rewrites it to be exactly n whatever
// state it is in (other bridge or subnet, rules edited by hand), in one
// batch; Ensure runs first. It fails if n's bridge or subnet belongs to
// another network of the table.
func (f *Firewall) AddNetwork(ctx context.Context, n Network) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := validNetwork(n)
	if err != nil {
		return fmt.Errorf("add network: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ensure(); err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	c, err := f.reader()
	if err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	nl, err := f.readNetworks(c)
	c.CloseLasting()
	if err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	// Conflicts with other networks.
	for _, es := range [][]nftables.SetElement{nl.fwdOut, nl.fwdIn} {
		for _, e := range es {
			_, ch, _ := verdictOf(e.Val)
			other, _, ok := netOfChain(ch)
			if ok && other != n.Name && ifnameFromKey(e.Key) == n.Bridge {
				return fmt.Errorf("add network %s: bridge %s belongs to network %s", n.Name, n.Bridge, other)
			}
		}
	}
	for _, iv := range nl.nat {
		other, _, ok := netOfChain(iv.chain)
		if ok && other != n.Name && overlaps(iv, n.Subnet) {
			return fmt.Errorf("add network %s: subnet %s overlaps network %s (%s-%s)", n.Name, n.Subnet, other, iv.first, iv.last)
		}
	}
	w, err := f.writer()
	if err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	// Remove every element of the network and every element that holds
	// its keys, then write it all again: one batch, so traffic never
	// sees the gap.
	if err := f.queueNetworkElems(w, nl, n.Name, &n); err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	want := netRules(n)
	for _, part := range netParts {
		ch := f.chain(netChain(n.Name, part))
		w.AddChain(ch)
		w.FlushChain(ch)
		for _, r := range want[part] {
			w.AddRule(&nftables.Rule{Table: f.tbl(), Chain: ch, Exprs: r.exprs, UserData: comment(r.comment)})
		}
	}
	br := ifnameKey(n.Bridge)
	if err := w.SetAddElements(f.set(setBridges), []nftables.SetElement{{Key: br}}); err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	if err := w.SetAddElements(f.set(mapFwdOut), []nftables.SetElement{{Key: br,
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: netChain(n.Name, "out")}}}); err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	if err := w.SetAddElements(f.set(mapFwdIn), []nftables.SetElement{{Key: br,
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: netChain(n.Name, "in")}}}); err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	if err := w.SetAddElements(f.set(mapNatSrc), subnetElems(n.Subnet, netChain(n.Name, "nat"))); err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("add network %s: %w", n.Name, err)
	}
	return nil
}

func overlaps(iv interval, p netip.Prefix) bool {
	first, last := p.Masked().Addr(), lastAddr(p)
	return !(last.Less(iv.first) || iv.last.Less(first))
}

// queueNetworkElems queues the deletion of the elements of network name
// and, when n is not nil, of the elements that hold n's keys.
func (f *Firewall) queueNetworkElems(w *nftables.Conn, nl *netLive, name string, n *Network) error {
	mine := func(chain string) bool {
		other, _, ok := netOfChain(chain)
		return ok && other == name
	}
	var myBridges []string
	for _, m := range []struct {
		set string
		es  []nftables.SetElement
	}{{mapFwdOut, nl.fwdOut}, {mapFwdIn, nl.fwdIn}} {
		var del []nftables.SetElement
		for _, e := range m.es {
			_, ch, _ := verdictOf(e.Val)
			key := ifnameFromKey(e.Key)
			if mine(ch) || (n != nil && key == n.Bridge) {
				del = append(del, nftables.SetElement{Key: e.Key})
				if mine(ch) {
					myBridges = append(myBridges, key)
				}
			}
		}
		if len(del) > 0 {
			if err := w.SetDeleteElements(f.set(m.set), del); err != nil {
				return err
			}
		}
	}
	// A bridge leaves the set bridges unless another network holds it.
	used := map[string]bool{}
	for _, es := range [][]nftables.SetElement{nl.fwdOut, nl.fwdIn} {
		for _, e := range es {
			_, ch, _ := verdictOf(e.Val)
			if _, _, ok := netOfChain(ch); ok && !mine(ch) {
				used[ifnameFromKey(e.Key)] = true
			}
		}
	}
	if n != nil {
		myBridges = append(myBridges, n.Bridge)
	}
	var del []nftables.SetElement
	done := map[string]bool{}
	for _, b := range myBridges {
		if !used[b] && !done[b] && nl.hasBridge(b) {
			del = append(del, nftables.SetElement{Key: ifnameKey(b)})
			done[b] = true
		}
	}
	if len(del) > 0 {
		if err := w.SetDeleteElements(f.set(setBridges), del); err != nil {
			return err
		}
	}
	del = nil
	for _, iv := range nl.nat {
		if mine(iv.chain) || (n != nil && !isNetChain(iv.chain) && overlaps(iv, n.Subnet)) {
			del = append(del, nftables.SetElement{Key: iv.start})
			if iv.end != nil {
				del = append(del, nftables.SetElement{Key: iv.end, IntervalEnd: true})
			}
		}
	}
	if len(del) > 0 {
		if err := w.SetDeleteElements(f.set(mapNatSrc), del); err != nil {
			return err
		}
	}
	return nil
}

func isNetChain(chain string) bool {
	_, _, ok := netOfChain(chain)
	return ok
}

// RemoveNetwork deletes network name: its elements, rules and chains, in
// one batch. It is not an error if the network does not exist.
func (f *Firewall) RemoveNetwork(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validNetworkName(name) {
		return fmt.Errorf("remove network: invalid network name %q", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.reader()
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	nl, err := f.readNetworks(c)
	c.CloseLasting()
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	if !nl.l.exists {
		return nil
	}
	w, err := f.writer()
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	if err := f.queueNetworkElems(w, nl, name, nil); err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	for _, part := range netParts {
		ch := netChain(name, part)
		if _, ok := nl.l.chains[ch]; ok {
			w.FlushChain(f.chain(ch))
			w.DelChain(f.chain(ch))
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}
