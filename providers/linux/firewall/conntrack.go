package firewall

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// FlushConntrack deletes the conntrack entries of connections of protocol
// proto to hostPort on any local address of f's network namespace, so
// that the next packet of a flow is translated by the current rules. Call
// it after publishing, changing or unpublishing a port: a UDP flow that
// keeps sending (DNS, syslog) would otherwise stay with its old
// destination, or with none, for as long as it keeps its entry alive.
func (f *Firewall) FlushConntrack(ctx context.Context, proto string, hostPort uint16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := protoNumber(proto)
	if err != nil {
		return fmt.Errorf("flush conntrack: %w", err)
	}
	if hostPort == 0 {
		return fmt.Errorf("flush conntrack: host port 0")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ns == nil {
		return fmt.Errorf("flush conntrack %d/%s: firewall is closed", hostPort, proto)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(f.fd), unix.NETLINK_NETFILTER, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("flush conntrack %d/%s: %w", hostPort, proto, err)
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("flush conntrack %d/%s: local addresses: %w", hostPort, proto, err)
	}
	m := portFlows{proto: n, port: hostPort, local: map[netip.Addr]bool{}}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			m.local[ip.Unmap()] = true
		}
	}
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, m); err != nil {
		return fmt.Errorf("flush conntrack %d/%s: %w", hostPort, proto, err)
	}
	return nil
}

// portFlows matches the flows of one protocol to one port of a local
// address (127.0.0.0/8 included).
type portFlows struct {
	proto uint8
	port  uint16
	local map[netip.Addr]bool
}

// MatchConntrackFlow reports whether flow is one of m's.
func (m portFlows) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	t := flow.Forward
	if t.Protocol != m.proto || t.DstPort != m.port {
		return false
	}
	return m.isLocal(t.DstIP)
}

func (m portFlows) isLocal(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	return a.IsLoopback() || m.local[a]
}
