// Package ipam keeps the books of berth's networks on one host: which
// subnet each network has, which address each container holds in it, and
// which host port each published port got.
//
// # Layout
//
// A Store lives in one directory (by default <state dir>/ipam):
//
//	lock                  flock(2) lock file, never removed
//	networks/<name>.json  one file per network: subnet, gateway, owner → address
//	ports.json            host ports: key → protocol, host address, port
//
// Every change takes an exclusive flock on lock, reads the file afresh,
// changes it, and writes it back atomically and durably (temporary file,
// fsync, rename, fsync of the directory) before the lock is released and
// before the caller sees the result. Two berth processes on one host, or
// two Stores in one process, therefore never hand out the same address or
// port. Reads (Lookup, Owners, Networks, Ports) take no lock: they see the
// state before or after a change, never half of one.
//
// A file that cannot be decoded, or that decodes to impossible state (an
// address outside its subnet, one address held twice), is an error that
// wraps ErrCorrupt and names the file. The store never resets such a file:
// an operator repairs or removes it by hand.
//
// # Addresses
//
// Allocate is deterministic: an owner without an address gets the lowest
// host address of the subnet that is not the network address, the
// broadcast address, the gateway, or held by another owner. The same owner
// always gets its address back until it is released.
//
// The store can only promise that it never hands out an address twice if
// the caller keeps this order: Allocate before the address is configured
// anywhere, and Release only after it is gone from the kernel (the veth or
// the network namespace deleted). A crash between configuring and
// Allocate, or between Release and tearing down, is then harmless: the
// address is at worst held by an owner that no longer uses it, and the
// next reconcile releases it. Releasing first and tearing down second would
// let a crash leave an address configured on a live container that the
// store considers free.
//
// # Subnets
//
// ValidateNetwork, DefaultGateway, Overlaps and PickSubnet are pure helpers
// for IPv4 networks. EnsureNetwork records a network's subnet under the
// lock, picking a free one from a pool when none is given, so that two
// processes creating networks at once never pick the same subnet.
//
// # Host ports
//
// AllocatePort hands a random free port of a range to a key (for example
// "<container token>/80/tcp") and records it, so that the same key gets the
// same port back after restarts and in-place updates. A port is free when
// no other key of the store holds it on an overlapping host address and it
// can be bound right now. ReservePort records a port chosen by the user, so
// that random ports never collide with it.
package ipam
