package linux

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/firewall"
	"github.com/berthhq/berth/providers/linux/ipam"
	"github.com/berthhq/berth/providers/linux/netdev"
	"github.com/zclconf/go-cty/cty"
)

// defaultNetwork is the network of containers in bridge mode that name no
// network, made on demand like Docker's docker0 and removed with its last
// container.
const (
	defaultNetwork = "default"
	defaultBridge  = "berth0"
)

// subnetPool is where berth picks the /24 of a network that gives none.
var subnetPool = netip.MustParsePrefix("10.89.0.0/16")

// networking is the provider's handle on the host's network state: links
// through netlink, addresses and host ports in the IPAM store, and berth's
// nftables table. It is opened on first use, in the provider's network
// namespace; mu serialises every change of it.
type networking struct {
	mu   sync.Mutex
	once sync.Once
	err  error
	host *netdev.Host
	ipam *ipam.Store
	fw   *firewall.Firewall

	// The published ports as last read, for the drift reads of one plan:
	// every container's read needs the whole table.
	pubMu   sync.Mutex
	pub     []firewall.Port
	pubRead time.Time
}

// publishedTTL is how long one reading of the published ports serves the
// drift reads of a plan.
const publishedTTL = 500 * time.Millisecond

// published returns the live published ports, read at most once per
// publishedTTL unless this process changed them since.
func (n *networking) published(ctx context.Context) ([]firewall.Port, error) {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	if n.pub != nil && time.Since(n.pubRead) < publishedTTL {
		return n.pub, nil
	}
	live, err := n.fw.Published(ctx)
	if err != nil {
		return nil, err
	}
	if live == nil {
		live = []firewall.Port{}
	}
	n.pub, n.pubRead = live, time.Now()
	return live, nil
}

// forgetPublished drops the cached reading after a change.
func (n *networking) forgetPublished() {
	n.pubMu.Lock()
	n.pub = nil
	n.pubMu.Unlock()
}

// net opens the provider's networking on first use.
func (p *Provider) net(ctx context.Context) (*networking, error) {
	n := &p.netw
	n.once.Do(func() {
		h, err := netdev.OpenHost("")
		if err != nil {
			n.err = err
			return
		}
		st, err := ipam.Open(filepath.Join(p.opts.Root, "ipam"))
		if err != nil {
			h.Close()
			n.err = err
			return
		}
		fw, err := firewall.Open(ctx, firewall.DefaultTable)
		if err != nil {
			h.Close()
			n.err = err
			return
		}
		n.host, n.ipam, n.fw = h, st, fw
	})
	if n.err != nil {
		return nil, fmt.Errorf("host networking: %w", n.err)
	}
	return n, nil
}

func validateNetwork(o obj) providers.Diagnostics {
	var diags providers.Diagnostics
	bad := func(name, format string, args ...any) {
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath(name), format, args...)...)
	}
	diags = append(diags, validateName(o, "network")...)
	if n := o.str("name"); n == defaultNetwork {
		bad("name", "the network name %q is berth's own default network: choose another name", n)
	}
	switch d := o.str("driver"); d {
	case "", "bridge":
		for _, a := range []string{"parent", "mode"} {
			if o.str(a) != "" {
				bad(a, "%s applies to the macvlan driver only", a)
			}
		}
	case "macvlan":
		if o.str("parent") == "" && !o.unknown("parent") {
			bad("driver", "a macvlan network needs parent: the host's interface on the LAN, e.g. parent = \"eth0\"")
		}
		if o.str("subnet") == "" && !o.unknown("subnet") {
			bad("driver", "a macvlan network needs the LAN's subnet (and gateway): berth cannot pick them")
		}
		if m := o.str("mode"); m != "" && !contains([]string{"bridge", "private", "vepa", "passthru"}, m) {
			bad("mode", "unknown macvlan mode %q: use \"bridge\", \"private\", \"vepa\" or \"passthru\"", m)
		}
		if o.boolean("internal", false) {
			bad("internal", "a macvlan network sits on the LAN and cannot be internal")
		}
	default:
		bad("driver", "unknown network driver %q: use \"bridge\" or \"macvlan\"", d)
	}
	var subnet netip.Prefix
	if s := o.str("subnet"); s != "" {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			bad("subnet", "invalid subnet %q: give an IPv4 network in CIDR form, such as \"10.89.0.0/24\"", s)
		case p != p.Masked():
			bad("subnet", "subnet %q has host bits set: did you mean %q?", s, p.Masked())
		default:
			if err := ipam.ValidateNetwork(p, netip.Addr{}); err != nil {
				bad("subnet", "%s", err)
			} else {
				subnet = p
			}
		}
	}
	if g := o.str("gateway"); g != "" {
		a, err := netip.ParseAddr(g)
		switch {
		case err != nil || !a.Is4():
			bad("gateway", "invalid gateway %q: give an IPv4 address", g)
		case subnet.IsValid():
			if err := ipam.ValidateNetwork(subnet, a); err != nil {
				bad("gateway", "gateway %s: %s", g, err)
			}
		case !o.set("subnet"):
			bad("gateway", "a gateway needs the subnet it belongs to: set subnet too")
		}
	}
	return diags
}

func (p *Provider) planNetwork(ctx context.Context, owner providers.Owner, prior, cfg cty.Value) (resp providers.PlanResponse) {
	o := obj{cfg}
	// The name is known at plan: a container that names the network
	// gets it at plan too, and its plan can check against this one.
	if !o.set("name") && !o.unknown("name") && owner.Address != "" {
		if prior.IsNull() || (obj{prior}).str("name") == defaultName(owner.Address) {
			cfg = with(cfg, "name", cty.StringVal(defaultName(owner.Address)))
			o = obj{cfg}
		}
	}
	defer func() {
		if !resp.Diagnostics.HasErrors() && resp.Planned != cty.NilVal {
			p.notePlanned(resp.Planned)
		}
	}()
	if d := p.subnetClash(ctx, o, prior); d != nil {
		resp.Diagnostics = d
		return resp
	}
	planned := cfg
	if !o.set("driver") {
		planned = with(planned, "driver", cty.StringVal("bridge"))
	}
	if !o.set("internal") {
		planned = with(planned, "internal", cty.False)
	}
	if prior.IsNull() {
		for _, a := range []string{"subnet", "gateway"} {
			if !o.set(a) {
				planned = with(planned, a, cty.UnknownVal(cty.String))
			}
		}
		id := cty.UnknownVal(cty.String)
		if !o.set("name") {
			planned = with(planned, "name", cty.UnknownVal(cty.String))
		} else {
			id = planned.GetAttr("name")
		}
		planned = with(planned, "bridge", cty.UnknownVal(cty.String))
		resp.Planned = with(planned, "id", id)
		return resp
	}
	for _, a := range []string{"name", "subnet", "gateway"} {
		if !o.set(a) {
			planned = with(planned, a, prior.GetAttr(a))
		}
	}
	for _, a := range []string{"name", "driver", "subnet", "gateway", "parent", "mode"} {
		if x, y := prior.GetAttr(a), planned.GetAttr(a); !y.IsWhollyKnown() || !x.Equals(y).True() {
			resp.RequiresReplace = append(resp.RequiresReplace, cty.GetAttrPath(a))
		}
	}
	if len(resp.RequiresReplace) > 0 {
		name := (obj{prior}).str("name")
		if users := p.attachedTo(name); len(users) > 0 {
			path := resp.RequiresReplace[0]
			resp.RequiresReplace = nil
			resp.Diagnostics = providers.AttributeErrorf(path,
				"network %q cannot be replaced while containers are attached to it (%s): detach them first, then change the network", name, strings.Join(users, ", "))
			return resp
		}
		planned = with(planned, "bridge", cty.UnknownVal(cty.String))
		resp.Planned = with(planned, "id", planned.GetAttr("name"))
		return resp
	}
	// The bridge reads "" when the live one is missing or wrong: the
	// update puts it back.
	name := planned.GetAttr("name").AsString()
	planned = with(planned, "bridge", cty.StringVal(netdev.BridgeName(name)))
	if (obj{planned}).str("driver") == "macvlan" {
		planned = with(planned, "bridge", cty.StringVal(""))
	}
	resp.Planned = with(planned, "id", prior.GetAttr("id"))
	return resp
}

// netSpec is a network as berth makes it.
type netSpec struct {
	Name     string
	Bridge   string
	Parent   string
	Mode     string
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Internal bool
}

// ensureNetwork makes or repairs a network: its subnet in the IPAM store,
// its bridge, and its rules in berth's table. n.mu must be held.
func (p *Provider) ensureNetwork(ctx context.Context, n *networking, name string, subnet netip.Prefix, gateway netip.Addr, internal bool) (netSpec, error) {
	bridge := netdev.BridgeName(name)
	if name == defaultNetwork {
		bridge = defaultBridge
	}
	routes, err := n.host.HostRoutes(ctx)
	if err != nil {
		return netSpec{}, err
	}
	var avoid []netip.Prefix
	for _, r := range routes {
		if r.Dev != bridge {
			avoid = append(avoid, r.Dst)
		}
	}
	got, err := n.ipam.EnsureNetwork(ctx, name, ipam.NetworkRequest{Subnet: subnet, Gateway: gateway, Pool: subnetPool, Bits: 24, Avoid: avoid})
	if err != nil {
		return netSpec{}, err
	}
	s := netSpec{Name: name, Bridge: bridge, Subnet: got.Subnet, Gateway: got.Gateway, Internal: internal}
	if err := n.host.EnsureBridge(ctx, netdev.Bridge{Name: bridge, Gateway: netip.PrefixFrom(got.Gateway, got.Subnet.Bits()), Owner: "network:" + name}); err != nil {
		return s, err
	}
	if err := n.host.EnableForwarding(ctx); err != nil {
		return s, err
	}
	if err := n.fw.Ensure(ctx); err != nil {
		return s, err
	}
	if err := n.fw.AddNetwork(ctx, firewall.Network{Name: name, Bridge: bridge, Subnet: got.Subnet, Internal: internal}); err != nil {
		return s, err
	}
	// 127.0.0.1 is routed to the bridge only once its guard rules are in.
	if err := n.host.SetSysctl(ctx, "net/ipv4/conf/"+bridge+"/route_localnet", "1"); err != nil {
		return s, err
	}
	return s, nil
}

// removeNetwork takes a network off the host: its rules, its bridge and
// its addresses. n.mu must be held.
func (p *Provider) removeNetwork(ctx context.Context, n *networking, name string) error {
	bridge := netdev.BridgeName(name)
	if name == defaultNetwork {
		bridge = defaultBridge
	}
	if err := n.fw.RemoveNetwork(ctx, name); err != nil {
		return err
	}
	if err := n.host.DeleteBridge(ctx, bridge); err != nil {
		return err
	}
	return n.ipam.DropNetwork(ctx, name)
}

func (p *Provider) applyNetwork(ctx context.Context, owner providers.Owner, planned cty.Value) (resp providers.ApplyResponse) {
	defer p.forgetNetworkObjects()
	o := obj{planned}
	name := o.str("name")
	if name == "" {
		name = defaultName(owner.Address)
	}
	n, err := p.net(ctx)
	if err != nil {
		resp.Diagnostics = providers.Errorf("network %s: %s", owner.Address, err)
		return resp
	}
	var subnet netip.Prefix
	var gateway netip.Addr
	if s := o.str("subnet"); s != "" {
		subnet, _ = netip.ParsePrefix(s)
	}
	if g := o.str("gateway"); g != "" {
		gateway, _ = netip.ParseAddr(g)
	}
	planned = with(planned, "name", cty.StringVal(name))
	planned = with(planned, "id", cty.StringVal(name))
	// Remember first: an interrupted create is found again by its token.
	if err := p.remember(owner, KindNetwork, name, planned); err != nil {
		resp.Diagnostics = providers.Errorf("network %s: %s", owner.Address, err)
		return resp
	}
	if o.str("driver") == "macvlan" {
		n.mu.Lock()
		got, err := n.ipam.EnsureNetwork(ctx, name, ipam.NetworkRequest{Subnet: subnet, Gateway: gateway})
		n.mu.Unlock()
		if err != nil {
			resp.ID = name
			resp.Diagnostics = providers.AttributeErrorf(cty.GetAttrPath("subnet"), "network %s: %s", owner.Address, err)
			return resp
		}
		planned = with(planned, "subnet", cty.StringVal(got.Subnet.String()))
		planned = with(planned, "gateway", cty.StringVal(got.Gateway.String()))
		planned = with(planned, "bridge", cty.StringVal(""))
		if err := p.remember(owner, KindNetwork, name, planned); err != nil {
			resp.Diagnostics = providers.Errorf("network %s: %s", owner.Address, err)
			return resp
		}
		resp.ID, resp.State = name, planned
		return resp
	}
	n.mu.Lock()
	s, err := p.ensureNetwork(ctx, n, name, subnet, gateway, o.boolean("internal", false))
	if err == nil {
		// Containers attached before the bridge went missing are attached
		// again.
		err = p.reattachNetwork(ctx, n, name)
	}
	n.mu.Unlock()
	if err != nil {
		path := cty.Path(nil)
		if errors.Is(err, ipam.ErrInUse) {
			path = cty.GetAttrPath("subnet")
		}
		resp.ID = name
		resp.Diagnostics = providers.AttributeErrorf(path, "network %s: %s", owner.Address, err)
		return resp
	}
	planned = with(planned, "subnet", cty.StringVal(s.Subnet.String()))
	planned = with(planned, "gateway", cty.StringVal(s.Gateway.String()))
	planned = with(planned, "bridge", cty.StringVal(s.Bridge))
	if err := p.remember(owner, KindNetwork, name, planned); err != nil {
		resp.Diagnostics = providers.Errorf("network %s: %s", owner.Address, err)
		return resp
	}
	resp.ID, resp.State = name, planned
	return resp
}

func (p *Provider) readNetwork(ctx context.Context, id string, applied cty.Value) (resp providers.ReadResponse) {
	resp.State = applied
	if applied.IsNull() {
		return resp
	}
	n, err := p.net(ctx)
	if err != nil {
		resp.Diagnostics = providers.Errorf("network %s: %s", id, err)
		return resp
	}
	o := obj{applied}
	if o.str("driver") == "macvlan" {
		resp.ID = id
		return resp
	}
	ok := true
	st, exists, err := n.host.ReadBridge(ctx, o.str("bridge"))
	if err != nil {
		resp.Diagnostics = providers.Errorf("network %s: %s", id, err)
		return resp
	}
	gw, _ := netip.ParseAddr(o.str("gateway"))
	sub, _ := netip.ParsePrefix(o.str("subnet"))
	if !exists || st.Kind != "bridge" || !st.Up || !containsPrefix(st.Addrs, netip.PrefixFrom(gw, sub.Bits())) {
		ok = false
	}
	if ok {
		nets, err := n.fw.Networks(ctx)
		if err != nil {
			resp.Diagnostics = providers.Errorf("network %s: %s", id, err)
			return resp
		}
		found := false
		for _, ns := range nets {
			if ns.Name == id {
				found = len(ns.Drift) == 0 && ns.Bridge == o.str("bridge") && ns.Subnet == sub && ns.Internal == o.boolean("internal", false)
			}
		}
		ok = found
	}
	if !ok {
		resp.State = with(applied, "bridge", cty.StringVal(""))
	}
	resp.ID = id
	return resp
}

func containsPrefix(list []netip.Prefix, p netip.Prefix) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

func (p *Provider) deleteNetwork(ctx context.Context, id string) error {
	defer p.forgetNetworkObjects()
	if id == "" {
		return nil
	}
	n, err := p.net(ctx)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	recs, err := p.netRecords()
	if err != nil {
		return err
	}
	for _, r := range recs {
		for _, a := range r.Attachments {
			if a.Network == id {
				return fmt.Errorf("network %s still has container %s attached: delete or detach it first", id, r.Address)
			}
		}
	}
	if nw, ok := p.networkObject(id); ok && nw.str("driver") == "macvlan" {
		if err := n.ipam.DropNetwork(ctx, id); err != nil {
			return err
		}
		return p.tidyHost(ctx, n)
	}
	if err := p.removeNetwork(ctx, n, id); err != nil {
		return err
	}
	return p.tidyHost(ctx, n)
}

// netRecordFile is the file of a container's networking in its directory.
const netRecordFile = "network.json"

// removeFileIfExists removes path; a missing file is not an error.
func removeFileIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// internalNetwork reports whether the network called name, as berth last
// applied it, is internal.
func (p *Provider) internalNetwork(name string) bool {
	if o, ok := p.plannedNetwork(name); ok {
		return o.boolean("internal", false)
	}
	o, ok := p.networkObject(name)
	return ok && o.boolean("internal", false)
}

// networkObject returns the network called name as berth last applied it.
// The networks are read from the object store once per process, and again
// after this process applied or deleted one: every container's plan asks.
func (p *Provider) networkObject(name string) (obj, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.netObjs == nil {
		all, err := p.objs.all()
		if err != nil {
			return obj{}, false
		}
		p.netObjs = map[string]obj{}
		ty := p.types[KindNetwork]
		for _, st := range all {
			if st.Kind != KindNetwork || st.ID == "" {
				continue
			}
			if v, err := decodeValue(st.Value, ty); err == nil && !v.IsNull() {
				p.netObjs[st.ID] = obj{v}
			}
		}
	}
	o, ok := p.netObjs[name]
	return o, ok
}

// forgetNetworkObjects drops the networks read by networkObject.
func (p *Provider) forgetNetworkObjects() {
	p.mu.Lock()
	p.netObjs = nil
	p.mu.Unlock()
}

// subnetClash refuses, at plan, a declared bridge subnet that overlaps
// another network of berth's or a route of the host.
func (p *Provider) subnetClash(ctx context.Context, o obj, prior cty.Value) providers.Diagnostics {
	sub, err := netip.ParsePrefix(o.str("subnet"))
	if err != nil || o.str("driver") == "macvlan" {
		return nil
	}
	self := o.str("name")
	if !prior.IsNull() {
		self = obj{prior}.str("name")
	}
	n, err := p.net(ctx)
	if err != nil {
		return nil
	}
	nets, err := n.ipam.Networks()
	if err != nil {
		return nil
	}
	for name, k := range nets {
		if name != self && (self != "" || name != defaultNetwork) && ipam.Overlaps(k.Subnet, sub) {
			return providers.AttributeErrorf(cty.GetAttrPath("subnet"), "subnet %s overlaps %s of network %q: choose another subnet", sub, k.Subnet, name)
		}
	}
	routes, err := n.host.HostRoutes(ctx)
	if err != nil {
		return nil
	}
	own := netdev.BridgeName(self)
	for _, r := range routes {
		if r.Dev != own && r.Owner == "" && ipam.Overlaps(r.Dst, sub) {
			return providers.AttributeErrorf(cty.GetAttrPath("subnet"), "subnet %s overlaps the host's route to %s (dev %s): choose another subnet", sub, r.Dst, r.Dev)
		}
	}
	return nil
}

// notePlanned remembers a network as planned in this run, so that the
// plans of the containers that use it, which come after it, can check
// their ports and static addresses against it before it exists.
func (p *Provider) notePlanned(v cty.Value) {
	o := obj{v}
	name := o.str("name")
	if name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.planned == nil {
		p.planned = map[string]obj{}
	}
	p.planned[name] = o
}

// plannedNetwork returns the network called name as planned in this run.
func (p *Provider) plannedNetwork(name string) (obj, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.planned[name]
	return o, ok
}

// attachedTo returns the addresses of the containers attached to network.
func (p *Provider) attachedTo(network string) []string {
	recs, err := p.netRecords()
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range recs {
		if hasNetwork(r.Attachments, network) {
			out = append(out, r.Address)
		}
	}
	sort.Strings(out)
	return out
}
