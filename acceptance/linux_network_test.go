package acceptance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// The network tests run every berth command of a host inside a simulated
// host (testenv.SimHost): a network namespace of its own on a simulated
// LAN (192.0.2.0/24), with a client namespace on the same LAN. Bridges,
// veths, routes and berth's nftables table live in the simulated host's
// namespace, and each test compares the namespace's links, addresses,
// routes and ruleset after destroy with what they were before the first
// apply.

// netRef is the image of the network tests: busybox with /app, a small Go
// program (netAppSrc) that answers HTTP and UDP with the container's name.
const netRef = "example.test/net:1"

// netAppSrc is /app of netRef. `/app tcp:80 udp:53 ...` serves every
// TCP port given with HTTP ("NAME tcp=80 peer=ADDR") and echoes on every
// UDP port ("NAME udp=53 peer=ADDR got=MSG"), NAME being the hostname;
// `/app udp-send ADDR MSG` sends MSG to ADDR until an answer comes and
// prints it (busybox nc has no UDP).
const netAppSrc = `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func host(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func udpSend(addr, msg string) int {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, 65536)
	var last error
	for i := 0; i < 20; i++ {
		if _, err := c.Write([]byte(msg)); err != nil {
			last = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			os.Stdout.Write(buf[:n])
			return 0
		}
		last = err
	}
	fmt.Fprintln(os.Stderr, "no answer from", addr, last)
	return 1
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "udp-send" {
		os.Exit(udpSend(os.Args[2], os.Args[3]))
	}
	name, _ := os.Hostname()
	for _, a := range os.Args[1:] {
		proto, port, _ := strings.Cut(a, ":")
		switch proto {
		case "tcp":
			l, err := net.Listen("tcp", ":"+port)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s tcp=%s peer=%s\n", name, port, host(r.RemoteAddr))
			}))
		case "udp":
			c, err := net.ListenPacket("udp", ":"+port)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			go func() {
				buf := make([]byte, 65536)
				for {
					n, from, err := c.ReadFrom(buf)
					if err != nil {
						return
					}
					c.WriteTo([]byte(fmt.Sprintf("%s udp=%s peer=%s got=%s\n", name, port, host(from.String()), buf[:n])), from)
				}
			}()
		default:
			fmt.Fprintln(os.Stderr, "unknown argument", a)
			os.Exit(2)
		}
	}
	fmt.Println("listening on", strings.Join(os.Args[1:], " "))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
`

// netImage is busybox (with an empty /www) plus /app built from
// netAppSrc.
func netImage(t *testing.T) ggcr.Image {
	t.Helper()
	app := testenv.GoImage(t, netAppSrc, testenv.ImageConfig{})
	layers, err := app.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers of the app image: %d, %v", len(layers), err)
	}
	base := testenv.BusyboxImage(t, testenv.ImageConfig{Files: map[string]string{"www/.keep": ""}})
	img, err := mutate.Append(base, mutate.Addendum{Layer: layers[0], History: ggcr.History{Created: ggcr.Time{Time: testenv.Epoch()}, CreatedBy: "berth acceptance netapp"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// httpdCommand serves, with busybox httpd on port 80, a page holding the
// container's hostname.
var httpdCommand = hclList([]string{"sh", "-c", "hostname > /www/index.html && exec httpd -f -p 80 -h /www"})

// sleepCommand runs until it is stopped.
var sleepCommand = hclList([]string{"sleep", "3600"})

// netHost is a linux host whose berth runs inside a simulated host.
type netHost struct {
	*linuxHost
	sim *testenv.SimHost
	// base is the simulated host's network state before berth first
	// ran there.
	base string
}

// newNetHost makes a simulated host on lan and a linux host whose every
// berth command (the test's, and the cleanup's destroy) runs in its
// network namespace, with berth's shims and mounts in the test's mount
// namespace. At the end of the test, after the cleanup's destroy and leak
// checks, the namespace's network state must be what it was before.
func newNetHost(t *testing.T, lan *testenv.LAN, name string) *netHost {
	t.Helper()
	requireLinux(t)
	sim := testenv.NewSimHost(t, lan, name)
	h := &netHost{sim: sim, base: sim.Snapshot(t)}
	// Registered before newLinuxHost's teardown, so it runs after it.
	t.Cleanup(func() {
		if d := testenv.SnapshotDiff(h.base, sim.Snapshot(t)); d != "" {
			t.Errorf("leak: after the cleanup the network state of %s differs from before the first apply (-before +after):\n%s", sim.Name, d)
		}
	})
	h.linuxHost = newLinuxHost(t)
	h.bin.berth = sim.Wrap(t, h.bin.berth)
	return h
}

// loadNetImage loads netRef into the host's store.
func (h *netHost) loadNetImage() {
	h.t.Helper()
	archive := filepath.Join(h.t.TempDir(), "net.tar")
	testenv.SaveDocker(h.t, archive, netRef, netImage(h.t))
	h.mustBerth(0, nil, "image", "load", "-i", archive)
}

// destroyAndCompare destroys everything with berth destroy and fails the
// test unless the simulated host's network state is what it was before
// the first apply.
func (h *netHost) destroyAndCompare() {
	h.t.Helper()
	h.mustBerth(0, nil, "destroy", "-auto-approve", h.cfgDir)
	if rows := h.ps(); len(rows) != 0 {
		h.t.Errorf("berth ps after destroy lists %v", rows)
	}
	if d := testenv.SnapshotDiff(h.base, h.sim.Snapshot(h.t)); d != "" {
		h.t.Errorf("after berth destroy the network state of the host differs from before the first apply (-before +after):\n%s", d)
	}
}

// values returns the values of address in `berth show -json`.
func (h *netHost) values(address string) map[string]any {
	h.t.Helper()
	r := h.mustBerth(0, nil, "show", "-json")
	var s struct {
		Resources []struct {
			Address string         `json:"address"`
			Values  map[string]any `json:"values"`
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		h.t.Fatalf("show -json: %v\n%s", err, r.stdout)
	}
	for _, res := range s.Resources {
		if res.Address == address {
			return res.Values
		}
	}
	h.t.Fatalf("%s is not in berth show -json:\n%s", address, r.stdout)
	return nil
}

// str returns the string value name of address in berth show.
func (h *netHost) str(address, name string) string {
	h.t.Helper()
	v, ok := h.values(address)[name].(string)
	if !ok {
		h.t.Fatalf("%s has no string %s in berth show: %v", address, name, h.values(address)[name])
	}
	return v
}

// publishedPorts returns the published_ports of address in berth show.
func (h *netHost) publishedPorts(address string) []string {
	h.t.Helper()
	raw, _ := h.values(address)["published_ports"].([]any)
	var out []string
	for _, p := range raw {
		s, _ := p.(string)
		out = append(out, s)
	}
	return out
}

// ipOf returns the ip_address of address in berth show, and fails the
// test unless it is an IPv4 address.
func (h *netHost) ipOf(address string) netip.Addr {
	h.t.Helper()
	s := h.str(address, "ip_address")
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		h.t.Fatalf("ip_address of %s is %q, not an IPv4 address", address, s)
	}
	return a
}

// waitExec runs args in the container at address until its output holds
// want, and returns the output.
func (h *netHost) waitExec(address, want string, args ...string) string {
	h.t.Helper()
	var out string
	waitFor(h.t, fmt.Sprintf("%q from %v in %s", want, args, address), func() (bool, string) {
		r := h.berth(nil, append([]string{"exec", address, "--"}, args...)...)
		out = r.stdout
		return r.code == 0 && strings.Contains(r.stdout, want), fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	})
	return out
}

// execFails fails the test unless args, run in the container at address,
// exits non-zero. It runs once: callers first prove, with the same
// command against another target, that it succeeds when it can.
func (h *netHost) execFails(what, address string, args ...string) {
	h.t.Helper()
	r := h.berth(nil, append([]string{"exec", address, "--"}, args...)...)
	if r.code == 0 {
		h.t.Errorf("%s: %v in %s succeeded, printing %q", what, args, address, r.stdout)
	}
}

// initPid returns the PID of the init process of the container at address.
func (h *netHost) initPid(address string) int {
	h.t.Helper()
	return h.waitContainerInit(h.id(address))
}

// wgetCmd fetches url with busybox wget within a few seconds (busybox
// wget's own -T crashes in Debian's busybox-static).
func wgetCmd(url string) []string {
	return []string{"timeout", "5", "wget", "-q", "-O-", url}
}

// waitGet fetches url from sim until the body starts with want, and
// returns it.
func waitGet(t *testing.T, sim *testenv.SimHost, url, want string) string {
	t.Helper()
	var body string
	waitFor(t, fmt.Sprintf("GET %s from %s to answer %q", url, sim.Name, want), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := sim.HTTPGet(ctx, url)
		body = b
		return err == nil && strings.HasPrefix(b, want), fmt.Sprintf("%q, %v", b, err)
	})
	return body
}

// waitUDP sends msg to addr from sim until the answer starts with want,
// and returns it.
func waitUDP(t *testing.T, sim *testenv.SimHost, addr, msg, want string) string {
	t.Helper()
	var got string
	waitFor(t, fmt.Sprintf("UDP %q to %s from %s to answer %q", msg, addr, sim.Name, want), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		g, err := sim.UDPExchange(ctx, addr, msg)
		got = g
		return err == nil && strings.HasPrefix(g, want), fmt.Sprintf("%q, %v", g, err)
	})
	return got
}

// udpFlow sends datagrams on c until an answer starts with want.
func udpFlow(t *testing.T, c net.Conn, want string) {
	t.Helper()
	buf := make([]byte, 65536)
	waitFor(t, fmt.Sprintf("an answer %q on the UDP flow %s -> %s", want, c.LocalAddr(), c.RemoteAddr()), func() (bool, string) {
		if _, err := c.Write([]byte("flow")); err != nil {
			return false, err.Error()
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return false, err.Error()
		}
		return strings.HasPrefix(string(buf[:n]), want), fmt.Sprintf("%q", buf[:n])
	})
}

// noGet fails the test if url answers from sim within a few seconds.
// Callers first prove that the same server answers on another address or
// port, so that a failure here is the refusal under test.
func noGet(t *testing.T, what string, sim *testenv.SimHost, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if b, err := sim.HTTPGet(ctx, url); err == nil {
		t.Errorf("%s: GET %s from %s answered %q", what, url, sim.Name, b)
	}
}

// peerServer serves, in the client namespace on port 8000, "client saw
// ADDR" with the address of the peer, and returns its URL.
func peerServer(t *testing.T, client *testenv.SimHost) string {
	t.Helper()
	addr := client.ServeHTTP(t, client.IP().String()+":8000", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "client saw %s\n", host)
	}))
	return "http://" + addr + "/"
}

// hostsFile parses /etc/hosts text into name → addresses.
func hostsFile(text string) map[string][]string {
	out := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, n := range f[1:] {
			out[n] = append(out[n], f[0])
		}
	}
	return out
}

// nameservers returns the nameserver lines' addresses of resolv.conf text.
func nameservers(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

// TestLinuxNetworkHostMode proves the simulated hosts with the network
// modes that need no berth network: a host-mode container listens in the
// simulated host's namespace (so a client on the LAN reaches it, with its
// own address as the peer), a container with network_mode "none" has a
// loopback only, and destroy leaves the namespace as it was.
func TestLinuxNetworkHostMode(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "host")
	client := testenv.NewSimHost(t, lan, "client")
	h.loadNetImage()
	h.write(fmt.Sprintf(`
container "web" {
  image        = %[1]q
  command      = ["/app", "tcp:8000", "udp:8053"]
  network_mode = "host"
  hostname     = "web"
%[2]s}

container "lonely" {
  image        = %[1]q
  command      = %[3]s
  network_mode = "none"
%[2]s}
`, netRef, quick, sleepCommand))
	h.apply()
	h.converged()

	ip := h.sim.IP().String()
	body := waitGet(t, client, "http://"+ip+":8000/", "web tcp=8000 ")
	if want := "web tcp=8000 peer=" + client.IP().String() + "\n"; body != want {
		t.Errorf("GET from the client: %q, want %q", body, want)
	}
	got := waitUDP(t, client, ip+":8053", "hello", "web udp=8053 ")
	if want := "web udp=8053 peer=" + client.IP().String() + " got=hello\n"; got != want {
		t.Errorf("UDP from the client: %q, want %q", got, want)
	}
	// The host-mode container's interfaces are the simulated host's.
	requireContains(t, "the addresses in container.web", h.exec("container.web", "ip", "-o", "-4", "addr"), " "+h.sim.Addr.String()+" ")
	// network_mode "none": a loopback and nothing else.
	links := strings.Split(strings.TrimSpace(h.exec("container.lonely", "ip", "-o", "link")), "\n")
	if len(links) != 1 || !strings.Contains(links[0], " lo: ") {
		t.Errorf("links in container.lonely: %q, want the loopback only", links)
	}
	h.destroyAndCompare()
}

// webPorts are the ports of container web in TestLinuxNetworkPorts: every
// form.
const webPorts = `["8080:80", "127.0.0.1:8081:81", "127.0.0.1::82", "5353:53/udp"]`

// portsConfig is the configuration of TestLinuxNetworkPorts: container
// web publishes ports (an HCL list) on network front, container probe
// sits on the same network; extra is added.
func portsConfig(memory, ports, extra string) string {
	return fmt.Sprintf(`
network "front" {}

container "web" {
  image   = %[1]q
  command = ["/app", "tcp:80", "tcp:81", "tcp:82", "udp:53"]
  network {
    name = network.front
  }
  ports = %[6]s
  resources {
    memory = %[2]q
  }
%[3]s}

container "probe" {
  image   = %[1]q
  command = %[4]s
  network {
    name = network.front
  }
%[3]s}
%[5]s`, netRef, memory, quick, sleepCommand, extra, ports)
}

var randomPortRE = regexp.MustCompile(`^127\.0\.0\.1:([0-9]+)->82/tcp$`)

// TestLinuxNetworkPorts publishes every port form of a container on a
// bridge network and reaches each with real TCP and UDP clients: from
// another host of the LAN, from the host itself through 127.0.0.1 and its
// own address, and from a container on the same bridge through the
// host's address (hairpin). A port bound to 127.0.0.1 answers on the host
// only; a random host port is shown in published_ports and berth ps and
// stays the same across restarts and in-place updates; two containers
// publish one port number on two host addresses.
func TestLinuxNetworkPorts(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "ports")
	client := testenv.NewSimHost(t, lan, "client")
	h.loadNetImage()
	h.write(portsConfig("64M", webPorts, ""))
	plan := h.planChanges()
	requireContains(t, "the first plan", plan, `+ resource "network" "front"`, `+ resource "container" "web"`, `+ resource "container" "probe"`, "Plan: 3 to add, 0 to change, 0 to destroy.")
	applied := h.apply()
	h.converged()

	ip := h.sim.IP().String()
	webIP := h.ipOf("container.web")
	subnet, err := netip.ParsePrefix(h.str("network.front", "subnet"))
	if err != nil || !subnet.Contains(webIP) {
		t.Errorf("container.web's address %s is not in network.front's subnet %q (%v)", webIP, h.str("network.front", "subnet"), err)
	}
	// published_ports: the fixed ports as declared, the random one
	// filled in.
	published := h.publishedPorts("container.web")
	var random string
	var fixed []string
	for _, p := range published {
		if m := randomPortRE.FindStringSubmatch(p); m != nil {
			random = m[1]
			continue
		}
		fixed = append(fixed, p)
	}
	sort.Strings(fixed)
	if want := []string{"0.0.0.0:5353->53/udp", "0.0.0.0:8080->80/tcp", "127.0.0.1:8081->81/tcp"}; len(published) != 4 || strings.Join(fixed, " ") != strings.Join(want, " ") || random == "" {
		t.Fatalf("published_ports of container.web: %q; want %q and 127.0.0.1:PORT->82/tcp", published, want)
	}
	if n, err := strconv.Atoi(random); err != nil || n < 1 || n > 65535 || n == 8080 || n == 8081 {
		t.Fatalf("the random host port %q is not a free port number", random)
	}
	row := h.ps()["container.web"]
	if row.IP != webIP.String() {
		t.Errorf("berth ps shows IP %q for container.web, want %s", row.IP, webIP)
	}
	requireContains(t, "the PORTS of container.web in berth ps", row.Ports, published...)

	t.Run("random_port_in_the_apply_output", func(t *testing.T) {
		requireContains(t, "the apply output", applied.stdout, "127.0.0.1:"+random+"->82/tcp")
	})

	t.Run("from_another_host", func(t *testing.T) {
		// The container sees the client's own address: published
		// ports are translated to the container, not masqueraded.
		body := waitGet(t, client, "http://"+ip+":8080/", "web tcp=80 ")
		if want := "web tcp=80 peer=" + client.IP().String() + "\n"; body != want {
			t.Errorf("GET from the client: %q, want %q", body, want)
		}
		got := waitUDP(t, client, ip+":5353", "from-client", "web udp=53 ")
		if want := "web udp=53 peer=" + client.IP().String() + " got=from-client\n"; got != want {
			t.Errorf("UDP from the client: %q, want %q", got, want)
		}
	})

	t.Run("from_the_host", func(t *testing.T) {
		for url, want := range map[string]string{
			"http://127.0.0.1:8080/":           "web tcp=80 ",
			"http://127.0.0.1:8081/":           "web tcp=81 ",
			"http://127.0.0.1:" + random + "/": "web tcp=82 ",
			"http://" + ip + ":8080/":          "web tcp=80 ",
		} {
			waitGet(t, h.sim, url, want)
		}
		waitUDP(t, h.sim, "127.0.0.1:5353", "from-host-lo", "web udp=53 ")
		waitUDP(t, h.sim, ip+":5353", "from-host", "web udp=53 ")
	})

	t.Run("hairpin_from_a_container", func(t *testing.T) {
		h.waitExec("container.probe", "web tcp=80 ", wgetCmd("http://"+ip+":8080/")...)
		h.waitExec("container.probe", "web udp=53 ", "/app", "udp-send", ip+":5353", "hairpin")
	})

	t.Run("loopback_ports_stay_on_the_host", func(t *testing.T) {
		// The server answers on 8080 from the client (above); the ports
		// bound to 127.0.0.1 must not answer from it, nor on the host's
		// LAN address.
		waitGet(t, client, "http://"+ip+":8080/", "web tcp=80 ")
		noGet(t, "a port bound to 127.0.0.1 from another host", client, "http://"+ip+":8081/")
		noGet(t, "a random port bound to 127.0.0.1 from another host", client, "http://"+ip+":"+random+"/")
		noGet(t, "a port bound to 127.0.0.1 through the host's LAN address", h.sim, "http://"+ip+":8081/")
		h.waitExec("container.probe", "web tcp=80 ", wgetCmd("http://"+ip+":8080/")...)
		h.execFails("a port bound to 127.0.0.1 from a container", "container.probe", wgetCmd("http://"+ip+":8081/")...)
	})

	t.Run("random_port_stable_across_restart", func(t *testing.T) {
		id := h.id("container.web")
		pid := h.initPid("container.web")
		h.mustBerth(0, nil, "restart", "container.web")
		waitFor(t, "container.web to run again with a new process", func() (bool, string) {
			p := h.containerInit(id)
			return p > 0 && p != pid, fmt.Sprintf("init pid %d (was %d)", p, pid)
		})
		if got := h.publishedPorts("container.web"); strings.Join(got, " ") != strings.Join(published, " ") {
			t.Errorf("published_ports after berth restart: %q, want %q", got, published)
		}
		requireContains(t, "the PORTS of container.web in berth ps after restart", h.ps()["container.web"].Ports, published...)
		waitGet(t, h.sim, "http://127.0.0.1:"+random+"/", "web tcp=82 ")
		h.converged()
	})

	t.Run("random_port_stable_across_in_place_update", func(t *testing.T) {
		id := h.id("container.web")
		h.write(portsConfig("128M", webPorts, ""))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.web will be updated in-place", `"64M" -> "128M"`)
		requireNotContains(t, "the plan", plan, "must be replaced", "published_ports")
		h.apply()
		if got := h.id("container.web"); got != id {
			t.Fatalf("the update replaced container.web: %s -> %s", id, got)
		}
		if got := h.publishedPorts("container.web"); strings.Join(got, " ") != strings.Join(published, " ") {
			t.Errorf("published_ports after the in-place update: %q, want %q", got, published)
		}
		waitGet(t, h.sim, "http://127.0.0.1:"+random+"/", "web tcp=82 ")
		h.converged()
	})

	web2 := fmt.Sprintf(`
container "web2" {
  image   = %q
  command = ["/app", "tcp:81"]
  network {
    name = network.front
  }
  ports = [%q]
%s}
`, netRef, ip+":8081:81", quick)
	t.Run("one_port_on_two_host_addresses", func(t *testing.T) {
		h.write(portsConfig("128M", webPorts, web2))
		h.apply()
		h.converged()
		if got := h.publishedPorts("container.web2"); strings.Join(got, " ") != ip+":8081->81/tcp" {
			t.Errorf("published_ports of container.web2: %q", got)
		}
		waitGet(t, client, "http://"+ip+":8081/", "web2 tcp=81 ")
		waitGet(t, h.sim, "http://"+ip+":8081/", "web2 tcp=81 ")
		waitGet(t, h.sim, "http://127.0.0.1:8081/", "web tcp=81 ")
	})

	t.Run("udp_flow_follows_the_port_to_another_container", func(t *testing.T) {
		// One client socket, so that every datagram is the same flow for
		// conntrack. While web publishes 5353/udp the flow reaches web;
		// once the port is web's no more and dns2 publishes it, the same
		// flow must reach dns2: the stale translation is gone.
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		defer cancel()
		c, err := client.DialContext(ctx, "udp", ip+":5353")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		udpFlow(t, c, "web udp=53 ")
		noUDP := `["8080:80", "127.0.0.1:8081:81", "127.0.0.1::82"]`
		h.write(portsConfig("128M", noUDP, web2))
		h.apply()
		h.write(portsConfig("128M", noUDP, web2+fmt.Sprintf(`
container "dns2" {
  image   = %q
  command = ["/app", "udp:53"]
  network {
    name = network.front
  }
  ports = ["5353:53/udp"]
%s}
`, netRef, quick)))
		h.apply()
		h.converged()
		udpFlow(t, c, "dns2 udp=53 ")
	})

	h.destroyAndCompare()
}

// namesConfig is the configuration of TestLinuxNetworkNames; extra is
// added.
func namesConfig(extra string) string {
	return fmt.Sprintf(`
network "back" {}

container "a" {
  image   = %[1]q
  command = %[2]s
  network {
    name    = network.back
    aliases = ["alpha"]
  }
  extra_hosts = { "db.local" = "10.0.0.5" }
  dns         = ["1.1.1.1"]
%[3]s}

container "b" {
  image   = %[1]q
  command = %[2]s
  network {
    name    = network.back
    aliases = ["www"]
  }
%[3]s}
%[4]s`, netRef, httpdCommand, quick, extra)
}

// TestLinuxNetworkNames checks that containers on a user-defined network
// reach each other by container name and by alias through the /etc/hosts
// berth keeps, that a container added later (two replicas) is reachable
// from the first ones without restarting them and goes away from their
// /etc/hosts when removed, and that extra_hosts and dns show in
// /etc/hosts and /etc/resolv.conf.
func TestLinuxNetworkNames(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "names")
	h.loadNetImage()
	h.write(namesConfig(""))
	h.apply()
	h.converged()
	ipA, ipB := h.ipOf("container.a"), h.ipOf("container.b")

	t.Run("names_and_aliases", func(t *testing.T) {
		for _, c := range []struct{ from, name, want string }{
			{"container.a", "b", "b\n"},
			{"container.a", "www", "b\n"},
			{"container.b", "a", "a\n"},
			{"container.b", "alpha", "a\n"},
		} {
			if got := h.waitExec(c.from, c.want, wgetCmd("http://"+c.name+"/")...); got != c.want {
				t.Errorf("%s: GET http://%s/ = %q, want %q", c.from, c.name, got, c.want)
			}
		}
		hosts := hostsFile(h.exec("container.a", "cat", "/etc/hosts"))
		for name, want := range map[string]string{"b": ipB.String(), "www": ipB.String(), "a": ipA.String(), "db.local": "10.0.0.5"} {
			if got := hosts[name]; len(got) != 1 || got[0] != want {
				t.Errorf("container.a's /etc/hosts gives %s = %v, want %s", name, got, want)
			}
		}
	})

	t.Run("dns_and_resolv_conf", func(t *testing.T) {
		if got := nameservers(h.exec("container.a", "cat", "/etc/resolv.conf")); strings.Join(got, " ") != "1.1.1.1" {
			t.Errorf("container.a (dns = [\"1.1.1.1\"]) has the name servers %q, want only 1.1.1.1", got)
		}
		// Without dns, the host's name servers, except the loopback
		// ones the container cannot reach.
		hostConf, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			t.Skipf("the host has no /etc/resolv.conf: %v", err)
		}
		var want []string
		for _, s := range nameservers(string(hostConf)) {
			if a, err := netip.ParseAddr(s); err == nil && !a.IsLoopback() {
				want = append(want, a.String())
			}
		}
		got := nameservers(h.exec("container.b", "cat", "/etc/resolv.conf"))
		if len(want) > 0 && strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("container.b has the name servers %q, want the host's %q", got, want)
		}
		for _, s := range got {
			if a, err := netip.ParseAddr(s); err != nil || a.IsLoopback() || s == "1.1.1.1" {
				t.Errorf("container.b has the name server %q", s)
			}
		}
	})

	replicas := fmt.Sprintf(`
container "c" {
  count   = 2
  image   = %q
  command = %s
  network {
    name = network.back
  }
%s}
`, netRef, httpdCommand, quick)
	t.Run("a_container_added_later", func(t *testing.T) {
		pidA := h.initPid("container.a")
		h.write(namesConfig(replicas))
		h.apply()
		h.converged()
		for _, n := range []string{"c-0", "c-1"} {
			h.waitExec("container.a", n+"\n", wgetCmd("http://"+n+"/")...)
		}
		h.waitExec("container.c[0]", "a\n", wgetCmd("http://a/")...)
		h.waitExec("container.c[1]", "b\n", wgetCmd("http://www/")...)
		hosts := hostsFile(h.exec("container.a", "cat", "/etc/hosts"))
		ips := []string{h.ipOf("container.c[0]").String(), h.ipOf("container.c[1]").String()}
		for i, n := range []string{"c-0", "c-1"} {
			if got := hosts[n]; len(got) != 1 || got[0] != ips[i] {
				t.Errorf("container.a's /etc/hosts gives %s = %v, want %s", n, got, ips[i])
			}
		}
		// The resource's name gives every replica.
		if got := hosts["c"]; len(got) != 2 || !(got[0] == ips[0] && got[1] == ips[1] || got[0] == ips[1] && got[1] == ips[0]) {
			t.Errorf("container.a's /etc/hosts gives c = %v, want both replicas %v", got, ips)
		}
		if p := h.initPid("container.a"); p != pidA {
			t.Errorf("adding containers restarted container.a (pid %d -> %d)", pidA, p)
		}
	})

	t.Run("a_container_removed", func(t *testing.T) {
		h.write(namesConfig(""))
		h.apply()
		hosts := hostsFile(h.exec("container.a", "cat", "/etc/hosts"))
		for _, n := range []string{"c", "c-0", "c-1"} {
			if got, ok := hosts[n]; ok {
				t.Errorf("container.a's /etc/hosts still gives %s = %v after the replicas are gone", n, got)
			}
		}
		if got := hosts["b"]; len(got) != 1 || got[0] != ipB.String() {
			t.Errorf("container.a's /etc/hosts gives b = %v, want %s", got, ipB)
		}
		h.converged()
	})

	h.destroyAndCompare()
}

// TestLinuxNetworkIsolation checks that containers on two networks cannot
// reach each other, that a container on both reaches both (by name and
// address), that a container on an internal network reaches neither the
// LAN nor other networks while one on a normal network reaches the LAN,
// and that ports on an internal network are refused at plan.
func TestLinuxNetworkIsolation(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "isolation")
	client := testenv.NewSimHost(t, lan, "client")
	clientURL := peerServer(t, client)
	h.loadNetImage()
	cfg := fmt.Sprintf(`
network "red" {}

network "blue" {}

network "closed" {
  internal = true
}

container "r" {
  image   = %[1]q
  command = %[2]s
  network {
    name = network.red
  }
%[3]s}

container "b" {
  image   = %[1]q
  command = %[2]s
  network {
    name = network.blue
  }
%[3]s}

container "both" {
  image   = %[1]q
  command = %[2]s
  network {
    name = network.red
  }
  network {
    name = network.blue
  }
%[3]s}

container "inside" {
  image   = %[1]q
  command = %[2]s
  network {
    name = network.closed
  }
%[3]s}
`, netRef, httpdCommand, quick)
	h.write(cfg)
	h.apply()
	h.converged()
	ipR, ipB, ipIn := h.ipOf("container.r"), h.ipOf("container.b"), h.ipOf("container.inside")

	t.Run("two_networks", func(t *testing.T) {
		// The container on both networks reaches both, by address and
		// by name: the servers answer.
		h.waitExec("container.both", "r\n", wgetCmd("http://"+ipR.String()+"/")...)
		h.waitExec("container.both", "b\n", wgetCmd("http://"+ipB.String()+"/")...)
		h.waitExec("container.both", "r\n", wgetCmd("http://r/")...)
		h.waitExec("container.both", "b\n", wgetCmd("http://b/")...)
		// Each side reaches the other network's member that shares
		// its network, and not the other side.
		h.waitExec("container.r", "both\n", wgetCmd("http://both/")...)
		h.execFails("red to blue", "container.r", wgetCmd("http://"+ipB.String()+"/")...)
		h.execFails("blue to red", "container.b", wgetCmd("http://"+ipR.String()+"/")...)
		h.execFails("internal to red", "container.inside", wgetCmd("http://"+ipR.String()+"/")...)
		h.execFails("red to internal", "container.r", wgetCmd("http://"+ipIn.String()+"/")...)
	})

	t.Run("internal_network_reaches_no_lan", func(t *testing.T) {
		h.waitExec("container.r", "client saw ", wgetCmd(clientURL)...)
		h.execFails("internal network to the LAN", "container.inside", wgetCmd(clientURL)...)
	})

	t.Run("ports_on_an_internal_network_refused_at_plan", func(t *testing.T) {
		before := h.sim.Snapshot(t)
		bad := strings.Replace(cfg, "    name = network.closed\n  }\n", "    name = network.closed\n  }\n  ports = [\"9090:80\"]\n", 1)
		if bad == cfg {
			t.Fatal("the test could not add ports to container.inside")
		}
		h.write(bad)
		r := h.mustBerth(1, nil, "plan", h.cfgDir)
		requireContains(t, "plan", r.stdout+r.stderr, "internal", "ports", "closed")
		if d := testenv.SnapshotDiff(before, h.sim.Snapshot(t)); d != "" {
			t.Errorf("a refused plan changed the host:\n%s", d)
		}
		h.write(cfg)
		h.converged()
	})

	t.Run("ports_on_a_new_internal_network_refused_at_plan", func(t *testing.T) {
		before := h.sim.Snapshot(t)
		h.write(cfg + fmt.Sprintf(`
network "sealed" {
  internal = true
}

container "sealedweb" {
  image   = %q
  command = %s
  network {
    name = network.sealed
  }
  ports = ["9091:80"]
%s}
`, netRef, httpdCommand, quick))
		r := h.berth(nil, "plan", h.cfgDir)
		if r.code != 1 {
			t.Errorf("plan exited %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		} else {
			requireContains(t, "plan", r.stdout+r.stderr, "internal", "ports", "sealed")
		}
		if d := testenv.SnapshotDiff(before, h.sim.Snapshot(t)); d != "" {
			t.Errorf("the plan changed the host:\n%s", d)
		}
		h.write(cfg)
	})

	h.write(cfg)
	h.destroyAndCompare()
}

// TestLinuxNetworkDefaultBridge checks that a container with no network
// settings is on berth's default bridge berth0: an address of its subnet,
// the bridge's address as its default route, and outbound NAT, so that a
// server on the LAN sees the host's address as the peer. berth0 goes with
// the last container.
func TestLinuxNetworkDefaultBridge(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "default")
	client := testenv.NewSimHost(t, lan, "client")
	clientURL := peerServer(t, client)
	h.loadNetImage()
	h.write(fmt.Sprintf(`
container "nat" {
  image   = %q
  command = %s
%s}
`, netRef, sleepCommand, quick))
	h.apply()
	h.converged()
	ip := h.ipOf("container.nat")
	if !netip.MustParsePrefix("10.89.0.0/16").Contains(ip) {
		t.Errorf("container.nat's address %s is not in 10.89.0.0/16", ip)
	}
	// berth0 holds the gateway, in the container's /24.
	out := h.sim.Run(t, "ip", "-o", "-4", "addr", "show", "dev", "berth0")
	m := regexp.MustCompile(`inet ([0-9.]+)/([0-9]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("berth0 has no IPv4 address: %s", out)
	}
	gw, _ := netip.ParseAddr(m[1])
	bits, _ := strconv.Atoi(m[2])
	if p := netip.PrefixFrom(gw, bits).Masked(); !p.Contains(ip) || gw == ip {
		t.Errorf("berth0 has %s/%d, which is not the gateway of container.nat's %s", gw, bits, ip)
	}
	if r := h.exec("container.nat", "ip", "route"); !strings.Contains(r, "default via "+gw.String()) {
		t.Errorf("container.nat's routes lack the default route via %s:\n%s", gw, r)
	}
	if row := h.ps()["container.nat"]; row.IP != ip.String() {
		t.Errorf("berth ps shows IP %q for container.nat, want %s", row.IP, ip)
	}
	// Outbound NAT: the client sees the simulated host's address.
	got := h.waitExec("container.nat", "client saw ", wgetCmd(clientURL)...)
	if want := "client saw " + h.sim.IP().String() + "\n"; got != want {
		t.Errorf("the client saw container.nat as %q, want %q (masquerade)", got, want)
	}
	h.destroyAndCompare()
}

// driftConfig is the configuration of TestLinuxNetworkDrift.
func driftConfig() string {
	return fmt.Sprintf(`
network "front" {}

container "web" {
  image   = %[1]q
  command = ["/app", "tcp:80"]
  network {
    name = network.front
  }
  ports = ["8080:80"]
%[2]s}

container "peer" {
  image   = %[1]q
  command = %[3]s
  network {
    name = network.front
  }
%[2]s}
`, netRef, quick, sleepCommand)
}

// nftRule finds the rule of table ip berth whose text contains every one
// of wants, and returns its chain and handle.
func nftRule(t *testing.T, sim *testenv.SimHost, wants ...string) (chain, handle string) {
	t.Helper()
	out := sim.Run(t, "nft", "-a", "list", "table", "ip", "berth")
	chainRE := regexp.MustCompile(`^\s*chain (\S+) \{`)
	handleRE := regexp.MustCompile(`# handle ([0-9]+)\s*$`)
	cur := ""
	for _, l := range strings.Split(out, "\n") {
		if m := chainRE.FindStringSubmatch(l); m != nil {
			cur = m[1]
			continue
		}
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(l, w)
		}
		if m := handleRE.FindStringSubmatch(l); ok && m != nil && cur != "" {
			return cur, m[1]
		}
	}
	t.Fatalf("no rule with %q in table ip berth:\n%s", wants, out)
	return "", ""
}

// hostVeth returns the name, in the simulated host, of the host end of
// the veth of the container at address on its first network.
func (h *netHost) hostVeth(address string) string {
	h.t.Helper()
	idx := strings.TrimSpace(h.exec(address, "cat", "/sys/class/net/eth0/iflink"))
	for _, l := range strings.Split(h.sim.Run(h.t, "ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == idx+":" {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			return name
		}
	}
	h.t.Fatalf("no link with index %s in %s", idx, h.sim.Name)
	return ""
}

// TestLinuxNetworkDrift changes a network behind berth's back, in netlink
// and in nftables, and checks each time that the traffic really broke,
// that plan shows the change, that apply restores the traffic without
// restarting the container, and that the next plan is empty.
func TestLinuxNetworkDrift(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "drift")
	client := testenv.NewSimHost(t, lan, "client")
	h.loadNetImage()
	h.write(driftConfig())
	h.apply()
	h.converged()
	url := "http://" + h.sim.IP().String() + ":8080/"
	waitGet(t, client, url, "web tcp=80 ")
	h.waitExec("container.peer", "web tcp=80 ", wgetCmd("http://web/")...)
	bridge := h.str("network.front", "bridge")
	pid := h.initPid("container.web")

	// restored checks that the port and the name work again, that the
	// container kept its process, and that nothing is left to change.
	restored := func(t *testing.T) {
		t.Helper()
		waitGet(t, client, url, "web tcp=80 ")
		h.waitExec("container.peer", "web tcp=80 ", wgetCmd("http://web/")...)
		if p := h.initPid("container.web"); p != pid {
			t.Errorf("repairing the network restarted container.web (pid %d -> %d)", pid, p)
		}
		h.converged()
	}

	t.Run("bridge_deleted", func(t *testing.T) {
		h.sim.Run(t, "ip", "link", "del", bridge)
		noGet(t, "the port with its bridge deleted", client, url)
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "network.front", bridge)
		h.apply()
		if out := h.sim.Run(t, "ip", "-o", "link", "show", "master", bridge); !strings.Contains(out, h.hostVeth("container.web")) {
			t.Errorf("container.web's veth is not on %s again:\n%s", bridge, out)
		}
		restored(t)
	})

	t.Run("bridge_address_removed", func(t *testing.T) {
		h.sim.Run(t, "ip", "addr", "flush", "dev", bridge)
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "network.front")
		h.apply()
		gw := h.str("network.front", "gateway")
		if out := h.sim.Run(t, "ip", "-o", "-4", "addr", "show", "dev", bridge); !strings.Contains(out, " "+gw+"/") {
			t.Errorf("%s lacks its address %s after apply:\n%s", bridge, gw, out)
		}
		restored(t)
	})

	t.Run("port_rule_deleted", func(t *testing.T) {
		webIP := h.ipOf("container.web").String()
		chain, handle := nftRule(t, h.sim, "dnat", webIP+":80")
		h.sim.Run(t, "nft", "delete", "rule", "ip", "berth", chain, "handle", handle)
		noGet(t, "the port with its rule deleted", client, url)
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.web", "8080:80")
		h.apply()
		restored(t)
	})

	t.Run("table_flushed", func(t *testing.T) {
		h.sim.Run(t, "nft", "flush", "table", "ip", "berth")
		noGet(t, "the port with berth's table flushed", client, url)
		plan := h.planChanges()
		if !strings.Contains(plan, "container.web") && !strings.Contains(plan, "network.front") {
			t.Errorf("the plan after flushing berth's table names neither container.web nor network.front:\n%s", plan)
		}
		h.apply()
		restored(t)
	})

	t.Run("table_deleted", func(t *testing.T) {
		h.sim.Run(t, "nft", "delete", "table", "ip", "berth")
		noGet(t, "the port with berth's table deleted", client, url)
		plan := h.planChanges()
		if !strings.Contains(plan, "container.web") && !strings.Contains(plan, "network.front") {
			t.Errorf("the plan after deleting berth's table names neither container.web nor network.front:\n%s", plan)
		}
		h.apply()
		restored(t)
	})

	t.Run("veth_deleted", func(t *testing.T) {
		veth := h.hostVeth("container.web")
		h.sim.Run(t, "ip", "link", "del", veth)
		noGet(t, "the port with the container's veth deleted", client, url)
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.web")
		h.apply()
		if out := h.sim.Run(t, "ip", "-o", "link", "show", "master", bridge); !strings.Contains(out, h.hostVeth("container.web")) {
			t.Errorf("container.web's veth is not on %s again:\n%s", bridge, out)
		}
		restored(t)
	})

	h.destroyAndCompare()
}

// TestLinuxNetworkBadInput checks that invalid network settings are
// refused at plan with exit 1, a diagnostic at the offending line naming
// the value, and no change to the host.
func TestLinuxNetworkBadInput(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	lan := testenv.NewLAN(t)
	h := newNetHost(t, lan, "badinput")
	h.loadNetImage()
	good := `
network "front" {
  subnet = "10.89.7.0/24"
}
`
	h.write(good)
	h.apply()
	h.converged()
	applied := h.sim.Snapshot(t)
	container := func(body string) string {
		return fmt.Sprintf("container \"bad\" {\n  image = %q\n%s}\n", netRef, body)
	}
	cases := []struct {
		name string
		// bad is added to good; mark is a unique piece of the line the
		// diagnostic must point at; want are words it must hold.
		bad  string
		mark string
		want []string
	}{
		{
			name: "invalid_cidr",
			bad:  "network \"bad\" {\n  subnet = \"10.89.300.0/24\"\n}\n",
			mark: `subnet = "10.89.300.0/24"`,
			want: []string{"10.89.300.0/24"},
		},
		{
			name: "prefix_too_long",
			bad:  "network \"bad\" {\n  subnet = \"10.89.8.0/33\"\n}\n",
			mark: `subnet = "10.89.8.0/33"`,
			want: []string{"10.89.8.0/33"},
		},
		{
			name: "gateway_outside_subnet",
			bad:  "network \"bad\" {\n  subnet  = \"10.89.8.0/24\"\n  gateway = \"10.89.9.1\"\n}\n",
			mark: `gateway = "10.89.9.1"`,
			want: []string{"10.89.9.1", "10.89.8.0/24"},
		},
		{
			name: "subnet_overlapping_a_host_route",
			bad:  "network \"bad\" {\n  subnet = \"192.0.2.0/24\"\n}\n",
			mark: `subnet = "192.0.2.0/24"`,
			want: []string{"192.0.2.0/24"},
		},
		{
			name: "subnet_overlapping_another_network",
			bad:  "network \"bad\" {\n  subnet = \"10.89.7.128/25\"\n}\n",
			mark: `subnet = "10.89.7.128/25"`,
			want: []string{"10.89.7.128/25", "10.89.7.0/24"},
		},
		{
			name: "malformed_port",
			bad:  container("  network {\n    name = network.front\n  }\n  ports = [\"80:http\"]\n"),
			mark: `ports = ["80:http"]`,
			// The accepted forms are listed.
			want: []string{"80:http", "8080:80", "127.0.0.1:8081:81", "::", "/udp"},
		},
		{
			name: "host_port_twice",
			bad:  container("  network {\n    name = network.front\n  }\n  ports = [\"8080:80\", \"8080:81\"]\n"),
			mark: `ports = ["8080:80", "8080:81"]`,
			want: []string{"8080"},
		},
		{
			name: "static_address_outside_the_subnet",
			bad:  container("  network {\n    name         = network.front\n    ipv4_address = \"10.89.99.5\"\n  }\n"),
			mark: `ipv4_address = "10.89.99.5"`,
			want: []string{"10.89.99.5", "10.89.7.0/24"},
		},
		{
			name: "static_address_outside_a_new_network",
			bad: "network \"fresh\" {\n  subnet = \"10.89.20.0/24\"\n}\n" +
				container("  network {\n    name         = network.fresh\n    ipv4_address = \"10.89.21.5\"\n  }\n"),
			mark: `ipv4_address = "10.89.21.5"`,
			want: []string{"10.89.21.5", "10.89.20.0/24"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := good + tc.bad
			h.write(src)
			where := fmt.Sprintf("main.hcl line %d", lineOf(t, src, tc.mark))
			r := h.berth(nil, "plan", h.cfgDir)
			if r.code != 1 {
				t.Errorf("plan exited %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			requireContains(t, "plan", r.stdout+r.stderr, append([]string{"Error", where}, tc.want...)...)
			if d := testenv.SnapshotDiff(applied, h.sim.Snapshot(t)); d != "" {
				t.Errorf("a refused plan changed the host:\n%s", d)
			}
			if rows := h.ps(); len(rows) != 0 {
				t.Errorf("a refused plan made containers: %v", rows)
			}
		})
	}
	h.write(good)
	h.converged()
	h.destroyAndCompare()
}
