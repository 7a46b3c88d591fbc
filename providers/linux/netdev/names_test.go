package netdev

import (
	"fmt"
	"net/netip"
	"regexp"
	"testing"
)

func TestNames(t *testing.T) {
	bridgeRe := regexp.MustCompile(`^br-[0-9a-f]{12}$`)
	vethRe := regexp.MustCompile(`^vb[0-9a-f]{12}$`)
	seen := map[string]string{}
	for i := range 1000 {
		net := fmt.Sprintf("network-%d", i)
		b := BridgeName(net)
		if !bridgeRe.MatchString(b) || checkIfName("test", b) != nil {
			t.Fatalf("BridgeName(%q) = %q", net, b)
		}
		if b != BridgeName(net) {
			t.Fatalf("BridgeName(%q) not deterministic", net)
		}
		v := VethName(fmt.Sprint("c", i), "front")
		if !vethRe.MatchString(v) || checkIfName("test", v) != nil {
			t.Fatalf("VethName = %q", v)
		}
		for _, n := range []string{b, v} {
			if prev, ok := seen[n]; ok {
				t.Fatalf("%q named both %s and %d", n, prev, i)
			}
			seen[n] = fmt.Sprint(i)
		}
	}
	// The parts are kept apart.
	if VethName("ab", "c") == VethName("a", "bc") {
		t.Error("VethName(ab, c) == VethName(a, bc)")
	}
	if VethName("c1", "front") == VethName("c1", "back") {
		t.Error("one container gets one veth name on two networks")
	}
}

func TestMACFromAddr(t *testing.T) {
	tests := []struct {
		addr netip.Addr
		want string
	}{
		{netip.MustParseAddr("172.17.0.2"), "02:42:ac:11:00:02"},
		{netip.MustParseAddr("10.89.0.255"), "02:42:0a:59:00:ff"},
		{netip.MustParseAddr("::ffff:10.0.0.1"), "02:42:0a:00:00:01"},
		{netip.MustParseAddr("fd00::1:2:3"), "02:42:00:02:00:03"},
		{netip.Addr{}, ""},
	}
	for _, tt := range tests {
		if got := MACFromAddr(tt.addr).String(); got != tt.want {
			t.Errorf("MACFromAddr(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestBridgeMAC(t *testing.T) {
	for i := range 256 {
		name := fmt.Sprint("br", i)
		m := bridgeMAC(name)
		if m[0]&0x01 != 0 || m[0]&0x02 == 0 {
			t.Fatalf("bridgeMAC(%s) = %s: not unicast and locally administered", name, m)
		}
		if m.String() != bridgeMAC(name).String() {
			t.Fatalf("bridgeMAC(%s) not deterministic", name)
		}
	}
}

func TestMark(t *testing.T) {
	if owner, ok := ParseMark(Mark("network.front")); !ok || owner != "network.front" {
		t.Errorf("ParseMark(Mark) = %q, %v", owner, ok)
	}
	for _, alias := range []string{"", "docker", "Berth:x", " berth:x"} {
		if _, ok := ParseMark(alias); ok {
			t.Errorf("ParseMark(%q) is berth's", alias)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", true},
		{"net/ipv4/conf/eth0.100/route_localnet", "/proc/sys/net/ipv4/conf/eth0.100/route_localnet", true},
		{"net.ipv4.conf.br-0123.route_localnet", "/proc/sys/net/ipv4/conf/br-0123/route_localnet", true},
		{"kernel.hostname", "", false},
		{"net", "", false},
		{"net/../kernel/hostname", "", false},
		{"net//ipv4", "", false},
		{"/net/ipv4/ip_forward", "", false},
		{"net.ipv4..ip_forward", "", false},
	}
	for _, tt := range tests {
		got, err := sysctlPath(tt.key)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q, ok=%v", tt.key, got, err, tt.want, tt.ok)
		}
	}
}
