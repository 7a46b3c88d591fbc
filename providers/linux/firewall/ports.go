package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Backend is where a published port sends connections: a container's
// address and port.
type Backend struct {
	Addr netip.Addr
	Port uint16
}

func (b Backend) String() string { return netip.AddrPortFrom(b.Addr, b.Port).String() }

// Port is a published port: connections to HostPort (of protocol Proto,
// "tcp" or "udp") on HostIP, or on any local address when HostIP is the
// zero Addr (or 0.0.0.0), go to one of Backends. With several backends
// the kernel deals new connections to them in turn; existing connections
// stay where they are.
type Port struct {
	HostIP   netip.Addr
	HostPort uint16
	Proto    string
	Backends []Backend
}

func (p Port) String() string {
	host := "*"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	bs := make([]string, len(p.Backends))
	for i, b := range p.Backends {
		bs[i] = b.String()
	}
	return fmt.Sprintf("%s:%d/%s -> [%s]", host, p.HostPort, p.Proto, strings.Join(bs, " "))
}

// portKey identifies a published port: what its map element matches.
type portKey struct {
	addr  netip.Addr // invalid: any local address
	proto uint8
	port  uint16
}

func protoNumber(proto string) (uint8, error) {
	switch proto {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	}
	return 0, fmt.Errorf("protocol %q is not tcp or udp", proto)
}

func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

func makeKey(hostIP netip.Addr, hostPort uint16, proto string) (portKey, error) {
	n, err := protoNumber(proto)
	if err != nil {
		return portKey{}, err
	}
	if hostPort == 0 {
		return portKey{}, fmt.Errorf("host port 0")
	}
	k := portKey{proto: n, port: hostPort}
	if hostIP.IsValid() {
		hostIP = hostIP.Unmap()
		if !hostIP.Is4() {
			return portKey{}, fmt.Errorf("host address %s is not IPv4", hostIP)
		}
		if !hostIP.IsUnspecified() {
			k.addr = hostIP
		}
	}
	return k, nil
}

func (k portKey) String() string {
	if k.addr.IsValid() {
		return fmt.Sprintf("%s:%d/%s", k.addr, k.port, protoName(k.proto))
	}
	return fmt.Sprintf("*:%d/%s", k.port, protoName(k.proto))
}

// chainName is the port's chain: port_tcp_8080 or port_tcp_8080_192.0.2.1.
func (k portKey) chainName() string {
	s := "port_" + protoName(k.proto) + "_" + strconv.Itoa(int(k.port))
	if k.addr.IsValid() {
		s += "_" + k.addr.String()
	}
	return s
}

func isPortChain(name string) bool { return strings.HasPrefix(name, "port_") }

func (k portKey) mapName() string {
	if k.addr.IsValid() {
		return mapPortsAddr
	}
	return mapPortsAny
}

// elemKey is the key of the port's map element: [address .] protocol .
// port, each padded to a 32-bit register.
func (k portKey) elemKey() []byte {
	var b []byte
	if k.addr.IsValid() {
		a := k.addr.As4()
		b = append(b, a[:]...)
	}
	return append(b, k.proto, 0, 0, 0, byte(k.port>>8), byte(k.port), 0, 0)
}

// keyFromElem decodes an element key of the map name.
func keyFromElem(name string, b []byte) (portKey, bool) {
	var k portKey
	switch {
	case name == mapPortsAddr && len(b) == 12:
		k.addr = netip.AddrFrom4([4]byte(b[:4]))
		b = b[4:]
	case name == mapPortsAny && len(b) == 8:
	default:
		return portKey{}, false
	}
	k.proto = b[0]
	k.port = uint16(b[4])<<8 | uint16(b[5])
	return k, true
}

func validBackends(bs []Backend) ([]Backend, error) {
	if len(bs) == 0 {
		return nil, fmt.Errorf("no backend (unpublish a port that has none)")
	}
	if len(bs) > 1<<16 {
		return nil, fmt.Errorf("%d backends, more than %d", len(bs), 1<<16)
	}
	out := make([]Backend, len(bs))
	for i, b := range bs {
		a := b.Addr.Unmap()
		if !a.Is4() || a.IsUnspecified() {
			return nil, fmt.Errorf("backend address %v is not an IPv4 unicast address", b.Addr)
		}
		if b.Port == 0 {
			return nil, fmt.Errorf("backend %s: port 0", a)
		}
		out[i] = Backend{Addr: a, Port: b.Port}
	}
	return out, nil
}

// Publish makes p live: creates or rewrites its chain, rule and map
// element in one atomic batch whose size does not depend on how many
// ports are published. It works whatever state the port is in (absent,
// with other backends, edited by hand); if the table or its base is
// missing or broken it runs Ensure first.
func (f *Firewall) Publish(ctx context.Context, p Port) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k, err := makeKey(p.HostIP, p.HostPort, p.Proto)
	if err != nil {
		return fmt.Errorf("publish %v: %w", p, err)
	}
	bs, err := validBackends(p.Backends)
	if err != nil {
		return fmt.Errorf("publish %v: %w", k, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, err := f.writer()
	if err != nil {
		return fmt.Errorf("publish %v: %w", k, err)
	}
	if err := f.queuePublish(w, k, bs); err != nil {
		return fmt.Errorf("publish %v: %w", k, err)
	}
	fast := w.Flush()
	if fast == nil {
		return nil
	}
	// The fast batch failed as a whole (nothing changed): the base is
	// missing, or the port's element was edited by hand. Repair the
	// base, remove whatever holds the port's key, and try again.
	if err := f.ensure(); err != nil {
		return fmt.Errorf("publish %v: %w (after %v)", k, err, fast)
	}
	w, err = f.writer()
	if err != nil {
		return fmt.Errorf("publish %v: %w", k, err)
	}
	if err := f.queueClear(w, k, false); err != nil {
		return fmt.Errorf("publish %v: %w", k, err)
	}
	if err := f.queuePublish(w, k, bs); err != nil {
		return fmt.Errorf("publish %v: %w", k, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("publish %v: %w", k, err)
	}
	return nil
}

// queuePublish queues the port's chain, its one rule and its element.
func (f *Firewall) queuePublish(w *nftables.Conn, k portKey, bs []Backend) error {
	ch := f.chain(k.chainName())
	w.AddChain(ch)
	w.FlushChain(ch)
	tag := "berth:port " + k.String()
	for _, exprs := range dnatRules(k.proto, bs) {
		w.AddRule(&nftables.Rule{Table: f.tbl(), Chain: ch, Exprs: exprs, UserData: comment(tag)})
	}
	return w.SetAddElements(f.set(k.mapName()), []nftables.SetElement{{
		Key:         k.elemKey(),
		VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: k.chainName()},
	}})
}

// queueClear reads the port maps and queues the deletion of every element
// that holds k's key, and, if all is set, of every element that sends to
// k's chain and of the chain itself.
func (f *Firewall) queueClear(w *nftables.Conn, k portKey, all bool) error {
	c, err := f.reader()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	l, err := f.readLive(c)
	if err != nil {
		return err
	}
	for _, name := range []string{mapPortsAddr, mapPortsAny} {
		es, err := f.elements(c, l, name)
		if err != nil {
			return err
		}
		var del []nftables.SetElement
		for _, e := range es {
			ek, ok := keyFromElem(name, e.Key)
			_, chain, _ := verdictOf(e.Val)
			if (ok && ek == k && name == k.mapName()) || (all && chain == k.chainName()) {
				del = append(del, nftables.SetElement{Key: e.Key})
			}
		}
		if len(del) > 0 {
			if err := w.SetDeleteElements(f.set(name), del); err != nil {
				return err
			}
		}
	}
	if _, ok := l.chains[k.chainName()]; ok && all {
		w.FlushChain(f.chain(k.chainName()))
		w.DelChain(f.chain(k.chainName()))
	}
	return nil
}

// Unpublish removes the port published on hostIP (zero: any address),
// hostPort and proto: its element, rule and chain, in one atomic batch. It
// is not an error if the port is not published.
func (f *Firewall) Unpublish(ctx context.Context, hostIP netip.Addr, hostPort uint16, proto string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k, err := makeKey(hostIP, hostPort, proto)
	if err != nil {
		return fmt.Errorf("unpublish: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, err := f.writer()
	if err != nil {
		return fmt.Errorf("unpublish %v: %w", k, err)
	}
	// Adding the chain and the element first makes the deletes valid
	// whether or not they exist, without reading.
	ch := f.chain(k.chainName())
	w.AddChain(ch)
	elem := []nftables.SetElement{{Key: k.elemKey(), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: k.chainName()}}}
	if err := w.SetAddElements(f.set(k.mapName()), elem); err != nil {
		return fmt.Errorf("unpublish %v: %w", k, err)
	}
	if err := w.SetDeleteElements(f.set(k.mapName()), []nftables.SetElement{{Key: k.elemKey()}}); err != nil {
		return fmt.Errorf("unpublish %v: %w", k, err)
	}
	w.FlushChain(ch)
	w.DelChain(ch)
	fast := w.Flush()
	if fast == nil {
		return nil
	}
	// The table is missing (nothing to remove) or the port was edited by
	// hand: remove exactly what is there.
	c, err := f.reader()
	if err != nil {
		return fmt.Errorf("unpublish %v: %w", k, err)
	}
	l, err := f.readLive(c)
	c.CloseLasting()
	if err != nil {
		return fmt.Errorf("unpublish %v: %w", k, err)
	}
	if !l.exists {
		return nil
	}
	w, err = f.writer()
	if err != nil {
		return fmt.Errorf("unpublish %v: %w", k, err)
	}
	if err := f.queueClear(w, k, true); err != nil {
		return fmt.Errorf("unpublish %v: %w", k, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("unpublish %v: %w (after %v)", k, err, fast)
	}
	return nil
}

// Published decodes the published ports from the live table: one Port
// per element of the port maps, with the backends that the chain it
// jumps to really sends to. A chain whose rules are not exactly a rule
// Publish writes gives a Port with no backends; an element added by hand
// gives a Port that was never published. Ports are sorted by protocol,
// port and address.
func (f *Firewall) Published(ctx context.Context) ([]Port, error) {
	var ports []Port
	err := f.read(ctx, "read published ports", func(c *nftables.Conn) error {
		l, err := f.readLive(c)
		if err != nil || !l.exists {
			return err
		}
		type decoded struct {
			chain string
			proto uint8
		}
		backends := map[decoded][]Backend{} // decoded once per chain and protocol
		for _, name := range []string{mapPortsAddr, mapPortsAny} {
			es, err := f.elements(c, l, name)
			if err != nil {
				return err
			}
			for _, e := range es {
				k, ok := keyFromElem(name, e.Key)
				if !ok {
					continue
				}
				p := Port{HostIP: k.addr, HostPort: k.port, Proto: protoName(k.proto)}
				kind, chain, ok := verdictOf(e.Val)
				if ok && (kind == expr.VerdictGoto || kind == expr.VerdictJump) {
					d := decoded{chain, k.proto}
					bs, seen := backends[d]
					if !seen {
						if _, exists := l.chains[chain]; exists {
							if bs, err = f.decodePortChain(c, chain, k.proto); err != nil {
								return err
							}
						}
						backends[d] = bs
					}
					p.Backends = bs
				}
				ports = append(ports, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(ports, func(i, j int) bool {
		a, b := ports[i], ports[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.HostPort != b.HostPort {
			return a.HostPort < b.HostPort
		}
		return a.HostIP.Less(b.HostIP)
	})
	return ports, nil
}

// decodePortChain returns the backends of a port chain whose rules are
// exactly what Publish writes for protocol proto, nil otherwise.
func (f *Firewall) decodePortChain(c *nftables.Conn, chain string, proto uint8) ([]Backend, error) {
	rs, err := f.rules(c, chain)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	bs := make([]Backend, len(rs))
	for i, r := range rs {
		b, ok := backendOf(r.Exprs)
		if !ok {
			return nil, nil
		}
		bs[i] = b
	}
	for i, want := range dnatRules(proto, bs) {
		if render(rs[i].Exprs) != render(want) {
			return nil, nil
		}
	}
	return bs, nil
}
