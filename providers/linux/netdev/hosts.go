package netdev

import (
	"net/netip"
	"slices"
	"strings"
)

// HostEntry is one address of /etc/hosts and the names that resolve to
// it. A name may appear in several entries (one per replica).
type HostEntry struct {
	Addr  netip.Addr
	Names []string
}

// localhostLines start every /etc/hosts that Hosts writes, as Docker's do.
func localhostLines() string {
	return "127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"ff00::0\tip6-mcastprefix\n" +
		"ff02::1\tip6-allnodes\n" +
		"ff02::2\tip6-allrouters\n"
}

// maxHostName is the longest name Hosts writes (a DNS name's limit).
const maxHostName = 253

// Hosts returns the contents of a container's /etc/hosts: the localhost
// lines, then one line per address, in the order in which addresses first
// appear in entries, with the names of every entry for that address (each
// once, in order). Names that are not host names (letters, digits, '.',
// '-', '_', not starting with '.' or '-') and invalid addresses (or
// with an IPv6 zone that is not an interface name) are skipped, so that no entry can add a line of its own.
func Hosts(entries []HostEntry) []byte {
	var order []netip.Addr
	names := map[netip.Addr][]string{}
	for _, e := range entries {
		if !safeAddr(e.Addr) {
			continue
		}
		a := e.Addr.Unmap()
		for _, n := range e.Names {
			if !validHostName(n) {
				continue
			}
			if _, seen := names[a]; !seen {
				order = append(order, a)
			}
			if !slices.Contains(names[a], n) {
				names[a] = append(names[a], n)
			}
		}
	}
	var b strings.Builder
	b.WriteString(localhostLines())
	for _, a := range order {
		b.WriteString(a.String() + "\t" + strings.Join(names[a], " ") + "\n")
	}
	return []byte(b.String())
}

// validHostName reports whether n can be written as a name in /etc/hosts.
func validHostName(n string) bool {
	if n == "" || len(n) > maxHostName || n[0] == '.' || n[0] == '-' {
		return false
	}
	for _, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}
