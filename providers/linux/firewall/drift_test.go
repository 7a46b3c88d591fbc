package firewall

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// handle returns the handle of the rule of chain whose text contains
// match, from `nft -a list chain`.
func (l *lab) handle(chain, match string) string {
	l.t.Helper()
	out := l.nft("-a", "list", "chain", "ip", l.fw.Table(), chain)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, match) {
			if m := regexp.MustCompile(`# handle (\d+)`).FindStringSubmatch(line); m != nil {
				return m[1]
			}
		}
	}
	l.t.Fatalf("no rule with %q in chain %s:\n%s", match, chain, out)
	return ""
}

func TestFlushConntrackForgetsStaleUDP(t *testing.T) {
	l, _, _ := frontLab(t)
	must(t, l.fw.AddNetwork(l.ctx, Network{Name: "front", Bridge: "br0", Subnet: prefix("10.89.0.0/24")}))
	// An unrelated flow of the host to port 5353 of another machine:
	// its conntrack entry must survive.
	l.udpEcho(l.client, "client", 5353)
	wantUDP(t, l.host, "host to the client", clientIP+":5353", "client:ping")

	// A flow that starts before the port is published keeps its
	// untranslated conntrack entry, and with it no answer, until the
	// entry goes.
	early := dialUDP(t, l.client, hostIP+":5353")
	if got, err := early.ask("a"); err == nil {
		t.Fatalf("unpublished port answered %q", got)
	}
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 5353, Proto: "udp", Backends: []Backend{be("10.89.0.11", 53)}}))
	if got, err := early.ask("b"); err == nil {
		t.Fatalf("control: the flow's stale entry did not hold (got %q): the lab does not show the problem", got)
	}
	must(t, l.fw.FlushConntrack(l.ctx, "udp", 5353))
	if got, err := early.ask("c"); err != nil || got != "b1:c" {
		t.Fatalf("after FlushConntrack: %q, %v; want b1:c", got, err)
	}

	// Moving the port to another backend: the flow stays with the old
	// one until its entry goes.
	must(t, l.fw.Publish(l.ctx, Port{HostPort: 5353, Proto: "udp", Backends: []Backend{be("10.89.0.12", 53)}}))
	if got, err := early.ask("d"); err != nil || got != "b1:d" {
		t.Fatalf("control: after moving the port the flow should still reach b1: %q, %v", got, err)
	}
	must(t, l.fw.FlushConntrack(l.ctx, "udp", 5353))
	if got, err := early.ask("e"); err != nil || got != "b2:e" {
		t.Fatalf("after FlushConntrack: %q, %v; want b2:e", got, err)
	}

	var flows []*netlink.ConntrackFlow
	mustInNS(t, l.host, func() error {
		var err error
		flows, err = netlink.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
		return err
	})
	found := false
	for _, f := range flows {
		if f.Forward.Protocol == 17 && f.Forward.DstIP.String() == clientIP && f.Forward.DstPort == 5353 {
			found = true
		}
	}
	if !found {
		t.Errorf("FlushConntrack removed the host's own flow to %s:5353:\n%v", clientIP, flows)
	}
	if err := l.fw.FlushConntrack(l.ctx, "icmp", 1); err == nil {
		t.Error("FlushConntrack accepted protocol icmp")
	}
}

func TestDriftIsSeenAndRepaired(t *testing.T) {
	l, _, _ := frontLab(t)
	front := Network{Name: "front", Bridge: "br0", Subnet: prefix("10.89.0.0/24")}
	must(t, l.fw.AddNetwork(l.ctx, front))
	web := Port{HostPort: 8080, Proto: "tcp", Backends: []Backend{be("10.89.0.11", 80)}}
	dns := Port{HostPort: 5353, Proto: "udp", Backends: []Backend{be("10.89.0.11", 53), be("10.89.0.12", 53)}}
	must(t, l.fw.Publish(l.ctx, web))
	must(t, l.fw.Publish(l.ctx, dns))
	wantPorts := func(step string, want ...Port) {
		t.Helper()
		got, err := l.fw.Published(l.ctx)
		must(t, err)
		if fmt.Sprint(got) != fmt.Sprint(sortedPorts(want)) {
			t.Errorf("%s: Published\n got %v\nwant %v", step, got, sortedPorts(want))
		}
	}
	wantCheck := func(step string, problems bool) {
		t.Helper()
		got, err := l.fw.Check(l.ctx)
		must(t, err)
		if (len(got) > 0) != problems {
			t.Errorf("%s: Check = %q", step, got)
		}
	}
	wantNet := func(step string, drift bool) {
		t.Helper()
		got, err := l.fw.Networks(l.ctx)
		must(t, err)
		if len(got) != 1 || got[0].Network != front || (len(got[0].Drift) > 0) != drift {
			t.Errorf("%s: Networks = %+v (want drift: %v)", step, got, drift)
		}
	}
	wantPorts("published", web, dns)
	wantCheck("published", false)
	wantNet("added", false)

	// A port's rule deleted by hand: the port has no backends.
	l.nft("delete", "rule", "ip", "berth", "port_tcp_8080", "handle", l.handle("port_tcp_8080", "dnat"))
	wantPorts("rule deleted", Port{HostPort: 8080, Proto: "tcp"}, dns)
	wantNoHTTP(t, l.client, "client, rule deleted", hostIP+":8080")
	must(t, l.fw.Publish(l.ctx, web))
	wantPorts("republished", web, dns)
	wantHTTP(t, l.client, "client, republished", hostIP+":8080", "b1")

	// A port's rule edited by hand: the port shows where it really goes.
	l.nft("replace", "rule", "ip", "berth", "port_tcp_8080", "handle", l.handle("port_tcp_8080", "dnat"),
		"meta", "l4proto", "tcp", "dnat", "to", "10.89.0.12:80")
	wantPorts("rule edited", Port{HostPort: 8080, Proto: "tcp", Backends: []Backend{be("10.89.0.12", 80)}}, dns)
	l.nft("replace", "rule", "ip", "berth", "port_tcp_8080", "handle", l.handle("port_tcp_8080", "dnat"),
		"meta", "l4proto", "tcp", "counter", "dnat", "to", "10.89.0.11:80")
	wantPorts("rule edited beyond recognition", Port{HostPort: 8080, Proto: "tcp"}, dns)
	must(t, l.fw.Publish(l.ctx, web))
	wantPorts("republished", web, dns)

	// A backend of a replicated port removed by hand.
	l.nft("delete", "rule", "ip", "berth", "port_udp_5353", "handle", l.handle("port_udp_5353", "10.89.0.12"))
	wantPorts("backend deleted", web, Port{HostPort: 5353, Proto: "udp"})
	must(t, l.fw.Publish(l.ctx, dns))
	wantPorts("republished", web, dns)

	// An element added by hand: a port berth never published, which
	// Unpublish removes without touching the one whose chain it borrowed.
	l.nft("add", "element", "ip", "berth", "ports_any", "{ tcp . 9999 : goto port_tcp_8080 }")
	extra := Port{HostPort: 9999, Proto: "tcp", Backends: web.Backends}
	wantPorts("element added", web, dns, extra)
	wantHTTP(t, l.client, "client, element added", hostIP+":9999", "b1")
	must(t, l.fw.Unpublish(l.ctx, netip.Addr{}, 9999, "tcp"))
	wantPorts("unpublished", web, dns)
	wantHTTP(t, l.client, "client, after unpublishing the extra port", hostIP+":8080", "b1")

	// An element pointed elsewhere by hand: Publish puts it back.
	l.nft("delete", "element", "ip", "berth", "ports_any", "{ tcp . 8080 }")
	wantPorts("element deleted", dns)
	l.nft("add", "element", "ip", "berth", "ports_any", "{ tcp . 8080 : goto port_udp_5353 }")
	wantPorts("element re-pointed", Port{HostPort: 8080, Proto: "tcp"}, dns)
	must(t, l.fw.Publish(l.ctx, web))
	wantPorts("republished", web, dns)
	wantHTTP(t, l.client, "client, republished", hostIP+":8080", "b1")

	// The network's masquerade deleted, a bridge added to its map.
	l.nft("delete", "rule", "ip", "berth", "net_front_nat", "handle", l.handle("net_front_nat", "oifname != "))
	wantNet("masquerade deleted", true)
	must(t, l.fw.AddNetwork(l.ctx, front))
	wantNet("re-added", false)
	l.nft("add", "element", "ip", "berth", "fwd_out", `{ "eth9" : jump net_front_out }`)
	wantNet("element added", true)
	must(t, l.fw.AddNetwork(l.ctx, front))
	wantNet("re-added", false)
	if out := l.nft("list", "map", "ip", "berth", "fwd_out"); strings.Contains(out, "eth9") {
		t.Errorf("AddNetwork left the element added by hand:\n%s", out)
	}

	// The base: a dispatch rule deleted, a policy changed.
	l.nft("delete", "rule", "ip", "berth", "prerouting", "handle", l.handle("prerouting", "jump ports"))
	wantCheck("dispatch deleted", true)
	wantNoHTTP(t, l.client, "client, dispatch deleted", hostIP+":8080")
	must(t, l.fw.Ensure(l.ctx))
	wantCheck("ensured", false)
	wantHTTP(t, l.client, "client, ensured", hostIP+":8080", "b1")
	l.nft("add", "chain", "ip", "berth", "forward", "{ policy drop; }")
	wantCheck("policy changed", true)
	must(t, l.fw.Ensure(l.ctx))
	wantCheck("ensured", false)
	if out := l.nft("list", "chain", "ip", "berth", "forward"); !strings.Contains(out, "policy accept") {
		t.Errorf("Ensure left the policy:\n%s", out)
	}

	// Every rule flushed: the maps stay, Ensure and AddNetwork and
	// Publish bring the rest back.
	l.nft("flush", "table", "ip", "berth")
	wantCheck("flushed", true)
	wantNet("flushed", true)
	wantPorts("flushed", Port{HostPort: 8080, Proto: "tcp"}, Port{HostPort: 5353, Proto: "udp"})
	must(t, l.fw.Ensure(l.ctx))
	must(t, l.fw.AddNetwork(l.ctx, front))
	must(t, l.fw.Publish(l.ctx, web))
	must(t, l.fw.Publish(l.ctx, dns))
	wantCheck("restored", false)
	wantNet("restored", false)
	wantPorts("restored", web, dns)

	// The table deleted: nothing is published, and Publish brings the
	// base back by itself.
	l.nft("delete", "table", "ip", "berth")
	wantPorts("table deleted")
	if got, err := l.fw.Networks(l.ctx); err != nil || len(got) != 0 {
		t.Errorf("table deleted: Networks = %v, %v", got, err)
	}
	must(t, l.fw.Publish(l.ctx, web))
	wantCheck("published again", false)
	wantPorts("published again", web)
	must(t, l.fw.AddNetwork(l.ctx, front))
	wantHTTP(t, l.client, "client, published again", hostIP+":8080", "b1")
}
