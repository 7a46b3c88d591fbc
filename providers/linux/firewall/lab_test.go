package firewall

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// The tests below build small simulated networks out of network
// namespaces: a "host" namespace where the firewall lives, with bridges,
// "container" namespaces on veth pairs attached to the bridges, and a
// "client" namespace on a veth link to the host (another machine of the
// LAN). Every namespace is created by the test and deleted when it ends.

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, links and nftables tables")
	}
	for _, tool := range []string{"ip", "nft", "/bin/busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian packages iproute2, nftables, busybox-static): %v", tool, err)
		}
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// newNS creates a network namespace with its loopback up, named after the
// test's process and name so that parallel runs never share one.
func newNS(t testing.TB, role string) string {
	t.Helper()
	name := fmt.Sprintf("bfw%d-%s-%s", os.Getpid(), unsafeChars.ReplaceAllString(t.Name(), ""), role)
	if len(name) > 200 {
		name = name[:200]
	}
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// inNS runs fn on a thread of its own in the namespace ns. The thread is
// never handed back to the runtime: it ends with fn.
func inNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func mustInNS(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := inNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// lab is one simulated host with a client beside it.
type lab struct {
	t      testing.TB
	ctx    context.Context
	host   string // namespace of the host
	client string // namespace of another machine on the host's LAN
	fw     *Firewall
}

const (
	hostIP   = "192.168.77.1" // the host's address on the LAN
	hostIP2  = "192.168.78.1" // a second address of the host
	clientIP = "192.168.77.2"
)

// foreignRuleset is a table berth must never touch.
const foreignRuleset = `table inet foreign {
	set keep { type ipv4_addr; elements = { 203.0.113.7 } }
	chain input { type filter hook input priority 10; policy accept;
		tcp dport 9999 counter accept comment "not berth"
	}
	chain postrouting { type nat hook postrouting priority 50; policy accept;
		ip daddr @keep counter masquerade
	}
}
`

func newLab(t testing.TB) *lab {
	t.Helper()
	needRoot(t)
	l := &lab{t: t, ctx: context.Background()}
	l.host = newNS(t, "h")
	l.client = newNS(t, "c")
	run(t, "ip", "-n", l.host, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", l.client)
	run(t, "ip", "-n", l.host, "addr", "add", hostIP+"/24", "dev", "lan0")
	run(t, "ip", "-n", l.host, "addr", "add", hostIP2+"/24", "dev", "lan0")
	run(t, "ip", "-n", l.host, "link", "set", "lan0", "up")
	run(t, "ip", "-n", l.client, "addr", "add", clientIP+"/24", "dev", "eth0")
	run(t, "ip", "-n", l.client, "link", "set", "eth0", "up")
	run(t, "ip", "-n", l.client, "route", "add", "default", "via", hostIP)
	l.nft("-f", "-", foreignRuleset)
	mustInNS(t, l.host, func() error {
		if err := EnableForwarding(); err != nil {
			return err
		}
		fw, err := Open(l.ctx, "")
		l.fw = fw
		return err
	})
	t.Cleanup(func() { l.fw.Close() })
	return l
}

// nft runs nft in the host namespace; with "-f", "-" the last argument is
// its input.
func (l *lab) nft(args ...string) string {
	l.t.Helper()
	var stdin string
	if len(args) >= 2 && args[0] == "-f" && args[1] == "-" {
		stdin, args = args[2], args[:2]
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.host, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// foreign returns every table of the host's ruleset but berth's, without
// counters.
func (l *lab) foreign() string {
	l.t.Helper()
	var sb strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(l.nft("list", "tables")), "\n") {
		f := strings.Fields(line) // table <family> <name>
		if len(f) != 3 || (f[1] == "ip" && f[2] == l.fw.Table()) {
			continue
		}
		sb.WriteString(l.nft("-s", "list", "table", f[1], f[2]))
	}
	return sb.String()
}

// setBridgeNF turns br_netfilter's call of the IPv4 hooks for bridged
// packets on or off in the host; it reports false when the kernel has no
// br_netfilter (then bridged packets never see the IPv4 hooks).
func (l *lab) setBridgeNF(on bool) bool {
	l.t.Helper()
	v := "0"
	if on {
		v = "1"
	}
	ok := true
	mustInNS(l.t, l.host, func() error {
		err := writeSysctl("/proc/sys/net/bridge/bridge-nf-call-iptables", v)
		if errors.Is(err, os.ErrNotExist) {
			ok = false
			return nil
		}
		return err
	})
	return ok || !on
}

// bridge creates a bridge in the host with address cidr (gateway of its
// containers) and route_localnet on.
func (l *lab) bridge(name, cidr string) {
	l.t.Helper()
	run(l.t, "ip", "-n", l.host, "link", "add", name, "type", "bridge")
	run(l.t, "ip", "-n", l.host, "addr", "add", cidr, "dev", name)
	run(l.t, "ip", "-n", l.host, "link", "set", name, "up")
	mustInNS(l.t, l.host, func() error { return EnableRouteLocalnet(name) })
}

// container creates a namespace on a veth attached to bridge, with address
// cidr and the default route through gw; it serves HTTP on port 80 (busybox
// httpd, answering its name) and UDP on port 53 (answering its name and
// what it got).
func (l *lab) container(name, bridge, cidr, gw string) string {
	l.t.Helper()
	ns := newNS(l.t, name)
	veth := "v" + name
	run(l.t, "ip", "-n", l.host, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run(l.t, "ip", "-n", l.host, "link", "set", veth, "master", bridge)
	// As berth's integration does: with br_netfilter, a container that
	// reaches itself through a published port gets its packets back
	// through the bridge port they came in by.
	run(l.t, "ip", "-n", l.host, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
	run(l.t, "ip", "-n", l.host, "link", "set", veth, "up")
	run(l.t, "ip", "-n", ns, "addr", "add", cidr, "dev", "eth0")
	run(l.t, "ip", "-n", ns, "link", "set", "eth0", "up")
	run(l.t, "ip", "-n", ns, "route", "add", "default", "via", gw)
	l.httpd(ns, name)
	l.udpEcho(ns, name, 53)
	return ns
}

// httpd runs busybox httpd in ns on port 80, serving body at /.
func (l *lab) httpd(ns, body string) {
	l.t.Helper()
	dir := l.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "/bin/busybox", "httpd", "-f", "-p", "80", "-h", dir)
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; ; i++ {
		got, err := httpGet(ns, "127.0.0.1:80")
		if err == nil && got == body {
			return
		}
		if i == 200 {
			l.t.Fatalf("httpd in %s does not answer: %q %v", ns, got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpEcho serves UDP on port in ns: every datagram is answered with
// "name:" and its content.
func (l *lab) udpEcho(ns, name string, port int) {
	l.t.Helper()
	var pc net.PacketConn
	mustInNS(l.t, ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name+":"+string(buf[:n])), from)
		}
	}()
	l.t.Cleanup(func() {
		pc.Close()
		<-done
	})
}

// dialTimeout bounds how long a connection that must fail waits; it is a
// floor for the test's duration, never an assertion on speed.
const dialTimeout = 1500 * time.Millisecond

// httpGet fetches / from addr, the connection made from namespace ns, and
// returns the body.
func httpGet(ns, addr string) (string, error) {
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
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.Contains(status, " 200 ") {
		return "", fmt.Errorf("GET %s: %s", addr, strings.TrimSpace(status))
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	body, err := io.ReadAll(r)
	return strings.TrimSpace(string(body)), err
}

// udpClient is a UDP socket made in a namespace, connected to one
// address: every ask goes from the same source port.
type udpClient struct{ c net.Conn }

func dialUDP(t testing.TB, ns, addr string) *udpClient {
	t.Helper()
	var c net.Conn
	mustInNS(t, ns, func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return &udpClient{c}
}

// ask sends msg and returns the answer, trying a few times (UDP).
func (u *udpClient) ask(msg string) (string, error) {
	buf := make([]byte, 1500)
	var last error
	for try := 0; try < 3; try++ {
		if _, err := u.c.Write([]byte(msg)); err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		u.c.SetReadDeadline(time.Now().Add(dialTimeout))
		n, err := u.c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		last = err
	}
	return "", last
}

func udpAsk(t testing.TB, ns, addr, msg string) (string, error) {
	t.Helper()
	return dialUDP(t, ns, addr).ask(msg)
}

// isTimeoutOrRefused reports whether err is what a blocked or closed port
// gives.
func isTimeoutOrRefused(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return err != nil && (strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "unreachable"))
}
