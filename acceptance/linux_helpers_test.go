package acceptance

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// eventually is the generous deadline of every eventual state the linux
// tests wait for. It is a safety net for a loaded machine, never a speed
// requirement.
const eventually = 30 * time.Second

// linuxHost is a simulated host for the linux provider: a state
// directory, a configuration directory and a cgroup parent of its own, all
// checked for leftovers and removed when the test ends.
type linuxHost struct {
	*host
	// root is the directory holding the state and configuration
	// directories.
	root string
	// cgParent is the cgroup under which berth makes the containers'
	// cgroups, without the leading slash ("berth-test-…").
	cgParent string
}

// requireLinux skips the test unless it runs as root on Linux with the
// tools the linux provider's acceptance tests need.
func requireLinux(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the linux provider's acceptance tests need root (namespaces, cgroups, overlayfs mounts)")
	}
	for bin, pkg := range map[string]string{"/bin/busybox": "busybox-static", "docker-registry": "docker-registry", "htpasswd": "apache2-utils"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is missing (Debian package %s)", bin, pkg)
		}
	}
}

// newLinuxHost returns a host whose berth runs put container cgroups
// under a cgroup parent unique to the test. Its cleanup destroys
// everything berth owns and then checks (and scrubs) that no process,
// mount or cgroup of the host is left. Start registries before calling
// it, so that they are still up while the host is destroyed.
func newLinuxHost(t *testing.T) *linuxHost {
	t.Helper()
	requireLinux(t)
	h := newHost(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	lh := &linuxHost{host: h, root: filepath.Dir(h.stateDir), cgParent: "berth-test-" + hex.EncodeToString(b[:])}
	h.env = append(h.env, "BERTH_CGROUP_PARENT=/"+lh.cgParent)
	t.Cleanup(lh.teardown)
	return lh
}

// teardown destroys what berth owns on the host and checks for leaks.
func (h *linuxHost) teardown() {
	t := h.t
	t.Helper()
	// Destroy with an empty configuration, so that a test's invalid or
	// prevent_destroy configuration cannot stop the cleanup.
	empty := filepath.Join(h.root, "cleanup-cfg")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "main.hcl"), []byte("# nothing: destroy everything berth owns\n"), 0o644); err != nil {
		t.Error(err)
	}
	r := h.berth(nil, "destroy", "-auto-approve", empty)
	if r.code != 0 {
		t.Errorf("cleanup: berth destroy exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	h.checkNoLeaks()
}

// checkNoLeaks fails the test for every process, mount and cgroup of
// this host that is left, and removes them.
func (h *linuxHost) checkNoLeaks() {
	t := h.t
	t.Helper()
	// Processes: shims and providers name the state directory in their
	// command line or environment; container processes sit in the
	// host's cgroups. They may still be on their way out: wait a little.
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		left = h.hostProcesses()
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("leak: processes left after destroy: %s", strings.Join(left, "; "))
		for _, p := range left {
			if pid, err := strconv.Atoi(strings.Fields(p)[0]); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Mounts under the host's directories, deepest first.
	mounts := mountsUnder(h.root)
	if len(mounts) > 0 {
		t.Errorf("leak: mounts left after destroy: %v", mounts)
		for i := len(mounts) - 1; i >= 0; i-- {
			if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
				t.Logf("cleanup: unmount %s: %v", mounts[i], err)
			}
		}
	}
	// Cgroups: the parent itself stays behind by design (libcontainer
	// never removes it); anything under it is a leak.
	for _, parent := range h.cgroupParents() {
		var dirs []string
		filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != parent {
				dirs = append(dirs, p)
			}
			return nil
		})
		if len(dirs) > 0 {
			t.Errorf("leak: cgroups left after destroy: %v", dirs)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range append(dirs, parent) {
			if err := removeCgroup(d); err != nil {
				t.Errorf("cleanup: remove cgroup %s: %v", d, err)
			}
		}
	}
}

// hostProcesses lists "PID cmdline" of the processes that belong to the
// host: their command line or environment names its state directory, or
// they sit in one of its cgroups.
func (h *linuxHost) hostProcesses() []string {
	pids := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(cmd), h.stateDir) || strings.Contains(string(env), "BERTH_STATE_DIR="+h.stateDir+"\x00") {
			pids[pid] = true
		}
	}
	for _, parent := range h.cgroupParents() {
		filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids[pid] = true
				}
			}
			return nil
		})
	}
	var out []string
	for pid := range pids {
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && strings.HasPrefix(string(st[i+1:]), " Z") {
				continue // a zombie waiting for its parent
			}
		}
		out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")))
	}
	sort.Strings(out)
	return out
}

// cgroupParents returns the directories of the host's cgroup parent that
// exist, in every hierarchy (cgroup v1 controllers, the v2 hierarchy of a
// hybrid host, or a pure v2 host's root).
func (h *linuxHost) cgroupParents() []string {
	var out []string
	matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", h.cgParent))
	out = append(out, matches...)
	if fi, err := os.Stat(filepath.Join("/sys/fs/cgroup", h.cgParent)); err == nil && fi.IsDir() {
		out = append(out, filepath.Join("/sys/fs/cgroup", h.cgParent))
	}
	sort.Strings(out)
	return out
}

// removeCgroup removes an empty cgroup directory, waiting a little for
// its last processes to be gone.
func removeCgroup(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || os.IsNotExist(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mountsUnder returns the mount points of this mount namespace under dir,
// in the order of /proc/self/mountinfo.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMountinfo decodes the octal escapes (\040) of a mountinfo field.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// apply runs `berth apply -auto-approve` and fails the test unless it
// succeeds.
func (h *linuxHost) apply(env ...string) result {
	h.t.Helper()
	return h.mustBerth(0, env, "apply", "-auto-approve", h.cfgDir)
}

// converged fails the test unless `berth plan -detailed-exitcode` finds
// nothing to change.
func (h *linuxHost) converged(env ...string) {
	h.t.Helper()
	h.mustBerth(0, env, "plan", "-detailed-exitcode", h.cfgDir)
}

// planChanges runs `berth plan -detailed-exitcode`, fails the test unless
// it reports changes, and returns the plan's text.
func (h *linuxHost) planChanges(env ...string) string {
	h.t.Helper()
	return h.mustBerth(2, env, "plan", "-detailed-exitcode", h.cfgDir).stdout
}

// id returns the ID of the object at address, from `berth show -json`.
func (h *linuxHost) id(address string) string {
	h.t.Helper()
	for _, r := range h.show().Resources {
		if r.Address == address {
			if r.ID == "" {
				h.t.Fatalf("%s has no ID in berth show", address)
			}
			return r.ID
		}
	}
	h.t.Fatalf("%s is not in berth show", address)
	return ""
}

// psRow is one line of `berth ps`.
type psRow struct {
	Address, ID, State, Health, Uptime, Image, IP, Ports string
	Restarts                                             int
}

// ps runs `berth ps` and returns its rows by address.
func (h *linuxHost) ps() map[string]psRow {
	h.t.Helper()
	r := h.mustBerth(0, nil, "ps")
	rows, err := parsePs(r.stdout)
	if err != nil {
		h.t.Fatalf("berth ps: %v\n%s", err, r.stdout)
	}
	return rows
}

// parsePs reads the table `berth ps` prints: the columns start where
// their header does.
func parsePs(out string) (map[string]psRow, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ADDRESS") {
		return nil, fmt.Errorf("no header")
	}
	head := lines[0]
	names := []string{"ADDRESS", "ID", "STATE", "HEALTH", "UPTIME", "RESTARTS", "IMAGE", "IP", "PORTS"}
	starts := make([]int, len(names))
	for i, n := range names {
		starts[i] = strings.Index(head, n)
		if starts[i] < 0 || (i > 0 && starts[i] <= starts[i-1]) {
			return nil, fmt.Errorf("header %q lacks column %s", head, n)
		}
	}
	rows := map[string]psRow{}
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		cell := func(i int) string {
			from := starts[i]
			if from >= len(l) {
				return ""
			}
			to := len(l)
			if i+1 < len(starts) && starts[i+1] < to {
				to = starts[i+1]
			}
			return strings.TrimSpace(l[from:to])
		}
		r := psRow{Address: cell(0), ID: cell(1), State: cell(2), Health: cell(3), Uptime: cell(4), Image: cell(6), IP: cell(7), Ports: cell(8)}
		n, err := strconv.Atoi(cell(5))
		if err != nil {
			return nil, fmt.Errorf("restarts of %q: %v", l, err)
		}
		r.Restarts = n
		rows[r.Address] = r
	}
	return rows, nil
}

// waitFor polls cond until it holds, and fails the test with what cond
// last said when it has not held within eventually.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	waitWithin(t, eventually, what, cond)
}

// waitWithin polls cond every 200ms until it holds, and fails the test
// with what cond last said when it has not held within deadline.
func waitWithin(t *testing.T, deadline time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("waited %s for %s; last seen: %s", deadline, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitPs waits until the `berth ps` row of address satisfies cond and
// returns it.
func (h *linuxHost) waitPs(address, what string, cond func(psRow) bool) psRow {
	h.t.Helper()
	var row psRow
	waitFor(h.t, address+" "+what, func() (bool, string) {
		r := h.mustBerth(0, nil, "ps")
		rows, err := parsePs(r.stdout)
		if err != nil {
			return false, err.Error()
		}
		var ok bool
		row, ok = rows[address]
		return ok && cond(row), r.stdout
	})
	return row
}

// waitLogs waits until `berth logs ADDR` (stdout and stderr) contains
// want and returns the logs.
func (h *linuxHost) waitLogs(address, want string) string {
	h.t.Helper()
	var out string
	waitFor(h.t, fmt.Sprintf("%q in the logs of %s", want, address), func() (bool, string) {
		r := h.berth(nil, "logs", address)
		out = r.stdout + r.stderr
		return r.code == 0 && strings.Contains(out, want), out
	})
	return out
}

// cgroupDir returns the cgroup directory of container id in the v1
// controller ctrl ("memory"), or in the v2 hierarchy when the host has no
// v1 hierarchy for it.
func (h *linuxHost) cgroupDir(ctrl, id string) string {
	v1 := filepath.Join("/sys/fs/cgroup", ctrl, h.cgParent, id)
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctrl)); err == nil {
		return v1
	}
	return filepath.Join("/sys/fs/cgroup", h.cgParent, id)
}

// memoryLimitFile is the file holding the memory limit of container id.
func (h *linuxHost) memoryLimitFile(id string) string {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		return filepath.Join(h.cgroupDir("memory", id), "memory.limit_in_bytes")
	}
	return filepath.Join("/sys/fs/cgroup", h.cgParent, id, "memory.max")
}

// memoryLimit reads the live memory limit of container id from its cgroup.
func (h *linuxHost) memoryLimit(id string) (int64, error) {
	b, err := os.ReadFile(h.memoryLimitFile(id))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// containerPids returns the processes in the cgroup of container id.
func (h *linuxHost) containerPids(id string) []int {
	b, err := os.ReadFile(filepath.Join(h.cgroupDir("memory", id), "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// containerInit returns the PID (on the host) of the init process of
// container id: the process of its cgroup whose parent is outside it.
func (h *linuxHost) containerInit(id string) int {
	pids := h.containerPids(id)
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	for _, p := range pids {
		if !in[ppid(p)] {
			return p
		}
	}
	return 0
}

// waitContainerInit waits until container id has a running init process
// and returns its PID.
func (h *linuxHost) waitContainerInit(id string) int {
	h.t.Helper()
	var pid int
	waitFor(h.t, "the process of container "+id, func() (bool, string) {
		pid = h.containerInit(id)
		return pid > 0, fmt.Sprintf("pids %v", h.containerPids(id))
	})
	return pid
}

// ppid returns the parent PID of pid, or 0.
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// cmdline returns the command line of pid, arguments joined by spaces.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}

// shimPids returns the PIDs of the host's shims: processes whose command
// line is `berth-shim DIR` (or `berth __shim DIR`) with DIR under the
// state directory.
func (h *linuxHost) shimPids() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if h.isShim(pid) && !h.isShim(ppid(pid)) {
			// A shim's child with the shim's command line is a fork
			// on its way to exec (the container's init), not a shim.
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// isShim reports whether pid's command line is that of one of the host's
// shims.
func (h *linuxHost) isShim(pid int) bool {
	c := cmdline(pid)
	return (strings.Contains(c, "berth-shim ") || strings.Contains(c, "__shim")) && strings.Contains(c, h.stateDir)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(string(b[i+1:]), " Z")
}

// requireContains fails the test unless s contains every one of wants.
func requireContains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

// requireNotContains fails the test if s contains any of bad.
func requireNotContains(t *testing.T, what, s string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if b != "" && strings.Contains(s, b) {
			t.Errorf("%s contains %q, which it must not:\n%s", what, b, s)
		}
	}
}

// quick is what every test container shares: a short stop timeout, as
// busybox's sh and sleep ignore SIGTERM as PID 1.
const quick = "  stop_timeout = 1\n"
