package firewall

import (
	"context"
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestPortKeys(t *testing.T) {
	for _, c := range []struct {
		ip    netip.Addr
		port  uint16
		proto string
		chain string
		set   string
	}{
		{netip.Addr{}, 8080, "tcp", "port_tcp_8080", mapPortsAny},
		{addr("0.0.0.0"), 53, "udp", "port_udp_53", mapPortsAny},
		{addr("127.0.0.1"), 8081, "tcp", "port_tcp_8081_127.0.0.1", mapPortsAddr},
		{addr("::ffff:192.0.2.1"), 65535, "udp", "port_udp_65535_192.0.2.1", mapPortsAddr},
	} {
		k, err := makeKey(c.ip, c.port, c.proto)
		if err != nil {
			t.Fatalf("%v %d %s: %v", c.ip, c.port, c.proto, err)
		}
		if k.chainName() != c.chain || k.mapName() != c.set {
			t.Errorf("%v: chain %s in %s, want %s in %s", k, k.chainName(), k.mapName(), c.chain, c.set)
		}
		back, ok := keyFromElem(k.mapName(), k.elemKey())
		if !ok || back != k {
			t.Errorf("%v: element key decodes to %v, %v", k, back, ok)
		}
		if _, ok := keyFromElem(map[string]string{mapPortsAny: mapPortsAddr, mapPortsAddr: mapPortsAny}[c.set], k.elemKey()); ok {
			t.Errorf("%v: the key of %s decodes as one of the other map", k, c.set)
		}
	}
}

func TestInvalidPorts(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Port
		want string
	}{
		{"protocol", Port{HostPort: 80, Proto: "sctp", Backends: []Backend{be("10.0.0.2", 80)}}, "protocol"},
		{"empty protocol", Port{HostPort: 80, Backends: []Backend{be("10.0.0.2", 80)}}, "protocol"},
		{"host port 0", Port{Proto: "tcp", Backends: []Backend{be("10.0.0.2", 80)}}, "host port 0"},
		{"IPv6 host", Port{HostIP: addr("::1"), HostPort: 80, Proto: "tcp", Backends: []Backend{be("10.0.0.2", 80)}}, "not IPv4"},
		{"no backend", Port{HostPort: 80, Proto: "tcp"}, "no backend"},
		{"IPv6 backend", Port{HostPort: 80, Proto: "tcp", Backends: []Backend{be("fd00::2", 80)}}, "IPv4"},
		{"unspecified backend", Port{HostPort: 80, Proto: "tcp", Backends: []Backend{be("0.0.0.0", 80)}}, "IPv4"},
		{"invalid backend", Port{HostPort: 80, Proto: "tcp", Backends: []Backend{{Port: 80}}}, "IPv4"},
		{"backend port 0", Port{HostPort: 80, Proto: "tcp", Backends: []Backend{be("10.0.0.2", 0)}}, "port 0"},
	} {
		// Validation comes before any use of the kernel: a Firewall
		// that was never opened will do.
		err := (&Firewall{table: "berth"}).Publish(context.Background(), c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Publish(%v) = %v, want an error about %q", c.name, c.p, err, c.want)
		}
	}
	if err := (&Firewall{table: "berth"}).Unpublish(context.Background(), netip.Addr{}, 0, "tcp"); err == nil {
		t.Error("Unpublish of port 0 succeeded")
	}
}

func TestValidNetwork(t *testing.T) {
	ok := Network{Name: "front", Bridge: "br-front", Subnet: prefix("10.89.0.7/24")}
	got, err := validNetwork(ok)
	if err != nil || got.Subnet != prefix("10.89.0.0/24") {
		t.Errorf("validNetwork(%v) = %v, %v; want the subnet masked", ok, got, err)
	}
	for _, c := range []struct {
		name string
		n    Network
	}{
		{"empty name", Network{Bridge: "br0", Subnet: prefix("10.0.0.0/24")}},
		{"name with a space", Network{Name: "a b", Bridge: "br0", Subnet: prefix("10.0.0.0/24")}},
		{"name too long", Network{Name: strings.Repeat("a", 65), Bridge: "br0", Subnet: prefix("10.0.0.0/24")}},
		{"no bridge", Network{Name: "n", Subnet: prefix("10.0.0.0/24")}},
		{"bridge too long", Network{Name: "n", Bridge: "br0123456789abcd", Subnet: prefix("10.0.0.0/24")}},
		{"bridge with a slash", Network{Name: "n", Bridge: "br/0", Subnet: prefix("10.0.0.0/24")}},
		{"no subnet", Network{Name: "n", Bridge: "br0"}},
		{"IPv6 subnet", Network{Name: "n", Bridge: "br0", Subnet: prefix("fd00::/64")}},
		{"everything", Network{Name: "n", Bridge: "br0", Subnet: prefix("0.0.0.0/0")}},
	} {
		if _, err := validNetwork(c.n); err == nil {
			t.Errorf("%s: validNetwork(%+v) accepted it", c.name, c.n)
		}
	}
}

func TestNetworkChainNames(t *testing.T) {
	for _, name := range []string{"front", "a_out", "x.y-z", "9"} {
		for _, part := range netParts {
			n, p, ok := netOfChain(netChain(name, part))
			if !ok || n != name || p != part {
				t.Errorf("netOfChain(%q) = %q, %q, %v", netChain(name, part), n, p, ok)
			}
		}
	}
	for _, chain := range []string{"port_tcp_80", "net_", "net__out", "net_a_other", "prerouting"} {
		if n, p, ok := netOfChain(chain); ok {
			t.Errorf("netOfChain(%q) = %q, %q: not a network chain", chain, n, p)
		}
	}
}

// TestIntervals checks that the elements AddNetwork writes for subnets
// decode back to the subnets, in whatever order the kernel lists them.
func TestIntervals(t *testing.T) {
	subnets := []netip.Prefix{
		prefix("10.89.0.0/24"), prefix("10.89.1.0/24"), // adjacent
		prefix("172.16.0.0/12"), prefix("192.168.5.4/30"), prefix("203.0.113.9/32"),
		prefix("255.255.255.0/24"), // ends at the top: no end element
		prefix("0.0.0.0/8"),
	}
	var es []nftables.SetElement
	for i, p := range subnets {
		for _, e := range subnetElems(p, netChain(string(rune('a'+i)), "nat")) {
			if e.VerdictData != nil {
				e.Val = verdictAttrs(e.VerdictData.Kind, e.VerdictData.Chain)
			}
			es = append(es, e)
		}
	}
	rand.New(rand.NewSource(1)).Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	ivs := intervals(es)
	if len(ivs) != len(subnets) {
		t.Fatalf("%d intervals, want %d: %+v", len(ivs), len(subnets), ivs)
	}
	got := map[string]netip.Prefix{}
	for _, iv := range ivs {
		p, ok := iv.prefix()
		if !ok || iv.kind != expr.VerdictJump {
			t.Errorf("interval %+v is not a prefix with a jump", iv)
		}
		got[iv.chain] = p
	}
	for i, p := range subnets {
		if g := got[netChain(string(rune('a'+i)), "nat")]; g != p.Masked() {
			t.Errorf("subnet %v decodes as %v", p, g)
		}
	}
	if _, ok := (interval{first: addr("10.0.0.1"), last: addr("10.0.0.4")}).prefix(); ok {
		t.Error("10.0.0.1-10.0.0.4 decodes as a prefix")
	}
}

// verdictAttrs encodes a verdict as the kernel sends it in an element's
// data (what google/nftables hands back in SetElement.Val).
func verdictAttrs(kind expr.VerdictKind, chain string) []byte {
	attr := func(typ uint16, v []byte) []byte {
		b := binaryutil.NativeEndian.PutUint16(uint16(4 + len(v)))
		b = append(b, binaryutil.NativeEndian.PutUint16(typ)...)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	b := attr(unix.NFTA_VERDICT_CODE, binaryutil.BigEndian.PutUint32(uint32(int32(kind))))
	if chain != "" {
		b = append(b, attr(unix.NFTA_VERDICT_CHAIN, append([]byte(chain), 0))...)
	}
	return b
}

func TestVerdictOf(t *testing.T) {
	for _, c := range []struct {
		kind  expr.VerdictKind
		chain string
	}{
		{expr.VerdictGoto, "port_tcp_8080"},
		{expr.VerdictJump, "net_front_out"},
		{expr.VerdictAccept, ""},
		{expr.VerdictDrop, ""},
	} {
		kind, chain, ok := verdictOf(verdictAttrs(c.kind, c.chain))
		if !ok || kind != c.kind || chain != c.chain {
			t.Errorf("verdictOf(%d %q) = %d %q %v", c.kind, c.chain, kind, chain, ok)
		}
	}
	for _, b := range [][]byte{nil, {1, 0}, {3, 0, 1, 0}, {200, 0, 1, 0, 0, 0, 0, 0}} {
		if _, _, ok := verdictOf(b); ok {
			t.Errorf("verdictOf(%v) decoded", b)
		}
	}
}

func TestDNATRulesDecode(t *testing.T) {
	for _, bs := range [][]Backend{
		{be("10.0.0.2", 80)},
		{be("10.0.0.2", 80), be("10.0.0.3", 8080)},
		{be("10.0.0.2", 53), be("10.0.0.3", 53), be("10.0.0.4", 53), be("10.0.0.2", 54)},
	} {
		rules := dnatRules(unix.IPPROTO_UDP, bs)
		if len(rules) != len(bs) {
			t.Fatalf("%d rules for %d backends", len(rules), len(bs))
		}
		for i, r := range rules {
			b, ok := backendOf(r)
			if !ok || b != bs[i] {
				t.Errorf("rule %d of %v: backend %v, %v", i, bs, b, ok)
			}
			if i < len(bs)-1 {
				ng, ok := r[2].(*expr.Numgen)
				if !ok || ng.Modulus != uint32(len(bs)-i) || ng.Type != unix.NFT_NG_INCREMENTAL {
					t.Errorf("rule %d of %v: %s", i, bs, render(r))
				}
			}
		}
		if render(rules[0]) == render(dnatRules(unix.IPPROTO_TCP, bs)[0]) {
			t.Error("the protocol does not show in the rule")
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"9berth", "berth table", strings.Repeat("b", 65), "ber/th"} {
		if f, err := Open(ctx, name); err == nil {
			f.Close()
			t.Errorf("Open(%q) accepted the name", name)
		}
	}
	f, err := Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Table() != DefaultTable {
		t.Errorf("Table() = %q, want %q", f.Table(), DefaultTable)
	}
	must(t, f.Close())
	must(t, f.Close())
	if _, err := f.Published(ctx); err == nil {
		t.Error("Published on a closed Firewall succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Open(cancelled, ""); err == nil {
		t.Error("Open with a cancelled context succeeded")
	}
}

func TestSysctlNames(t *testing.T) {
	for _, name := range []string{"", "../../ip_forward", "a/b", "."} {
		if err := EnableRouteLocalnet(name); err == nil {
			t.Errorf("EnableRouteLocalnet(%q) accepted it", name)
		}
	}
}

// FuzzDecode feeds what the kernel (or an administrator through nft)
// can put in berth's maps and rules to the decoders: they never panic,
// and what they decode encodes back to the same.
func FuzzDecode(f *testing.F) {
	k, _ := makeKey(addr("192.0.2.1"), 8080, "tcp")
	f.Add(k.elemKey())
	k, _ = makeKey(netip.Addr{}, 53, "udp")
	f.Add(k.elemKey())
	f.Add(verdictAttrs(expr.VerdictGoto, "port_tcp_8080"))
	f.Add([]byte{10, 89, 0, 0, 10, 89, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, name := range []string{mapPortsAny, mapPortsAddr} {
			if k, ok := keyFromElem(name, b); ok {
				if back, ok := keyFromElem(name, k.elemKey()); !ok || back != k {
					t.Errorf("key %v does not round-trip", k)
				}
				_ = k.chainName()
			}
		}
		if kind, chain, ok := verdictOf(b); ok {
			if k2, c2, ok := verdictOf(verdictAttrs(kind, chain)); !ok || k2 != kind || (c2 != chain && !strings.ContainsRune(chain, 0)) {
				t.Errorf("verdict %d %q does not round-trip: %d %q", kind, chain, k2, c2)
			}
		}
		var es []nftables.SetElement
		for i := 0; i+5 <= len(b); i += 5 {
			es = append(es, nftables.SetElement{Key: b[i : i+4], IntervalEnd: b[i+4]&1 == 1, Val: b[i:]})
		}
		for _, iv := range intervals(es) {
			if p, ok := iv.prefix(); ok && (p.Addr() != iv.first || lastAddr(p) != iv.last) {
				t.Errorf("interval %v-%v decodes as %v", iv.first, iv.last, p)
			}
		}
		_, _ = backendOf([]expr.Any{&expr.Immediate{Data: b}, &expr.Immediate{Data: b}, &expr.NAT{}})
		_ = ifnameFromKey(b)
	})
}
