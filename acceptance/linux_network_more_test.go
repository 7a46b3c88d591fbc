package acceptance

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
)

// More network tests on simulated hosts (see linux_network_test.go):
// replicas behind one published port, macvlan between two hosts of one
// LAN, and container:NAME network sharing.

// replicasConfig is the configuration of TestLinuxNetworkReplicas: three
// replicas of web on berth's default network, all publishing host port
// 8080, each answering HTTP with its own name.
func replicasConfig() string {
	return fmt.Sprintf(`
container "web" {
  count   = 3
  image   = %q
  command = ["/app", "tcp:80"]
  ports   = ["8080:80"]
%s}
`, netRef, quick)
}

// tally opens n new TCP connections, one GET each, from sim to url, and
// returns how many each replica answered (by the name its body starts
// with) and the errors of the connections that got no answer.
func tally(sim *testenv.SimHost, url string, n int) (map[string]int, []string) {
	got := map[string]int{}
	var errs []string
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := sim.HTTPGet(ctx, url)
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		name, _, _ := strings.Cut(body, " ")
		got[name]++
	}
	return got, errs
}

// requireAnswerers fails the test unless every one of n new connections
// to url from sim was answered, each by one of want, and each of want
// answered at least one.
func requireAnswerers(t *testing.T, what string, sim *testenv.SimHost, url string, n int, want ...string) {
	t.Helper()
	got, errs := tally(sim, url, n)
	if len(errs) > 0 {
		t.Errorf("%s: %d of %d connections to %s got no answer: %q (answers: %v)", what, len(errs), n, url, errs, got)
	}
	allowed := map[string]bool{}
	for _, w := range want {
		allowed[w] = true
		if got[w] == 0 {
			t.Errorf("%s: %s answered none of %d connections to %s (answers: %v)", what, w, n, url, got)
		}
	}
	for name, c := range got {
		if !allowed[name] {
			t.Errorf("%s: %q answered %d of %d connections to %s, want only %q (answers: %v)", what, name, c, n, url, want, got)
		}
	}
}

// TestLinuxNetworkReplicas publishes one host port from three replicas and
// checks that the kernel spreads new connections from another host over
// all of them, that a replica stopped with berth stop answers none while
// the two others go on answering every connection, that berth start puts
// it back into the rotation, and that destroy leaves the host as it was.
func TestLinuxNetworkReplicas(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "replicas")
	client := testenv.NewSimHost(t, lan, "client")
	h.loadNetImage()
	h.write(replicasConfig())
	h.apply()
	h.converged()
	for i := 0; i < 3; i++ {
		addr := fmt.Sprintf("container.web[%d]", i)
		if got := h.publishedPorts(addr); strings.Join(got, " ") != "0.0.0.0:8080->80/tcp" {
			t.Errorf("published_ports of %s: %q, want [0.0.0.0:8080->80/tcp]", addr, got)
		}
	}
	url := "http://" + h.sim.IP().String() + ":8080/"
	// Each replica serves once its process listens: wait until each one
	// answers on its own address before counting.
	for i := 0; i < 3; i++ {
		addr := fmt.Sprintf("container.web[%d]", i)
		waitGet(t, h.sim, "http://"+h.ipOf(addr).String()+"/", fmt.Sprintf("web-%d tcp=80 ", i))
	}
	waitGet(t, client, url, "web-")

	t.Run("every_replica_answers", func(t *testing.T) {
		requireAnswerers(t, "three replicas", client, url, 30, "web-0", "web-1", "web-2")
	})

	t.Run("a_stopped_replica_answers_none", func(t *testing.T) {
		h.mustBerth(0, nil, "stop", "container.web[1]")
		h.waitPs("container.web[1]", "stopped", func(r psRow) bool { return strings.HasPrefix(r.State, "stopped") })
		requireAnswerers(t, "web-1 stopped", client, url, 30, "web-0", "web-2")
	})

	t.Run("a_started_replica_answers_again", func(t *testing.T) {
		h.mustBerth(0, nil, "start", "container.web[1]")
		waitFor(t, "web-1 to answer on "+url+" again", func() (bool, string) {
			got, errs := tally(client, url, 6)
			return got["web-1"] > 0, fmt.Sprintf("answers %v, errors %q", got, errs)
		})
		requireAnswerers(t, "web-1 started again", client, url, 30, "web-0", "web-1", "web-2")
		h.converged()
	})

	h.destroyAndCompare()
}

// macvlanConfig is the configuration of one host of
// TestLinuxNetworkMacvlan: network lan on the host's eth0 with the LAN's
// subnet and a gateway no host uses, and containers (name → static
// address) on it serving HTTP with their names.
func macvlanConfig(lan *testenv.LAN, gateway netip.Addr, containers map[string]netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
network "lan" {
  driver  = "macvlan"
  parent  = "eth0"
  subnet  = %q
  gateway = %q
}
`, lan.Prefix.String(), gateway.String())
	names := make([]string, 0, len(containers))
	for n := range containers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, `
container %q {
  image   = %q
  command = ["/app", "tcp:80"]
  network {
    name         = network.lan
    ipv4_address = %q
  }
%s}
`, n, netRef, containers[n].String(), quick)
	}
	return b.String()
}

// lanAddr returns the nth address of the LAN's subnet.
func lanAddr(t *testing.T, lan *testenv.LAN, n int) netip.Addr {
	t.Helper()
	a := lan.Prefix.Masked().Addr()
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	if !lan.Prefix.Contains(a) {
		t.Fatalf("the LAN %s has no address number %d", lan.Prefix, n)
	}
	return a
}

// linkMAC returns the MAC address of link in `ip -o link show` output.
func linkMAC(t *testing.T, out string) string {
	t.Helper()
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "link/ether" {
			return f[i+1]
		}
	}
	t.Fatalf("no link/ether in %q", out)
	return ""
}

// TestLinuxNetworkMacvlan puts a container with a static LAN address on a
// macvlan network on each of two simulated hosts of one LAN, each with
// its own berth state, and checks that the containers have their own MAC
// and address on the LAN, reach each other directly (the peer is the
// other container's own address), and are reached from a third host and
// from the other simulated host; that a static address given twice on a
// host is refused at plan with the address named (two containers of a new
// configuration, a new container on the address of an applied one, two
// new containers on an existing network); and that destroy on both hosts
// leaves them as they were.
func TestLinuxNetworkMacvlan(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	a := newNetHost(t, lan, "macvlan-a")
	b := newNetHost(t, lan, "macvlan-b")
	client := testenv.NewSimHost(t, lan, "client")
	// The hosts have the LAN's first addresses; these are unused.
	gateway := lanAddr(t, lan, 254)
	ipA := lanAddr(t, lan, 101) // alpha on host a
	ipB := lanAddr(t, lan, 102) // beta on host b
	for _, ip := range []netip.Addr{gateway, ipA, ipB} {
		if !lan.Prefix.Contains(ip) || ip == a.sim.IP() || ip == b.sim.IP() || ip == client.IP() {
			t.Fatalf("%s is not a free address of the LAN %s", ip, lan.Prefix)
		}
	}
	a.loadNetImage()
	b.loadNetImage()
	cfgA := macvlanConfig(lan, gateway, map[string]netip.Addr{"alpha": ipA})
	cfgB := macvlanConfig(lan, gateway, map[string]netip.Addr{"beta": ipB})

	t.Run("duplicate_address_in_a_new_configuration", func(t *testing.T) {
		b.write(macvlanConfig(lan, gateway, map[string]netip.Addr{"beta": ipB, "beta2": ipB}))
		r := b.berth(nil, "plan", b.cfgDir)
		if r.code != 1 {
			t.Errorf("plan with two containers on %s exited %d, want 1\nstdout:\n%s\nstderr:\n%s", ipB, r.code, r.stdout, r.stderr)
		} else {
			requireContains(t, "the refused plan", r.stdout+r.stderr, "Error", ipB.String())
		}
		if d := testenv.SnapshotDiff(b.base, b.sim.Snapshot(t)); d != "" {
			t.Errorf("a refused plan changed host b:\n%s", d)
		}
		if rows := b.ps(); len(rows) != 0 {
			t.Errorf("a refused plan made containers: %v", rows)
		}
	})

	a.write(cfgA)
	a.apply()
	a.converged()
	b.write(cfgB)
	b.apply()
	b.converged()

	t.Run("own_mac_and_address", func(t *testing.T) {
		for _, c := range []struct {
			h    *netHost
			addr string
			ip   netip.Addr
		}{{a, "container.alpha", ipA}, {b, "container.beta", ipB}} {
			if got := c.h.ipOf(c.addr); got != c.ip {
				t.Errorf("ip_address of %s: %s, want the static %s", c.addr, got, c.ip)
			}
			want := netip.PrefixFrom(c.ip, lan.Prefix.Bits()).String()
			if out := c.h.exec(c.addr, "ip", "-o", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+want+" ") {
				t.Errorf("eth0 of %s lacks %s:\n%s", c.addr, want, out)
			}
			mac := linkMAC(t, c.h.exec(c.addr, "ip", "-o", "link", "show", "dev", "eth0"))
			parent := linkMAC(t, c.h.sim.Run(t, "ip", "-o", "link", "show", "dev", "eth0"))
			if mac == parent {
				t.Errorf("%s's eth0 has its host's MAC %s; a macvlan child has its own", c.addr, mac)
			}
		}
	})

	t.Run("containers_reach_each_other_over_the_lan", func(t *testing.T) {
		// No NAT in between: each sees the other's own address.
		want := fmt.Sprintf("beta tcp=80 peer=%s\n", ipA)
		if got := a.waitExec("container.alpha", "beta tcp=80 ", wgetCmd("http://"+ipB.String()+"/")...); got != want {
			t.Errorf("alpha (host a) GET beta (host b): %q, want %q", got, want)
		}
		want = fmt.Sprintf("alpha tcp=80 peer=%s\n", ipB)
		if got := b.waitExec("container.beta", "alpha tcp=80 ", wgetCmd("http://"+ipA.String()+"/")...); got != want {
			t.Errorf("beta (host b) GET alpha (host a): %q, want %q", got, want)
		}
	})

	t.Run("reached_from_other_hosts", func(t *testing.T) {
		for _, c := range []struct {
			from *testenv.SimHost
			ip   netip.Addr
			name string
		}{
			{client, ipA, "alpha"},
			{client, ipB, "beta"},
			// A macvlan child in bridge mode cannot talk with its own
			// parent: each simulated host asks the other's container.
			{b.sim, ipA, "alpha"},
			{a.sim, ipB, "beta"},
		} {
			want := fmt.Sprintf("%s tcp=80 peer=%s\n", c.name, c.from.IP())
			if got := waitGet(t, c.from, "http://"+c.ip.String()+"/", c.name+" tcp=80 "); got != want {
				t.Errorf("GET %s from %s: %q, want %q", c.ip, c.from.Name, got, want)
			}
		}
	})

	t.Run("duplicate_address_after_apply", func(t *testing.T) {
		before := a.sim.Snapshot(t)
		id := a.id("container.alpha")
		a.write(cfgA + fmt.Sprintf(`
container "twin" {
  image   = %q
  command = ["/app", "tcp:80"]
  network {
    name         = network.lan
    ipv4_address = %q
  }
%s}
`, netRef, ipA.String(), quick))
		r := a.berth(nil, "plan", a.cfgDir)
		if r.code != 1 {
			t.Errorf("plan with a second container on %s exited %d, want 1\nstdout:\n%s\nstderr:\n%s", ipA, r.code, r.stdout, r.stderr)
		} else {
			requireContains(t, "the refused plan", r.stdout+r.stderr, "Error", ipA.String())
		}
		if d := testenv.SnapshotDiff(before, a.sim.Snapshot(t)); d != "" {
			t.Errorf("a refused plan changed host a:\n%s", d)
		}
		if _, ok := a.ps()["container.twin"]; ok {
			t.Errorf("a refused plan made container.twin")
		}
		if got := a.id("container.alpha"); got != id {
			t.Errorf("a refused plan replaced container.alpha: %s -> %s", id, got)
		}
		a.write(cfgA)
		a.converged()
		waitGet(t, client, "http://"+ipA.String()+"/", "alpha tcp=80 ")
	})

	t.Run("two_new_containers_on_one_address", func(t *testing.T) {
		// Two containers added in one run, on a network that exists,
		// with one free address: the plan must refuse it, not leave
		// apply to create one and fail the other.
		before := a.sim.Snapshot(t)
		ipC := lanAddr(t, lan, 103)
		a.write(macvlanConfig(lan, gateway, map[string]netip.Addr{"alpha": ipA, "c1": ipC, "c2": ipC}))
		r := a.berth(nil, "plan", a.cfgDir)
		if r.code != 1 {
			t.Errorf("plan with two new containers on %s exited %d, want 1\nstdout:\n%s\nstderr:\n%s", ipC, r.code, r.stdout, r.stderr)
		} else {
			requireContains(t, "the refused plan", r.stdout+r.stderr, "Error", ipC.String())
		}
		if d := testenv.SnapshotDiff(before, a.sim.Snapshot(t)); d != "" {
			t.Errorf("a refused plan changed host a:\n%s", d)
		}
		a.write(cfgA)
		a.converged()
	})

	a.destroyAndCompare()
	b.destroyAndCompare()
}

// containerModeConfig is the configuration of TestLinuxNetworkContainerMode:
// app serves, with busybox httpd on port 80, a page "VERSION HOSTNAME";
// side joins app's network namespace.
func containerModeConfig(version string) string {
	return fmt.Sprintf(`
container "app" {
  image   = %[1]q
  command = %[2]s
%[4]s}

container "side" {
  image        = %[1]q
  command      = %[3]s
  network_mode = "container:${container.app.name}"
%[4]s}
`, netRef, hclList([]string{"sh", "-c", "echo " + version + " $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"}), sleepCommand, quick)
}

// netNS returns the network namespace (its /proc link, "net:[INODE]") of
// the init process of the container at address.
func (h *netHost) netNS(address string) string {
	h.t.Helper()
	pid := h.initPid(address)
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		h.t.Fatalf("the network namespace of %s (pid %d): %v", address, pid, err)
	}
	return ns
}

// TestLinuxNetworkContainerMode checks that a container with network_mode
// "container:NAME" is in the network namespace of the other container:
// the same namespace, app's page through 127.0.0.1, app's address on
// eth0; that replacing app replaces side too (the plan says so), after
// which side is in the new app's namespace and reaches the new page; and
// that destroy leaves the host as it was.
func TestLinuxNetworkContainerMode(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "container-mode")
	h.loadNetImage()

	// shares checks that side is in app's network namespace and reaches
	// its page (want) through 127.0.0.1.
	shares := func(t *testing.T, want string) {
		t.Helper()
		if ns, app := h.netNS("container.side"), h.netNS("container.app"); ns != app {
			t.Errorf("container.side is in network namespace %s, container.app in %s", ns, app)
		}
		if got := h.waitExec("container.side", want, wgetCmd("http://127.0.0.1/")...); got != want {
			t.Errorf("container.side GET http://127.0.0.1/: %q, want %q", got, want)
		}
		appIP := h.ipOf("container.app")
		if out := h.exec("container.side", "ip", "-o", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+appIP.String()+"/") {
			t.Errorf("container.side's eth0 lacks container.app's address %s:\n%s", appIP, out)
		}
	}

	h.write(containerModeConfig("v1"))
	h.apply()
	h.converged()
	shares(t, "v1 app\n")
	appID, sideID := h.id("container.app"), h.id("container.side")

	t.Run("replacing_the_target_rejoins", func(t *testing.T) {
		h.write(containerModeConfig("v2"))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.app must be replaced", "container.side must be replaced")
		h.apply()
		h.converged()
		if got := h.id("container.app"); got == appID {
			t.Errorf("container.app kept its ID %s: it was not replaced", got)
		}
		if got := h.id("container.side"); got == sideID {
			t.Errorf("container.side kept its ID %s: it did not re-join", got)
		}
		shares(t, "v2 app\n")
	})

	h.destroyAndCompare()
}

// waitRotation waits until replica answers some of 9 new connections to
// url (in), or none of them while every connection is answered (out).
func waitRotation(t *testing.T, client *testenv.SimHost, url, replica string, in bool) {
	t.Helper()
	what := replica + " out of the rotation"
	if in {
		what = replica + " back in the rotation"
	}
	waitFor(t, what, func() (bool, string) {
		got, errs := tally(client, url, 9)
		ok := got[replica] == 0 && len(errs) == 0
		if in {
			ok = got[replica] > 0
		}
		return ok, fmt.Sprintf("answers %v, errors %q", got, errs)
	})
}

// TestLinuxNetworkReplicaHealth checks that a replica that turns unhealthy
// or dies leaves the rotation of its published port by itself (its shim
// tells berth), and that a replica that turns healthy again comes back.
func TestLinuxNetworkReplicaHealth(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "health")
	client := testenv.NewSimHost(t, lan, "client")
	h.loadNetImage()
	h.write(fmt.Sprintf(`
container "web" {
  count   = 3
  image   = %q
  command = ["sh", "-c", "touch /ok && exec /app tcp:80"]
  ports   = ["8080:80"]
  restart = "no"
  healthcheck {
    command  = ["test", "-e", "/ok"]
    interval = "1s"
    retries  = 1
  }
%s}
`, netRef, quick))
	h.apply()
	url := "http://" + h.sim.IP().String() + ":8080/"
	for i := 0; i < 3; i++ {
		addr := fmt.Sprintf("container.web[%d]", i)
		h.waitPs(addr, "healthy", func(r psRow) bool { return r.Health == "healthy" })
	}
	requireAnswerers(t, "three healthy replicas", client, url, 30, "web-0", "web-1", "web-2")

	h.exec("container.web[1]", "rm", "/ok")
	h.waitPs("container.web[1]", "unhealthy", func(r psRow) bool { return r.Health == "unhealthy" })
	waitRotation(t, client, url, "web-1", false)
	requireAnswerers(t, "web-1 unhealthy", client, url, 30, "web-0", "web-2")

	h.exec("container.web[1]", "touch", "/ok")
	h.waitPs("container.web[1]", "healthy again", func(r psRow) bool { return r.Health == "healthy" })
	waitRotation(t, client, url, "web-1", true)
	requireAnswerers(t, "web-1 healthy again", client, url, 30, "web-0", "web-1", "web-2")

	// A replica that dies (restart "no") leaves the rotation too.
	rows := h.ps()
	pid := h.containerInit(h.fullID(rows["container.web[2]"].ID))
	if pid == 0 {
		t.Fatal("no process of container.web[2]")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitPs("container.web[2]", "exited", func(r psRow) bool { return strings.HasPrefix(r.State, "exited") })
	waitRotation(t, client, url, "web-2", false)
	requireAnswerers(t, "web-2 dead", client, url, 30, "web-0", "web-1")

	h.destroyAndCompare()
}

// TestLinuxNetworkPortInUse checks that a host port another process holds
// is refused at apply with the port and the process named, while the rest
// of the configuration is applied, and that the next apply publishes it
// once the port is free.
func TestLinuxNetworkPortInUse(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "inuse")
	client := testenv.NewSimHost(t, lan, "client")
	h.loadNetImage()
	l, err := h.sim.Listen("tcp", "0.0.0.0:8085")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h.write(fmt.Sprintf(`
container "taken" {
  image   = %q
  command = ["/app", "tcp:80"]
  ports   = ["8085:80"]
%s}

container "free" {
  image   = %q
  command = ["/app", "tcp:80"]
  ports   = ["8086:80"]
%s}
`, netRef, quick, netRef, quick))
	r := h.mustBerth(1, nil, "apply", "-auto-approve", h.cfgDir)
	out := r.stdout + r.stderr
	for _, want := range []string{"container.taken", "host port 0.0.0.0:8085/tcp is already bound by another process", fmt.Sprintf("pid %d", os.Getpid())} {
		if !strings.Contains(out, want) {
			t.Errorf("the apply does not say %q:\n%s", want, out)
		}
	}
	// Nothing else is disturbed: the other container is published.
	waitGet(t, client, "http://"+h.sim.IP().String()+":8086/", "free tcp=80 ")
	if rows := h.ps(); len(rows) != 1 || rows["container.free"].State != "running" {
		t.Errorf("after the refused port, berth ps shows %v; want container.free running alone", rows)
	}
	l.Close()
	h.apply()
	waitGet(t, client, "http://"+h.sim.IP().String()+":8085/", "taken tcp=80 ")
	h.converged()
	h.destroyAndCompare()
}
