package netdev

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestHostFacts(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	host := newNS(t, dir, "facts")
	h := openHost(t, host)

	// Something of the host's own: an uplink with an address, a default
	// route and a static route.
	in(t, host, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	in(t, host, "ip", "link", "set", "up0", "up")
	in(t, host, "ip", "link", "set", "up1", "up")
	in(t, host, "ip", "addr", "add", "172.30.5.10/24", "dev", "up0")
	in(t, host, "ip", "route", "add", "default", "via", "172.30.5.1")
	in(t, host, "ip", "route", "add", "10.200.0.0/16", "via", "172.30.5.2")
	in(t, host, "ip", "route", "add", "blackhole", "10.201.0.0/16")
	b := Bridge{Name: BridgeName("facts"), Gateway: pfx("10.89.3.1/24"), Owner: "network.facts"}
	if err := h.EnsureBridge(ctx(t), b); err != nil {
		t.Fatal(err)
	}

	routes, err := h.HostRoutes(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Dst: pfx("10.200.0.0/16"), Dev: "up0"},
		{Dst: pfx("10.201.0.0/16")},
		{Dst: pfx("172.30.5.0/24"), Dev: "up0"},
		{Dst: pfx("10.89.3.0/24"), Dev: b.Name, Owner: "network.facts"},
	}
	for _, w := range want {
		if !slices.Contains(routes, w) {
			t.Errorf("HostRoutes lacks %+v: %+v", w, routes)
		}
	}
	for _, r := range routes {
		if r.Dst.Bits() == 0 {
			t.Errorf("HostRoutes holds the default route: %+v", r)
		}
	}
	if len(routes) != len(want) {
		t.Errorf("HostRoutes = %+v, want %+v", routes, want)
	}

	addrs, err := h.InterfaceAddrs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []InterfaceAddr{
		{Dev: "lo", Addr: pfx("127.0.0.1/8")},
		{Dev: "up0", Addr: pfx("172.30.5.10/24")},
		{Dev: b.Name, Addr: pfx("10.89.3.1/24"), Owner: "network.facts"},
	} {
		if !slices.Contains(addrs, w) {
			t.Errorf("InterfaceAddrs lacks %+v: %+v", w, addrs)
		}
	}
}

func TestSysctl(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	host := newNS(t, dir, "sysctl")
	h := openHost(t, host)
	b := Bridge{Name: BridgeName("sysctl"), Gateway: pfx("10.89.4.1/24")}
	if err := h.EnsureBridge(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	realForward, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct{ key, value, file string }{
		{"net.ipv4.conf." + b.Name + ".route_localnet", "1", "/proc/sys/net/ipv4/conf/" + b.Name + "/route_localnet"},
		{"net/ipv4/conf/" + b.Name + "/route_localnet", "0", "/proc/sys/net/ipv4/conf/" + b.Name + "/route_localnet"},
		{"net.ipv4.ip_forward", "1", "/proc/sys/net/ipv4/ip_forward"},
		{"net.ipv4.ip_forward", "0", "/proc/sys/net/ipv4/ip_forward"},
	}
	for _, tt := range tests {
		if err := h.SetSysctl(ctx(t), tt.key, tt.value); err != nil {
			t.Fatalf("SetSysctl(%s, %s): %v", tt.key, tt.value, err)
		}
		if got, err := h.Sysctl(ctx(t), tt.key); err != nil || got != tt.value {
			t.Errorf("Sysctl(%s) = %q, %v; want %q", tt.key, got, err, tt.value)
		}
		// Seen from inside the namespace by another process.
		if got := strings.TrimSpace(in(t, host, "cat", tt.file)); got != tt.value {
			t.Errorf("%s in the namespace = %q, want %q", tt.file, got, tt.value)
		}
	}
	if err := h.EnableForwarding(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(in(t, host, "cat", "/proc/sys/net/ipv4/ip_forward")); got != "1" {
		t.Errorf("ip_forward after EnableForwarding = %q", got)
	}
	// The test's own namespace is untouched: its ip_forward is as it was,
	// and the bridge's sysctls do not exist there.
	if now, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || string(now) != string(realForward) {
		t.Errorf("the machine's ip_forward changed: %q -> %q (%v)", realForward, now, err)
	}
	if _, err := os.Stat("/proc/sys/net/ipv4/conf/" + b.Name); !os.IsNotExist(err) {
		t.Errorf("the bridge's sysctls are visible outside its namespace: %v", err)
	}
	if _, err := h.Sysctl(ctx(t), "net.ipv4.conf.nosuch0.route_localnet"); err == nil {
		t.Error("Sysctl of a missing interface succeeded")
	}
}

func TestOpenHostCurrent(t *testing.T) {
	requireRoot(t)
	// The test's own namespace, read only.
	h, err := OpenHost("")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	addrs, err := h.InterfaceAddrs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range addrs {
		found = found || a.Dev == "lo" && a.Addr == pfx("127.0.0.1/8")
	}
	if !found {
		t.Errorf("InterfaceAddrs of the current namespace lacks lo: %+v", addrs)
	}
	if _, err := h.HostRoutes(ctx(t)); err != nil {
		t.Error(err)
	}
	if _, err := h.Sysctl(ctx(t), "net.ipv4.ip_forward"); err != nil {
		t.Error(err)
	}
}
