package netdev

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// macvlanMode returns the kernel's macvlan mode called name.
func macvlanMode(name string) (netlink.MacvlanMode, bool) {
	switch name {
	case "bridge":
		return netlink.MACVLAN_MODE_BRIDGE, true
	case "private":
		return netlink.MACVLAN_MODE_PRIVATE, true
	case "vepa":
		return netlink.MACVLAN_MODE_VEPA, true
	case "passthru":
		return netlink.MACVLAN_MODE_PASSTHRU, true
	}
	return 0, false
}

// macvlanModeName returns the name of a kernel macvlan mode, "" for modes
// berth does not make.
func macvlanModeName(m netlink.MacvlanMode) string {
	for _, name := range []string{"bridge", "private", "vepa", "passthru"} {
		if mode, _ := macvlanMode(name); mode == m {
			return name
		}
	}
	return ""
}

// Macvlan is the desired state of a container's macvlan interface on a
// parent interface of a Host.
type Macvlan struct {
	// NetNS is the path of the container's network namespace.
	NetNS string
	// Parent is the name of the Host's interface on the LAN.
	Parent string
	// Mode is "bridge" (the default when empty), "private", "vepa" or
	// "passthru".
	Mode string
	// IfName is the name of the interface in the container; "" means
	// "eth0".
	IfName string
	// Addr is the container's address on the LAN and the LAN's length.
	Addr netip.Prefix
	// Gateway, when valid, becomes the only default route of its family
	// in the container's namespace (see Attachment.Gateway).
	Gateway netip.Addr
	// MAC of the interface; nil means MACFromAddr(Addr.Addr()). In
	// passthru mode the interface has the parent's MAC and MAC is
	// ignored.
	MAC net.HardwareAddr
	// MTU of the interface; 0 means the parent's.
	MTU int
}

// normalize fills in the defaults.
func (m Macvlan) normalize() Macvlan {
	if m.IfName == "" {
		m.IfName = defaultIfName
	}
	if m.Mode == "" {
		m.Mode = "bridge"
	}
	if m.MAC == nil {
		m.MAC = MACFromAddr(m.Addr.Addr())
	}
	return m
}

func (m Macvlan) check() error {
	what := "macvlan " + m.IfName + " on " + m.Parent
	if err := checkIfName("macvlan parent", m.Parent); err != nil {
		return err
	}
	if err := checkIfName(what, m.IfName); err != nil {
		return err
	}
	if _, ok := macvlanMode(m.Mode); !ok {
		return fmt.Errorf("%s: unknown mode %q (want bridge, private, vepa or passthru)", what, m.Mode)
	}
	if m.NetNS == "" {
		return fmt.Errorf("%s: empty network namespace path", what)
	}
	return checkAddressing(what, m.Addr, m.Gateway, m.MAC, m.MTU)
}

// wantMAC returns the MAC to set, nil in passthru mode.
func (m Macvlan) wantMAC() net.HardwareAddr {
	if m.Mode == "passthru" {
		return nil
	}
	return m.MAC
}

// MacvlanStatus is a container's macvlan interface as ReadMacvlan finds
// it.
type MacvlanStatus struct {
	NetNSExists bool
	IfName      string
	// IfExists reports whether IfName exists in the namespace; IfKind is
	// its type.
	IfExists bool
	IfKind   string
	// Parent is the name of the Host's interface the macvlan sits on, ""
	// when it is not on one of the Host's interfaces.
	Parent string
	// Mode is the macvlan mode ("bridge", ...).
	Mode  string
	Addrs []netip.Prefix
	MAC   net.HardwareAddr
	MTU   int
	Up    bool
	// Gateway and GatewayDev are the gateway and interface of the
	// namespace's default route of the address's family.
	Gateway    netip.Addr
	GatewayDev string
}

// Drift lists, in words, how the live interface differs from want; none
// means it matches.
func (s MacvlanStatus) Drift(want Macvlan) []string {
	want = want.normalize()
	as := AttachmentStatus{
		NetNSExists: s.NetNSExists, IfExists: s.IfExists, Addrs: s.Addrs, MAC: s.MAC,
		MTU: s.MTU, Up: s.Up, Gateway: s.Gateway, GatewayDev: s.GatewayDev,
	}
	var d []string
	if s.IfExists {
		if s.IfKind != "macvlan" {
			d = append(d, fmt.Sprintf("%s in the container is a %s, not a macvlan", want.IfName, s.IfKind))
		} else {
			if s.Parent != want.Parent {
				d = append(d, fmt.Sprintf("%s is on parent %q, want %q", want.IfName, s.Parent, want.Parent))
			}
			if s.Mode != want.Mode {
				d = append(d, fmt.Sprintf("%s is in mode %q, want %q", want.IfName, s.Mode, want.Mode))
			}
		}
	}
	return append(d, as.containerDrift(want.IfName, want.Addr, want.Gateway, want.wantMAC(), want.MTU)...)
}

// AttachMacvlan makes the container's macvlan interface m true: a macvlan
// of Parent in mode Mode, called IfName in the namespace, with the address,
// MAC and MTU, up, and the default route via Gateway. An interface called
// IfName that is a macvlan on another parent or in another mode is
// replaced; one of another kind is refused.
func (h *Host) AttachMacvlan(ctx context.Context, m Macvlan) error {
	m = m.normalize()
	if err := m.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("attach macvlan %s on %s: %w", m.IfName, m.Parent, err) }
	parent, err := linkByName(h.nl, m.Parent)
	if err != nil {
		return fail(err)
	}
	if parent == nil {
		return fail(errors.New("parent interface does not exist"))
	}
	ns, err := openNS(m.NetNS)
	if err != nil {
		return fail(err)
	}
	defer ns.close()
	l, err := linkByName(ns.nl, m.IfName)
	if err != nil {
		return fail(fmt.Errorf("in the container: %w", err))
	}
	if l != nil {
		if l.Type() != "macvlan" {
			return fail(fmt.Errorf("%s exists in the container and is a %s", m.IfName, l.Type()))
		}
		mode, _ := macvlanMode(m.Mode)
		if mv, ok := l.(*netlink.Macvlan); !ok || mv.Mode != mode || !h.onParent(l, parent, ns) {
			if err := ns.nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				return fail(fmt.Errorf("remove stale %s in the container: %w", m.IfName, err))
			}
			l = nil
		}
	}
	if l == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = m.IfName
		attrs.ParentIndex = parent.Attrs().Index
		attrs.MTU = m.MTU
		attrs.HardwareAddr = m.wantMAC()
		attrs.Namespace = netlink.NsFd(ns.fd)
		mode, _ := macvlanMode(m.Mode)
		if err := h.nl.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: mode}); err != nil {
			return fail(fmt.Errorf("create: %w", err))
		}
		if l, err = linkByName(ns.nl, m.IfName); err == nil && l == nil {
			err = errors.New("macvlan vanished after creation")
		}
		if err != nil {
			return fail(fmt.Errorf("in the container: %w", err))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := configureInside(ns.nl, l, m.IfName, m.Addr, m.Gateway, m.wantMAC(), m.MTU); err != nil {
		return fail(fmt.Errorf("in the container: %w", err))
	}
	return nil
}

// onParent reports whether the macvlan l (in ns) sits on parent (in h).
func (h *Host) onParent(l, parent netlink.Link, ns *netNS) bool {
	if l.Attrs().ParentIndex != parent.Attrs().Index {
		return false
	}
	id, err := ns.nl.GetNetNsIdByFd(h.nsFd)
	return err != nil || id < 0 || id == l.Attrs().NetNsID
}

// ReadMacvlan returns the container's macvlan interface as it is live.
func (h *Host) ReadMacvlan(ctx context.Context, m Macvlan) (MacvlanStatus, error) {
	m = m.normalize()
	if err := m.check(); err != nil {
		return MacvlanStatus{}, err
	}
	if err := ctx.Err(); err != nil {
		return MacvlanStatus{}, err
	}
	fail := func(err error) (MacvlanStatus, error) {
		return MacvlanStatus{}, fmt.Errorf("read macvlan %s: %w", m.IfName, err)
	}
	s := MacvlanStatus{IfName: m.IfName}
	ns, err := openNS(m.NetNS)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotNetNS) {
		return s, nil
	}
	if err != nil {
		return fail(err)
	}
	defer ns.close()
	s.NetNSExists = true
	var as AttachmentStatus
	l, err := readInside(ns.nl, m.IfName, m.Addr.Addr(), &as)
	if err != nil {
		return fail(err)
	}
	if l == nil {
		return s, nil
	}
	s.IfExists, s.IfKind = true, as.IfKind
	s.Addrs, s.MAC, s.MTU, s.Up = as.Addrs, as.MAC, as.MTU, as.Up
	s.Gateway, s.GatewayDev = as.Gateway, as.GatewayDev
	if mv, ok := l.(*netlink.Macvlan); ok {
		s.Mode = macvlanModeName(mv.Mode)
		p, err := linkByIndex(h.nl, l.Attrs().ParentIndex)
		if err != nil {
			return fail(err)
		}
		if p != nil && h.onParent(l, p, ns) {
			s.Parent = p.Attrs().Name
		}
	}
	return s, nil
}

// DetachMacvlan removes the container's macvlan interface. A missing
// namespace or interface is not an error; an interface called IfName that
// is not a macvlan is left alone.
func (h *Host) DetachMacvlan(ctx context.Context, m Macvlan) error {
	m = m.normalize()
	if err := checkIfName("macvlan", m.IfName); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ns, err := openNS(m.NetNS)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotNetNS) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("detach macvlan %s: %w", m.IfName, err)
	}
	defer ns.close()
	l, err := linkByName(ns.nl, m.IfName)
	if err != nil {
		return fmt.Errorf("detach macvlan %s: %w", m.IfName, err)
	}
	if l == nil || l.Type() != "macvlan" {
		return nil
	}
	if err := ns.nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("detach macvlan %s: %w", m.IfName, err)
	}
	return nil
}
