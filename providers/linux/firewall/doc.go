// Package firewall is berth's nftables layer for networks: outbound NAT
// and isolation of bridge networks, and published ports (DNAT, with
// load balancing over replicas), all in one nftables table that berth
// owns, written and read back through netlink (github.com/google/nftables).
//
// # Ownership
//
// berth owns exactly one table of family ip (IPv4), named by the caller
// (DefaultTable unless told otherwise). It never flushes, edits or reads
// anything else, so it works beside Docker's, firewalld's or an
// administrator's tables. Every rule it writes carries a comment starting
// with "berth:" and every set a comment, so a human reading `nft list
// ruleset` sees what is berth's. A table's owner flag is never set: the
// table outlives the process that wrote it.
//
// Note that nftables runs every table's base chains: a drop in another
// table (firewalld's forward chain, say) still drops what berth's table
// accepts.
//
// # Layout
//
// Base chains, created by Ensure and never touched by the other methods:
//
//	prerouting  nat    hook prerouting  priority dstnat   ip daddr != 127.0.0.0/8 fib daddr type local jump ports
//	output      nat    hook output      priority dstnat   fib daddr type local jump ports
//	postrouting nat    hook postrouting priority srcnat   loopback masquerade; ip saddr vmap @nat_src
//	forward     filter hook forward     priority filter   iifname vmap @fwd_out; oifname vmap @fwd_in
//	input       filter hook input       priority filter   iifname @bridges ip daddr 127.0.0.0/8 ct status ! dnat drop
//	ports       (regular)  ip daddr . meta l4proto . th dport vmap @ports_addr
//	                       meta l4proto . th dport vmap @ports_any
//
// Published ports. A port bound to one host address is an element of the
// map ports_addr (address . protocol . port), a port bound to every local
// address an element of ports_any (protocol . port); each element jumps to
// the port's own chain (port_tcp_8080, port_tcp_8080_192.0.2.1) that holds
// its DNAT: `dnat to 10.89.0.2:80` for one backend; for three, `numgen inc
// mod 3 0 dnat to a:80`, `numgen inc mod 2 0 dnat to b:80` and `dnat to
// c:80`, each rule counting with a counter of its own, so that the kernel
// deals new connections to the backends in turn. Publishing, changing or
// unpublishing one port is one atomic batch whose size depends on the
// port's number of backends only, never on the number of ports already
// published: the port's chain, its rules and its map element. Ports bound
// to an address win over ports bound to any address, so two containers
// can share a port number on two host addresses.
//
// Packets addressed to 127.0.0.0/8 are translated only in the output hook
// (the host itself), never in prerouting: a port published on 127.0.0.1
// cannot be reached by a crafted packet from the LAN (moby #41872). The
// forward chain lets into a bridge only replies and translated (published)
// connections, so a host that routes the bridge subnet through this one
// cannot reach containers directly either (moby #45610).
//
// Networks. Each network has three regular chains, reached through maps
// keyed by its bridge and its subnet: net_<name>_out (forwarded packets
// leaving the bridge: same bridge accepted, another berth bridge dropped
// unless the connection was translated to a published port; an internal
// network drops everything else), net_<name>_in (forwarded packets
// entering the bridge: replies and published ports accepted, everything
// else dropped; an internal network drops everything) and net_<name>_nat
// (postrouting for the subnet's source addresses: masquerade when leaving
// through another interface, and masquerade of translated connections
// coming back into the same bridge, the hairpin case; empty for an
// internal network). The set bridges lists every berth bridge.
//
// Traffic from 127.0.0.0/8 translated to a container is masqueraded; the
// kernel only routes such packets out of a bridge whose route_localnet
// sysctl is 1 (EnableRouteLocalnet). Because route_localnet would also let
// a container address the host's loopback through its gateway, the input
// chain drops packets from a berth bridge to 127.0.0.0/8.
//
// # Drift
//
// Published, Networks and Check decode the live table, not a record of
// what was written: a rule deleted or changed by hand, an element added by
// hand, shows as a port with other backends, an extra port, or a network
// or base object with drift. Ensure repairs the base chains and maps,
// Publish and AddNetwork rewrite their own objects, whatever state they
// find.
//
// # What the caller does
//
// The firewall writes nftables only. The caller turns on forwarding
// (EnableForwarding), sets route_localnet on each bridge
// (EnableRouteLocalnet), and sets hairpin mode on each container's bridge
// port (`bridge_slave hairpin on`): when br_netfilter is loaded, a
// container that reaches itself through a published port on the host's
// address gets its packets back through the port they came in by. It
// calls FlushConntrack after changing a port, and Ensure at every apply.
//
// # Network namespaces
//
// A Firewall works in the network namespace of the thread that called
// Open, whatever thread its methods later run on. EnableForwarding and
// EnableRouteLocalnet write /proc/sys, which is per network namespace:
// they act on the namespace of the calling thread.
//
// # Concurrency
//
// The methods of one Firewall are serialised. Two processes writing the
// same table at once are not coordinated (each batch is atomic, but a
// read-then-write method can work on state that changed in between):
// berth's callers hold the host's lock around applies.
package firewall
