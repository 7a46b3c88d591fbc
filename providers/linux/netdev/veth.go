package netdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// defaultIfName is the container-side interface name when none is given.
const defaultIfName = "eth0"

// Attachment is the desired state of a container's attachment to a bridge
// of a Host through a veth pair.
type Attachment struct {
	// NetNS is the path of the container's network namespace.
	NetNS string
	// Bridge is the name of the Host's bridge.
	Bridge string
	// HostIf is the name of the host end of the pair (see VethName).
	HostIf string
	// IfName is the name of the container end; "" means "eth0".
	IfName string
	// Addr is the container's address and the subnet's length.
	Addr netip.Prefix
	// Gateway, when valid, becomes the only default route of its family
	// in the container's namespace. The zero Addr leaves default routes
	// alone: give it on one attachment of a container only.
	Gateway netip.Addr
	// MAC of the container end; nil means MACFromAddr(Addr.Addr()).
	MAC net.HardwareAddr
	// MTU of both ends; 0 means the bridge's.
	MTU int
	// Owner is recorded in the host end's mark (see Mark).
	Owner string
}

// normalize fills in the defaults.
func (a Attachment) normalize() Attachment {
	if a.IfName == "" {
		a.IfName = defaultIfName
	}
	if a.MAC == nil {
		a.MAC = MACFromAddr(a.Addr.Addr())
	}
	return a
}

func (a Attachment) check() error {
	what := "attachment " + a.HostIf
	if err := checkIfName("attachment host interface", a.HostIf); err != nil {
		return err
	}
	if err := checkIfName(what, a.IfName); err != nil {
		return err
	}
	if err := checkIfName(what+" bridge", a.Bridge); err != nil {
		return err
	}
	if err := checkOwner(what, a.Owner); err != nil {
		return err
	}
	if a.NetNS == "" {
		return fmt.Errorf("%s: empty network namespace path", what)
	}
	return checkAddressing(what, a.Addr, a.Gateway, a.MAC, a.MTU)
}

// checkAddressing checks the fields that veth and macvlan attachments
// share.
func checkAddressing(what string, addr netip.Prefix, gw netip.Addr, mac net.HardwareAddr, mtu int) error {
	if !addr.IsValid() || addr.Addr().Zone() != "" || addr.Addr().Is4In6() {
		return fmt.Errorf("%s: invalid address %s", what, addr)
	}
	if gw.IsValid() && (gw.Zone() != "" || gw.Is4In6()) {
		return fmt.Errorf("%s: invalid gateway %s", what, gw)
	}
	if gw.IsValid() && gw.Is4() != addr.Addr().Is4() {
		return fmt.Errorf("%s: gateway %s and address %s are of different families", what, gw, addr)
	}
	if len(mac) != 6 || mac[0]&0x01 != 0 {
		return fmt.Errorf("%s: invalid unicast MAC address %s", what, mac)
	}
	if mtu < 0 {
		return fmt.Errorf("%s: negative MTU", what)
	}
	return nil
}

// AttachmentStatus is an attachment as ReadAttachment finds it.
type AttachmentStatus struct {
	HostIf string
	// HostExists reports whether a link called HostIf exists; HostKind
	// is its type.
	HostExists bool
	HostKind   string
	// Owner is the owner in the host end's mark; Marked is false when it
	// does not carry berth's mark.
	Owner  string
	Marked bool
	// Bridge is the name of the bridge the host end is a port of, ""
	// when none.
	Bridge string
	// Hairpin reports whether hairpin mode is on for the bridge port.
	Hairpin bool
	HostUp  bool

	NetNSExists bool
	IfName      string
	// IfExists reports whether IfName exists in the namespace; IfKind is
	// its type.
	IfExists bool
	IfKind   string
	// Paired reports whether IfName is the other end of HostIf's pair.
	Paired bool
	Addrs  []netip.Prefix
	MAC    net.HardwareAddr
	MTU    int
	Up     bool
	// Gateway and GatewayDev are the gateway and interface of the
	// namespace's default route of the address's family.
	Gateway    netip.Addr
	GatewayDev string
}

// Drift lists, in words, how the live attachment differs from want; none
// means it matches.
func (s AttachmentStatus) Drift(want Attachment) []string {
	want = want.normalize()
	var d []string
	switch {
	case !s.HostExists:
		d = append(d, fmt.Sprintf("host interface %s is missing", want.HostIf))
	case s.HostKind != "veth":
		d = append(d, fmt.Sprintf("host interface %s is a %s, not a veth", want.HostIf, s.HostKind))
	default:
		if !s.Marked || s.Owner != want.Owner {
			d = append(d, fmt.Sprintf("host interface %s is not marked as berth's %q", want.HostIf, want.Owner))
		}
		if s.Bridge != want.Bridge {
			d = append(d, fmt.Sprintf("host interface %s is on bridge %q, want %q", want.HostIf, s.Bridge, want.Bridge))
		} else if !s.Hairpin {
			d = append(d, fmt.Sprintf("hairpin mode is off on %s", want.HostIf))
		}
		if !s.HostUp {
			d = append(d, fmt.Sprintf("host interface %s is down", want.HostIf))
		}
	}
	d = append(d, s.containerDrift(want.IfName, want.Addr, want.Gateway, want.MAC, want.MTU)...)
	if s.IfExists && s.HostExists && !s.Paired {
		d = append(d, fmt.Sprintf("%s in the container is not the peer of %s", want.IfName, want.HostIf))
	}
	return d
}

// containerDrift lists the differences inside the container's namespace.
func (s AttachmentStatus) containerDrift(ifName string, addr netip.Prefix, gw netip.Addr, mac net.HardwareAddr, mtu int) []string {
	if !s.NetNSExists {
		return []string{"the container's network namespace is missing"}
	}
	if !s.IfExists {
		return []string{fmt.Sprintf("%s is missing in the container", ifName)}
	}
	var d []string
	if want := []netip.Prefix{addr}; !slices.Equal(s.Addrs, want) {
		d = append(d, fmt.Sprintf("addresses of %s are %s, want %s", ifName, prefixList(s.Addrs), prefixList(want)))
	}
	if mac != nil && !bytes.Equal(s.MAC, mac) {
		d = append(d, fmt.Sprintf("MAC address of %s is %s, want %s", ifName, s.MAC, mac))
	}
	if mtu > 0 && s.MTU != mtu {
		d = append(d, fmt.Sprintf("MTU of %s is %d, want %d", ifName, s.MTU, mtu))
	}
	if !s.Up {
		d = append(d, fmt.Sprintf("%s is down in the container", ifName))
	}
	if gw.IsValid() && (s.Gateway != gw || s.GatewayDev != ifName) {
		d = append(d, fmt.Sprintf("default route is via %s dev %s, want via %s dev %s", orNone(s.Gateway), orNoneS(s.GatewayDev), gw, ifName))
	}
	return d
}

func orNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func orNoneS(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// AttachVeth makes the attachment a true: a veth pair HostIf–IfName, the
// host end a port of Bridge with hairpin mode on and up, the container end
// in the namespace with the address, MAC and MTU, up, and the default route
// via Gateway. Whatever part already exists is kept or repaired: a pair
// whose other end is gone or wrong is replaced, a host end taken off the
// bridge is put back, a changed address is set back. A host link called
// HostIf that is not berth's is refused and left alone.
func (h *Host) AttachVeth(ctx context.Context, a Attachment) error {
	a = a.normalize()
	if err := a.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("attach %s to %s: %w", a.HostIf, a.Bridge, err) }
	br, err := linkByName(h.nl, a.Bridge)
	if err != nil {
		return fail(err)
	}
	if br == nil {
		return fail(errors.New("bridge does not exist"))
	}
	if br.Type() != "bridge" {
		return fail(fmt.Errorf("link %s is a %s, not a bridge", a.Bridge, br.Type()))
	}
	ns, err := openNS(a.NetNS)
	if err != nil {
		return fail(err)
	}
	defer ns.close()

	host, err := linkByName(h.nl, a.HostIf)
	if err != nil {
		return fail(err)
	}
	if host != nil {
		if host.Type() != "veth" {
			return fail(fmt.Errorf("link %s exists and is a %s", a.HostIf, host.Type()))
		}
		if err := claim(h.nl, host, a.Owner); err != nil {
			return fail(err)
		}
	}
	peer, err := linkByName(ns.nl, a.IfName)
	if err != nil {
		return fail(fmt.Errorf("in the container: %w", err))
	}
	if host == nil || peer == nil || !h.isPair(host, peer, ns) {
		if host, peer, err = h.recreateVeth(a, br, ns, host, peer); err != nil {
			return fail(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// The host end.
	if a.MTU > 0 && host.Attrs().MTU != a.MTU {
		if err := h.nl.LinkSetMTU(host, a.MTU); err != nil {
			return fail(fmt.Errorf("set MTU of %s: %w", a.HostIf, err))
		}
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.nl.LinkSetMaster(host, br); err != nil {
			return fail(fmt.Errorf("add %s to the bridge: %w", a.HostIf, err))
		}
	}
	pi, err := h.nl.LinkGetProtinfo(host)
	if err != nil || !pi.Hairpin {
		if err := h.nl.LinkSetHairpin(host, true); err != nil {
			return fail(fmt.Errorf("set hairpin mode on %s: %w", a.HostIf, err))
		}
	}
	if !isUp(host) {
		if err := h.nl.LinkSetUp(host); err != nil {
			return fail(fmt.Errorf("bring %s up: %w", a.HostIf, err))
		}
	}

	// The container end.
	if err := configureInside(ns.nl, peer, a.IfName, a.Addr, a.Gateway, a.MAC, a.MTU); err != nil {
		return fail(fmt.Errorf("in the container: %w", err))
	}
	return nil
}

// recreateVeth removes what is left of a broken pair and makes a new one,
// returning its two ends.
func (h *Host) recreateVeth(a Attachment, br netlink.Link, ns *netNS, host, peer netlink.Link) (netlink.Link, netlink.Link, error) {
	if host != nil {
		if err := h.nl.LinkDel(host); err != nil && !errors.Is(err, unix.ENODEV) {
			return nil, nil, fmt.Errorf("remove stale %s: %w", a.HostIf, err)
		}
	}
	if peer != nil {
		// Deleting the host end may have taken the peer with it.
		p, err := linkByName(ns.nl, a.IfName)
		if err != nil {
			return nil, nil, fmt.Errorf("in the container: %w", err)
		}
		if p != nil {
			if p.Type() != "veth" {
				return nil, nil, fmt.Errorf("%s exists in the container and is a %s", a.IfName, p.Type())
			}
			if err := ns.nl.LinkDel(p); err != nil && !errors.Is(err, unix.ENODEV) {
				return nil, nil, fmt.Errorf("remove stale %s in the container: %w", a.IfName, err)
			}
		}
	}
	mtu := a.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = a.HostIf
	attrs.MTU = mtu
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         a.IfName,
		PeerHardwareAddr: a.MAC,
		PeerNamespace:    netlink.NsFd(ns.fd),
		PeerMTU:          uint32(mtu),
	}
	if err := h.nl.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("create veth pair: %w", err)
	}
	host, err := linkByName(h.nl, a.HostIf)
	if err == nil && host == nil {
		err = errors.New("veth vanished after creation")
	}
	if err != nil {
		return nil, nil, err
	}
	if err := h.nl.LinkSetAlias(host, Mark(a.Owner)); err != nil {
		return nil, nil, fmt.Errorf("mark %s: %w", a.HostIf, err)
	}
	peer, err = linkByName(ns.nl, a.IfName)
	if err == nil && peer == nil {
		err = errors.New("container end vanished after creation")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("in the container: %w", err)
	}
	return host, peer, nil
}

// isPair reports whether host (in h) and peer (in ns) are the two ends of
// one veth pair.
func (h *Host) isPair(host, peer netlink.Link, ns *netNS) bool {
	if host.Type() != "veth" || peer.Type() != "veth" {
		return false
	}
	if host.Attrs().ParentIndex != peer.Attrs().Index || peer.Attrs().ParentIndex != host.Attrs().Index {
		return false
	}
	// The namespace ids each end records for the other, when known.
	if id, err := h.nl.GetNetNsIdByFd(ns.fd); err == nil && id >= 0 && id != host.Attrs().NetNsID {
		return false
	}
	if id, err := ns.nl.GetNetNsIdByFd(h.nsFd); err == nil && id >= 0 && id != peer.Attrs().NetNsID {
		return false
	}
	return true
}

// configureInside sets the container-side interface l (called ifName) of
// an attachment: MAC, MTU, address, up, loopback up, default route.
func configureInside(nl *netlink.Handle, l netlink.Link, ifName string, addr netip.Prefix, gw netip.Addr, mac net.HardwareAddr, mtu int) error {
	if mac != nil && !bytes.Equal(l.Attrs().HardwareAddr, mac) {
		err := nl.LinkSetHardwareAddr(l, mac)
		if errors.Is(err, unix.EBUSY) {
			// Some drivers change the address only while down; the link
			// is brought up again below.
			if err = nl.LinkSetDown(l); err == nil {
				err = nl.LinkSetHardwareAddr(l, mac)
			}
			if err == nil {
				l, err = relink(nl, l)
			}
		}
		if err != nil {
			return fmt.Errorf("set MAC address of %s: %w", ifName, err)
		}
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := nl.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set MTU of %s: %w", ifName, err)
		}
	}
	if err := syncAddrs(nl, l, []netip.Prefix{addr}); err != nil {
		return err
	}
	if !isUp(l) {
		if err := nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("bring %s up: %w", ifName, err)
		}
	}
	lo, err := linkByName(nl, "lo")
	if err != nil {
		return err
	}
	if lo != nil && !isUp(lo) {
		if err := nl.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring lo up: %w", err)
		}
	}
	if gw.IsValid() {
		if err := syncDefaultRoute(nl, l, gw); err != nil {
			return err
		}
	}
	return nil
}

// relink re-reads l after a change.
func relink(nl *netlink.Handle, l netlink.Link) (netlink.Link, error) {
	n, err := linkByIndex(nl, l.Attrs().Index)
	if err == nil && n == nil {
		err = fmt.Errorf("link %s vanished", l.Attrs().Name)
	}
	return n, err
}

// ReadAttachment returns the attachment as it is live: the host end and
// its bridge port, and the container end in the namespace.
func (h *Host) ReadAttachment(ctx context.Context, a Attachment) (AttachmentStatus, error) {
	a = a.normalize()
	if err := a.check(); err != nil {
		return AttachmentStatus{}, err
	}
	if err := ctx.Err(); err != nil {
		return AttachmentStatus{}, err
	}
	fail := func(err error) (AttachmentStatus, error) {
		return AttachmentStatus{}, fmt.Errorf("read attachment %s: %w", a.HostIf, err)
	}
	s := AttachmentStatus{HostIf: a.HostIf, IfName: a.IfName}
	host, err := linkByName(h.nl, a.HostIf)
	if err != nil {
		return fail(err)
	}
	if host != nil {
		s.HostExists = true
		s.HostKind = host.Type()
		s.Owner, s.Marked = ParseMark(host.Attrs().Alias)
		s.HostUp = isUp(host)
		if mi := host.Attrs().MasterIndex; mi != 0 {
			m, err := linkByIndex(h.nl, mi)
			if err != nil {
				return fail(err)
			}
			if m != nil {
				s.Bridge = m.Attrs().Name
			}
			pi, err := h.nl.LinkGetProtinfo(host)
			if err != nil {
				return fail(fmt.Errorf("read bridge port of %s: %w", a.HostIf, err))
			}
			s.Hairpin = pi.Hairpin
		}
	}
	ns, err := openNS(a.NetNS)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotNetNS) {
		return s, nil
	}
	if err != nil {
		return fail(err)
	}
	defer ns.close()
	s.NetNSExists = true
	peer, err := readInside(ns.nl, a.IfName, a.Addr.Addr(), &s)
	if err != nil {
		return fail(err)
	}
	if peer != nil && host != nil {
		s.Paired = h.isPair(host, peer, ns)
	}
	return s, nil
}

// readInside fills the container-side fields of s from the interface
// ifName of a namespace and returns the link (nil when missing).
func readInside(nl *netlink.Handle, ifName string, addr netip.Addr, s *AttachmentStatus) (netlink.Link, error) {
	l, err := linkByName(nl, ifName)
	if err != nil || l == nil {
		return nil, err
	}
	s.IfExists = true
	s.IfKind = l.Type()
	s.MAC = l.Attrs().HardwareAddr
	s.MTU = l.Attrs().MTU
	s.Up = isUp(l)
	if s.Addrs, err = linkAddrs(nl, l); err != nil {
		return nil, err
	}
	d, err := readDefaultRoute(nl, familyOf(addr))
	if err != nil {
		return nil, err
	}
	s.Gateway = d.gw
	if d.count > 0 {
		if d.index == l.Attrs().Index {
			s.GatewayDev = ifName
		} else if g, err := linkByIndex(nl, d.index); err == nil && g != nil {
			s.GatewayDev = g.Attrs().Name
		}
	}
	return l, nil
}

// Detach removes the attachment's veth pair: the host end when it carries
// berth's mark (a host link called HostIf without it is refused), and the
// container end if it is still there. Nothing left is not an error.
func (h *Host) Detach(ctx context.Context, a Attachment) error {
	a = a.normalize()
	if err := checkIfName("attachment host interface", a.HostIf); err != nil {
		return err
	}
	if err := checkIfName("attachment "+a.HostIf, a.IfName); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("detach %s: %w", a.HostIf, err) }
	host, err := linkByName(h.nl, a.HostIf)
	if err != nil {
		return fail(err)
	}
	if host != nil {
		if _, ok := ParseMark(host.Attrs().Alias); !ok || host.Type() != "veth" {
			return fail(fmt.Errorf("link %s is not berth's veth", a.HostIf))
		}
		if err := h.nl.LinkDel(host); err != nil && !errors.Is(err, unix.ENODEV) {
			return fail(err)
		}
	}
	if a.NetNS == "" {
		return nil
	}
	ns, err := openNS(a.NetNS)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotNetNS) {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	defer ns.close()
	peer, err := linkByName(ns.nl, a.IfName)
	if err != nil {
		return fail(fmt.Errorf("in the container: %w", err))
	}
	if peer != nil && peer.Type() == "veth" {
		if err := ns.nl.LinkDel(peer); err != nil && !errors.Is(err, unix.ENODEV) {
			return fail(fmt.Errorf("in the container: %w", err))
		}
	}
	return nil
}
