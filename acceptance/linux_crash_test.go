package acceptance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
	"golang.org/x/sys/unix"
)

// sayScript prints WORD at start, then the content of /tmp/say whenever
// that file appears (see say).
const sayScript = `echo %s
while :; do
  if [ -f /tmp/say ]; then cat /tmp/say; rm /tmp/say; fi
  sleep 0.1
done`

// say makes a container running sayScript print line.
func (h *linuxHost) say(address, line string) {
	h.t.Helper()
	h.exec(address, "sh", "-c", "echo "+line+" > /tmp/say.tmp && mv /tmp/say.tmp /tmp/say")
}

// crashConfig declares n long-running containers with restart = "always".
func crashConfig(ref string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `
container "c%d" {
  network_mode = "none"
  image   = %q
  command = ["sh", "-c", %q]
  restart = "always"
%s}
`, i, ref, fmt.Sprintf(sayScript, fmt.Sprintf("c%d-up", i)), quick)
	}
	return b.String()
}

// TestLinuxSurvivesKills kills berth apply, the shims' parent, with
// SIGKILL while containers start: the containers keep running under their
// shims, berth ps shows them supervised and the next apply converges
// without duplicates. Then it simulates a reboot (shims and containers
// killed, mounts and cgroups gone): the next apply brings them back.
func TestLinuxSurvivesKills(t *testing.T) {
	requireLinux(t)
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		t.Skip("this test watches cgroup v1 memory directories; the host has no /sys/fs/cgroup/memory")
	}
	t.Parallel()
	const n = 4
	h := newLinuxHost(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	testenv.SaveDocker(t, archive, "example.test/busybox:1", testenv.BusyboxImage(t, testenv.ImageConfig{}))
	h.mustBerth(0, nil, "image", "load", "-i", archive)
	h.write(crashConfig("example.test/busybox:1", n))

	// Start apply and kill it as soon as the first container runs. berth
	// serves its built-in providers in its own process, so berth apply is
	// also the parent of the containers' shims, each the parent of its
	// container's first process.
	apply := h.startBerth("apply", "-auto-approve", "-parallelism", "1", h.cfgDir)
	done := make(chan struct{})
	var applyErr error
	go func() { applyErr = apply.Wait(); close(done) }()
	cgDir := filepath.Join("/sys/fs/cgroup/memory", h.cgParent)
	deadline := time.Now().Add(eventually)
watch:
	for {
		ents, _ := os.ReadDir(cgDir)
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			for _, pid := range h.containerPids(e.Name()) {
				if ppid(ppid(pid)) == apply.Process.Pid {
					break watch
				}
			}
		}
		select {
		case <-done:
			break watch // too late: detected below
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no container process under a shim of berth apply within %s of the apply", eventually)
		}
		time.Sleep(time.Millisecond)
	}
	syscall.Kill(apply.Process.Pid, syscall.SIGKILL)
	<-done
	if applyErr == nil || !strings.Contains(applyErr.Error(), "killed") {
		t.Fatalf("berth apply was not killed during the apply (it ended with %v): the test proves nothing", applyErr)
	}
	shims := h.shimPids()
	if len(shims) == 0 {
		t.Fatalf("no shim runs after berth apply was killed")
	}
	// Installed beside berth, the small berth-shim program is the shim.
	for _, p := range shims {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); filepath.Base(exe) != "berth-shim" {
			t.Errorf("shim %d runs %q, not the berth-shim beside berth", p, exe)
		}
	}
	// The containers started so far keep running under their shims.
	time.Sleep(500 * time.Millisecond) // let a wrongly tied container die
	for _, p := range shims {
		if !alive(p) {
			t.Errorf("the shim %d died with its parent", p)
		}
	}
	rows := h.ps()
	running := 0
	for addr, r := range rows {
		switch r.State {
		case "running":
			running++
			if pid := h.containerInit(h.fullID(r.ID)); pid == 0 {
				t.Errorf("berth ps says %s runs but its cgroup has no process", addr)
			}
		case "running (unsupervised)":
			t.Errorf("%s lost its shim when berth was killed: %+v", addr, r)
		}
	}
	if running == 0 {
		t.Errorf("no container runs after berth apply was killed:\n%v", rows)
	}
	t.Logf("%d of %d containers ran when apply was killed", running, n)

	// The next apply converges: every container once, each supervised.
	var plan string
	h.apply()
	h.converged()
	h.checkAllRunning(n)

	// Supervision survived the kills: a killed container process is
	// restarted by its shim (restart = "always").
	id := h.id("container.c0")
	pid := h.waitContainerInit(id)
	syscall.Kill(pid, syscall.SIGKILL)
	h.waitPs("container.c0", "restarted by its shim", func(r psRow) bool {
		np := h.containerInit(id)
		return r.State == "running" && r.Restarts >= 1 && np != 0 && np != pid
	})

	// A shim killed alone: its container keeps running, unsupervised,
	// and its output is not lost; apply gives it a new shim that adopts
	// it (docs/linux-provider.md, Shims).
	id1 := h.id("container.c1")
	pid1 := h.waitContainerInit(id1)
	var shim1 int
	for _, p := range h.shimPids() {
		if strings.Contains(cmdline(p), id1) {
			shim1 = p
		}
	}
	if shim1 == 0 {
		t.Fatalf("no shim of container.c1 (%s) among %v", id1, h.shimPids())
	}
	syscall.Kill(shim1, syscall.SIGKILL)
	h.waitPs("container.c1", "unsupervised", func(r psRow) bool { return r.State == "running (unsupervised)" })
	h.say("container.c1", "said-while-unsupervised")
	time.Sleep(300 * time.Millisecond) // give the container time to write it
	if !alive(pid1) {
		t.Fatalf("container.c1's process died when it wrote output without its shim")
	}
	plan = h.planChanges()
	requireContains(t, "the plan after the shim was killed", plan, "container.c1", `"unsupervised" -> "running"`)
	h.apply()
	h.converged()
	h.checkAllRunning(n)
	if np := h.containerInit(id1); np != pid1 {
		t.Errorf("the new shim restarted container.c1 (PID %d -> %d) instead of adopting it", pid1, np)
	}
	h.waitLogs("container.c1", "said-while-unsupervised")
	h.say("container.c1", "said-after-adoption")
	h.waitLogs("container.c1", "said-after-adoption")

	// A reboot: every shim and container process dies, mounts and
	// cgroups are gone; berth's state directory stays.
	h.simulateReboot()
	rows = h.ps()
	for addr, r := range rows {
		if strings.HasPrefix(r.State, "running") {
			t.Errorf("after the reboot berth ps says %s is %q", addr, r.State)
		}
	}
	plan = h.planChanges()
	requireContains(t, "the plan after the reboot", plan, `"stopped" -> "running"`)
	h.apply()
	h.converged()
	h.checkAllRunning(n)
	for i := 0; i < n; i++ {
		h.waitLogs(fmt.Sprintf("container.c%d", i), fmt.Sprintf("c%d-up", i))
	}
}

// fullID returns the full ID of the container whose ID starts with
// prefix (berth ps shows 12 characters), from the container cgroups of the
// host.
func (h *linuxHost) fullID(prefix string) string {
	ents, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup/memory", h.cgParent))
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			return e.Name()
		}
	}
	return prefix
}

// checkAllRunning checks that the host has exactly n containers, each
// running under exactly one shim of its own.
func (h *linuxHost) checkAllRunning(n int) {
	h.t.Helper()
	rows := h.ps()
	if len(rows) != n {
		h.t.Errorf("berth ps lists %d containers, want %d:\n%v", len(rows), n, rows)
	}
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("container.c%d", i)
		r := h.waitPs(addr, "running", func(r psRow) bool { return r.State == "running" })
		if h.containerInit(h.fullID(r.ID)) == 0 {
			h.t.Errorf("%s: no process in its cgroup", addr)
		}
	}
	if shims := h.shimPids(); len(shims) != n {
		h.t.Errorf("%d shims run, want %d: %v", len(shims), n, shims)
	}
	ents, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup/memory", h.cgParent))
	var cgs []string
	for _, e := range ents {
		if e.IsDir() {
			cgs = append(cgs, e.Name())
		}
	}
	if len(cgs) != n {
		h.t.Errorf("%d container cgroups, want %d: %v", len(cgs), n, cgs)
	}
}

// simulateReboot kills the host's shims and container processes, then
// unmounts its containers' root filesystems and removes their cgroups, as
// a reboot would.
func (h *linuxHost) simulateReboot() {
	h.t.Helper()
	for _, p := range h.shimPids() {
		syscall.Kill(p, syscall.SIGKILL)
	}
	waitFor(h.t, "every container process to die", func() (bool, string) {
		var left []int
		for _, parent := range h.cgroupParents() {
			ents, _ := os.ReadDir(parent)
			for _, e := range ents {
				if !e.IsDir() {
					continue
				}
				b, _ := os.ReadFile(filepath.Join(parent, e.Name(), "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					var pid int
					fmt.Sscan(f, &pid)
					syscall.Kill(pid, syscall.SIGKILL)
					left = append(left, pid)
				}
			}
		}
		for _, p := range h.shimPids() {
			left = append(left, p)
		}
		return len(left) == 0, fmt.Sprintf("%v", left)
	})
	mounts := mountsUnder(h.stateDir)
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
			h.t.Fatalf("unmount %s: %v", mounts[i], err)
		}
	}
	for _, parent := range h.cgroupParents() {
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if e.IsDir() {
				if err := removeCgroup(filepath.Join(parent, e.Name())); err != nil {
					h.t.Fatalf("remove cgroup: %v", err)
				}
			}
		}
	}
}
