package netdev

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// bridgeLab is a simulated host with one bridge network and two
// containers on it.
type bridgeLab struct {
	host   string
	h      *Host
	bridge Bridge
	c      [2]string
	att    [2]Attachment
}

// newBridgeLab makes the host namespace, the bridge and two attached
// containers, all removed after the test.
func newBridgeLab(t *testing.T) *bridgeLab {
	t.Helper()
	dir := nsDir(t)
	l := &bridgeLab{host: newNS(t, dir, "host")}
	l.h = openHost(t, l.host)
	l.bridge = Bridge{Name: BridgeName(fmt.Sprint("front", os.Getpid())), Gateway: pfx("10.89.0.1/24"), Owner: "network.front"}
	if err := l.h.EnsureBridge(ctx(t), l.bridge); err != nil {
		t.Fatalf("EnsureBridge: %v", err)
	}
	for i := range l.c {
		id := fmt.Sprintf("c%d", i)
		l.c[i] = newNS(t, dir, id)
		l.att[i] = Attachment{
			NetNS:   l.c[i],
			Bridge:  l.bridge.Name,
			HostIf:  VethName(id, "front"),
			Addr:    netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, 0, byte(2 + i)}), 24),
			Gateway: ip("10.89.0.1"),
			Owner:   "container." + id,
		}
		if err := l.h.AttachVeth(ctx(t), l.att[i]); err != nil {
			t.Fatalf("AttachVeth %d: %v", i, err)
		}
	}
	return l
}

// addr returns container i's address.
func (l *bridgeLab) addr(i int) netip.Addr { return l.att[i].Addr.Addr() }

// readAtt reads attachment i.
func (l *bridgeLab) readAtt(t *testing.T, i int) AttachmentStatus {
	t.Helper()
	s, err := l.h.ReadAttachment(ctx(t), l.att[i])
	if err != nil {
		t.Fatalf("ReadAttachment %d: %v", i, err)
	}
	return s
}

// noDrift fails the test if attachment i or the bridge drifted.
func (l *bridgeLab) noDrift(t *testing.T) {
	t.Helper()
	for i := range l.att {
		if d := l.readAtt(t, i).Drift(l.att[i]); len(d) > 0 {
			t.Errorf("attachment %d drifted: %q", i, d)
		}
	}
	bs, ok, err := l.h.ReadBridge(ctx(t), l.bridge.Name)
	if err != nil || !ok {
		t.Fatalf("ReadBridge = %v, %v", ok, err)
	}
	if d := bs.Drift(l.bridge); len(d) > 0 {
		t.Errorf("bridge drifted: %q", d)
	}
}

func TestBridgeTraffic(t *testing.T) {
	requireRoot(t)
	l := newBridgeLab(t)

	mustPing(t, l.c[0], l.addr(1))
	mustPing(t, l.c[1], l.addr(0))
	mustPing(t, l.c[0], ip("10.89.0.1"))
	l.noDrift(t)

	// What the kernel holds is what was asked for.
	s := l.readAtt(t, 0)
	if !s.HostExists || !s.Marked || s.Owner != "container.c0" || s.Bridge != l.bridge.Name || !s.Hairpin || !s.HostUp {
		t.Errorf("host end: %+v", s)
	}
	if !s.Paired || s.IfKind != "veth" || !s.Up || s.Gateway != ip("10.89.0.1") || s.GatewayDev != "eth0" {
		t.Errorf("container end: %+v", s)
	}
	if want := []netip.Prefix{pfx("10.89.0.2/24")}; !slices.Equal(s.Addrs, want) {
		t.Errorf("container addresses = %v, want %v", s.Addrs, want)
	}
	if want := MACFromAddr(ip("10.89.0.2")); !bytes.Equal(s.MAC, want) {
		t.Errorf("container MAC = %s, want %s", s.MAC, want)
	}
	if out := in(t, l.host, "ip", "-d", "link", "show", l.att[0].HostIf); !strings.Contains(out, "hairpin on") {
		t.Errorf("hairpin not on in ip's view:\n%s", out)
	}
	if out := in(t, l.c[0], "ip", "route", "show", "default"); !strings.Contains(out, "default via 10.89.0.1 dev eth0") {
		t.Errorf("default route in the container: %q", out)
	}

	// Idempotent: everything again changes nothing.
	before := snapshot(t, l.host)
	if err := l.h.EnsureBridge(ctx(t), l.bridge); err != nil {
		t.Fatal(err)
	}
	for i := range l.att {
		if err := l.h.AttachVeth(ctx(t), l.att[i]); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(t, l.host); after != before {
		t.Errorf("a second apply changed the host namespace:\n%s", diffLines(before, after))
	}

	owned, err := l.h.Owned(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []OwnedLink{
		{Name: l.bridge.Name, Kind: "bridge", Owner: "network.front"},
		{Name: l.att[0].HostIf, Kind: "veth", Owner: "container.c0"},
		{Name: l.att[1].HostIf, Kind: "veth", Owner: "container.c1"},
	}
	slices.SortFunc(want, func(a, b OwnedLink) int { return strings.Compare(a.Name, b.Name) })
	for i := range owned {
		owned[i].Index = 0
	}
	if !slices.Equal(owned, want) {
		t.Errorf("Owned = %+v, want %+v", owned, want)
	}
}

func TestForwardingBetweenBridges(t *testing.T) {
	requireRoot(t)
	l := newBridgeLab(t)
	// A second network, on another bridge of the same host.
	other := Bridge{Name: BridgeName("back"), Gateway: pfx("10.90.0.1/24"), Owner: "network.back"}
	if err := l.h.EnsureBridge(ctx(t), other); err != nil {
		t.Fatal(err)
	}
	c := newNS(t, nsDir(t), "fwd")
	a := Attachment{NetNS: c, Bridge: other.Name, HostIf: VethName("fwd", "back"), Addr: pfx("10.90.0.2/24"), Gateway: ip("10.90.0.1"), Owner: "container.fwd"}
	if err := l.h.AttachVeth(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	mustPing(t, c, ip("10.90.0.1"))

	// Without forwarding in the host namespace, the networks do not meet.
	if err := l.h.SetSysctl(ctx(t), "net.ipv4.ip_forward", "0"); err != nil {
		t.Fatal(err)
	}
	mustNotPing(t, c, l.addr(0))
	if err := l.h.EnableForwarding(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(in(t, l.host, "cat", "/proc/sys/net/ipv4/ip_forward")); v != "1" {
		t.Fatalf("ip_forward in the host namespace = %q after EnableForwarding", v)
	}
	mustPing(t, c, l.addr(0))
}

func TestAttachRepairsDrift(t *testing.T) {
	requireRoot(t)
	l := newBridgeLab(t)
	a := l.att[0]

	tests := []struct {
		name   string
		break_ func()
		// check inspects the status read after the change by hand.
		check func(s AttachmentStatus) bool
	}{
		{
			name:   "host veth deleted",
			break_: func() { in(t, l.host, "ip", "link", "del", a.HostIf) },
			check:  func(s AttachmentStatus) bool { return !s.HostExists && !s.IfExists },
		},
		{
			name:   "container end deleted",
			break_: func() { in(t, a.NetNS, "ip", "link", "del", "eth0") },
			check:  func(s AttachmentStatus) bool { return !s.HostExists && !s.IfExists },
		},
		{
			name: "address changed",
			break_: func() {
				in(t, a.NetNS, "ip", "addr", "flush", "dev", "eth0")
				in(t, a.NetNS, "ip", "addr", "add", "10.89.0.77/24", "dev", "eth0")
			},
			check: func(s AttachmentStatus) bool {
				return slices.Equal(s.Addrs, []netip.Prefix{pfx("10.89.0.77/24")}) && s.Gateway != ip("10.89.0.1")
			},
		},
		{
			name:   "address added",
			break_: func() { in(t, a.NetNS, "ip", "addr", "add", "10.89.0.78/24", "dev", "eth0") },
			check: func(s AttachmentStatus) bool {
				return slices.Equal(s.Addrs, []netip.Prefix{pfx("10.89.0.2/24"), pfx("10.89.0.78/24")})
			},
		},
		{
			name:   "taken off the bridge",
			break_: func() { in(t, l.host, "ip", "link", "set", a.HostIf, "nomaster") },
			check:  func(s AttachmentStatus) bool { return s.HostExists && s.Bridge == "" },
		},
		{
			name:   "hairpin off",
			break_: func() { in(t, l.host, "ip", "link", "set", a.HostIf, "type", "bridge_slave", "hairpin", "off") },
			check:  func(s AttachmentStatus) bool { return s.Bridge == l.bridge.Name && !s.Hairpin },
		},
		{
			name:   "host end down",
			break_: func() { in(t, l.host, "ip", "link", "set", a.HostIf, "down") },
			check:  func(s AttachmentStatus) bool { return !s.HostUp },
		},
		{
			name:   "container end down",
			break_: func() { in(t, a.NetNS, "ip", "link", "set", "eth0", "down") },
			check:  func(s AttachmentStatus) bool { return !s.Up },
		},
		{
			name:   "default route removed",
			break_: func() { in(t, a.NetNS, "ip", "route", "del", "default") },
			check:  func(s AttachmentStatus) bool { return !s.Gateway.IsValid() && s.GatewayDev == "" },
		},
		{
			name:   "MAC changed",
			break_: func() { in(t, a.NetNS, "ip", "link", "set", "eth0", "address", "02:00:00:00:00:99") },
			check:  func(s AttachmentStatus) bool { return s.MAC.String() == "02:00:00:00:00:99" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.break_()
			s := l.readAtt(t, 0)
			if !tt.check(s) {
				t.Errorf("read after the change does not show it: %+v", s)
			}
			if len(s.Drift(a)) == 0 {
				t.Error("Drift reports nothing")
			}
			if err := l.h.AttachVeth(ctx(t), a); err != nil {
				t.Fatalf("AttachVeth: %v", err)
			}
			if d := l.readAtt(t, 0).Drift(a); len(d) > 0 {
				t.Errorf("after repair, drift: %q", d)
			}
			mustPing(t, l.c[0], l.addr(1))
			mustPing(t, l.c[1], l.addr(0))
		})
	}
}

func TestEnsureBridgeRepairsDrift(t *testing.T) {
	requireRoot(t)
	l := newBridgeLab(t)
	b := l.bridge
	tests := []struct {
		name   string
		break_ func()
		check  func(s BridgeStatus) bool
	}{
		{
			name: "address changed",
			break_: func() {
				in(t, l.host, "ip", "addr", "flush", "dev", b.Name)
				in(t, l.host, "ip", "addr", "add", "10.89.0.254/24", "dev", b.Name)
			},
			check: func(s BridgeStatus) bool { return slices.Equal(s.Addrs, []netip.Prefix{pfx("10.89.0.254/24")}) },
		},
		{
			name:   "down",
			break_: func() { in(t, l.host, "ip", "link", "set", b.Name, "down") },
			check:  func(s BridgeStatus) bool { return !s.Up },
		},
		{
			name:   "deleted",
			break_: func() { in(t, l.host, "ip", "link", "del", b.Name) },
			check:  nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.break_()
			s, ok, err := l.h.ReadBridge(ctx(t), b.Name)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check == nil {
				if ok {
					t.Fatalf("ReadBridge found a deleted bridge: %+v", s)
				}
			} else if !ok || !tt.check(s) || len(s.Drift(b)) == 0 {
				t.Errorf("read after the change does not show it: %v %+v", ok, s)
			}
			if err := l.h.EnsureBridge(ctx(t), b); err != nil {
				t.Fatal(err)
			}
			// The ports come back with their attachments.
			for i := range l.att {
				if err := l.h.AttachVeth(ctx(t), l.att[i]); err != nil {
					t.Fatal(err)
				}
			}
			l.noDrift(t)
			mustPing(t, l.c[0], ip("10.89.0.1"))
			mustPing(t, l.c[0], l.addr(1))
		})
	}
}

func TestDeleteLeavesHostAsBefore(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	host := newNS(t, dir, "clean")
	h := openHost(t, host)
	before := snapshot(t, host)

	b := Bridge{Name: BridgeName("net"), Gateway: pfx("10.91.0.1/24"), MTU: 1400, Owner: "network.net"}
	if err := h.EnsureBridge(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	var atts []Attachment
	for i := range 2 {
		c := newNS(t, dir, fmt.Sprintf("cl%d", i))
		a := Attachment{NetNS: c, Bridge: b.Name, HostIf: VethName(fmt.Sprint(i), "net"),
			Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 91, 0, byte(2 + i)}), 24), Gateway: ip("10.91.0.1")}
		if err := h.AttachVeth(ctx(t), a); err != nil {
			t.Fatal(err)
		}
		atts = append(atts, a)
	}
	mustPing(t, atts[0].NetNS, ip("10.91.0.3"))
	if s := snapshot(t, host); s == before {
		t.Fatal("nothing changed in the host namespace")
	}
	if s := containerMTU(t, h, atts[0]); s != 1400 {
		t.Errorf("container MTU = %d, want the bridge's 1400", s)
	}

	for _, a := range atts {
		if err := h.Detach(ctx(t), a); err != nil {
			t.Fatal(err)
		}
		if err := h.Detach(ctx(t), a); err != nil {
			t.Errorf("second Detach: %v", err)
		}
		if out := in(t, a.NetNS, "ip", "-o", "link"); strings.Contains(out, "eth0") {
			t.Errorf("eth0 left in the container:\n%s", out)
		}
	}
	if err := h.DeleteBridge(ctx(t), b.Name); err != nil {
		t.Fatal(err)
	}
	if err := h.DeleteBridge(ctx(t), b.Name); err != nil {
		t.Errorf("second DeleteBridge: %v", err)
	}
	if after := snapshot(t, host); after != before {
		t.Errorf("host namespace differs after delete:\n%s", diffLines(before, after))
	}
	if owned, err := h.Owned(ctx(t)); err != nil || len(owned) != 0 {
		t.Errorf("Owned after delete = %v, %v", owned, err)
	}
}

// containerMTU returns the MTU of the container end of a.
func containerMTU(t *testing.T, h *Host, a Attachment) int {
	t.Helper()
	s, err := h.ReadAttachment(ctx(t), a)
	if err != nil {
		t.Fatal(err)
	}
	return s.MTU
}

func TestForeignLinksLeftAlone(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	host := newNS(t, dir, "foreign")
	h := openHost(t, host)
	c := newNS(t, dir, "fc")

	// A bridge made by someone else, in use.
	in(t, host, "ip", "link", "add", "brother", "type", "bridge")
	in(t, host, "ip", "addr", "add", "10.92.0.1/24", "dev", "brother")
	in(t, host, "ip", "link", "set", "brother", "up")
	// A veth made by someone else, with the name berth wants.
	in(t, host, "ip", "link", "add", "vbforeign", "type", "veth", "peer", "name", "vbforeign1")
	in(t, host, "ip", "link", "set", "vbforeign", "master", "brother")
	// What matters of them (the carrier of a bridge changes with time).
	foreign := func() string {
		return in(t, host, "ip", "-o", "-4", "addr") +
			in(t, host, "ip", "-o", "link", "show", "brother") +
			in(t, host, "ip", "-o", "link", "show", "vbforeign") +
			in(t, host, "ip", "-o", "link", "show", "vbforeign1")
	}
	before := foreign()
	if !strings.Contains(before, "master brother") {
		t.Fatalf("set-up: %s", before)
	}

	if err := h.EnsureBridge(ctx(t), Bridge{Name: "brother", Gateway: pfx("10.93.0.1/24")}); err == nil {
		t.Error("EnsureBridge took over a foreign bridge")
	}
	if err := h.DeleteBridge(ctx(t), "brother"); err == nil {
		t.Error("DeleteBridge deleted a foreign bridge")
	}
	if err := h.EnsureBridge(ctx(t), Bridge{Name: "vbforeign"}); err == nil {
		t.Error("EnsureBridge accepted a veth as a bridge")
	}
	mine := Bridge{Name: BridgeName("mine"), Gateway: pfx("10.94.0.1/24")}
	if err := h.EnsureBridge(ctx(t), mine); err != nil {
		t.Fatal(err)
	}
	a := Attachment{NetNS: c, Bridge: mine.Name, HostIf: "vbforeign", Addr: pfx("10.94.0.2/24")}
	if err := h.AttachVeth(ctx(t), a); err == nil {
		t.Error("AttachVeth took over a foreign veth")
	}
	if err := h.Detach(ctx(t), a); err == nil {
		t.Error("Detach deleted a foreign veth")
	}
	if err := h.DeleteBridge(ctx(t), mine.Name); err != nil {
		t.Fatal(err)
	}
	if after := foreign(); normalizeCarrier(after) != normalizeCarrier(before) {
		t.Errorf("foreign links changed:\n%s", diffLines(before, after))
	}

	// A bridge without a mark that looks freshly made (down, no address,
	// no port) is what a crash between creation and marking leaves: it is
	// adopted.
	in(t, host, "ip", "link", "add", "brfresh", "type", "bridge")
	fresh := Bridge{Name: "brfresh", Gateway: pfx("10.95.0.1/24"), Owner: "network.fresh"}
	if err := h.EnsureBridge(ctx(t), fresh); err != nil {
		t.Fatalf("EnsureBridge of an unmarked fresh bridge: %v", err)
	}
	s, _, err := h.ReadBridge(ctx(t), "brfresh")
	if err != nil || len(s.Drift(fresh)) > 0 {
		t.Errorf("adopted bridge: %+v %v, drift %q", s, err, s.Drift(fresh))
	}
	// A bridge of another berth owner is not taken.
	if err := h.EnsureBridge(ctx(t), Bridge{Name: "brfresh", Owner: "network.other"}); err == nil {
		t.Error("EnsureBridge took another owner's bridge")
	}
	if err := h.DeleteBridge(ctx(t), "brfresh"); err != nil {
		t.Fatal(err)
	}
}

// carrier matches the parts of `ip link` output that follow the carrier.
var carrier = regexp.MustCompile(`NO-CARRIER,|,LOWER_UP| state [A-Z]+|\s+linkdown`)

// normalizeCarrier removes the carrier state from `ip` output.
func normalizeCarrier(s string) string { return carrier.ReplaceAllString(s, "") }

func TestAttachReplacesStaleContainerEnd(t *testing.T) {
	requireRoot(t)
	l := newBridgeLab(t)
	a := l.att[0]
	// The host end deleted and an unrelated veth pair left in the
	// container under eth0's name.
	in(t, l.host, "ip", "link", "del", a.HostIf)
	in(t, a.NetNS, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "stale1")
	if s := l.readAtt(t, 0); !s.IfExists || s.HostExists || s.Paired {
		t.Errorf("read: %+v", s)
	}
	if err := l.h.AttachVeth(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	if s := l.readAtt(t, 0); !s.Paired || len(s.Drift(a)) > 0 {
		t.Errorf("after repair: %+v, drift %q", s, s.Drift(a))
	}
	mustPing(t, l.c[0], l.addr(1))

	// Something that is not a veth under eth0 is refused.
	in(t, l.host, "ip", "link", "del", a.HostIf)
	in(t, a.NetNS, "ip", "link", "add", "eth0", "type", "bridge")
	if err := l.h.AttachVeth(ctx(t), a); err == nil {
		t.Error("AttachVeth replaced a bridge")
	}
	in(t, a.NetNS, "ip", "link", "del", "eth0")
	if err := l.h.AttachVeth(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	mustPing(t, l.c[0], l.addr(1))
}

func TestReadAttachmentMissingNetNS(t *testing.T) {
	requireRoot(t)
	l := newBridgeLab(t)
	a := l.att[1]
	if err := DeleteNetNS(a.NetNS); err != nil {
		t.Fatal(err)
	}
	s := l.readAtt(t, 1)
	// The host end goes with the namespace, but the kernel frees a
	// namespace asynchronously: it may still be there.
	if s.NetNSExists || s.IfExists {
		t.Errorf("read with the namespace gone: %+v", s)
	}
	if d := s.Drift(a); len(d) == 0 {
		t.Error("no drift with the namespace gone")
	}
	if err := l.h.Detach(ctx(t), a); err != nil {
		t.Errorf("Detach with the namespace gone: %v", err)
	}
	if err := l.h.AttachVeth(ctx(t), a); err == nil {
		t.Error("AttachVeth into a missing namespace succeeded")
	}
}

func TestValidation(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	host := newNS(t, dir, "valid")
	h := openHost(t, host)
	c := newNS(t, dir, "vc")
	good := Attachment{NetNS: c, Bridge: "br0", HostIf: "vb0", Addr: pfx("10.96.0.2/24"), Gateway: ip("10.96.0.1")}
	before := snapshot(t, host)
	tests := []struct {
		name string
		call func() error
	}{
		{"bridge name too long", func() error { return h.EnsureBridge(ctx(t), Bridge{Name: "br-0123456789abc"}) }},
		{"bridge name with slash", func() error { return h.EnsureBridge(ctx(t), Bridge{Name: "br/0"}) }},
		{"bridge name empty", func() error { return h.EnsureBridge(ctx(t), Bridge{}) }},
		{"bridge owner with newline", func() error { return h.EnsureBridge(ctx(t), Bridge{Name: "br0", Owner: "a\nb"}) }},
		{"bridge negative MTU", func() error { return h.EnsureBridge(ctx(t), Bridge{Name: "br0", MTU: -1}) }},
		{"veth without address", func() error { a := good; a.Addr = netip.Prefix{}; return h.AttachVeth(ctx(t), a) }},
		{"veth gateway of another family", func() error { a := good; a.Gateway = ip("fd00::1"); return h.AttachVeth(ctx(t), a) }},
		{"veth multicast MAC", func() error { a := good; a.MAC = []byte{1, 0, 0, 0, 0, 1}; return h.AttachVeth(ctx(t), a) }},
		{"veth host name too long", func() error { a := good; a.HostIf = "vb0123456789abcd"; return h.AttachVeth(ctx(t), a) }},
		{"veth no netns", func() error { a := good; a.NetNS = ""; return h.AttachVeth(ctx(t), a) }},
		{"veth missing bridge", func() error { return h.AttachVeth(ctx(t), good) }},
		{"macvlan bad mode", func() error {
			return h.AttachMacvlan(ctx(t), Macvlan{NetNS: c, Parent: "lo", Mode: "source", Addr: pfx("10.96.0.2/24")})
		}},
		{"macvlan missing parent", func() error {
			return h.AttachMacvlan(ctx(t), Macvlan{NetNS: c, Parent: "nope0", Addr: pfx("10.96.0.2/24")})
		}},
		{"sysctl outside net", func() error { return h.SetSysctl(ctx(t), "kernel.hostname", "x") }},
		{"sysctl dot-dot", func() error { return h.SetSysctl(ctx(t), "net/../kernel/hostname", "x") }},
		{"sysctl newline", func() error { return h.SetSysctl(ctx(t), "net.ipv4.ip_forward", "1\n0") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil {
				t.Error("no error")
			}
		})
	}
	if after := snapshot(t, host); after != before {
		t.Errorf("refused calls changed the host namespace:\n%s", diffLines(before, after))
	}
	if out := in(t, c, "ip", "-o", "link"); strings.Count(out, "\n") != 1 {
		t.Errorf("refused calls changed the container namespace:\n%s", out)
	}
}

func TestConcurrentAttach(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	host := newNS(t, dir, "many")
	h := openHost(t, host)
	b := Bridge{Name: BridgeName("many"), Gateway: pfx("10.97.0.1/24"), Owner: "network.many"}
	const n = 12
	atts := make([]Attachment, n)
	for i := range atts {
		id := fmt.Sprint("m", i)
		atts[i] = Attachment{NetNS: newNS(t, dir, id), Bridge: b.Name, HostIf: VethName(id, "many"),
			Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 97, 0, byte(10 + i)}), 24), Gateway: ip("10.97.0.1"), Owner: id}
	}
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	for i := range atts {
		wg.Go(func() {
			// Every goroutine ensures the shared bridge, then its own
			// attachment, then reads it back.
			if errs[i] = h.EnsureBridge(ctx(t), b); errs[i] != nil {
				return
			}
			if errs[i] = h.AttachVeth(ctx(t), atts[i]); errs[i] != nil {
				return
			}
			s, err := h.ReadAttachment(ctx(t), atts[i])
			if err == nil && len(s.Drift(atts[i])) > 0 {
				err = fmt.Errorf("drift: %q", s.Drift(atts[i]))
			}
			errs[i] = err
		})
		wg.Go(func() {
			_, errs[n+i] = h.Owned(ctx(t))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	mustPing(t, atts[0].NetNS, atts[n-1].Addr.Addr())
	mustPing(t, atts[n-1].NetNS, atts[0].Addr.Addr())
}
