package acceptance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// v1 and v2 exercise every kind of step: v1 → v2 updates thing.a, replaces
// thing.d, deletes thing.b and two instances of thing.c, creates thing.e.
const v1 = `
thing "a" {
  name  = "a"
  value = "one"
}
thing "b" {
  name  = "b"
  value = thing.a.id
}
thing "c" {
  count = 3
  name  = "c${count.index}"
}
thing "d" {
  name   = "d"
  flavor = "x"
}
`

const v2 = `
thing "a" {
  name  = "a"
  value = "two"
}
thing "c" {
  count = 1
  name  = "c${count.index}"
}
thing "d" {
  name   = "d"
  flavor = "y"
}
thing "e" {
  name  = "e"
  value = thing.d.id
}
`

// v2Addresses are the instances v2 declares.
var v2Addresses = []string{"thing.a", "thing.c[0]", "thing.d", "thing.e"}

// checkConverged applies v2 without faults and checks that the host holds
// exactly what v2 declares: nothing orphaned, nothing missing, no diff.
func checkConverged(t *testing.T, h *host) {
	t.Helper()
	h.mustBerth(0, nil, "apply", "-auto-approve", h.cfgDir)
	h.mustBerth(0, nil, "plan", "-detailed-exitcode", h.cfgDir)
	var addrs []string
	for _, r := range h.show().Resources {
		if r.Gone || r.Status != "created" {
			t.Errorf("%s: status %s gone=%v after convergence", r.Address, r.Status, r.Gone)
		}
		addrs = append(addrs, r.Address)
	}
	sort.Strings(addrs)
	if strings.Join(addrs, " ") != strings.Join(v2Addresses, " ") {
		t.Errorf("owned %v, want %v", addrs, v2Addresses)
	}
	if files := h.objectFiles(); len(files) != len(v2Addresses) {
		t.Errorf("the provider holds %d objects (%v), want %d: something was orphaned or lost", len(files), files, len(v2Addresses))
	}
	noProviderLeft(t, h)
}

// noProviderLeft fails when a provider process of this host outlived berth.
func noProviderLeft(t *testing.T, h *host) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		pids := providerPIDs(h)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
			t.Errorf("provider processes left running: %v", pids)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func providerPIDs(h *host) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		if strings.Contains(string(env), "BERTH_STATE_DIR="+h.stateDir+"\x00") && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// TestApplySurvivesKillAtEveryStep kills `berth apply` with SIGKILL at a
// growing delay, so that over the runs it dies before, during and after each
// provider call and inventory write; the next apply must converge.
func TestApplySurvivesKillAtEveryStep(t *testing.T) {
	const step = 40 * time.Millisecond
	// What the host looked like after each kill: the plan's summary and the
	// interrupted inventory entries. Kills must land at several different
	// steps, or the test proves nothing.
	seen := map[string]bool{}
	interrupted := 0
	defer func() {
		t.Logf("states after the kills: %v; interrupted operations seen %d times", seen, interrupted)
		if len(seen) < 4 || interrupted == 0 {
			t.Errorf("kills landed at too few distinct steps: %d states %v, %d with an interrupted operation", len(seen), seen, interrupted)
		}
	}()
	// v1 → v2 makes 7 changes one at a time; kill points span them all,
	// the start-up before them and a little beyond.
	for i := 0; i < 14; i++ {
		delay := time.Duration(i)*step + step/2
		t.Run(fmt.Sprintf("kill_after_%s", delay), func(t *testing.T) {
			h := newHost(t)
			h.write(v1)
			h.mustBerth(0, nil, "apply", "-auto-approve", h.cfgDir)
			h.write(v2)
			cmd := exec.Command(h.bin.berth, "apply", "-auto-approve", "-parallelism", "1", h.cfgDir)
			cmd.Env = append(append([]string{}, h.env...), "BERTH_TESTPROVIDER_DELAY="+step.String())
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Start-up takes a varying time: count from the moment berth
			// holds the lock, which it takes before starting providers.
			waitForLock(t, h, cmd.Process.Pid)
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			noProviderLeft(t, h)
			// The lock died with the process: a plan runs at once.
			r := h.berth(nil, "plan", h.cfgDir)
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(line, "Plan:") || strings.HasPrefix(line, "No changes") {
					seen[line] = true
				}
			}
			if l := h.mustBerth(0, nil, "state", "list"); strings.Contains(l.stdout, "(creating)") || strings.Contains(l.stdout, "(deleting)") {
				interrupted++
			}
			checkConverged(t, h)
		})
	}
}

// TestProviderFaultsAtEveryOperation injects a fault into each operation of
// the provider — an error, a crash before or after the work, a hang — and
// checks that berth reports it clearly, keeps the inventory consistent and
// converges on the next apply.
func TestProviderFaultsAtEveryOperation(t *testing.T) {
	cases := []struct {
		fault string
		want  string // in the output of the failed apply
	}{
		{"apply:fail:thing.a", "thing.a"},
		{"apply:crash-before:thing.d", "crashed"},
		{"apply:crash-after:thing.d", "crashed"},
		{"apply:crash-after:thing.e", "crashed"},
		{"apply:hang:thing.a", "in time"},
		{"delete:fail:thing.b", "thing.b"},
		{"delete:crash-before:thing.b", "crashed"},
		{"delete:crash-after:thing.c[2]", "crashed"},
		{"delete:hang:thing.d", "in time"},
		{"read:fail", "thing"},
		{"plan:fail", "thing"},
	}
	for _, c := range cases {
		t.Run(strings.NewReplacer(":", "_", "[", "_", "]", "").Replace(c.fault), func(t *testing.T) {
			h := newHost(t)
			h.write(v1)
			h.mustBerth(0, nil, "apply", "-auto-approve", h.cfgDir)
			h.write(v2)
			r := h.mustBerth(1, []string{"BERTH_TESTPROVIDER_FAULT=" + c.fault}, "apply", "-auto-approve", "-provider-timeout", "2s", h.cfgDir)
			if !strings.Contains(r.stdout+r.stderr, c.want) {
				t.Errorf("output does not mention %q:\nstdout:\n%s\nstderr:\n%s", c.want, r.stdout, r.stderr)
			}
			noProviderLeft(t, h)
			checkConverged(t, h)
		})
	}
}

// waitForLock waits until process pid holds the state lock of h.
func waitForLock(t *testing.T, h *host, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(h.stateDir, "lock.info"))
		if err == nil && strings.Contains(string(b), fmt.Sprintf(`"PID":%d,`, pid)) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("berth (pid %d) did not take the lock within 20s", pid)
}
