package netdev

import (
	"net/netip"
	"strings"
)

// fallbackNameservers are the nameservers of a container whose host has
// none it can reach, as Docker does.
func fallbackNameservers() []string { return []string{"8.8.8.8", "8.8.4.4"} }

// ResolvConf returns a container's /etc/resolv.conf derived from the
// host's. Every line but the nameserver lines is kept as it is (search,
// domain, options, comments). Nameservers on a loopback address (127.0.0.0/8,
// ::1) are dropped, since the container cannot reach the host's local
// resolver, and when none remain the container gets Google's public
// resolvers 8.8.8.8 and 8.8.4.4, as with Docker. A non-empty dns replaces the
// host's nameservers; its entries that are not IP addresses (or have an IPv6 zone
// that is not an interface name) are skipped
// (spec validation refuses them earlier). The nameserver lines take the
// place of the host's first one, or end the file when it has none.
//
// A host that runs systemd-resolved has only 127.0.0.53 in /etc/resolv.conf:
// pass /run/systemd/resolve/resolv.conf instead, as Docker does.
func ResolvConf(hostResolvConf []byte, dns []string) []byte {
	var servers []string
	for _, s := range dns {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && safeAddr(a) {
			servers = append(servers, a.String())
		}
	}
	override := len(servers) > 0

	text := strings.ReplaceAll(string(hostResolvConf), "\r\n", "\n")
	text = strings.TrimSuffix(text, "\n")
	var lines []string
	at := -1
	if text != "" {
		for _, line := range strings.Split(text, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "nameserver" {
				lines = append(lines, line)
				continue
			}
			if at < 0 {
				at = len(lines)
			}
			if override || len(f) < 2 {
				continue
			}
			if a, err := netip.ParseAddr(f[1]); err == nil && safeAddr(a) && !a.Unmap().IsLoopback() {
				servers = append(servers, a.String())
			}
		}
	}
	if len(servers) == 0 {
		servers = fallbackNameservers()
	}
	if at < 0 {
		at = len(lines)
	}
	var b strings.Builder
	for _, l := range lines[:at] {
		b.WriteString(l + "\n")
	}
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	for _, l := range lines[at:] {
		b.WriteString(l + "\n")
	}
	return []byte(b.String())
}
