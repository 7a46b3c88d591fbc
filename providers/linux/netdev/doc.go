// Package netdev is the netlink plumbing of berth's networks: persistent
// network namespaces for containers, bridges, veth pairs and macvlan links,
// read back from the kernel so that drift can be planned, and the
// /etc/resolv.conf and /etc/hosts files a container sees.
//
// # Network namespaces
//
// CreateNetNS makes a network namespace that outlives every process in it
// by bind-mounting it on a file, as `ip netns add` does under /run/netns,
// but at any path (berth uses <state dir>/netns/<id>). The directory that
// holds the files is made a shared mount point first, as iproute2 does: a
// namespace unmounted here is then unmounted from every mount namespace that
// copied it, so it is freed at once. RemoveNetNSDir undoes that mount once
// the directory holds no namespace.
//
// Do runs a function on an OS thread that has entered a namespace. The
// thread is locked for the whole call, and it goes back to the Go scheduler
// only once it is back in its original namespace: if that fails, its
// goroutine ends with the thread still locked, and the runtime terminates
// the thread instead of reusing it. The process's main thread never enters
// another namespace: it cannot be terminated, and /proc/self/ns/net shows
// its namespace. Netlink sockets are opened through Do,
// so a socket stays bound to its namespace for its whole life and no other
// operation switches threads between namespaces.
//
// # Links
//
// A Host is one network namespace in which berth makes bridges and the host
// ends of veth pairs: the machine's own namespace in production, a test's
// namespace in tests. Its methods take the desired state of one object
// (Bridge, Attachment, Macvlan), make the kernel match it whatever part of
// it is already there, and read it back (BridgeStatus, AttachmentStatus,
// MacvlanStatus, each with a Drift method that lists the differences in
// words).
//
// Every link berth makes in a Host carries the interface alias
// "berth:<owner>" (see Mark), so that Owned can list them and so that no
// method changes or deletes a link that is not berth's. The kernel ignores
// an alias given at creation, so it is set just after: a link of the right
// kind left without an alias by a crash in between is adopted when it still
// looks untouched (down, no address, no bridge port).
//
// Interface names have at most 15 bytes. BridgeName and VethName derive
// short, stable names from a network's and an attachment's identity.
//
// Everything inside a container's namespace is berth's: AttachVeth and
// AttachMacvlan replace whatever holds their interface name there when it is
// not the link they want (a veth whose host end was deleted, a macvlan on
// another parent), and set the interface's addresses to exactly the desired
// one (IPv6 link-local addresses, which the kernel makes, are left alone).
//
// # Files
//
// ResolvConf and Hosts are pure functions that build the contents of a
// container's /etc/resolv.conf and /etc/hosts.
package netdev
