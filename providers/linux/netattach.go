package linux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/firewall"
	"github.com/berthhq/berth/providers/linux/ident"
	"github.com/berthhq/berth/providers/linux/ipam"
	"github.com/berthhq/berth/providers/linux/jsonfile"
	"github.com/berthhq/berth/providers/linux/netdev"
	"github.com/berthhq/berth/spec/addr"
	"github.com/zclconf/go-cty/cty"
)

// attrError is an error of one attribute of the configuration, so that
// the diagnostic points at it.
type attrError struct {
	path cty.Path
	err  error
}

func (e *attrError) Error() string { return e.err.Error() }
func (e *attrError) Unwrap() error { return e.err }

// errPath returns the attribute an error is about, or def.
func errPath(err error, def cty.Path) cty.Path {
	var ae *attrError
	if errors.As(err, &ae) {
		return ae.path
	}
	return def
}

// netRecord is a container's networking as berth made it, kept in the
// container's directory: the namespace, one attachment per network and
// the published ports. Every change of the host's network state is
// recorded here first, so that a delete finds everything.
type netRecord struct {
	ID          string       `json:"id"`
	Address     string       `json:"address"`
	Owner       string       `json:"owner"`
	Name        string       `json:"name"`
	Service     string       `json:"service"`
	NetNS       string       `json:"netns"`
	Attachments []attachment `json:"attachments"`
	Ports       []portMap    `json:"ports,omitempty"`
	ExtraHosts  []hostEntry  `json:"extra_hosts,omitempty"`
	DNS         []string     `json:"dns,omitempty"`
	Stopped     bool         `json:"stopped,omitempty"`
}

// attachment is a container's place on one network.
type attachment struct {
	Network string       `json:"network"`
	Bridge  string       `json:"bridge"`
	HostIf  string       `json:"host_if"`
	IfName  string       `json:"if_name"`
	Addr    netip.Prefix `json:"addr"`
	Gateway netip.Addr   `json:"gateway"`
	Aliases []string     `json:"aliases,omitempty"`
	// Parent and Mode are set for a macvlan network: the container's
	// interface sits on the host's interface Parent, with no bridge.
	Parent string `json:"parent,omitempty"`
	Mode   string `json:"mode,omitempty"`
}

// hostEntry is one extra /etc/hosts line of a container.
type hostEntry struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"addr"`
}

// portMap is one published port: the declared form and what it became.
type portMap struct {
	Spec          string     `json:"spec"`
	HostIP        netip.Addr `json:"host_ip"`
	HostPort      uint16     `json:"host_port"`
	ContainerPort uint16     `json:"container_port"`
	Proto         string     `json:"proto"`
}

// String is the published port as `berth ps` shows it.
func (m portMap) String() string {
	ip := "0.0.0.0"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	return fmt.Sprintf("%s:%d->%d/%s", ip, m.HostPort, m.ContainerPort, m.Proto)
}

// portSpec is a parsed entry of `ports`.
type portSpec struct {
	HostIP        netip.Addr
	HostPort      uint16 // 0: a random port, kept stable
	ContainerPort uint16
	Proto         string
}

// portForms lists the accepted forms of a port, for error messages.
const portForms = `"HOST:CONTAINER" ("8080:80"), "IP:HOST:CONTAINER" ("127.0.0.1:8081:81"), "IP::CONTAINER" (a random host port), "CONTAINER" (a random host port on every address), each optionally ending in "/tcp" or "/udp"`

// parsePort parses one entry of `ports`.
func parsePort(s string) (portSpec, error) {
	var p portSpec
	body, proto, hasProto := strings.Cut(s, "/")
	p.Proto = "tcp"
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("invalid port %q: protocol %q is not \"tcp\" or \"udp\"", s, proto)
		}
		p.Proto = proto
	}
	parts := strings.Split(body, ":")
	num := func(x string, zeroOK bool) (uint16, error) {
		if x == "" && zeroOK {
			return 0, nil
		}
		n, err := strconv.Atoi(x)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("invalid port %q: %q is not a port number from 1 to 65535; accepted forms: %s", s, x, portForms)
		}
		return uint16(n), nil
	}
	var err error
	switch len(parts) {
	case 1:
		p.ContainerPort, err = num(parts[0], false)
	case 2:
		if p.HostPort, err = num(parts[0], false); err == nil {
			p.ContainerPort, err = num(parts[1], false)
		}
	case 3:
		a, aerr := netip.ParseAddr(parts[0])
		if aerr != nil || !a.Is4() {
			return p, fmt.Errorf("invalid port %q: %q is not an IPv4 address; accepted forms: %s", s, parts[0], portForms)
		}
		if !a.IsUnspecified() {
			p.HostIP = a
		}
		if p.HostPort, err = num(parts[1], true); err == nil {
			p.ContainerPort, err = num(parts[2], false)
		}
	default:
		return p, fmt.Errorf("invalid port %q; accepted forms: %s", s, portForms)
	}
	return p, err
}

// portKey identifies a host port: address, port and protocol.
func portKey(ip netip.Addr, port uint16, proto string) string {
	return fmt.Sprintf("%s:%d/%s", ip, port, proto)
}

// netnsPath is where the network namespace of container id is mounted.
func (p *Provider) netnsPath(id string) string {
	return filepath.Join(p.opts.Root, "netns", id)
}

func (p *Provider) netRecordPath(id string) string {
	return filepath.Join(p.hosts.ContainerDir(id), netRecordFile)
}

// loadNetRecord reads the networking of container id; nil when it has
// none.
func (p *Provider) loadNetRecord(id string) (*netRecord, error) { return p.hosts.loadNetRecord(id) }

func (h *Host) loadNetRecord(id string) (*netRecord, error) {
	var r netRecord
	if err := jsonfile.Read(filepath.Join(h.ContainerDir(id), netRecordFile), &r); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &r, nil
}

// netRecords reads the networking of every container.
func (p *Provider) netRecords() ([]*netRecord, error) { return p.hosts.netRecords() }

// netRecords reads the networking of every container of the host.
func (h *Host) netRecords() ([]*netRecord, error) {
	ents, err := os.ReadDir(filepath.Join(h.Root, "containers"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []*netRecord
	for _, e := range ents {
		r, err := h.loadNetRecord(e.Name())
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// serviceOf is the name that every replica of an address answers to: the
// resource's name without its index (container.web[1] is "web").
func serviceOf(address string) string {
	ia, err := addr.Parse(address)
	if err != nil {
		return ""
	}
	return sanitize(ia.Resource.Name)
}

// wantNet is a container's declared networking.
type wantNet struct {
	Networks  []wantAttach
	Ports     []portSpec
	PortSpecs []string
	// PortPaths are the attributes that declare each port: an entry of
	// ports, a publish block, or publish_all.
	PortPaths  []cty.Path
	ExtraHosts []hostEntry
	DNS        []string
}

type wantAttach struct {
	Network string
	Addr    netip.Addr
	Aliases []string
}

// publishSpec is the port form of a publish block.
func publishSpec(b obj) string {
	s := ""
	ip := b.str("host_ip")
	host := ""
	if n, ok := b.integer("host_port"); ok && n > 0 {
		host = strconv.FormatInt(n, 10)
	}
	cport, _ := b.integer("container_port")
	switch {
	case ip != "":
		s = ip + ":" + host + ":" + strconv.FormatInt(cport, 10)
	case host != "":
		s = host + ":" + strconv.FormatInt(cport, 10)
	default:
		s = strconv.FormatInt(cport, 10)
	}
	if proto := b.str("protocol"); proto != "" {
		s += "/" + proto
	}
	return s
}

// exposeSpec is the port form of an image's EXPOSEd port published by
// publish_all ("80/tcp").
func exposeSpec(exposed string) string { return "expose:" + exposed }

func declaredNet(o obj, exposed []string) wantNet {
	var w wantNet
	for _, b := range o.blocks("network") {
		a := wantAttach{Network: b.str("name"), Aliases: b.strings("aliases")}
		if s := b.str("ipv4_address"); s != "" {
			a.Addr, _ = netip.ParseAddr(s)
		}
		w.Networks = append(w.Networks, a)
	}
	if len(w.Networks) == 0 {
		w.Networks = []wantAttach{{Network: defaultNetwork}}
	}
	for i, s := range o.strings("ports") {
		if ps, err := parsePort(s); err == nil {
			w.Ports = append(w.Ports, ps)
			w.PortSpecs = append(w.PortSpecs, s)
			w.PortPaths = append(w.PortPaths, cty.GetAttrPath("ports").IndexInt(i))
		}
	}
	for i, b := range o.blocks("publish") {
		s := publishSpec(b)
		if ps, err := parsePort(s); err == nil {
			w.Ports = append(w.Ports, ps)
			w.PortSpecs = append(w.PortSpecs, s)
			w.PortPaths = append(w.PortPaths, cty.GetAttrPath("publish").IndexInt(i))
		}
	}
	if o.boolean("publish_all", false) {
		for _, e := range exposed {
			if ps, err := parsePort(e); err == nil {
				w.Ports = append(w.Ports, ps)
				w.PortSpecs = append(w.PortSpecs, exposeSpec(e))
				w.PortPaths = append(w.PortPaths, cty.GetAttrPath("publish_all"))
			}
		}
	}
	hosts := o.stringMap("extra_hosts")
	names := make([]string, 0, len(hosts))
	for k := range hosts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if a, err := netip.ParseAddr(hosts[k]); err == nil {
			w.ExtraHosts = append(w.ExtraHosts, hostEntry{Name: k, Addr: a})
		}
	}
	w.DNS = o.strings("dns")
	return w
}

// setupNetwork gives container id the networking o declares, or brings
// its networking back to it: namespace, attachments, addresses, published
// ports and /etc/hosts of every container that shares a network with it.
// It is idempotent; everything it makes is in the record before it is
// made.
func (p *Provider) setupNetwork(ctx context.Context, id, address, owner, name string, o obj, exposed []string, etcDir string) (*netRecord, error) {
	n, err := p.net(ctx)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rec, err := p.loadNetRecord(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		rec = &netRecord{ID: id, NetNS: p.netnsPath(id)}
	}
	rec.Address, rec.Owner, rec.Name, rec.Service = address, owner, name, serviceOf(address)
	rec.Stopped = o.str("state") == "stopped"
	w := declaredNet(o, exposed)
	rec.ExtraHosts, rec.DNS = w.ExtraHosts, w.DNS
	if err := os.MkdirAll(p.hosts.ContainerDir(id), 0o700); err != nil {
		return nil, err
	}
	save := func() error { return jsonfile.Write(p.netRecordPath(id), rec) }
	if err := save(); err != nil {
		return nil, err
	}
	if err := netdev.CreateNetNS(rec.NetNS); err != nil {
		return rec, err
	}
	// The networks: make the default one on demand, find the declared
	// ones, allocate addresses, attach.
	specs := map[string]netSpec{}
	known, err := n.ipam.Networks()
	if err != nil {
		return rec, err
	}
	for _, wa := range w.Networks {
		if wa.Network == defaultNetwork {
			s, err := p.ensureNetwork(ctx, n, defaultNetwork, netip.Prefix{}, netip.Addr{}, false)
			if err != nil {
				return rec, fmt.Errorf("default network: %w", err)
			}
			specs[wa.Network] = s
			continue
		}
		k, ok := known[wa.Network]
		if !ok {
			return rec, fmt.Errorf("network %q does not exist: declare it (network %q {}) and give network.%s", wa.Network, wa.Network, wa.Network)
		}
		bridge := netdev.BridgeName(wa.Network)
		s := netSpec{Name: wa.Network, Bridge: bridge, Subnet: k.Subnet, Gateway: k.Gateway}
		if nw, ok := p.networkObject(wa.Network); ok && nw.str("driver") == "macvlan" {
			s.Bridge, s.Parent, s.Mode = "", nw.str("parent"), nw.str("mode")
			if len(w.Ports) > 0 && wa.Network == w.Networks[0].Network {
				return rec, fmt.Errorf("network %q is a macvlan network: the container has its own address on the LAN and publishes no ports; remove ports", wa.Network)
			}
		}
		specs[wa.Network] = s
	}
	// Published ports go to the address on the first network.
	if len(w.Ports) > 0 && p.internalNetwork(w.Networks[0].Network) {
		return rec, &attrError{path: cty.GetAttrPath("network").IndexInt(0).GetAttr("name"), err: fmt.Errorf("network %q is internal: it has no published ports; remove ports or attach the container first to a network that is not internal", w.Networks[0].Network)}
	}
	// An attachment whose static address changes is taken down and its
	// address released first, as the owner of an address cannot ask for
	// another.
	for _, wa := range w.Networks {
		for _, old := range rec.Attachments {
			if old.Network == wa.Network && wa.Addr.IsValid() && old.Addr.Addr() != wa.Addr {
				if err := detach(ctx, n.host, rec, old); err != nil {
					return rec, err
				}
				if err := n.ipam.Release(ctx, old.Network, id); err != nil {
					return rec, err
				}
			}
		}
	}
	var keep []attachment
	for i, wa := range w.Networks {
		s := specs[wa.Network]
		a, err := n.ipam.Allocate(ctx, wa.Network, s.Subnet, s.Gateway, id, wa.Addr)
		if err != nil {
			return rec, fmt.Errorf("network %q: %w", wa.Network, err)
		}
		at := attachment{
			Network: wa.Network, Bridge: s.Bridge, HostIf: netdev.VethName(id, wa.Network),
			IfName: "eth" + strconv.Itoa(i), Addr: netip.PrefixFrom(a, s.Subnet.Bits()), Aliases: wa.Aliases,
			Parent: s.Parent, Mode: s.Mode,
		}
		if i == 0 {
			at.Gateway = s.Gateway
		}
		keep = append(keep, at)
	}
	// Attachments no longer declared go first.
	for _, old := range rec.Attachments {
		if !hasAttachment(keep, old) {
			if err := detach(ctx, n.host, rec, old); err != nil {
				return rec, err
			}
			if !hasNetwork(keep, old.Network) {
				if err := n.ipam.Release(ctx, old.Network, id); err != nil {
					return rec, err
				}
			}
		}
	}
	rec.Attachments = keep
	if err := save(); err != nil {
		return rec, err
	}
	for _, at := range keep {
		if err := attach(ctx, n.host, rec, at); err != nil {
			return rec, fmt.Errorf("attach to network %q: %w", at.Network, err)
		}
	}
	// Published ports.
	old := rec.Ports
	var ports []portMap
	seen := map[string]bool{}
	for i, ps := range w.Ports {
		m := portMap{Spec: w.PortSpecs[i], HostIP: ps.HostIP, HostPort: ps.HostPort, ContainerPort: ps.ContainerPort, Proto: ps.Proto}
		if m.HostPort == 0 {
			lo, hi, _ := ipam.PortRange()
			port, err := n.ipam.AllocatePort(ctx, owner+"/"+m.Spec, m.Proto, m.HostIP, lo, hi)
			if err != nil {
				return rec, fmt.Errorf("port %q: %w", m.Spec, err)
			}
			m.HostPort = uint16(port)
		}
		k := portKey(m.HostIP, m.HostPort, m.Proto)
		if ps.HostPort != 0 && !hadPort(old, k) {
			if err := checkPortFree(m.HostIP, m.HostPort, m.Proto); err != nil {
				return rec, &attrError{path: w.PortPaths[i], err: fmt.Errorf("port %q: %w", m.Spec, err)}
			}
		}
		if seen[k] {
			return rec, fmt.Errorf("port %q: the host port %d/%s is published twice", m.Spec, m.HostPort, m.Proto)
		}
		seen[k] = true
		ports = append(ports, m)
	}
	if err := p.portClash(rec, ports, w.PortPaths); err != nil {
		return rec, err
	}
	rec.Ports = ports
	if err := save(); err != nil {
		return rec, err
	}
	changed := map[string]portMap{}
	for _, m := range append(old, ports...) {
		changed[portKey(m.HostIP, m.HostPort, m.Proto)] = m
	}
	if err := p.publishPorts(ctx, n, changed); err != nil {
		return rec, err
	}
	for _, m := range old {
		if !seen[portKey(m.HostIP, m.HostPort, m.Proto)] {
			_ = n.ipam.ReleasePort(ctx, owner+"/"+m.Spec)
		}
	}
	if err := p.writeResolv(rec, etcDir); err != nil {
		return rec, err
	}
	return rec, p.refreshHosts()
}

func hadPort(list []portMap, key string) bool {
	for _, m := range list {
		if portKey(m.HostIP, m.HostPort, m.Proto) == key {
			return true
		}
	}
	return false
}

func hasAttachment(list []attachment, a attachment) bool {
	for _, x := range list {
		if x.Network == a.Network && x.HostIf == a.HostIf && x.IfName == a.IfName && x.Addr == a.Addr {
			return true
		}
	}
	return false
}

func hasNetwork(list []attachment, network string) bool {
	for _, x := range list {
		if x.Network == network {
			return true
		}
	}
	return false
}

// attach makes or repairs the interface of attachment a in rec's
// namespace: a veth on a bridge, or a macvlan on a parent interface.
func attach(ctx context.Context, h *netdev.Host, rec *netRecord, a attachment) error {
	if a.Parent != "" {
		return h.AttachMacvlan(ctx, macvlanOf(rec, a))
	}
	return h.AttachVeth(ctx, vethOf(rec, a))
}

// detach removes the interface of attachment a.
func detach(ctx context.Context, h *netdev.Host, rec *netRecord, a attachment) error {
	if a.Parent != "" {
		return h.DetachMacvlan(ctx, macvlanOf(rec, a))
	}
	return h.Detach(ctx, vethOf(rec, a))
}

func macvlanOf(rec *netRecord, a attachment) netdev.Macvlan {
	return netdev.Macvlan{NetNS: rec.NetNS, Parent: a.Parent, Mode: a.Mode, IfName: a.IfName, Addr: a.Addr, Gateway: a.Gateway}
}

func vethOf(rec *netRecord, a attachment) netdev.Attachment {
	return netdev.Attachment{NetNS: rec.NetNS, Bridge: a.Bridge, HostIf: a.HostIf, IfName: a.IfName, Addr: a.Addr, Gateway: a.Gateway, Owner: "container:" + rec.ID}
}

// publishPorts sets the backends of the given host ports from every
// container's record: the containers not declared stopped that publish
// that port. A port without backends is unpublished. n.mu must be held.
func (p *Provider) publishPorts(ctx context.Context, n *networking, ports map[string]portMap) error {
	n.forgetPublished()
	defer n.forgetPublished()
	return p.hosts.publishPorts(ctx, n.fw, ports)
}

func (h *Host) publishPorts(ctx context.Context, fw *firewall.Firewall, ports map[string]portMap) error {
	if len(ports) == 0 {
		return nil
	}
	recs, err := h.netRecords()
	if err != nil {
		return err
	}
	if err := fw.Ensure(ctx); err != nil {
		return err
	}
	keys := make([]string, 0, len(ports))
	for k := range ports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m := ports[k]
		var backends []firewall.Backend
		services := map[string]bool{}
		for _, r := range recs {
			if r.Stopped || len(r.Attachments) == 0 {
				continue
			}
			for _, rm := range r.Ports {
				if portKey(rm.HostIP, rm.HostPort, rm.Proto) == k {
					backends = append(backends, firewall.Backend{Addr: r.Attachments[0].Addr.Addr(), Port: rm.ContainerPort})
					services[r.Service] = true
				}
			}
		}
		if len(services) > 1 {
			names := make([]string, 0, len(services))
			for s := range services {
				names = append(names, s)
			}
			sort.Strings(names)
			return fmt.Errorf("host port %d/%s is published by different containers (%s): only the replicas of one container may share a host port", m.HostPort, m.Proto, strings.Join(names, ", "))
		}
		sort.Slice(backends, func(i, j int) bool { return backends[i].Addr.Less(backends[j].Addr) })
		if len(backends) == 0 {
			if err := fw.Unpublish(ctx, m.HostIP, m.HostPort, m.Proto); err != nil {
				return err
			}
		} else if err := fw.Publish(ctx, firewall.Port{HostIP: m.HostIP, HostPort: m.HostPort, Proto: m.Proto, Backends: backends}); err != nil {
			return err
		}
		// UDP flows tracked to the old backends would go on reaching them
		// (a TCP connection ends with its backend, and a new one is
		// translated afresh).
		if m.Proto == "udp" {
			_ = fw.FlushConntrack(ctx, m.Proto, m.HostPort)
		}
	}
	return nil
}

// writeResolv writes a container's resolv.conf, derived from the host's.
func (p *Provider) writeResolv(rec *netRecord, etcDir string) error {
	if err := os.MkdirAll(etcDir, 0o755); err != nil {
		return err
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	return os.WriteFile(filepath.Join(etcDir, "resolv.conf"), netdev.ResolvConf(host, rec.DNS), 0o644)
}

// refreshHosts rewrites the /etc/hosts of every networked container: the
// container itself, every container that shares a network with it (by
// name, by the name of all its replicas and by alias) and its extra hosts.
// Files are written in place: they are bound into running containers.
func (p *Provider) refreshHosts() error {
	recs, err := p.netRecords()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if len(r.Attachments) == 0 {
			continue
		}
		var entries []netdev.HostEntry
		entries = append(entries, netdev.HostEntry{Addr: r.Attachments[0].Addr.Addr(), Names: []string{r.Name}})
		for _, a := range r.Attachments {
			if a.Network == defaultNetwork {
				// Like Docker's default bridge: no names.
				continue
			}
			for _, peer := range recs {
				for _, pa := range peer.Attachments {
					if pa.Network != a.Network {
						continue
					}
					names := []string{peer.Name}
					if peer.Service != "" && peer.Service != peer.Name {
						names = append(names, peer.Service)
					}
					names = append(names, pa.Aliases...)
					entries = append(entries, netdev.HostEntry{Addr: pa.Addr.Addr(), Names: names})
				}
			}
		}
		for _, e := range r.ExtraHosts {
			entries = append(entries, netdev.HostEntry{Addr: e.Addr, Names: []string{e.Name}})
		}
		etc := filepath.Join(p.hosts.ContainerDir(r.ID), "etc")
		if err := os.MkdirAll(etc, 0o755); err != nil {
			return err
		}
		// Written in place, and only when it changes: every container
		// that joins or leaves a network comes here for all of them.
		path := filepath.Join(etc, "hosts")
		text := netdev.Hosts(entries)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, text) {
			continue
		}
		if err := os.WriteFile(path, text, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// teardownNetwork removes everything setupNetwork made for container id:
// its ports (or its backend in them), attachments, addresses and
// namespace, and updates the others' /etc/hosts. A default network left
// without containers goes too.
func (p *Provider) teardownNetwork(ctx context.Context, id string) error {
	rec, err := p.loadNetRecord(id)
	if err != nil || rec == nil {
		return err
	}
	n, err := p.net(ctx)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ports := map[string]portMap{}
	for _, m := range rec.Ports {
		ports[portKey(m.HostIP, m.HostPort, m.Proto)] = m
	}
	// Out of the rotation first.
	rec.Stopped = true
	if err := jsonfile.Write(p.netRecordPath(id), rec); err != nil {
		return err
	}
	if err := p.publishPorts(ctx, n, ports); err != nil {
		return err
	}
	for _, a := range rec.Attachments {
		if err := detach(ctx, n.host, rec, a); err != nil {
			return err
		}
	}
	if err := netdev.DeleteNetNS(rec.NetNS); err != nil {
		return err
	}
	// Every address and port the container holds goes, also those of a
	// setup that failed before it recorded them.
	if nets, err := n.ipam.Networks(); err == nil {
		for name := range nets {
			if err := n.ipam.Release(ctx, name, id); err != nil {
				return err
			}
		}
	}
	if held, err := n.ipam.Ports(); err == nil && rec.Owner != "" {
		var keys []string
		for k := range held {
			if strings.HasPrefix(k, rec.Owner+"/") {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			_ = n.ipam.ReleasePort(ctx, keys...)
		}
	}
	if err := removeFileIfExists(p.netRecordPath(id)); err != nil {
		return err
	}
	if err := p.refreshHosts(); err != nil {
		return err
	}
	recs, err := p.netRecords()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if hasNetwork(r.Attachments, defaultNetwork) {
			return p.tidyHost(ctx, n)
		}
	}
	if nets, err := n.ipam.Networks(); err == nil {
		if _, ok := nets[defaultNetwork]; ok {
			if err := p.removeNetwork(ctx, n, defaultNetwork); err != nil {
				return err
			}
		}
	}
	return p.tidyHost(ctx, n)
}

// tidyHost leaves the host as it was before berth's first network once
// the last network and container are gone: no nftables table and no
// mount point for namespaces. n.mu must be held.
func (p *Provider) tidyHost(ctx context.Context, n *networking) error {
	recs, err := p.netRecords()
	if err != nil || len(recs) > 0 {
		return err
	}
	nets, err := n.ipam.Networks()
	if err != nil || len(nets) > 0 {
		return err
	}
	if err := n.fw.Destroy(ctx); err != nil {
		return err
	}
	return netdev.RemoveNetNSDir(filepath.Join(p.opts.Root, "netns"))
}

// reattachNetwork attaches again every container recorded on network, as
// after its bridge was deleted by hand. n.mu must be held.
func (p *Provider) reattachNetwork(ctx context.Context, n *networking, network string) error {
	recs, err := p.netRecords()
	if err != nil {
		return err
	}
	for _, r := range recs {
		for _, a := range r.Attachments {
			if a.Network != network {
				continue
			}
			if ok, _ := netdev.NetNSExists(r.NetNS); !ok {
				continue
			}
			if err := n.host.AttachVeth(ctx, vethOf(r, a)); err != nil {
				return fmt.Errorf("attach %s again: %w", r.Address, err)
			}
		}
	}
	return nil
}

// liveNet returns, for the drift check, which of a container's recorded
// attachments and ports the kernel really has: an attachment whose veth,
// bridge port, namespace interface or address is gone is missing; a port
// whose rule does not send this container's share of the traffic to it is
// missing.
func (p *Provider) liveNet(ctx context.Context, rec *netRecord) (attached map[string]bool, published map[string]bool, err error) {
	n, err := p.net(ctx)
	if err != nil {
		return nil, nil, err
	}
	attached = map[string]bool{}
	for _, a := range rec.Attachments {
		if a.Parent != "" {
			st, err := n.host.ReadMacvlan(ctx, macvlanOf(rec, a))
			if err != nil {
				return nil, nil, err
			}
			attached[a.Network] = st.IfExists && st.Parent == a.Parent && st.Up && containsPrefix(st.Addrs, a.Addr)
			continue
		}
		st, err := n.host.ReadAttachment(ctx, vethOf(rec, a))
		if err != nil {
			return nil, nil, err
		}
		attached[a.Network] = st.HostExists && st.Bridge == a.Bridge && st.HostUp && st.IfExists && st.Paired && st.Up && containsPrefix(st.Addrs, a.Addr)
	}
	published = map[string]bool{}
	if len(rec.Ports) == 0 {
		return attached, published, nil
	}
	live, err := n.published(ctx)
	if err != nil {
		return nil, nil, err
	}
	mine := rec.Attachments[0].Addr.Addr()
	for _, m := range rec.Ports {
		ok := false
		for _, lp := range live {
			if lp.HostIP != m.HostIP || lp.HostPort != m.HostPort || lp.Proto != m.Proto {
				continue
			}
			for _, b := range lp.Backends {
				if b.Addr == mine && b.Port == m.ContainerPort {
					ok = true
				}
			}
		}
		published[m.Spec] = ok || rec.Stopped
	}
	return attached, published, nil
}

// publishedList is the published_ports attribute of a record.
func publishedList(rec *netRecord) cty.Value {
	if rec == nil || len(rec.Ports) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	var l []cty.Value
	for _, m := range rec.Ports {
		l = append(l, cty.StringVal(m.String()))
	}
	return cty.ListVal(l)
}

// withNet sets the computed networking attributes of a container's value
// from its record.
func withNet(v cty.Value, rec *netRecord) cty.Value {
	ip := ""
	if len(rec.Attachments) > 0 {
		ip = rec.Attachments[0].Addr.Addr().String()
	}
	v = with(v, "ip_address", cty.StringVal(ip))
	return with(v, "published_ports", publishedList(rec))
}

// liveNetValue lays the kernel's view of a container's networking over
// its value v: an attachment that is gone drops its network block (the
// first one empties ip_address), a port whose rule is gone or edited
// drops out of ports.
func (p *Provider) liveNetValue(ctx context.Context, rec *netRecord, v cty.Value) (cty.Value, error) {
	attached, published, err := p.liveNet(ctx, rec)
	if err != nil {
		return v, err
	}
	v = withNet(v, rec)
	if len(rec.Attachments) > 0 && !attached[rec.Attachments[0].Network] {
		v = with(v, "ip_address", cty.StringVal(""))
	}
	o := obj{v}
	if blocks := o.blocks("network"); len(blocks) > 0 {
		var keep []cty.Value
		for _, b := range blocks {
			if ok, recorded := attached[b.str("name")]; ok || !recorded {
				keep = append(keep, b.v)
			}
		}
		ty := v.Type().AttributeType("network")
		if len(keep) == 0 {
			v = with(v, "network", cty.ListValEmpty(ty.ElementType()))
		} else {
			v = with(v, "network", cty.ListVal(keep))
		}
	}
	if blocks := o.blocks("publish"); len(blocks) > 0 {
		var keep []cty.Value
		for _, b := range blocks {
			if ok, recorded := published[publishSpec(b)]; ok || !recorded {
				keep = append(keep, b.v)
			}
		}
		ty := v.Type().AttributeType("publish")
		if len(keep) == 0 {
			v = with(v, "publish", cty.ListValEmpty(ty.ElementType()))
		} else {
			v = with(v, "publish", cty.ListVal(keep))
		}
	}
	for spec, ok := range published {
		if strings.HasPrefix(spec, "expose:") && !ok {
			v = with(v, "publish_all", cty.False)
		}
	}
	if specs := o.strings("ports"); len(specs) > 0 {
		var keep []cty.Value
		for _, s := range specs {
			if ok, recorded := published[s]; ok || !recorded {
				keep = append(keep, cty.StringVal(s))
			}
		}
		if len(keep) == 0 {
			v = with(v, "ports", cty.ListValEmpty(cty.String))
		} else {
			v = with(v, "ports", cty.ListVal(keep))
		}
	}
	return v, nil
}

// validateContainerNet checks a container's networking attributes.
func validateContainerNet(o obj) providers.Diagnostics {
	var diags providers.Diagnostics
	bad := func(path cty.Path, format string, args ...any) {
		diags = append(diags, providers.AttributeErrorf(path, format, args...)...)
	}
	mode := o.str("network_mode")
	bridged := mode == "" || mode == "bridge"
	if !bridged && !o.unknown("network_mode") {
		for _, a := range []string{"ports", "extra_hosts", "dns"} {
			if o.set(a) && !o.get(a).IsNull() && o.get(a).LengthInt() > 0 {
				bad(cty.GetAttrPath(a), "%s applies to containers on berth's networks; network_mode %q has none: remove it or use network_mode = \"bridge\"", a, mode)
			}
		}
		if len(o.blocks("network")) > 0 {
			bad(cty.GetAttrPath("network"), "network blocks apply to network_mode \"bridge\", not %q", mode)
		}
		if len(o.blocks("publish")) > 0 || o.boolean("publish_all", false) {
			bad(cty.GetAttrPath("publish"), "publish and publish_all apply to containers on berth's networks; network_mode %q has none", mode)
		}
	}
	seen := map[string]int{}
	for i, s := range o.strings("ports") {
		path := cty.GetAttrPath("ports").IndexInt(i)
		ps, err := parsePort(s)
		if err != nil {
			bad(path, "%s", err)
			continue
		}
		if ps.HostPort == 0 {
			continue
		}
		k := portKey(ps.HostIP, ps.HostPort, ps.Proto)
		if j, dup := seen[k]; dup {
			bad(path, "host port %d/%s is published twice, by ports[%d] and ports[%d]: a host port takes one container port", ps.HostPort, ps.Proto, j, i)
		}
		seen[k] = i
	}
	for i, b := range o.blocks("publish") {
		path := cty.GetAttrPath("publish").IndexInt(i)
		if n, ok := b.integer("container_port"); ok && (n < 1 || n > 65535) {
			bad(path.GetAttr("container_port"), "container_port %d is not a port number from 1 to 65535", n)
			continue
		}
		if n, ok := b.integer("host_port"); ok && (n < 0 || n > 65535) {
			bad(path.GetAttr("host_port"), "host_port %d is not a port number from 1 to 65535 (or 0 for a random one)", n)
			continue
		}
		if pr := b.str("protocol"); pr != "" && pr != "tcp" && pr != "udp" {
			bad(path.GetAttr("protocol"), "unknown protocol %q: use \"tcp\" or \"udp\"", pr)
			continue
		}
		if ip := b.str("host_ip"); ip != "" {
			if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
				bad(path.GetAttr("host_ip"), "invalid host_ip %q: give an IPv4 address of this host", ip)
				continue
			}
		}
		if b.unknown("container_port") || b.unknown("host_port") || b.unknown("host_ip") {
			continue
		}
		ps, err := parsePort(publishSpec(b))
		if err != nil {
			bad(path, "%s", err)
			continue
		}
		if ps.HostPort == 0 {
			continue
		}
		k := portKey(ps.HostIP, ps.HostPort, ps.Proto)
		if _, dup := seen[k]; dup {
			bad(path, "host port %d/%s is published twice: a host port takes one container port", ps.HostPort, ps.Proto)
		}
		seen[k] = len(seen)
	}
	nets := map[string]bool{}
	for i, b := range o.blocks("network") {
		path := cty.GetAttrPath("network").IndexInt(i)
		if n := b.str("name"); n != "" {
			if nets[n] {
				bad(path.GetAttr("name"), "the container is attached to network %q twice", n)
			}
			nets[n] = true
		}
		if s := b.str("ipv4_address"); s != "" {
			if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
				bad(path.GetAttr("ipv4_address"), "invalid ipv4_address %q: give an IPv4 address in the network's subnet", s)
			}
		}
		for _, al := range b.strings("aliases") {
			if !validHostName(al) {
				bad(path.GetAttr("aliases"), "invalid alias %q: use letters, digits, '.', '-' and '_'", al)
			}
		}
	}
	for name, a := range o.stringMap("extra_hosts") {
		if !validHostName(name) {
			bad(cty.GetAttrPath("extra_hosts"), "invalid host name %q in extra_hosts", name)
		}
		if _, err := netip.ParseAddr(a); err != nil {
			bad(cty.GetAttrPath("extra_hosts"), "extra_hosts: %q is not an IP address (for %q)", a, name)
		}
	}
	for i, s := range o.strings("dns") {
		if _, err := netip.ParseAddr(s); err != nil {
			bad(cty.GetAttrPath("dns").IndexInt(i), "dns: %q is not an IP address", s)
		}
	}
	return diags
}

// validHostName reports whether s is a host name or alias a container
// can have: up to 253 letters, digits, '_', '.' and '-', not starting with
// '.' or '-'.
func validHostName(s string) bool { return ident.Valid(s, 253, "_", "_.-") }

// Rotate puts container id in or out of the rotation of the host ports it
// publishes, as `berth stop` and `berth start` do: a stopped replica gets
// no new connections. A container on no berth network is left alone.
func (h *Host) Rotate(ctx context.Context, id string, in bool) error {
	rec, err := h.loadNetRecord(id)
	if err != nil || rec == nil || len(rec.Ports) == 0 || rec.Stopped == !in {
		return err
	}
	rec.Stopped = !in
	if err := jsonfile.Write(filepath.Join(h.ContainerDir(id), netRecordFile), rec); err != nil {
		return err
	}
	fw, err := firewall.Open(ctx, firewall.DefaultTable)
	if err != nil {
		return err
	}
	defer fw.Close()
	ports := map[string]portMap{}
	for _, m := range rec.Ports {
		ports[portKey(m.HostIP, m.HostPort, m.Proto)] = m
	}
	return h.publishPorts(ctx, fw, ports)
}

// joinNetwork returns the network namespace of the container called
// target (its name, ID or address), for a container in network mode
// "container:target", and copies target's /etc/hosts and resolv.conf into
// etcDir, as the joining container shares its network.
func (p *Provider) joinNetwork(target, etcDir string) (string, error) {
	recs, err := p.netRecords()
	if err != nil {
		return "", err
	}
	var found *netRecord
	for _, r := range recs {
		if r.Name == target || r.ID == target || r.Address == target {
			found = r
		}
	}
	if found == nil {
		if rec, err := p.hosts.Find(target); err == nil {
			return "", fmt.Errorf("container %s has no network of berth's to share (its network_mode is not \"bridge\"): give it network_mode = \"bridge\"", rec.Address)
		}
		return "", fmt.Errorf("network_mode \"container:%s\": there is no container %q on this host", target, target)
	}
	if ok, _ := netdev.NetNSExists(found.NetNS); !ok {
		return "", fmt.Errorf("the network namespace of container %s is gone: apply again to restore it", found.Address)
	}
	if err := os.MkdirAll(etcDir, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"hosts", "resolv.conf"} {
		b, err := os.ReadFile(filepath.Join(p.hosts.ContainerDir(found.ID), "etc", f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(etcDir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	return found.NetNS, nil
}

// targetNetNS returns the path of the network namespace of the container
// called target, for the drift check of containers that joined it.
func (p *Provider) targetNetNS(target string) (string, error) {
	recs, err := p.netRecords()
	if err != nil {
		return "", err
	}
	for _, r := range recs {
		if r.Name == target || r.ID == target || r.Address == target {
			return r.NetNS, nil
		}
	}
	return "", fmt.Errorf("no container %q", target)
}

// staticAddrClash refuses, at plan, a static address outside its
// network's subnet or held by another container of this host, for the
// networks that exist already.
func (p *Provider) staticAddrClash(ctx context.Context, owner providers.Owner, o obj, prior cty.Value) providers.Diagnostics {
	self := ""
	if !prior.IsNull() {
		self = obj{prior}.str("id")
	}
	var n *networking
	for i, b := range o.blocks("network") {
		want, err := netip.ParseAddr(b.str("ipv4_address"))
		if err != nil || b.str("name") == "" {
			continue
		}
		// Two containers of this plan that ask for one address.
		if other := p.claimAddr(b.str("name"), want, owner.Address); other != "" {
			return providers.AttributeErrorf(cty.GetAttrPath("network").IndexInt(i).GetAttr("ipv4_address"),
				"ipv4_address %s on network %q is also asked for by %s: give each container its own address", want, b.str("name"), other)
		}
		if n == nil {
			if n, err = p.net(ctx); err != nil {
				return nil
			}
		}
		nets, err := n.ipam.Networks()
		if err != nil {
			return nil
		}
		k, ok := nets[b.str("name")]
		if pn, planned := p.plannedNetwork(b.str("name")); planned {
			// Planned in this run: its declared subnet, if it has one.
			sub, err := netip.ParsePrefix(pn.str("subnet"))
			if err != nil {
				continue
			}
			gw, err := netip.ParseAddr(pn.str("gateway"))
			if err != nil {
				gw = ipam.DefaultGateway(sub)
			}
			if !ok || k.Subnet != sub {
				k, ok = ipam.Network{Subnet: sub, Gateway: gw}, true
			}
		}
		if !ok {
			continue
		}
		path := cty.GetAttrPath("network").IndexInt(i).GetAttr("ipv4_address")
		if !k.Subnet.Contains(want) || want == k.Gateway || want == k.Subnet.Addr() || want == lastAddr(k.Subnet) {
			return providers.AttributeErrorf(path, "ipv4_address %s is not a free host address of network %q (subnet %s, gateway %s)", want, b.str("name"), k.Subnet, k.Gateway)
		}
		owners, err := n.ipam.Owners(b.str("name"))
		if err != nil {
			return nil
		}
		for owner, a := range owners {
			if a == want && owner != self {
				who := owner
				if r, err := p.loadNetRecord(owner); err == nil && r != nil {
					who = r.Address
				}
				return providers.AttributeErrorf(path, "ipv4_address %s on network %q is taken by %s", want, b.str("name"), who)
			}
		}
	}
	return nil
}

// claimAddr records that the container at address asks for addr on
// network in this plan, and returns the container that asked for it
// before, if another one did.
func (p *Provider) claimAddr(network string, addr netip.Addr, address string) string {
	if address == "" {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plannedAddrs == nil {
		p.plannedAddrs = map[string]map[netip.Addr]string{}
	}
	m := p.plannedAddrs[network]
	if m == nil {
		m = map[netip.Addr]string{}
		p.plannedAddrs[network] = m
	}
	if other, ok := m[addr]; ok && other != address {
		return other
	}
	m[addr] = address
	return ""
}

// portClash refuses host ports that another container (not a replica of
// the same resource) publishes on an overlapping address, before the
// record says anything: the rules of one would hide the other's.
func (p *Provider) portClash(rec *netRecord, ports []portMap, paths []cty.Path) error {
	recs, err := p.netRecords()
	if err != nil {
		return err
	}
	for i, m := range ports {
		for _, r := range recs {
			if r.ID == rec.ID || r.Service == rec.Service {
				continue
			}
			for _, o := range r.Ports {
				if o.HostPort != m.HostPort || o.Proto != m.Proto {
					continue
				}
				if o.HostIP == m.HostIP || !o.HostIP.IsValid() || !m.HostIP.IsValid() {
					path := cty.GetAttrPath("ports")
					if i < len(paths) {
						path = paths[i]
					}
					return &attrError{path: path, err: fmt.Errorf("port %q: host port %s is published by %s already: only the replicas of one container may share a host port", m.Spec, o.String(), r.Address)}
				}
			}
		}
	}
	return nil
}

// lastAddr is the broadcast address of an IPv4 subnet.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b)
}
