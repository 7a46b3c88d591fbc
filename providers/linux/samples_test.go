package linux

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

const netDevHeader = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
`

func TestSampleParseNetDev(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want map[string]ifCounters
		err  string
	}{
		{
			name: "container",
			in: netDevHeader +
				"    lo:     560       8    0    0    0     0          0         0      560       8    0    0    0     0       0          0\n" +
				"  eth0:  123456     321    0    0    0     0          0         4    65432     210    0    0    0     0       0          0\n",
			want: map[string]ifCounters{"lo": {560, 560}, "eth0": {123456, 65432}},
		},
		{
			name: "counters run into the name",
			in: netDevHeader +
				"enp0s31f6:18446744073709551615 99999999 0 0 0 0 0 0 9876543210987 1 0 0 0 0 0 0\n" +
				"br-berth0: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			want: map[string]ifCounters{"enp0s31f6": {18446744073709551615, 9876543210987}, "br-berth0": {}},
		},
		{
			name: "more columns of a later kernel",
			in:   netDevHeader + "  eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\n",
			want: map[string]ifCounters{"eth1": {1, 9}},
		},
		{name: "header only", in: netDevHeader, want: map[string]ifCounters{}},
		{name: "empty", in: "", want: map[string]ifCounters{}},
		{name: "no colon", in: netDevHeader + "  eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", err: "line 3: no interface name"},
		{name: "no name", in: netDevHeader + "  : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", err: "no interface name"},
		{name: "too few counters", in: netDevHeader + "  eth0: 1 2 3 4 5 6 7 8 9\n", err: "9 counters, want 16"},
		{name: "not a number", in: netDevHeader + "  eth0: 1 2 3 4 5 6 7 8 x 10 11 12 13 14 15 16\n", err: "invalid syntax"},
		{name: "negative", in: netDevHeader + "  eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", err: "invalid syntax"},
		{name: "overflow", in: netDevHeader + "  eth0: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", err: "out of range"},
		{name: "twice", in: netDevHeader + "  a: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n  a: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", err: "listed twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseNetDev(strings.NewReader(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// The parser reads the kernel's own file and finds the interfaces that
// netlink lists in the same namespace.
func TestSampleNetDevOfSelf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading the host's network counters is tested as root")
	}
	f, err := os.Open("/proc/self/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseNetDev(f)
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if _, ok := got[i.Name]; !ok {
			t.Errorf("interface %s missing from %v", i.Name, got)
		}
	}
	if len(got) != len(ifs) {
		t.Errorf("%d interfaces parsed, %d listed by netlink", len(got), len(ifs))
	}
	// The agent's own namespace counts as the host's: no traffic.
	self, err := netnsOf("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if rx, tx, err := netTraffic(os.Getpid(), self); err != nil || rx != 0 || tx != 0 {
		t.Errorf("traffic of the host's namespace: %d %d %v", rx, tx, err)
	}
}

// netTraffic counts what crosses a veth into a namespace of its own, and
// leaves lo out.
func TestSampleNetNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace and a veth pair needs root")
	}
	for _, tool := range []string{"unshare", "ip", "nsenter", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	self, err := netnsOf("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		// The namespace, and the veth pair with it, goes with its last
		// process.
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitFor(t, "the new network namespace", func() bool {
		ns, err := netnsOf(fmt.Sprintf("/proc/%d/ns/net", pid))
		return err == nil && ns != self
	})

	n := os.Getpid() % 50000
	host, peer := fmt.Sprintf("bsh%d", n), fmt.Sprintf("bsp%d", n)
	hostIP, peerIP := fmt.Sprintf("10.251.%d.%d", n/250, n%250/4*4+1), fmt.Sprintf("10.251.%d.%d", n/250, n%250/4*4+2)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	in := func(args ...string) {
		t.Helper()
		run(append([]string{"nsenter", "-t", fmt.Sprint(pid), "-n"}, args...)...)
	}
	run("ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", fmt.Sprint(pid))
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	run("ip", "addr", "add", hostIP+"/30", "dev", host)
	run("ip", "link", "set", host, "up")
	in("ip", "addr", "add", peerIP+"/30", "dev", peer)
	in("ip", "link", "set", peer, "up")
	in("ip", "link", "set", "lo", "up")

	// Traffic on lo does not count: 2 pings of 8000 bytes there add far
	// less than that (only what the kernel may send on the veth).
	rx0, tx0, err := netTraffic(pid, self)
	if err != nil {
		t.Fatal(err)
	}
	in("busybox", "ping", "-c", "2", "-s", "8000", "127.0.0.1")
	rx1, tx1, err := netTraffic(pid, self)
	if err != nil {
		t.Fatal(err)
	}
	if rx1-rx0 >= 8000 || tx1-tx0 >= 8000 {
		t.Errorf("traffic on lo was counted: %d received, %d sent", rx1-rx0, tx1-tx0)
	}
	rx0, tx0 = rx1, tx1
	// An unconnected socket: the ICMP errors that come back would fail
	// the writes of a connected one.
	conn, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: net.ParseIP(peerIP), Port: 9}
	payload := make([]byte, 1000)
	const sent = 20
	for range sent {
		if _, err := conn.WriteTo(payload, to); err != nil {
			t.Fatal(err)
		}
	}
	// The peer answers each datagram to a closed port with an ICMP error,
	// so it transmits too.
	var rx, tx uint64
	waitFor(t, "the datagrams to be counted", func() bool {
		rx, tx, err = netTraffic(pid, self)
		return err == nil && rx-rx0 >= sent*1000 && tx > tx0
	}, func() string { return fmt.Sprintf("%d/%d received, %d/%d sent, %v", rx0, rx, tx0, tx, err) })
	// A namespace seen as the host's is not counted.
	hostNS, err := netnsOf(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	if rx, tx, err := netTraffic(pid, hostNS); err != nil || rx != 0 || tx != 0 {
		t.Errorf("traffic of a namespace taken for the host's: %d %d %v", rx, tx, err)
	}
	// A process that is gone fails the read.
	cmd.Process.Kill()
	cmd.Wait()
	if _, _, err := netTraffic(pid, self); err == nil {
		t.Error("the traffic of a process that is gone was read")
	}
}

// Samples reports running containers with their cgroup figures, the
// host's network as no traffic, and stopped ones as not running.
func TestSamples(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	resTy := f.p.types[KindContainer].AttributeType("resources")
	for _, c := range []struct{ name, mode string }{{"sample-none", "none"}, {"sample-host", "host"}} {
		cfg := f.config(KindContainer, map[string]cty.Value{
			"image":        cty.StringVal(f.image),
			"network_mode": cty.StringVal(c.mode),
			"command":      strs("sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000"),
			"resources":    obj2(map[string]cty.Value{"memory": cty.StringVal("64M"), "pids_limit": cty.NumberIntVal(50)}, resTy),
		})
		null := cty.NullVal(f.p.types[KindContainer])
		plan := f.p.Plan(ctx, providers.PlanRequest{Kind: KindContainer, Prior: null, Config: cfg})
		if plan.Diagnostics.HasErrors() {
			t.Fatal(plan.Diagnostics.Err())
		}
		owner := providers.Owner{Address: "container." + c.name, Token: "samples-test-" + c.name}
		ap := f.p.Apply(ctx, providers.ApplyRequest{Kind: KindContainer, Owner: owner, Prior: null, Planned: plan.Planned, Config: cfg})
		if ap.Diagnostics.HasErrors() {
			t.Fatal(ap.Diagnostics.Err())
		}
	}
	h := f.p.hosts
	var got []Sample
	waitFor(t, "both containers running with CPU time", func() bool {
		var err error
		if got, err = h.Samples(); err != nil {
			t.Fatal(err)
		}
		return len(got) == 2 && got[0].Running && got[1].Running && got[0].CPUUsage > 0 && got[1].CPUUsage > 0
	})
	for i, addr := range []string{"container.sample-host", "container.sample-none"} {
		s := got[i]
		if s.Address != addr || s.ID == "" || !strings.Contains(s.Image, "busybox") {
			t.Errorf("sample %d: %+v", i, s)
		}
		if s.MemoryLimit != 64<<20 || s.MemoryUsage == 0 || s.Pids == 0 || s.Pids > 50 {
			t.Errorf("%s: memory %d of %d, %d pids", addr, s.MemoryUsage, s.MemoryLimit, s.Pids)
		}
		// One has only lo, the other the host's network: no traffic.
		if s.NetRx != 0 || s.NetTx != 0 {
			t.Errorf("%s: traffic %d/%d", addr, s.NetRx, s.NetTx)
		}
	}

	rec, err := h.Find("container.sample-none")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(ctx, rec, true); err != nil {
		t.Fatal(err)
	}
	got, err = h.Samples()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Address != "container.sample-none" || got[1].Running || got[1].CPUUsage != 0 || !got[0].Running {
		t.Errorf("after a stop: %+v", got)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, s := range state {
				msg += ": " + s()
			}
			t.Fatalf("timed out waiting for %s%s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
