package netdev

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// busybox is the static busybox of Debian's busybox-static package; its
// ping sends the test traffic.
const busybox = "/bin/busybox"

// requireRoot skips tests that change the kernel's network state unless
// they run as root with the tools they use.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, links and mounts")
	}
	for _, tool := range []string{"nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("needs %s (Debian busybox-static): %v", busybox, err)
	}
}

// nsDir returns a fresh directory for the test's network namespaces, and
// removes its bind mount and itself after the test (after every namespace
// in it is gone, since cleanups run last-in first-out).
func nsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() {
		if err := RemoveNetNSDir(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// newNS creates a network namespace in dir named after name and the
// test's PID, and deletes it after the test, pass or fail.
func newNS(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%s-%d", name, os.Getpid()))
	if err := CreateNetNS(path); err != nil {
		t.Fatalf("CreateNetNS(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := DeleteNetNS(path); err != nil {
			t.Errorf("DeleteNetNS(%s): %v", path, err)
		}
	})
	return path
}

// openHost opens the namespace at path as a Host, closed after the test.
func openHost(t *testing.T, path string) *Host {
	t.Helper()
	h, err := OpenHost(path)
	if err != nil {
		t.Fatalf("OpenHost(%s): %v", path, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// in runs a command inside the network namespace at ns and returns its
// combined output; it fails the test when the command fails.
func in(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := inErr(ns, args...)
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(args, " "), filepath.Base(ns), err, out)
	}
	return out
}

// inErr runs a command inside the network namespace at ns.
func inErr(ns string, args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + ns, "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ping reports whether the namespace at ns gets an answer from addr,
// trying a few times so that neighbour resolution cannot fail it.
func ping(ns string, addr netip.Addr) (string, bool) {
	var out string
	for range 3 {
		o, err := inErr(ns, busybox, "ping", "-c", "1", "-W", "2", addr.String())
		if err == nil {
			return o, true
		}
		out = o
	}
	return out, false
}

// mustPing fails the test unless ns reaches addr.
func mustPing(t *testing.T, ns string, addr netip.Addr) {
	t.Helper()
	if out, ok := ping(ns, addr); !ok {
		t.Fatalf("ping %s from %s: no answer\n%s", addr, filepath.Base(ns), out)
	}
}

// mustNotPing fails the test if ns reaches addr.
func mustNotPing(t *testing.T, ns string, addr netip.Addr) {
	t.Helper()
	if out, err := inErr(ns, busybox, "ping", "-c", "2", "-W", "1", addr.String()); err == nil {
		t.Fatalf("ping %s from %s: answered, want no answer\n%s", addr, filepath.Base(ns), out)
	}
}

// netnsIno returns the inode of a namespace file.
func netnsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// snapshot returns the kernel's view of a namespace's links, addresses and
// routes, as `ip` prints them.
func snapshot(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-d", "link"},
		{"ip", "addr"},
		{"ip", "route"},
		{"ip", "-6", "route"},
	} {
		b.WriteString("$ " + strings.Join(args, " ") + "\n")
		b.WriteString(in(t, ns, args...))
	}
	return normalizeSnapshot(b.String())
}

// volatile matches what `ip` prints that changes with time alone: bridge
// timers and the state of duplicate address detection.
var volatile = regexp.MustCompile(`(_timer)\s+[0-9.]+| tentative`)

// normalizeSnapshot removes what changes with time alone from a snapshot.
func normalizeSnapshot(s string) string {
	return volatile.ReplaceAllString(s, "$1")
}

// diffLines returns the lines of b that are not in a, and those of a not in
// b, for failure messages.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// ctx returns the test's context.
func ctx(t *testing.T) context.Context { return t.Context() }
