package netdev

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// markPrefix starts the interface alias of every link berth makes.
const markPrefix = "berth:"

// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfName = 15

// maxAlias is the longest interface alias Linux keeps (IFALIASZ - 1).
const maxAlias = 255

// Mark returns the interface alias that marks a link as berth's, made for
// owner.
func Mark(owner string) string { return markPrefix + owner }

// ParseMark returns the owner recorded in an interface alias and whether
// the alias is berth's mark.
func ParseMark(alias string) (owner string, ok bool) {
	return strings.CutPrefix(alias, markPrefix)
}

// BridgeName returns the name of the bridge of a network: "br-" and 12 hex
// digits of a hash of the network's name, 15 bytes in all.
func BridgeName(network string) string {
	return "br-" + shortHash("bridge", network)
}

// VethName returns the name of the host end of the veth pair that attaches
// a container to a network: "vb" and 12 hex digits of a hash of both
// names. A container on several networks gets one name per network.
func VethName(container, network string) string {
	return "vb" + shortHash("veth", container, network)
}

// shortHash returns 12 hex digits of the SHA-256 of parts, each part
// ended by a NUL so that ("ab", "c") and ("a", "bc") differ.
func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// MACFromAddr returns a locally administered unicast MAC address derived
// from addr as Docker does: 02:42 followed by the four bytes of an IPv4
// address (the last four of an IPv6 one). It returns nil for the zero
// Addr.
func MACFromAddr(addr netip.Addr) net.HardwareAddr {
	if !addr.IsValid() {
		return nil
	}
	b := addr.Unmap().AsSlice()
	return net.HardwareAddr{0x02, 0x42, b[len(b)-4], b[len(b)-3], b[len(b)-2], b[len(b)-1]}
}

// bridgeMAC returns the fixed MAC address a bridge gets at creation, so
// that it does not change as ports come and go (a bridge without one takes
// the lowest of its ports', and containers' ARP caches go stale).
func bridgeMAC(name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("bridge-mac\x00" + name))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
	return mac
}

// checkIfName reports an error for a name Linux refuses as an interface
// name.
func checkIfName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: empty interface name", what)
	}
	if len(name) > maxIfName {
		return fmt.Errorf("%s: interface name %q is longer than %d bytes", what, name, maxIfName)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%s: invalid interface name %q", what, name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("%s: invalid interface name %q", what, name)
		}
	}
	return nil
}

// checkOwner reports an error for an owner that cannot be recorded in an
// interface alias.
func checkOwner(what, owner string) error {
	if len(Mark(owner)) > maxAlias {
		return fmt.Errorf("%s: owner %q is too long", what, owner)
	}
	if strings.ContainsAny(owner, "\x00\n") {
		return fmt.Errorf("%s: owner %q holds a NUL or newline", what, owner)
	}
	return nil
}

// safeAddr reports whether a's text can be written into a configuration
// file line: netip accepts any bytes as an IPv6 zone, so a zone must look
// like an interface name or an index.
func safeAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	zone := a.Zone()
	if zone == "" {
		return true
	}
	if len(zone) > maxIfName {
		return false
	}
	for _, r := range zone {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}
