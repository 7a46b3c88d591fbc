package netdev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bridge is the desired state of a bridge of a Host.
type Bridge struct {
	Name string
	// Gateway is the bridge's address and the subnet's length
	// (10.89.0.1/24); the zero Prefix means no address.
	Gateway netip.Prefix
	// MTU is the bridge's MTU; 0 keeps the kernel's (1500 at creation).
	MTU int
	// Owner is recorded in the bridge's mark (see Mark).
	Owner string
}

func (b Bridge) check() error {
	if err := checkIfName("bridge", b.Name); err != nil {
		return err
	}
	if err := checkOwner("bridge "+b.Name, b.Owner); err != nil {
		return err
	}
	if b.Gateway != (netip.Prefix{}) && (!b.Gateway.IsValid() || b.Gateway.Addr().Zone() != "" || b.Gateway.Addr().Is4In6()) {
		return fmt.Errorf("bridge %s: invalid gateway %s", b.Name, b.Gateway)
	}
	if b.MTU < 0 {
		return fmt.Errorf("bridge %s: negative MTU", b.Name)
	}
	return nil
}

// addrs returns the addresses the bridge should have.
func (b Bridge) addrs() []netip.Prefix {
	if !b.Gateway.IsValid() {
		return nil
	}
	return []netip.Prefix{b.Gateway}
}

// BridgeStatus is a link of a Host as ReadBridge finds it.
type BridgeStatus struct {
	Name string
	// Kind is the link's type: "bridge", or another type when a link
	// that is not a bridge has the name.
	Kind string
	// Owner is the owner in the link's mark; Marked is false when the
	// link does not carry berth's mark.
	Owner  string
	Marked bool
	// Addrs are the link's addresses, IPv6 link-local ones excepted.
	Addrs []netip.Prefix
	MTU   int
	// Up reports whether the link is administratively up.
	Up  bool
	MAC net.HardwareAddr
}

// Drift lists, in words, how the live bridge differs from want; none
// means it matches.
func (s BridgeStatus) Drift(want Bridge) []string {
	var d []string
	if s.Kind != "bridge" {
		d = append(d, fmt.Sprintf("link %s is a %s, not a bridge", s.Name, s.Kind))
	}
	if !s.Marked || s.Owner != want.Owner {
		d = append(d, fmt.Sprintf("link %s is not marked as berth's %q", s.Name, want.Owner))
	}
	if !slices.Equal(s.Addrs, want.addrs()) {
		d = append(d, fmt.Sprintf("addresses of %s are %s, want %s", s.Name, prefixList(s.Addrs), prefixList(want.addrs())))
	}
	if want.MTU > 0 && s.MTU != want.MTU {
		d = append(d, fmt.Sprintf("MTU of %s is %d, want %d", s.Name, s.MTU, want.MTU))
	}
	if !s.Up {
		d = append(d, fmt.Sprintf("%s is down", s.Name))
	}
	return d
}

// prefixList renders prefixes for Drift.
func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.String()
	}
	return s
}

// EnsureBridge makes the Host's bridge b exist with b's address, MTU and
// mark, and up. A link with b's name that is not a bridge, or is not
// berth's (see the package documentation), is an error and is left alone.
func (h *Host) EnsureBridge(ctx context.Context, b Bridge) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l, err := linkByName(h.nl, b.Name)
	if err != nil {
		return fmt.Errorf("ensure bridge %s: %w", b.Name, err)
	}
	if l == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = b.Name
		attrs.MTU = b.MTU
		attrs.HardwareAddr = bridgeMAC(b.Name)
		// EEXIST: made meanwhile by another caller; checked below.
		if err := h.nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("ensure bridge %s: create: %w", b.Name, err)
		}
		if l, err = linkByName(h.nl, b.Name); err == nil && l == nil {
			err = errors.New("bridge vanished after creation")
		}
		if err != nil {
			return fmt.Errorf("ensure bridge %s: %w", b.Name, err)
		}
	}
	if l.Type() != "bridge" {
		return fmt.Errorf("ensure bridge %s: link exists and is a %s", b.Name, l.Type())
	}
	if err := claim(h.nl, l, b.Owner); err != nil {
		return fmt.Errorf("ensure bridge %s: %w", b.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.MTU > 0 && l.Attrs().MTU != b.MTU {
		if err := h.nl.LinkSetMTU(l, b.MTU); err != nil {
			return fmt.Errorf("ensure bridge %s: set MTU: %w", b.Name, err)
		}
	}
	if err := syncAddrs(h.nl, l, b.addrs()); err != nil {
		return fmt.Errorf("ensure bridge %s: %w", b.Name, err)
	}
	if !isUp(l) {
		if err := h.nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("ensure bridge %s: bring up: %w", b.Name, err)
		}
	}
	return nil
}

// ReadBridge returns the Host's link called name as it is, and false when
// there is none.
func (h *Host) ReadBridge(ctx context.Context, name string) (BridgeStatus, bool, error) {
	if err := ctx.Err(); err != nil {
		return BridgeStatus{}, false, err
	}
	if err := checkIfName("bridge", name); err != nil {
		return BridgeStatus{}, false, err
	}
	l, err := linkByName(h.nl, name)
	if err != nil || l == nil {
		return BridgeStatus{}, false, err
	}
	addrs, err := linkAddrs(h.nl, l)
	if err != nil {
		return BridgeStatus{}, false, fmt.Errorf("read bridge %s: %w", name, err)
	}
	owner, marked := ParseMark(l.Attrs().Alias)
	return BridgeStatus{
		Name:   name,
		Kind:   l.Type(),
		Owner:  owner,
		Marked: marked,
		Addrs:  addrs,
		MTU:    l.Attrs().MTU,
		Up:     isUp(l),
		MAC:    l.Attrs().HardwareAddr,
	}, true, nil
}

// DeleteBridge deletes the Host's bridge called name. A missing bridge is
// not an error; a link that is not a bridge or does not carry berth's mark
// is refused.
func (h *Host) DeleteBridge(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkIfName("bridge", name); err != nil {
		return err
	}
	l, err := linkByName(h.nl, name)
	if err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	if l == nil {
		return nil
	}
	if l.Type() != "bridge" {
		return fmt.Errorf("delete bridge %s: link is a %s", name, l.Type())
	}
	if _, ok := ParseMark(l.Attrs().Alias); !ok {
		return fmt.Errorf("delete bridge %s: link is not berth's", name)
	}
	if err := h.nl.LinkDel(l); err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}
