package netdev

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// lanLab is a LAN (a bridge in a "switch" namespace) with two simulated
// hosts on it, each linked by a veth whose host end is its eth0.
type lanLab struct {
	dir    string
	sw     string
	hosts  [2]string
	h      [2]*Host
	lan    Bridge
	uplink [2]Attachment
}

func newLANLab(t *testing.T) *lanLab {
	t.Helper()
	l := &lanLab{dir: nsDir(t)}
	l.sw = newNS(t, l.dir, "switch")
	sw := openHost(t, l.sw)
	// The LAN's router is the switch's bridge address.
	l.lan = Bridge{Name: "lan0", Gateway: pfx("192.168.77.1/24"), Owner: "test.lan"}
	if err := sw.EnsureBridge(ctx(t), l.lan); err != nil {
		t.Fatal(err)
	}
	for i := range l.hosts {
		l.hosts[i] = newNS(t, l.dir, fmt.Sprintf("lanhost%d", i))
		l.h[i] = openHost(t, l.hosts[i])
		// The host's NIC: a veth from the switch, eth0 in the host.
		l.uplink[i] = Attachment{
			NetNS:  l.hosts[i],
			Bridge: l.lan.Name,
			HostIf: fmt.Sprintf("port%d", i),
			Addr:   netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 77, byte(2 + i)}), 24),
		}
		if err := sw.AttachVeth(ctx(t), l.uplink[i]); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// container makes a container namespace on host i with a macvlan on the
// host's eth0.
func (l *lanLab) container(t *testing.T, host int, name, mode string, last byte) Macvlan {
	t.Helper()
	m := Macvlan{
		NetNS:   newNS(t, l.dir, name),
		Parent:  "eth0",
		Mode:    mode,
		Addr:    netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 77, last}), 24),
		Gateway: ip("192.168.77.1"),
	}
	if err := l.h[host].AttachMacvlan(ctx(t), m); err != nil {
		t.Fatalf("AttachMacvlan %s: %v", name, err)
	}
	return m
}

func TestMacvlanAcrossHosts(t *testing.T) {
	requireRoot(t)
	l := newLANLab(t)
	a := l.container(t, 0, "mva", "bridge", 11)
	b := l.container(t, 1, "mvb", "bridge", 12)
	a2 := l.container(t, 0, "mva2", "", 13) // default mode: bridge

	// Containers on two hosts reach each other and the LAN's router.
	mustPing(t, a.NetNS, b.Addr.Addr())
	mustPing(t, b.NetNS, a.Addr.Addr())
	mustPing(t, a.NetNS, ip("192.168.77.1"))
	// Bridge mode: two containers on one parent reach each other.
	mustPing(t, a.NetNS, a2.Addr.Addr())

	for _, m := range []Macvlan{a, b, a2} {
		host := l.h[0]
		if m.NetNS == b.NetNS {
			host = l.h[1]
		}
		s, err := host.ReadMacvlan(ctx(t), m)
		if err != nil {
			t.Fatal(err)
		}
		if d := s.Drift(m); len(d) > 0 {
			t.Errorf("%s drifted: %q", m.NetNS, d)
		}
		if s.Parent != "eth0" || s.Mode != "bridge" || s.IfKind != "macvlan" || !s.Up {
			t.Errorf("read %s: %+v", m.NetNS, s)
		}
		if want := MACFromAddr(m.Addr.Addr()); !bytes.Equal(s.MAC, want) {
			t.Errorf("MAC = %s, want %s", s.MAC, want)
		}
	}
	// The switch learnt the containers' own MACs on the hosts' ports.
	fdb := in(t, l.sw, "bridge", "fdb", "show", "br", "lan0")
	for _, m := range []Macvlan{a, b} {
		if !strings.Contains(fdb, MACFromAddr(m.Addr.Addr()).String()) {
			t.Errorf("the LAN switch does not know %s:\n%s", MACFromAddr(m.Addr.Addr()), fdb)
		}
	}
}

func TestMacvlanPrivateMode(t *testing.T) {
	requireRoot(t)
	l := newLANLab(t)
	p1 := l.container(t, 0, "priv1", "private", 21)
	p2 := l.container(t, 0, "priv2", "private", 22)
	far := l.container(t, 1, "far", "bridge", 23)
	// Private macvlans on one parent do not reach each other, but do
	// reach the rest of the LAN.
	mustPing(t, p1.NetNS, far.Addr.Addr())
	mustNotPing(t, p1.NetNS, p2.Addr.Addr())

	// Switching the mode replaces the interface.
	p2.Mode = "bridge"
	p1.Mode = "bridge"
	for _, m := range []Macvlan{p1, p2} {
		if err := l.h[0].AttachMacvlan(ctx(t), m); err != nil {
			t.Fatal(err)
		}
		s, err := l.h[0].ReadMacvlan(ctx(t), m)
		if err != nil || s.Mode != "bridge" || len(s.Drift(m)) > 0 {
			t.Errorf("after mode change: %+v %v, drift %q", s, err, s.Drift(m))
		}
	}
	mustPing(t, p1.NetNS, p2.Addr.Addr())
}

func TestMacvlanDrift(t *testing.T) {
	requireRoot(t)
	l := newLANLab(t)
	m := l.container(t, 0, "mvd", "bridge", 31)
	peer := l.container(t, 1, "mvdpeer", "bridge", 32)
	h := l.h[0]
	read := func() MacvlanStatus {
		t.Helper()
		s, err := h.ReadMacvlan(ctx(t), m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name   string
		break_ func()
		check  func(MacvlanStatus) bool
	}{
		{
			name: "address changed",
			break_: func() {
				in(t, m.NetNS, "ip", "addr", "flush", "dev", "eth0")
				in(t, m.NetNS, "ip", "addr", "add", "192.168.77.99/24", "dev", "eth0")
			},
			check: func(s MacvlanStatus) bool {
				return slices.Equal(s.Addrs, []netip.Prefix{pfx("192.168.77.99/24")})
			},
		},
		{
			name:   "deleted",
			break_: func() { in(t, m.NetNS, "ip", "link", "del", "eth0") },
			check:  func(s MacvlanStatus) bool { return !s.IfExists },
		},
		{
			name:   "down",
			break_: func() { in(t, m.NetNS, "ip", "link", "set", "eth0", "down") },
			check:  func(s MacvlanStatus) bool { return !s.Up },
		},
		{
			name:   "default route removed",
			break_: func() { in(t, m.NetNS, "ip", "route", "del", "default") },
			check:  func(s MacvlanStatus) bool { return !s.Gateway.IsValid() },
		},
		{
			name: "replaced by a macvlan in vepa mode",
			break_: func() {
				in(t, m.NetNS, "ip", "link", "del", "eth0")
				if err := h.AttachMacvlan(ctx(t), Macvlan{NetNS: m.NetNS, Parent: "eth0", Mode: "vepa", Addr: m.Addr}); err != nil {
					t.Fatal(err)
				}
			},
			check: func(s MacvlanStatus) bool { return s.Mode == "vepa" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.break_()
			s := read()
			if !tt.check(s) || len(s.Drift(m)) == 0 {
				t.Errorf("read after the change does not show it: %+v, drift %q", s, s.Drift(m))
			}
			if err := h.AttachMacvlan(ctx(t), m); err != nil {
				t.Fatal(err)
			}
			if d := read().Drift(m); len(d) > 0 {
				t.Errorf("after repair, drift: %q", d)
			}
			mustPing(t, m.NetNS, peer.Addr.Addr())
		})
	}

	// Detach removes it, and leaves the namespace with lo alone.
	if err := h.DetachMacvlan(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	if err := h.DetachMacvlan(ctx(t), m); err != nil {
		t.Errorf("second DetachMacvlan: %v", err)
	}
	if s := read(); s.IfExists {
		t.Errorf("after detach: %+v", s)
	}
	if out := in(t, m.NetNS, "ip", "-o", "link"); strings.Count(out, "\n") != 1 {
		t.Errorf("links after detach:\n%s", out)
	}
	// The host is as it was: only eth0 and lo.
	if out := in(t, l.hosts[0], "ip", "-o", "link"); strings.Count(out, "\n") != 2 {
		t.Errorf("host links after detach:\n%s", out)
	}
}

func TestMacvlanPassthru(t *testing.T) {
	requireRoot(t)
	l := newLANLab(t)
	m := l.container(t, 0, "pt", "passthru", 41)
	s, err := l.h[0].ReadMacvlan(ctx(t), m)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != "passthru" || len(s.Drift(m)) > 0 {
		t.Errorf("read: %+v, drift %q", s, s.Drift(m))
	}
	// The parent keeps its own MAC: passthru takes it, berth does not
	// change it.
	parent := in(t, l.hosts[0], "ip", "-o", "link", "show", "eth0")
	if !strings.Contains(parent, s.MAC.String()) {
		t.Errorf("passthru MAC %s is not the parent's:\n%s", s.MAC, parent)
	}
	if err := l.h[0].AttachMacvlan(ctx(t), m); err != nil {
		t.Errorf("second AttachMacvlan: %v", err)
	}
}
