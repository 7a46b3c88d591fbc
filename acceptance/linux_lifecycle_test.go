package acceptance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
)

// defaultsImage is an image whose Entrypoint prints its arguments, working
// directory, user and $FOO, so that a container's logs show how berth
// combined the image's defaults with the container's settings.
func defaultsImage() testenv.ImageConfig {
	return testenv.ImageConfig{
		Entrypoint: []string{"/bin/sh", "-c", "echo \"args=[$*] pwd=$(pwd) uid=$(id -u) foo=$FOO\"; exec sleep 3600", "sh"},
		Cmd:        []string{"img-cmd"},
		Env:        []string{"FOO=bar"},
		WorkingDir: "/srv",
		User:       "nobody",
		Files:      map[string]string{"srv/.keep": ""},
	}
}

// TestLinuxLifecycle applies, plans and destroys a registry, an image, a
// volume and containers, and checks that containers run with the image's
// defaults combined with their own settings as Docker combines them.
func TestLinuxLifecycle(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	testenv.Push(t, reg, "tools/defaults:1", testenv.BusyboxImage(t, defaultsImage()))
	h := newLinuxHost(t)
	h.write(fmt.Sprintf(`
registry "local" {
  address  = %q
  insecure = true
}

image "app" {
  ref      = %q
  registry = registry.local
}

volume "data" {}

container "defaults" {
  network_mode = "none"
  image = image.app
  mount {
    type   = "volume"
    source = volume.data
    target = "/data"
  }
%[3]s}

container "command" {
  network_mode = "none"
  image   = image.app
  command = ["x", "y"]
%[3]s}

container "entrypoint" {
  network_mode = "none"
  image      = image.app
  entrypoint = ["/bin/sh", "-c", "echo \"ep-only args=[$*]\"; exec sleep 3600", "sh"]
%[3]s}

container "overrides" {
  network_mode = "none"
  image       = image.app
  env         = { FOO = "baz" }
  working_dir = "/tmp"
  user        = "0"
%[3]s}
`, reg.Addr, reg.Ref("tools/defaults:1"), quick))

	plan := h.planChanges()
	requireContains(t, "the first plan", plan,
		`+ resource "registry" "local"`, `+ resource "image" "app"`, `+ resource "volume" "data"`,
		`+ resource "container" "defaults"`, "Plan: 7 to add, 0 to change, 0 to destroy.")
	h.apply()
	h.converged()

	for addr, want := range map[string]string{
		"container.defaults":   "args=[img-cmd] pwd=/srv uid=65534 foo=bar",
		"container.command":    "args=[x y] pwd=/srv uid=65534 foo=bar",
		"container.entrypoint": "ep-only args=[]",
		"container.overrides":  "args=[img-cmd] pwd=/tmp uid=0 foo=baz",
	} {
		h.waitLogs(addr, want)
	}
	// exec runs with the container's environment, directory and user.
	r := h.mustBerth(0, nil, "exec", "container.defaults", "--", "sh", "-c", "echo $FOO; pwd; id -u")
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != "bar /srv 65534" {
		t.Errorf("exec in container.defaults printed %q, want bar /srv 65534", r.stdout)
	}
	rows := h.ps()
	for _, addr := range []string{"container.defaults", "container.command", "container.entrypoint", "container.overrides"} {
		if rows[addr].State != "running" {
			t.Errorf("berth ps: %s is %q, want running", addr, rows[addr].State)
		}
	}

	// destroy removes everything; the cleanup then checks that nothing
	// (process, mount, cgroup) is left.
	h.mustBerth(0, nil, "destroy", "-auto-approve", h.cfgDir)
	if rows := h.ps(); len(rows) != 0 {
		t.Errorf("berth ps after destroy lists %v", rows)
	}
	if s := h.show(); len(s.Resources) != 0 {
		t.Errorf("berth show after destroy lists %v", s.Resources)
	}
	ls := h.mustBerth(0, nil, "image", "ls")
	requireNotContains(t, "image ls after destroy", ls.stdout, reg.Ref("tools/defaults:1"))
	vols, _ := os.ReadDir(filepath.Join(h.stateDir, "providers", "linux", "volumes"))
	for _, v := range vols {
		if v.IsDir() && strings.HasPrefix(v.Name(), "data") {
			t.Errorf("the volume's directory %s is left after destroy", v.Name())
		}
	}
	h.checkNoLeaks()
}

// webConfig is one long-running container with a memory limit, a command
// and optional extra lines.
func webConfig(imageRef, memory, word, extra string) string {
	return fmt.Sprintf(`
container "web" {
  network_mode = "none"
  image   = %q
  command = %s
  restart = "always"
  resources {
    memory = %q
  }
%s%s}
`, imageRef, hclList(sleeper(word)), memory, extra, quick)
}

// overlapWatcher samples which containers of a host have processes, to
// tell whether two of them ever ran at the same time.
type overlapWatcher struct {
	h    *linuxHost
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	// together records, for each sample, the container IDs that had
	// processes; only samples with two or more are kept.
	together [][]string
	samples  int
}

func watchOverlap(h *linuxHost) *overlapWatcher {
	w := &overlapWatcher{h: h, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			ents, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup/memory", h.cgParent))
			var live []string
			for _, e := range ents {
				if e.IsDir() && len(h.containerPids(e.Name())) > 0 {
					live = append(live, e.Name())
				}
			}
			w.mu.Lock()
			w.samples++
			if len(live) > 1 {
				w.together = append(w.together, live)
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

// finish stops sampling and reports whether two containers ran at once.
func (w *overlapWatcher) finish() (bool, int) {
	close(w.stop)
	<-w.done
	return len(w.together) > 0, w.samples
}

// TestLinuxUpdates changes a running container: resources in place on the
// live cgroup, a command by replacing it, the state by stopping it, and a
// replacement with create_before_destroy that starts the new container
// before the old one stops.
func TestLinuxUpdates(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		t.Skip("this test reads cgroup v1 memory files; the host has no /sys/fs/cgroup/memory")
	}
	h := newLinuxHost(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	testenv.SaveDocker(t, archive, "example.test/busybox:1", testenv.BusyboxImage(t, testenv.ImageConfig{}))
	h.mustBerth(0, nil, "image", "load", "-i", archive)
	const ref = "example.test/busybox:1"

	h.write(webConfig(ref, "64M", "v1", ""))
	h.apply()
	h.waitLogs("container.web", "v1")
	id := h.id("container.web")
	if lim, err := h.memoryLimit(id); err != nil || lim != 64<<20 {
		t.Fatalf("memory limit of the new container: %d, %v; want %d", lim, err, 64<<20)
	}
	pid := h.waitContainerInit(id)

	t.Run("memory_in_place", func(t *testing.T) {
		h.write(webConfig(ref, "128M", "v1", ""))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.web will be updated in-place", `memory = "64M" -> "128M"`)
		requireNotContains(t, "the plan", plan, "must be replaced")
		h.apply()
		if got := h.id("container.web"); got != id {
			t.Errorf("the container was replaced: %s -> %s", id, got)
		}
		if lim, err := h.memoryLimit(id); err != nil || lim != 128<<20 {
			t.Errorf("memory.limit_in_bytes of the live cgroup: %d, %v; want %d", lim, err, 128<<20)
		}
		if !alive(pid) || h.containerInit(id) != pid {
			t.Errorf("the container's process %d was restarted by an in-place update", pid)
		}
		h.converged()
	})

	t.Run("command_replaces", func(t *testing.T) {
		h.write(webConfig(ref, "128M", "v2", ""))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.web must be replaced", "command changed", "forces replacement")
		w := watchOverlap(h)
		h.apply()
		overlap, n := w.finish()
		if overlap {
			t.Errorf("without create_before_destroy the old container still ran when the new one started (%d samples: %v)", n, w.together)
		}
		newID := h.id("container.web")
		if newID == id {
			t.Fatalf("the container was not replaced")
		}
		h.waitLogs("container.web", "v2")
		if lim, err := h.memoryLimit(newID); err != nil || lim != 128<<20 {
			t.Errorf("memory limit of the replacement: %d, %v", lim, err)
		}
		h.converged()
		id = newID
	})

	t.Run("state_stopped", func(t *testing.T) {
		h.write(webConfig(ref, "128M", "v2", "  state = \"stopped\"\n"))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.web will be updated in-place", `state`, `"stopped"`)
		h.apply()
		row := h.waitPs("container.web", "stopped", func(r psRow) bool { return strings.HasPrefix(r.State, "stopped") })
		if pids := h.containerPids(id); len(pids) != 0 {
			t.Errorf("the stopped container still has processes %v (ps: %+v)", pids, row)
		}
		if got := h.id("container.web"); got != id {
			t.Errorf("stopping replaced the container: %s -> %s", id, got)
		}
		h.converged()
		// And back.
		h.write(webConfig(ref, "128M", "v2", ""))
		h.apply()
		h.waitPs("container.web", "running", func(r psRow) bool { return r.State == "running" })
		h.converged()
	})

	t.Run("create_before_destroy", func(t *testing.T) {
		cbd := "  lifecycle {\n    create_before_destroy = true\n  }\n"
		h.write(webConfig(ref, "128M", "v2", cbd))
		h.apply() // adding the lifecycle block changes nothing live
		h.write(webConfig(ref, "128M", "v3", cbd))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "+/-", "command changed")
		w := watchOverlap(h)
		h.apply()
		overlap, n := w.finish()
		if !overlap {
			t.Errorf("with create_before_destroy the new container did not run while the old one did (%d samples)", n)
		}
		newID := h.id("container.web")
		if newID == id {
			t.Fatalf("the container was not replaced")
		}
		for _, s := range w.together {
			if len(s) != 2 || !(s[0] == id || s[1] == id) || !(s[0] == newID || s[1] == newID) {
				t.Errorf("containers running together were %v, want the old %s and the new %s", s, id, newID)
				break
			}
		}
		h.waitLogs("container.web", "v3")
		h.converged()
	})
}

// TestLinuxDrift changes containers behind berth's back, in the kernel and
// with berth's own day-2 commands, and checks that plan shows the drift
// with the live values and apply corrects it.
func TestLinuxDrift(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	h := newLinuxHost(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	testenv.SaveOCI(t, archive, "example.test/busybox:1", testenv.BusyboxImage(t, testenv.ImageConfig{}))
	h.mustBerth(0, nil, "image", "load", "-i", archive)
	const ref = "example.test/busybox:1"
	h.write(fmt.Sprintf(`
container "limits" {
  network_mode = "none"
  image   = %[1]q
  command = %[2]s
  resources {
    memory = "64M"
  }
%[3]s}

container "killed" {
  network_mode = "none"
  image   = %[1]q
  command = %[2]s
%[3]s}

container "policy" {
  network_mode = "none"
  image   = %[1]q
  command = %[2]s
  restart = "always"
%[3]s}
`, ref, hclList(sleeper("up")), quick))
	h.apply()
	h.converged()

	t.Run("memory_limit_by_hand", func(t *testing.T) {
		if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
			t.Skip("this subtest writes the cgroup v1 memory file; the host has no /sys/fs/cgroup/memory")
		}
		id := h.id("container.limits")
		if err := os.WriteFile(h.memoryLimitFile(id), []byte("104857600"), 0o644); err != nil {
			t.Fatal(err)
		}
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.limits will be updated in-place", "drift", `"100M" -> "64M"`)
		h.apply()
		if lim, err := h.memoryLimit(id); err != nil || lim != 64<<20 {
			t.Errorf("memory limit after apply: %d, %v; want %d", lim, err, 64<<20)
		}
		h.converged()
	})

	t.Run("process_killed_by_hand", func(t *testing.T) {
		id := h.id("container.killed")
		pid := h.waitContainerInit(id)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		h.waitPs("container.killed", "exited", func(r psRow) bool { return strings.HasPrefix(r.State, "exited") })
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.killed", "drift", `state`, `"stopped" -> "running"`)
		h.apply()
		h.waitPs("container.killed", "running", func(r psRow) bool { return r.State == "running" })
		if np := h.waitContainerInit(id); np == pid {
			t.Errorf("the container runs with the killed PID %d", pid)
		}
		h.converged()
	})

	t.Run("berth_stop_with_restart_always", func(t *testing.T) {
		h.mustBerth(0, nil, "stop", "container.policy")
		h.waitPs("container.policy", "stopped", func(r psRow) bool { return strings.HasPrefix(r.State, "stopped") })
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.policy", "drift", `"stopped" -> "running"`)
		h.apply()
		h.waitPs("container.policy", "running", func(r psRow) bool { return r.State == "running" })
		h.converged()
	})
}

// TestLinuxRestartPolicies checks on-failure with max_retries, always
// with a growing delay between restarts, and unless-stopped respecting
// berth stop.
func TestLinuxRestartPolicies(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	h := newLinuxHost(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	testenv.SaveDocker(t, archive, "example.test/busybox:1", testenv.BusyboxImage(t, testenv.ImageConfig{}))
	h.mustBerth(0, nil, "image", "load", "-i", archive)
	h.write(fmt.Sprintf(`
container "onfailure" {
  network_mode = "none"
  image       = "example.test/busybox:1"
  command     = ["sh", "-c", "echo attempt; exit 1"]
  restart     = "on-failure"
  max_retries = 2
%[1]s}

container "always" {
  network_mode = "none"
  image   = "example.test/busybox:1"
  command = ["sh", "-c", "echo tick"]
  restart = "always"
%[1]s}

container "unless" {
  network_mode = "none"
  image   = "example.test/busybox:1"
  command = %[2]s
  restart = "unless-stopped"
%[1]s}
`, quick, hclList(sleeper("up"))))
	h.apply()

	t.Run("on_failure_max_retries", func(t *testing.T) {
		row := h.waitPs("container.onfailure", "exited after its retries", func(r psRow) bool {
			return strings.HasPrefix(r.State, "exited") && r.Restarts >= 2
		})
		if row.Restarts != 2 || row.State != "exited (1)" {
			t.Errorf("berth ps: restarts %d, state %q; want 2 and exited (1)", row.Restarts, row.State)
		}
		logs := h.mustBerth(0, nil, "logs", "container.onfailure").stdout
		if n := strings.Count(logs, "attempt"); n != 3 {
			t.Errorf("the container ran %d times, want 3 (1 + 2 retries):\n%s", n, logs)
		}
	})

	t.Run("always_backs_off", func(t *testing.T) {
		// Five restarts after the first run: with a delay of 100 ms
		// doubling, the gaps between starts must grow.
		var starts []time.Time
		var logs string
		waitFor(t, "six starts of container.always in its logs", func() (bool, string) {
			r := h.mustBerth(0, nil, "logs", "-timestamps", "container.always")
			logs, starts = r.stdout, nil
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				f := strings.Fields(l)
				if len(f) != 2 || f[1] != "tick" {
					continue
				}
				ts, err := time.Parse(time.RFC3339Nano, f[0])
				if err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				starts = append(starts, ts)
			}
			return len(starts) >= 6, logs
		})
		if row := h.ps()["container.always"]; row.Restarts < 5 {
			t.Errorf("berth ps shows %d restarts after 6 starts", row.Restarts)
		}
		if len(starts) < 6 {
			t.Fatalf("%d starts in the logs, want at least 6:\n%s", len(starts), logs)
		}
		var gaps []time.Duration
		for i := 1; i < 6; i++ {
			gaps = append(gaps, starts[i].Sub(starts[i-1]))
		}
		t.Logf("gaps between the first starts: %v", gaps)
		// Lower bounds only: each delay is at least the backoff's.
		for i, g := range gaps {
			if min := (100 * time.Millisecond << i) * 8 / 10; g < min {
				t.Errorf("restart %d came %v after the previous start, want at least %v (backoff 100ms doubling)", i+1, g, min)
			}
		}
		// The first restart can be slow on a loaded machine; compare
		// with the second.
		if gaps[4] < gaps[1]*3/2 {
			t.Errorf("the delay between restarts does not grow: %v", gaps)
		}
	})

	t.Run("unless_stopped_respects_stop", func(t *testing.T) {
		h.waitPs("container.unless", "running", func(r psRow) bool { return r.State == "running" })
		h.mustBerth(0, nil, "stop", "container.unless")
		row := h.waitPs("container.unless", "stopped", func(r psRow) bool { return strings.HasPrefix(r.State, "stopped") })
		out := h.mustBerth(0, nil, "plan", "-detailed-exitcode", "-target", "container.unless", h.cfgDir).stdout
		requireNotContains(t, "the plan", out, "container.unless")
		if row2 := h.ps()["container.unless"]; !strings.HasPrefix(row2.State, "stopped") || row2.Restarts != row.Restarts {
			t.Errorf("the stopped unless-stopped container was restarted: %+v", row2)
		}
		h.mustBerth(0, nil, "start", "container.unless")
		h.waitPs("container.unless", "running", func(r psRow) bool { return r.State == "running" })
	})
}

// startBerth starts berth in the background with the host's environment;
// the caller waits for it. The test's cleanup kills it if it still runs,
// before the host is torn down.
func (h *linuxHost) startBerth(args ...string) *exec.Cmd {
	h.t.Helper()
	cmd := exec.Command(h.bin.berth, args...)
	cmd.Env = h.env
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	// After a Wait, Kill does nothing (os.ErrProcessDone).
	h.t.Cleanup(func() { cmd.Process.Kill() })
	return cmd
}
