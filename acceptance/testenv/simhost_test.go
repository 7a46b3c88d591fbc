package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSnapshotDiff(t *testing.T) {
	for _, tc := range []struct {
		name, before, after, want string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"equal_without_final_newline", "a\nb", "a\nb\n", ""},
		{"added", "a\nc\n", "a\nb\nc\n", "+b\n"},
		{"removed", "a\nb\nc\n", "a\nc\n", "-b\n"},
		{"changed", "a\nb\nc\n", "a\nB\nc\n", "-b\n+B\n"},
		{"appended", "a\n", "a\nx\ny\n", "+x\n+y\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SnapshotDiff(tc.before, tc.after); got != tc.want {
				t.Errorf("SnapshotDiff = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSnapshotBlanksBridgeTimers(t *testing.T) {
	line := "    bridge forward_delay 1500 hello_time 200 bridge_id 8000.52:dc:95:be:10:14 hello_timer    0.00 tcn_timer    0.00 topology_change_timer    0.00 gc_timer  299.52 group_fwd_mask 0"
	want := "    bridge forward_delay 1500 hello_time 200 bridge_id 8000.52:dc:95:be:10:14 hello_timer * tcn_timer * topology_change_timer * gc_timer * group_fwd_mask 0"
	if got := bridgeTimerRE.ReplaceAllString(line, "$1 *"); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	port := "    bridge_slave state forwarding priority 32 message_age_timer    0.00 forward_delay_timer    0.00 hold_timer    0.00 config_pending 0"
	if got := bridgeTimerRE.ReplaceAllString(port, "$1 *"); got != "    bridge_slave state forwarding priority 32 message_age_timer * forward_delay_timer * hold_timer * config_pending 0" {
		t.Errorf("bridge port: %q", got)
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.0/24": "192.0.2.255", "10.0.0.0/8": "10.255.255.255", "10.1.2.4/30": "10.1.2.7"} {
		if got := lastAddr(mustPrefix(t, in)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runScript runs an executable and returns its output.
func runScript(path string, args ...string) (string, error) {
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

// TestSimHosts makes a LAN with two hosts and checks that they talk over
// it (TCP and UDP, from Go and from programs run with Cmd), that programs
// keep the test's mount namespace, that Snapshot sees a change and is
// stable otherwise, and that the cleanup removes the namespaces.
func TestSimHosts(t *testing.T) {
	RequireNetTools(t)
	var names []string
	t.Run("hosts", func(t *testing.T) {
		lan := NewLAN(t)
		a := NewSimHost(t, lan, "a")
		b := NewSimHost(t, lan, "b")
		names = []string{lan.Name, a.Name, b.Name}
		for _, n := range names {
			if !strings.Contains(n, fmt.Sprint(os.Getpid())) {
				t.Errorf("namespace name %q lacks the PID", n)
			}
		}
		if a.IP().String() != "192.0.2.1" || b.IP().String() != "192.0.2.2" {
			t.Fatalf("addresses %s and %s, want 192.0.2.1 and 192.0.2.2", a.IP(), b.IP())
		}
		if out := a.Run(t, "ip", "-o", "-4", "addr", "show", "dev", a.Link); !strings.Contains(out, "inet 192.0.2.1/24") {
			t.Errorf("ip addr in %s: %s", a.Name, out)
		}

		// Only the network namespace is entered.
		for _, ns := range []string{"mnt", "pid", "net"} {
			self, err := os.Readlink("/proc/self/ns/" + ns)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSpace(a.Run(t, "readlink", "/proc/self/ns/"+ns))
			if (got == self) != (ns != "net") {
				t.Errorf("namespace %s of a program run in %s: %s, the test's %s", ns, a.Name, got, self)
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// TCP: b serves the address it sees; a fetches it from Go and
		// with busybox wget.
		srv := b.ServeHTTP(t, b.IP().String()+":0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintln(w, host)
		}))
		body, err := a.HTTPGet(ctx, "http://"+srv+"/")
		if err != nil || body != "192.0.2.1\n" {
			t.Errorf("GET from a: %q, %v; want a's address", body, err)
		}
		if _, err := os.Stat("/bin/busybox"); err == nil {
			if out := a.Run(t, "/bin/busybox", "wget", "-q", "-O-", "http://"+srv+"/"); out != "192.0.2.1\n" {
				t.Errorf("busybox wget from a: %q", out)
			}
		}
		// The test's own namespace does not reach the LAN.
		if _, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", srv); err == nil {
			t.Errorf("the test's namespace reached %s on the simulated LAN", srv)
		}

		// UDP echo.
		pc, err := b.ListenPacket("udp", b.IP().String()+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte("echo "+string(buf[:n])+" from "+from.String()), from)
			}
		}()
		got, err := a.UDPExchange(ctx, pc.LocalAddr().String(), "hi")
		if err != nil || !strings.HasPrefix(got, "echo hi from 192.0.2.1:") {
			t.Errorf("UDP exchange: %q, %v", got, err)
		}
		// Nothing listens: refused, not answered.
		short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
		defer cancelShort()
		if got, err := a.UDPExchange(short, b.IP().String()+":9", "x"); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("UDP exchange with a closed port: %q, %v; want connection refused", got, err)
		}

		// Wrap runs a program in the namespace.
		w := a.Wrap(t, "/bin/sh")
		out, err := runScript(w, "-c", "ip -o -4 addr show dev eth0")
		if err != nil || !strings.Contains(out, "192.0.2.1/24") {
			t.Errorf("wrapped sh: %q, %v", out, err)
		}

		// Snapshot: stable, and sees a new link, address, route and
		// table, and nothing once they are gone again.
		before := a.Snapshot(t)
		if again := a.Snapshot(t); again != before {
			t.Fatalf("two snapshots differ:\n%s", SnapshotDiff(before, again))
		}
		for _, h := range []string{"### ip -d link show", "### ip addr show", "### ip route show table all", "### nft list ruleset", "lo:", "eth0@", "192.0.2.1/24"} {
			if !strings.Contains(before, h) {
				t.Errorf("the snapshot lacks %q:\n%s", h, before)
			}
		}
		a.Run(t, "ip", "link", "add", "snap0", "type", "veth", "peer", "name", "snap1")
		a.Run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "snap0")
		a.Run(t, "ip", "link", "set", "snap0", "up")
		a.Run(t, "nft", "add", "table", "ip", "snaptest")
		a.Run(t, "ip", "link", "add", "snapbr", "type", "bridge")
		a.Run(t, "ip", "link", "set", "snapbr", "up")
		a.Run(t, "ip", "link", "set", "snap1", "master", "snapbr", "up")
		for deadline := time.Now().Add(simSettle); !strings.Contains(a.Run(t, "ip", "link", "show", "snapbr"), "state UP"); {
			if time.Now().After(deadline) {
				t.Fatalf("snapbr is not up after %s", simSettle)
			}
			time.Sleep(50 * time.Millisecond)
		}
		during := a.Snapshot(t)
		time.Sleep(300 * time.Millisecond) // the bridge's timers tick
		if d := SnapshotDiff(during, a.Snapshot(t)); d != "" {
			t.Errorf("two snapshots of a host with a bridge differ:\n%s", d)
		}
		diff := SnapshotDiff(before, during)
		for _, want := range []string{"+", "snap0", "snapbr", "198.51.100.1/24", "198.51.100.0/24", "table ip snaptest"} {
			if !strings.Contains(diff, want) {
				t.Errorf("the diff after adding a link, an address and a table lacks %q:\n%s", want, diff)
			}
		}
		a.Run(t, "ip", "link", "del", "snap0")
		a.Run(t, "ip", "link", "del", "snapbr")
		a.Run(t, "nft", "delete", "table", "ip", "snaptest")
		if diff := SnapshotDiff(before, a.Snapshot(t)); diff != "" {
			t.Errorf("the snapshot differs after the link and table are gone:\n%s", diff)
		}
	})
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s is left after the test (%v)", n, err)
		}
	}
}
