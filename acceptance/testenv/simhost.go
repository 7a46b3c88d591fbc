package testenv

// Simulated hosts: network namespaces linked by veth pairs to a bridge
// that plays a LAN. Unlike the rest of the package they need root (and
// iproute2, util-linux's nsenter and nftables); the constructors skip the
// test when they are missing.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` mounts named network namespaces.
const netnsDir = "/run/netns"

// simSettle is how long the constructors wait at most for the kernel to
// settle a new link (IPv6 duplicate address detection). It is a safety
// net for a loaded machine, never a speed requirement.
const simSettle = 30 * time.Second

// LAN is a simulated Ethernet segment: a bridge in a network namespace of
// its own, to which every SimHost made on it is linked by a veth pair.
// Hosts get the LAN's addresses in the order they are made: the first
// one .1, the second .2, and so on.
type LAN struct {
	// Name is the network namespace holding the bridge (a file under
	// /run/netns).
	Name string
	// Bridge is the name of the bridge in that namespace.
	Bridge string
	// Prefix is the LAN's IPv4 subnet.
	Prefix netip.Prefix

	mu    sync.Mutex
	hosts int
}

// SimHost is a simulated host: a named network namespace with a loopback
// that is up and one interface on a LAN, with an address of the LAN.
// Programs run in it with Cmd join its network namespace only: they keep
// the test's mount namespace, so that what they mount is seen (and
// checked) by the test.
type SimHost struct {
	// Name is the network namespace (a file under /run/netns): unique,
	// with the test process's PID in it.
	Name string
	// Link is the host's interface on the LAN ("eth0").
	Link string
	// Addr is the host's address on the LAN, with the LAN's prefix
	// length.
	Addr netip.Prefix
	// LAN is the segment the host is on.
	LAN *LAN
}

// RequireNetTools skips the test unless it runs as root with the programs
// simulated hosts need: ip (Debian package iproute2), nsenter
// (util-linux) and nft (nftables).
func RequireNetTools(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("simulated hosts need root (network namespaces, veth links)")
	}
	for bin, pkg := range map[string]string{"ip": "iproute2", "nsenter": "util-linux", "nft": "nftables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is missing (Debian package %s)", bin, pkg)
		}
	}
}

// NewLAN makes a LAN with the subnet 192.0.2.0/24 (TEST-NET-1: it can
// never clash with a real network, and each simulated host sees only its
// own namespace anyway). The test's cleanup deletes it after the hosts on
// it, as long as it is made before them.
func NewLAN(t testing.TB) *LAN {
	t.Helper()
	RequireNetTools(t)
	l := &LAN{Name: nsName(t, "lan"), Bridge: "lan0", Prefix: netip.MustParsePrefix("192.0.2.0/24")}
	addNetNS(t, l.Name)
	ipIn(t, l.Name, "link", "set", "lo", "up")
	ipIn(t, l.Name, "link", "add", l.Bridge, "type", "bridge")
	ipIn(t, l.Name, "link", "set", l.Bridge, "up")
	return l
}

// NewSimHost makes a simulated host on lan: a network namespace named
// after name, the test's PID and a random suffix, whose interface eth0 is
// linked to the LAN's bridge and has the LAN's next address. It returns
// once the kernel has settled the new link (see settle), so that a
// Snapshot taken right away is stable. The test's cleanup deletes the
// namespace, and fails the test if a process is still in it (it kills
// them).
func NewSimHost(t testing.TB, lan *LAN, name string) *SimHost {
	t.Helper()
	RequireNetTools(t)
	lan.mu.Lock()
	lan.hosts++
	n := lan.hosts
	lan.mu.Unlock()
	a := lan.Prefix.Addr()
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	if !lan.Prefix.Contains(a) || a == lastAddr(lan.Prefix) {
		t.Fatalf("LAN %s is full: no address for host %d", lan.Prefix, n)
	}
	s := &SimHost{Name: nsName(t, name), Link: "eth0", Addr: netip.PrefixFrom(a, lan.Prefix.Bits()), LAN: lan}
	addNetNS(t, s.Name)
	port := "p" + strconv.Itoa(n)
	ipIn(t, lan.Name, "link", "add", port, "type", "veth", "peer", "name", s.Link, "netns", s.Name)
	ipIn(t, lan.Name, "link", "set", port, "master", lan.Bridge, "up")
	ipIn(t, s.Name, "link", "set", "lo", "up")
	ipIn(t, s.Name, "addr", "add", s.Addr.String(), "dev", s.Link)
	ipIn(t, s.Name, "link", "set", s.Link, "up")
	s.settle(t)
	return s
}

// settle waits until the kernel is done with the host's new link: its
// IPv6 link-local address, which the kernel adds only once the link has
// a carrier, exists, is no longer tentative (duplicate address detection
// is over) and has its route in the local table. A snapshot taken before
// that would differ from every later one.
func (s *SimHost) settle(t testing.TB) {
	t.Helper()
	_, err := os.Stat("/proc/sys/net/ipv6")
	ipv6 := err == nil
	deadline := time.Now().Add(simSettle)
	for {
		addrs := ipIn(t, s.Name, "addr", "show")
		settled := !strings.Contains(addrs, "tentative")
		if settled && ipv6 {
			routes := ipIn(t, s.Name, "-6", "route", "show", "table", "local")
			settled = strings.Contains(addrs, "inet6 fe80:") && strings.Contains(routes, "local fe80:")
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the link of %s has not settled after %s (IPv6 link-local address missing or tentative):\n%s", s.Name, simSettle, addrs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// IP returns the host's address on the LAN.
func (s *SimHost) IP() netip.Addr { return s.Addr.Addr() }

// Path returns the file of the host's network namespace.
func (s *SimHost) Path() string { return filepath.Join(netnsDir, s.Name) }

// Cmd returns a command that runs program with args in the host's network
// namespace (nsenter --net), and only there: mount, PID and the other
// namespaces stay the test's. The environment is the test's unless the
// caller sets Env.
func (s *SimHost) Cmd(program string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + s.Path(), "--", program}, args...)...)
}

// Exec runs program with args in the host's network namespace and returns
// its standard output and standard error together; err is not nil when
// it does not exit 0.
func (s *SimHost) Exec(program string, args ...string) (string, error) {
	out, err := s.Cmd(program, args...).CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s in %s: %w", program, strings.Join(args, " "), s.Name, err)
	}
	return string(out), err
}

// Run runs program with args in the host's network namespace, fails the
// test unless it exits 0, and returns its standard output.
func (s *SimHost) Run(t testing.TB, program string, args ...string) string {
	t.Helper()
	cmd := s.Cmd(program, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s in %s: %v\nstdout:\n%s\nstderr:\n%s", program, strings.Join(args, " "), s.Name, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Wrap writes an executable script into a temporary directory of the
// test that runs program, with the script's arguments, in the host's
// network namespace, and returns the script's path. The script execs
// nsenter, which execs program: the process that runs is program itself
// (os.Executable is program, the PID is the script's).
func (s *SimHost) Wrap(t testing.TB, program string) string {
	t.Helper()
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(program)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), filepath.Base(program))
	script := fmt.Sprintf("#!/bin/sh\nexec %s --net=%s -- %s \"$@\"\n", shellQuote(nsenter), shellQuote(s.Path()), shellQuote(abs))
	writeFile(t, path, []byte(script), 0o755)
	return path
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Snapshot returns the network state of the host as text: `ip -d link
// show`, `ip addr show`, `ip route show table all` and `nft list
// ruleset`, each under a header. Only the running timers of bridges and
// bridge ports (gc_timer, hello_timer, ...) are blanked out, as they tick;
// the listings hold no counters unless a rule asks for one, and the
// interface indexes of the links that stay do not change. Two snapshots
// are equal when the host's links, addresses, routes and nftables rules
// are; compare them with SnapshotDiff.
func (s *SimHost) Snapshot(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"ip", "-d", "link", "show"},
		{"ip", "addr", "show"},
		{"ip", "route", "show", "table", "all"},
		{"nft", "list", "ruleset"},
	} {
		fmt.Fprintf(&b, "### %s\n", strings.Join(c, " "))
		out := s.Run(t, c[0], c[1:]...)
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if l = strings.TrimRight(l, " \t"); l != "" {
				b.WriteString(bridgeTimerRE.ReplaceAllString(l, "$1 *") + "\n")
			}
		}
	}
	return b.String()
}

// bridgeTimerRE matches a running timer of a bridge or bridge port in
// `ip -d link` and its value.
var bridgeTimerRE = regexp.MustCompile(`\b(hello_timer|tcn_timer|topology_change_timer|gc_timer|message_age_timer|forward_delay_timer|hold_timer)\s+[0-9.]+`)

// SnapshotDiff returns the lines that differ between two snapshots, "-"
// for a line only in before and "+" for one only in after, in the order
// of the snapshots; "" when they are equal.
func SnapshotDiff(before, after string) string {
	a := strings.Split(strings.TrimRight(before, "\n"), "\n")
	b := strings.Split(strings.TrimRight(after, "\n"), "\n")
	// Longest common subsequence of lines: snapshots are small.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			out.WriteString("-" + a[i] + "\n")
			i++
		default:
			out.WriteString("+" + b[j] + "\n")
			j++
		}
	}
	return out.String()
}

// Do runs fn on an operating system thread that is in the host's network
// namespace, and returns its error. Sockets fn creates belong to the
// namespace for good and can be used from any goroutine afterwards. fn
// must create its sockets itself, on the calling goroutine: a goroutine it
// starts runs in the test's namespace, and a host name it resolves is
// looked up there (give addresses).
func (s *SimHost) Do(fn func() error) error {
	ns, err := os.Open(s.Path())
	if err != nil {
		return fmt.Errorf("enter %s: %w", s.Name, err)
	}
	defer ns.Close()
	done := make(chan error, 1)
	go func() {
		// The thread is given back to the runtime only if it returns
		// to the test's namespace; otherwise the goroutine ends locked
		// and the runtime discards the thread.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- fmt.Errorf("enter %s: %w", s.Name, err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter %s: %w", s.Name, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// DialContext dials address (an IP address and port: no name is looked
// up) from the host's network namespace.
func (s *SimHost) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := s.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens on address in the host's network namespace.
func (s *SimHost) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := s.Do(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// ListenPacket listens on address (UDP) in the host's network namespace.
func (s *SimHost) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := s.Do(func() error {
		var err error
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}

// HTTPGet fetches url (whose host is an IP address) from the host's
// network namespace, without a proxy and on a new connection, and returns
// the body. A status other than 200 is an error, as is ctx ending first.
func (s *SimHost) HTTPGet(ctx context.Context, url string) (string, error) {
	tr := &http.Transport{DialContext: s.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// UDPExchange sends msg in a datagram to address (an IP address and
// port) from the host's network namespace and returns the first datagram
// that comes back from there. It sends again every half second until an
// answer comes or ctx ends, and returns an error then: a refusal (ICMP
// port unreachable, syscall.ECONNREFUSED) if one came, else the last
// error.
func (s *SimHost) UDPExchange(ctx context.Context, address, msg string) (string, error) {
	c, err := s.DialContext(ctx, "udp", address)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	var last, refused error
	for {
		_, err := c.Write([]byte(msg))
		if err == nil {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			var n int
			if n, err = c.Read(buf); err == nil {
				return string(buf[:n]), nil
			}
		}
		last = err
		if errors.Is(err, syscall.ECONNREFUSED) {
			refused = err
		}
		select {
		case <-ctx.Done():
			if refused != nil {
				last = refused
			}
			return "", fmt.Errorf("UDP exchange with %s from %s: %w", address, s.Name, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ServeHTTP serves h on address in the host's network namespace until the
// test ends, and returns the address it listens on ("192.0.2.2:41234"
// for "192.0.2.2:0").
func (s *SimHost) ServeHTTP(t testing.TB, address string, h http.Handler) string {
	t.Helper()
	l, err := s.Listen("tcp", address)
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", address, s.Name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// nsName returns a namespace name unique to this process and call: a
// prefix, the PID, random hex and what.
func nsName(t testing.TB, what string) string {
	t.Helper()
	var b strings.Builder
	for _, r := range what {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return fmt.Sprintf("berth-sim-%d-%s-%s", os.Getpid(), randomHex(t, 3), b.String())
}

// addNetNS makes the named network namespace and has the test's cleanup
// delete it.
func addNetNS(t testing.TB, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { deleteNetNS(t, name) })
}

// deleteNetNS deletes a named network namespace, failing the test (and
// killing them) if processes are still in it.
func deleteNetNS(t testing.TB, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		var pids []int
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		if len(pids) > 0 {
			var desc []string
			for _, pid := range pids {
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				desc = append(desc, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")))
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Errorf("leak: processes left in network namespace %s: %s", name, strings.Join(desc, "; "))
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("cleanup: ip netns del %s: %v\n%s", name, err, out)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup: %s is still there after ip netns del (%v)", filepath.Join(netnsDir, name), err)
	}
}

// ipIn runs `ip -n ns args...`, fails the test unless it succeeds, and
// returns its output.
func ipIn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lastAddr returns the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := 0; i < 4; i++ {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	return netip.AddrFrom4(a)
}
