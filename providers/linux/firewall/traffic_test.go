package firewall

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func addr(s string) netip.Addr      { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix  { return netip.MustParsePrefix(s) }
func be(a string, p uint16) Backend { return Backend{Addr: addr(a), Port: p} }

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantHTTP checks that a GET of addr from ns is answered by want.
func wantHTTP(t testing.TB, ns, who, addr, want string) {
	t.Helper()
	got, err := httpGet(ns, addr)
	if err != nil || got != want {
		t.Errorf("%s: GET %s = %q, %v; want %q", who, addr, got, err, want)
	}
}

// wantNoHTTP checks that a GET of addr from ns gets no answer at all.
func wantNoHTTP(t testing.TB, ns, who, addr string) {
	t.Helper()
	got, err := httpGet(ns, addr)
	if err == nil {
		t.Errorf("%s: GET %s = %q, want no connection", who, addr, got)
	} else if !isTimeoutOrRefused(err) {
		t.Errorf("%s: GET %s: %v, want a timeout or a refusal", who, addr, err)
	}
}

func wantUDP(t testing.TB, ns, who, addr, want string) {
	t.Helper()
	got, err := udpAsk(t, ns, addr, "ping")
	if err != nil || got != want {
		t.Errorf("%s: UDP %s = %q, %v; want %q", who, addr, got, err, want)
	}
}

// peerServer serves TCP on port in ns and answers every connection with
// the address it came from.
func peerServer(t testing.TB, ns string, port int) {
	t.Helper()
	var ln net.Listener
	mustInNS(t, ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).IP.String())
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// peerOf connects from ns to addr (a peerServer) and returns the address
// the server saw.
func peerOf(ns, addr string) (string, error) {
	var c net.Conn
	err := inNS(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, dialTimeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// frontLab is a lab with network front on br0 (10.89.0.0/24) holding
// containers b1 and b2.
func frontLab(t *testing.T) (l *lab, b1, b2 string) {
	l = newLab(t)
	l.bridge("br0", "10.89.0.1/24")
	b1 = l.container("b1", "br0", "10.89.0.11/24", "10.89.0.1")
	b2 = l.container("b2", "br0", "10.89.0.12/24", "10.89.0.1")
	return l, b1, b2
}

// attackRoute makes the client send packets for 127.0.0.1 to the host, as
// a machine on the host's LAN can (moby #41872): its own loopback is
// bypassed by a policy route.
func attackRoute(t *testing.T, client string) {
	run(t, "ip", "netns", "exec", client, "sh", "-c",
		"echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet")
	run(t, "ip", "-n", client, "rule", "add", "pref", "10", "to", "127.0.0.1/32", "lookup", "100")
	run(t, "ip", "-n", client, "rule", "del", "pref", "0")
	run(t, "ip", "-n", client, "rule", "add", "pref", "20", "lookup", "local")
	run(t, "ip", "-n", client, "route", "add", "127.0.0.1/32", "via", hostIP, "dev", "eth0", "table", "100")
}

func TestPublishedPortsCarryTraffic(t *testing.T) {
	// Bridged packets see the IPv4 hooks or not, depending on
	// br_netfilter (Docker's hosts have it): both must work.
	for _, nf := range []bool{false, true} {
		t.Run(fmt.Sprintf("br_netfilter=%v", nf), func(t *testing.T) { publishedPortsCarryTraffic(t, nf) })
	}
}

func publishedPortsCarryTraffic(t *testing.T, bridgeNF bool) {
	l, b1, b2 := frontLab(t)
	if !l.setBridgeNF(bridgeNF) {
		t.Skip("the kernel has no br_netfilter")
	}
	before := l.foreign()

	// Without berth's rules a LAN machine that routes the bridge subnet
	// through the host reaches a container directly: the lab allows the
	// attack that the forward chain must stop.
	run(t, "ip", "-n", l.client, "route", "add", "10.89.0.0/24", "via", hostIP)
	wantHTTP(t, l.client, "client, direct, no firewall", "10.89.0.11:80", "b1")

	must(t, l.fw.Ensure(l.ctx))
	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "front", Bridge: "br0", Subnet: prefix("10.89.0.0/24")}))
	ports := []Port{
		{HostPort: 8080, Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80)}},
		{HostPort: 5353, Proto: "udp", Backends: []Backend{be("10.89.0.11", 53)}},
		{HostIP: addr("127.0.0.1"), HostPort: 8081, Proto: "tcp", Backends: []Backend{be("10.89.0.12", 80)}},
		{HostIP: addr("127.0.0.1"), HostPort: 5354, Proto: "udp", Backends: []Backend{be("10.89.0.12", 53)}},
		// Two containers on one port number, on two host addresses.
		{HostIP: addr(hostIP), HostPort: 8082, Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80)}},
		{HostIP: addr(hostIP2), HostPort: 8082, Proto: "tcp", Backends: []Backend{be("10.89.0.12", 80)}},
		// An address wins over any address.
		{HostPort: 8083, Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80)}},
		{HostIP: addr(hostIP2), HostPort: 8083, Proto: "tcp", Backends: []Backend{be("10.89.0.12", 80)}},
	}
	for _, p := range ports {
		must(t, l.fw.Publish(l.ctx, p))
	}
	got, err := l.fw.Published(l.ctx)
	must(t, err)
	if want := sortedPorts(ports); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Published:\n got %v\nwant %v", got, want)
	}

	// From another machine, from the host (loopback, its own address,
	// the bridge's address), and from containers through the host's
	// address (hairpin, the backend itself included).
	for _, c := range []struct{ ns, who, addr string }{
		{l.client, "client", hostIP + ":8080"},
		{l.client, "client", hostIP2 + ":8080"},
		{l.host, "host", "127.0.0.1:8080"},
		{l.host, "host", hostIP + ":8080"},
		{l.host, "host", "10.89.0.1:8080"},
		{b2, "b2", hostIP + ":8080"},
		{b1, "b1", hostIP + ":8080"},
		{b2, "b2", "10.89.0.1:8080"},
	} {
		wantHTTP(t, c.ns, c.who, c.addr, "b1")
	}
	wantUDP(t, l.client, "client", hostIP+":5353", "b1:ping")
	wantUDP(t, l.host, "host", "127.0.0.1:5353", "b1:ping")
	wantUDP(t, l.host, "host", hostIP+":5353", "b1:ping")
	wantUDP(t, b2, "b2", hostIP+":5353", "b1:ping")

	// Bound to 127.0.0.1: the host only.
	wantHTTP(t, l.host, "host", "127.0.0.1:8081", "b2")
	wantUDP(t, l.host, "host", "127.0.0.1:5354", "b2:ping")
	wantNoHTTP(t, l.client, "client", hostIP+":8081")
	wantNoHTTP(t, l.host, "host", hostIP+":8081")
	wantNoHTTP(t, b1, "b1", "10.89.0.1:8081")
	wantNoHTTP(t, b1, "b1 to its gateway's loopback", "127.0.0.1:8081")
	if got, err := udpAsk(t, l.client, hostIP+":5354", "ping"); err == nil {
		t.Errorf("client: UDP %s:5354 = %q, want no answer", hostIP, got)
	}

	// Per address.
	wantHTTP(t, l.client, "client", hostIP+":8082", "b1")
	wantHTTP(t, l.client, "client", hostIP2+":8082", "b2")
	wantHTTP(t, l.client, "client", hostIP+":8083", "b1")
	wantHTTP(t, l.client, "client", hostIP2+":8083", "b2")

	// A LAN machine routing the bridge subnet through the host no longer
	// reaches the container directly (moby #45610), and a packet it
	// crafts for 127.0.0.1 (moby #41872) is not translated to a
	// container. The control first: a naive DNAT in another table is
	// reachable through the crafted route.
	wantNoHTTP(t, l.client, "client, direct", "10.89.0.11:80")
	attackRoute(t, l.client)
	l.nft("-f", "-", `table ip naive {
	chain prerouting { type nat hook prerouting priority -150; policy accept;
		ip daddr 127.0.0.1 tcp dport 8081 dnat to 10.89.0.12:80
	}
}
`)
	wantHTTP(t, l.client, "client to 127.0.0.1, naive DNAT", "127.0.0.1:8081", "b2")
	l.nft("delete", "table", "ip", "naive")
	wantNoHTTP(t, l.client, "client to 127.0.0.1", "127.0.0.1:8081")

	// Containers go out masqueraded.
	peerServer(t, l.client, 7000)
	if got, err := peerOf(b1, clientIP+":7000"); err != nil || got != hostIP {
		t.Errorf("b1 to the client: seen from %q, %v; want %s (masqueraded)", got, err, hostIP)
	}

	// Unpublished is gone, twice is fine.
	must(t, l.fw.Unpublish(l.ctx, netip.Addr{}, 8080, "tcp"))
	must(t, l.fw.Unpublish(l.ctx, netip.Addr{}, 8080, "tcp"))
	wantNoHTTP(t, l.client, "client, unpublished", hostIP+":8080")
	wantHTTP(t, l.client, "client, other port", hostIP+":8082", "b1")

	if after := l.foreign(); after != before {
		t.Errorf("other tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func sortedPorts(ps []Port) []Port {
	out := append([]Port(nil), ps...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			a, b := out[i], out[j]
			less := b.Proto < a.Proto || (b.Proto == a.Proto && (b.HostPort < a.HostPort || (b.HostPort == a.HostPort && b.HostIP.Less(a.HostIP))))
			if less {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestReplicasShareOnePort(t *testing.T) {
	l, _, _ := frontLab(t)
	l.container("b3", "br0", "10.89.0.13/24", "10.89.0.1")
	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "front", Bridge: "br0", Subnet: prefix("10.89.0.0/24")}))
	three := []Backend{be("10.89.0.11", 80), be("10.89.0.12", 80), be("10.89.0.13", 80)}
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 8080, Proto: "tcp", Backends: three}))

	count := func(ns, addr string) map[string]int {
		t.Helper()
		n := map[string]int{}
		for i := 0; i < 30; i++ {
			got, err := httpGet(ns, addr)
			if err != nil {
				t.Fatalf("connection %d to %s: %v", i, addr, err)
			}
			n[got]++
		}
		return n
	}
	n := count(l.client, hostIP+":8080")
	for _, b := range []string{"b1", "b2", "b3"} {
		if n[b] == 0 {
			t.Errorf("from the client, %s answered none of 30 connections: %v", b, n)
		}
	}
	n = count(l.host, "127.0.0.1:8080")
	for _, b := range []string{"b1", "b2", "b3"} {
		if n[b] == 0 {
			t.Errorf("from the host, %s answered none of 30 connections: %v", b, n)
		}
	}

	// b3 leaves the rotation.
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 8080, Proto: "tcp", Backends: three[:2]}))
	n = count(l.client, hostIP+":8080")
	if n["b3"] != 0 || n["b1"] == 0 || n["b2"] == 0 {
		t.Errorf("after removing b3: %v, want b1 and b2 only", n)
	}
	got, err := l.fw.Published(l.ctx)
	must(t, err)
	if want := []Port{{HostPort: 8080, Proto: "tcp", Backends: three[:2]}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Published = %v, want %v", got, want)
	}

	// Back to one backend: one plain DNAT rule.
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 8080, Proto: "tcp", Backends: three[2:]}))
	n = count(l.client, hostIP+":8080")
	if n["b3"] != 30 {
		t.Errorf("one backend b3: %v", n)
	}
	if out := l.nft("list", "chain", "ip", "berth", "port_tcp_8080"); strings.Count(out, "dnat") != 1 || strings.Contains(out, "numgen") {
		t.Errorf("going back to one backend:\n%s", out)
	}
}

func TestNetworksAreIsolated(t *testing.T) {
	l := newLab(t)
	l.bridge("br0", "10.89.0.1/24")
	l.bridge("br1", "10.89.1.1/24")
	l.bridge("br2", "10.89.2.1/24")
	a := l.container("a", "br0", "10.89.0.11/24", "10.89.0.1")
	b := l.container("b", "br1", "10.89.1.11/24", "10.89.1.1")
	in := l.container("i", "br2", "10.89.2.11/24", "10.89.2.1")
	peerServer(t, l.client, 7000)
	peerServer(t, l.host, 7001)
	run(t, "ip", "-n", l.client, "route", "add", "10.89.0.0/16", "via", hostIP)

	// Control: without berth's rules the host routes between its bridges
	// and to the LAN.
	wantHTTP(t, a, "a to b, no firewall", "10.89.1.11:80", "b")
	wantHTTP(t, in, "i to a, no firewall", "10.89.0.11:80", "a")
	wantHTTP(t, a, "a to i, no firewall", "10.89.2.11:80", "i")
	if got, err := peerOf(in, clientIP+":7000"); err != nil || got != "10.89.2.11" {
		t.Fatalf("control: i to the client = %q, %v", got, err)
	}

	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "front", Bridge: "br0", Subnet: prefix("10.89.0.0/24")}))
	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "back", Bridge: "br1", Subnet: prefix("10.89.1.0/24")}))
	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "private", Bridge: "br2", Subnet: prefix("10.89.2.0/24"), Internal: true}))
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 8081, Proto: "tcp", Backends: []Backend{be("10.89.1.11", 80)}}))

	wantNoHTTP(t, a, "a to b", "10.89.1.11:80")
	wantNoHTTP(t, b, "b to a", "10.89.0.11:80")
	// A published port is public: reachable from another network
	// through the host's address.
	wantHTTP(t, a, "a to b's published port", hostIP+":8081", "b")
	// Both regular networks go out, masqueraded.
	for _, c := range []struct{ ns, who string }{{a, "a"}, {b, "b"}} {
		if got, err := peerOf(c.ns, clientIP+":7000"); err != nil || got != hostIP {
			t.Errorf("%s to the client: seen from %q, %v; want %s", c.who, got, err, hostIP)
		}
	}

	// The internal network talks to nothing but itself and the host.
	if got, err := peerOf(in, clientIP+":7000"); err == nil {
		t.Errorf("i reached the client (seen from %s)", got)
	}
	wantNoHTTP(t, in, "i to a", "10.89.0.11:80")
	wantNoHTTP(t, a, "a to i", "10.89.2.11:80")
	wantNoHTTP(t, l.client, "client to i", "10.89.2.11:80")
	if got, err := peerOf(in, "10.89.2.1:7001"); err != nil || got != "10.89.2.11" {
		t.Errorf("i to the host: seen from %q, %v", got, err)
	}
	if out := l.nft("list", "chain", "ip", "berth", "net_private_nat"); strings.Contains(out, "masquerade") {
		t.Errorf("the internal network masquerades:\n%s", out)
	}
	if out := l.nft("list", "chain", "ip", "berth", "net_front_nat"); !strings.Contains(out, "masquerade") {
		t.Errorf("the front network does not masquerade:\n%s", out)
	}

	nets, err := l.fw.Networks(l.ctx)
	must(t, err)
	want := []NetworkState{
		{Network: Network{Name: "back", Bridge: "br1", Subnet: prefix("10.89.1.0/24")}},
		{Network: Network{Name: "front", Bridge: "br0", Subnet: prefix("10.89.0.0/24")}},
		{Network: Network{Name: "private", Bridge: "br2", Subnet: prefix("10.89.2.0/24"), Internal: true}},
	}
	if fmt.Sprint(nets) != fmt.Sprint(want) {
		t.Errorf("Networks:\n got %+v\nwant %+v", nets, want)
	}

	// Removing a network lifts its rules, and only its own.
	must(t, l.fw.RemoveNetwork(l.ctx, "private"))
	must(t, l.fw.RemoveNetwork(l.ctx, "private"))
	if got, err := peerOf(in, clientIP+":7000"); err != nil || got != "10.89.2.11" {
		t.Errorf("after RemoveNetwork: i to the client = %q, %v", got, err)
	}
	wantNoHTTP(t, a, "a to b, after removing another network", "10.89.1.11:80")
	nets, err = l.fw.Networks(l.ctx)
	must(t, err)
	if fmt.Sprint(nets) != fmt.Sprint(want[:2]) {
		t.Errorf("Networks after RemoveNetwork:\n got %+v\nwant %+v", nets, want[:2])
	}
}
