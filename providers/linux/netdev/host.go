package netdev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpTries bounds the retries of a netlink dump that the kernel reports
// as interrupted by a concurrent change.
const dumpTries = 10

// Host is one network namespace in which berth makes bridges and the host
// ends of veth pairs. It holds a netlink socket and a handle on the
// namespace; it is safe for concurrent use, but callers serialise changes
// to any one object (bridge, attachment).
type Host struct {
	nsFd int
	nl   *netlink.Handle
}

// OpenHost opens the network namespace at path as a Host; an empty path
// means the namespace of the calling thread (the machine's own, for berth).
// Close releases it.
func OpenHost(path string) (*Host, error) {
	var fd int
	var err error
	if path == "" {
		runtime.LockOSThread()
		fd, err = unix.Open(threadNetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		runtime.UnlockOSThread()
		if err != nil {
			return nil, fmt.Errorf("open host network namespace: %w", err)
		}
	} else {
		fd, err = openNetNS(path)
		if err != nil {
			return nil, fmt.Errorf("open host: %w", err)
		}
	}
	nl, err := handleIn(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open host: %w", err)
	}
	return &Host{nsFd: fd, nl: nl}, nil
}

// Close releases the Host's netlink socket and namespace handle.
func (h *Host) Close() error {
	h.nl.Close()
	return unix.Close(h.nsFd)
}

// Do runs fn on a thread inside the Host's network namespace, as the
// package-level Do does.
func (h *Host) Do(fn func() error) error {
	return doFd(h.nsFd, fn, setNetNS)
}

// handleIn opens a netlink route socket inside the namespace fd.
func handleIn(fd int) (*netlink.Handle, error) {
	var nl *netlink.Handle
	err := doFd(fd, func() error {
		var err error
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	}, setNetNS)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	return nl, nil
}

// netNS is an open container network namespace with a netlink socket in
// it.
type netNS struct {
	fd int
	nl *netlink.Handle
}

// openNS opens the container network namespace at path. The error wraps
// fs.ErrNotExist when there is nothing at path and errNotNetNS when it is
// not a namespace.
func openNS(path string) (*netNS, error) {
	fd, err := openNetNS(path)
	if err != nil {
		return nil, err
	}
	nl, err := handleIn(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return &netNS{fd: fd, nl: nl}, nil
}

func (n *netNS) close() {
	n.nl.Close()
	unix.Close(n.fd)
}

// retryDump calls f again while the kernel reports that its dump was
// interrupted by a concurrent change.
func retryDump[T any](f func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpTries {
			continue
		}
		return v, err
	}
}

// linkByName returns the link called name, or nil when there is none.
func linkByName(nl *netlink.Handle, name string) (netlink.Link, error) {
	l, err := nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find link %s: %w", name, err)
	}
	return l, nil
}

// linkByIndex returns the link with index i, or nil when there is none.
func linkByIndex(nl *netlink.Handle, i int) (netlink.Link, error) {
	l, err := nl.LinkByIndex(i)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find link %d: %w", i, err)
	}
	return l, nil
}

// isUp reports whether a link is administratively up.
func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

// managedAddr reports whether an address is one berth sets or removes:
// every address but IPv6 link-local ones, which the kernel makes.
func managedAddr(p netip.Prefix) bool {
	return !(p.Addr().Is6() && p.Addr().IsLinkLocalUnicast())
}

// linkAddrs returns the addresses berth manages on a link, sorted.
func linkAddrs(nl *netlink.Handle, l netlink.Link) ([]netip.Prefix, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) {
		return nl.AddrList(l, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if ok && managedAddr(p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out, nil
}

// comparePrefix orders prefixes by address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// prefixOf converts a net.IPNet (an address and its prefix length, not
// masked) to a netip.Prefix.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// ipNet converts a netip.Prefix to a net.IPNet holding the address itself
// (not masked), as netlink wants for interface addresses.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// syncAddrs makes the managed addresses of l exactly want.
func syncAddrs(nl *netlink.Handle, l netlink.Link, want []netip.Prefix) error {
	have, err := linkAddrs(nl, l)
	if err != nil {
		return err
	}
	for _, p := range have {
		if slices.Contains(want, p) {
			continue
		}
		if err := nl.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s from %s: %w", p, l.Attrs().Name, err)
		}
	}
	for _, p := range want {
		if slices.Contains(have, p) {
			continue
		}
		a := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := nl.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add address %s to %s: %w", p, l.Attrs().Name, err)
		}
	}
	return nil
}

// defaultRoute describes the default route of one family in a namespace.
type defaultRoute struct {
	gw    netip.Addr
	index int
	count int
}

// readDefaultRoute returns the first default route of a family (a netlink
// FAMILY_*) in the main table, and how many there are.
func readDefaultRoute(nl *netlink.Handle, family int) (defaultRoute, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return nl.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return defaultRoute{}, fmt.Errorf("list routes: %w", err)
	}
	var d defaultRoute
	for _, r := range routes {
		if !isDefault(r) {
			continue
		}
		d.count++
		if d.count == 1 {
			d.index = r.LinkIndex
			if a, ok := netip.AddrFromSlice(r.Gw); ok {
				d.gw = a.Unmap()
			}
		}
	}
	return d, nil
}

// isDefault reports whether r is a default route.
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// familyOf returns the netlink family of an address.
func familyOf(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// syncDefaultRoute makes the only default route of gw's family go through
// gw on l.
func syncDefaultRoute(nl *netlink.Handle, l netlink.Link, gw netip.Addr) error {
	fam := familyOf(gw)
	d, err := readDefaultRoute(nl, fam)
	if err != nil {
		return err
	}
	if d.count == 1 && d.gw == gw && d.index == l.Attrs().Index {
		return nil
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return nl.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if isDefault(r) {
			if err := nl.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("remove default route: %w", err)
			}
		}
	}
	bits := gw.BitLen()
	zero := net.IPv4zero.To4()
	if bits == 128 {
		zero = net.IPv6zero
	}
	r := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       &net.IPNet{IP: zero, Mask: net.CIDRMask(0, bits)},
		Gw:        gw.AsSlice(),
		Table:     unix.RT_TABLE_MAIN,
		Family:    fam,
	}
	if err := nl.RouteAdd(r); err != nil {
		return fmt.Errorf("add default route via %s dev %s: %w", gw, l.Attrs().Name, err)
	}
	return nil
}

// looksUntouched reports whether a link without an alias is one berth made
// and crashed before marking: down, not a bridge port, without addresses.
func looksUntouched(nl *netlink.Handle, l netlink.Link) (bool, error) {
	if l.Attrs().Alias != "" || isUp(l) || l.Attrs().MasterIndex != 0 {
		return false, nil
	}
	addrs, err := linkAddrs(nl, l)
	if err != nil {
		return false, err
	}
	return len(addrs) == 0, nil
}

// claim checks that l is berth's link for owner (adopting it when it
// looks untouched) and gives it owner's mark. The link is read again
// before refusing it, so that a concurrent caller that made and marked it
// meanwhile (it marks before it adds addresses) is not mistaken for
// someone else.
func claim(nl *netlink.Handle, l netlink.Link, owner string) error {
	name := l.Attrs().Name
	mark := Mark(owner)
	for try := 0; ; try++ {
		alias := l.Attrs().Alias
		if alias == mark {
			return nil
		}
		if _, ok := ParseMark(alias); ok {
			return fmt.Errorf("link %s belongs to another berth object (%q)", name, alias)
		}
		untouched, err := looksUntouched(nl, l)
		if err != nil {
			return err
		}
		if untouched {
			if err := nl.LinkSetAlias(l, mark); err != nil {
				return fmt.Errorf("mark link %s: %w", name, err)
			}
			return nil
		}
		if try == 1 {
			return fmt.Errorf("link %s exists and is not berth's", name)
		}
		if l, err = relink(nl, l); err != nil {
			return err
		}
	}
}

// OwnedLink is a link of the Host that carries berth's mark.
type OwnedLink struct {
	Name  string
	Index int
	// Kind is the link type ("bridge", "veth").
	Kind  string
	Owner string
}

// Owned lists the links of the Host that carry berth's mark, by name.
func (h *Host) Owned(ctx context.Context) ([]OwnedLink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	links, err := retryDump(h.nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []OwnedLink
	for _, l := range links {
		owner, ok := ParseMark(l.Attrs().Alias)
		if !ok {
			continue
		}
		out = append(out, OwnedLink{Name: l.Attrs().Name, Index: l.Attrs().Index, Kind: l.Type(), Owner: owner})
	}
	slices.SortFunc(out, func(a, b OwnedLink) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Route is an IPv4 route of the Host's main table.
type Route struct {
	Dst netip.Prefix
	// Dev is the name of the route's interface ("" for routes without
	// one, such as blackhole routes).
	Dev string
	// Owner is the berth owner of Dev, "" when Dev is not berth's.
	Owner string
}

// HostRoutes returns the IPv4 routes of the Host's main table except the
// default route, so that a new network's subnet can be refused when it
// overlaps one. Routes through berth's own bridges are included, marked
// with their Owner.
func (h *Host) HostRoutes(ctx context.Context) ([]Route, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	links, err := h.linkIndex()
	if err != nil {
		return nil, err
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []Route
	for _, r := range routes {
		if isDefault(r) {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		rt := Route{Dst: p.Masked()}
		if l, ok := links[r.LinkIndex]; ok {
			rt.Dev = l.Attrs().Name
			rt.Owner, _ = ParseMark(l.Attrs().Alias)
		}
		out = append(out, rt)
	}
	return out, nil
}

// linkIndex returns the Host's links by index.
func (h *Host) linkIndex() (map[int]netlink.Link, error) {
	links, err := retryDump(h.nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	m := make(map[int]netlink.Link, len(links))
	for _, l := range links {
		m[l.Attrs().Index] = l
	}
	return m, nil
}

// InterfaceAddr is an address of an interface of the Host.
type InterfaceAddr struct {
	Dev  string
	Addr netip.Prefix
	// Owner is the berth owner of Dev, "" when Dev is not berth's.
	Owner string
}

// InterfaceAddrs returns the addresses of every interface of the Host,
// IPv6 link-local ones included.
func (h *Host) InterfaceAddrs(ctx context.Context) ([]InterfaceAddr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	links, err := h.linkIndex()
	if err != nil {
		return nil, err
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) {
		return h.nl.AddrList(nil, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []InterfaceAddr
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		ia := InterfaceAddr{Addr: p}
		if l, ok := links[a.LinkIndex]; ok {
			ia.Dev = l.Attrs().Name
			ia.Owner, _ = ParseMark(l.Attrs().Alias)
		}
		out = append(out, ia)
	}
	return out, nil
}

// EnableForwarding sets net.ipv4.ip_forward to 1 in the Host's namespace
// if it is not already (writing it resets every interface's forwarding
// setting, so it is written only on change).
func (h *Host) EnableForwarding(ctx context.Context) error {
	const key = "net/ipv4/ip_forward"
	v, err := h.Sysctl(ctx, key)
	if err != nil {
		return err
	}
	if v == "1" {
		return nil
	}
	return h.SetSysctl(ctx, key, "1")
}

// Sysctl reads a network sysctl of the Host's namespace, without its
// trailing newline. key is under net, with "/" or "." as separator
// ("net.ipv4.ip_forward"); write it with "/" when it holds an interface
// name with a dot ("net/ipv4/conf/eth0.100/route_localnet").
func (h *Host) Sysctl(ctx context.Context, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var b []byte
	err = h.Do(func() error {
		var err error
		b, err = os.ReadFile(p)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// SetSysctl writes a network sysctl of the Host's namespace (see Sysctl
// for key), such as an interface's route_localnet.
func (h *Host) SetSysctl(ctx context.Context, key, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	if strings.ContainsAny(value, "\x00\n") {
		return fmt.Errorf("set sysctl %s: value %q holds a NUL or newline", key, value)
	}
	err = h.Do(func() error {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value)
		return errors.Join(werr, f.Close())
	})
	if err != nil {
		return fmt.Errorf("set sysctl %s: %w", key, err)
	}
	return nil
}

// sysctlPath returns the /proc/sys path of a network sysctl key.
func sysctlPath(key string) (string, error) {
	k := key
	if !strings.Contains(k, "/") {
		k = strings.ReplaceAll(k, ".", "/")
	}
	parts := strings.Split(k, "/")
	if len(parts) < 2 || parts[0] != "net" {
		return "", fmt.Errorf("sysctl %q: not a network sysctl", key)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsRune(p, 0) {
			return "", fmt.Errorf("sysctl %q: invalid key", key)
		}
	}
	return "/proc/sys/" + k, nil
}
