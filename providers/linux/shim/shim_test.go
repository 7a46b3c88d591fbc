package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/providers/linux/runtime"
)

// The test binary is also the shim and the container init.
func TestMain(m *testing.M) {
	if runtime.IsInit() {
		runtime.Init()
	}
	if len(os.Args) == 3 && os.Args[1] == "__shim" {
		ready := os.NewFile(3, "ready")
		if err := Run(context.Background(), Dir(os.Args[2]), Options{Ready: ready}); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// busyboxRoot makes a root filesystem holding Debian's static busybox.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containers need root")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs busybox-static (/bin/busybox)")
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "sleep", "cat", "true", "false", "hostname", "id", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	return root
}

// cgroupParent returns a cgroup parent of its own for the test and removes
// it afterwards in every hierarchy.
func cgroupParent(t *testing.T) string {
	parent := fmt.Sprintf("/berth-test-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
		more, _ := filepath.Glob("/sys/fs/cgroup/*/*" + parent)
		for _, d := range append(dirs, more...) {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("cgroup left behind: %v", err)
			}
		}
	})
	return parent
}

type fixture struct {
	dir Dir
	rt  *runtime.Runtime
	id  string
}

func newFixture(t *testing.T, args []string, mod func(*Record)) *fixture {
	root := busyboxRoot(t)
	base := t.TempDir()
	id := fmt.Sprintf("t%d", time.Now().UnixNano()%1e9)
	rec := &Record{
		ID:          id,
		Spec:        runtime.Spec{ID: id, Rootfs: root, Args: args, CgroupParent: cgroupParent(t), EtcDir: filepath.Join(base, "c", "etc")},
		RuntimeRoot: filepath.Join(base, "runtime"),
		StopTimeout: 2 * time.Second,
	}
	if mod != nil {
		mod(rec)
	}
	f := &fixture{dir: Dir(filepath.Join(base, "c")), rt: runtime.New(rec.RuntimeRoot), id: id}
	if err := f.dir.WriteRecord(rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := Stop(ctx, f.dir, false); err != nil {
			t.Errorf("stop: %v", err)
			Kill(f.dir)
		}
		if err := f.rt.Destroy(id); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return f
}

func (f *fixture) launch(t *testing.T) (int, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Launch(ctx, f.dir, exe, []string{"__shim", string(f.dir)})
}

// waitState polls the state until cond holds.
func (f *fixture) waitState(t *testing.T, what string, cond func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := f.dir.State()
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(f.dir.ShimLog())
			t.Fatalf("waiting for %s: last state %+v (err %v)\nshim log:\n%s", what, st, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExitCodeAndLogs(t *testing.T) {
	f := newFixture(t, []string{"sh", "-c", "echo hello; echo oops >&2; hostname; exit 3"}, nil)
	pid, err := f.launch(t)
	if err != nil {
		t.Fatal(err)
	}
	if pid <= 0 {
		t.Errorf("pid = %d", pid)
	}
	st := f.waitState(t, "exit", func(s State) bool { return s.Status == StatusExited })
	if st.ExitCode == nil || *st.ExitCode != 3 {
		t.Errorf("exit code = %v, want 3", st.ExitCode)
	}
	if st.Restarts != 0 {
		t.Errorf("restarts = %d with policy no", st.Restarts)
	}
	var got []string
	if err := f.dir.ReadLogs(context.Background(), LogOptions{Tail: -1}, func(e Entry) error {
		got = append(got, e.Stream+":"+strings.TrimSpace(e.Log))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"stdout:hello": true, "stderr:oops": true, "stdout:" + f.id: true}
	for _, g := range got {
		delete(want, g)
	}
	if len(want) != 0 {
		t.Errorf("logs %q miss %v", got, want)
	}
	if _, err := f.rt.Status(f.id); err == nil {
		t.Errorf("the runtime still knows the exited container")
	}
}

func TestOnFailureStopsAfterMaxRetries(t *testing.T) {
	f := newFixture(t, []string{"sh", "-c", "echo run; exit 1"}, func(r *Record) {
		r.Restart = Restart{Policy: "on-failure", MaxRetries: 2}
	})
	if _, err := f.launch(t); err != nil {
		t.Fatal(err)
	}
	st := f.waitState(t, "the end of retries", func(s State) bool { return s.Status == StatusExited })
	if st.Restarts != 2 || st.ExitCode == nil || *st.ExitCode != 1 {
		t.Errorf("state %+v, want 2 restarts and exit code 1", st)
	}
	runs := strings.Count(f.dir.LastLines(10), "run")
	if runs != 3 {
		t.Errorf("the container ran %d times, want 3", runs)
	}
}

func TestAlwaysRestartsAndStopByUser(t *testing.T) {
	f := newFixture(t, []string{"sh", "-c", "echo up; sleep 0.2; exit 0"}, func(r *Record) {
		r.Restart = Restart{Policy: "unless-stopped"}
	})
	if _, err := f.launch(t); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "two restarts", func(s State) bool { return s.Restarts >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Stop(ctx, f.dir, true); err != nil {
		t.Fatal(err)
	}
	st, _ := f.dir.State()
	if st.Status != StatusStopped || !st.StoppedByUser {
		t.Errorf("after a user stop: %+v", st)
	}
	if ShimAlive(st) {
		t.Error("the shim still runs after a stop")
	}
}

func TestStopUsesSignalThenKill(t *testing.T) {
	// The container ignores SIGTERM, so only the kill after the timeout
	// stops it.
	f := newFixture(t, []string{"sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"}, func(r *Record) {
		r.Restart = Restart{Policy: "always"}
		r.StopTimeout = 300 * time.Millisecond
	})
	pid, err := f.launch(t)
	if err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "running", func(s State) bool { return s.Status == StatusRunning })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Stop(ctx, f.dir, false); err != nil {
		t.Fatal(err)
	}
	st, _ := f.dir.State()
	if st.Status != StatusStopped || st.StoppedByUser || st.ExitCode == nil || *st.ExitCode != 137 {
		t.Errorf("state after stop: %+v, want stopped with 137", st)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("container process %d still exists", pid)
	}
}

func TestCommandNotFound(t *testing.T) {
	f := newFixture(t, []string{"no-such-program"}, nil)
	_, err := f.launch(t)
	if err == nil || !strings.Contains(err.Error(), "no-such-program") {
		t.Fatalf("launch of a missing command: %v", err)
	}
	t.Log(err)
}

func TestHealthcheck(t *testing.T) {
	for _, c := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"true"}, HealthHealthy},
		{[]string{"sh", "-c", "echo sick; exit 1"}, HealthUnhealthy},
		// A check that times out while a process it started holds its
		// output still ends, as unhealthy.
		{[]string{"sh", "-c", "sleep 60 | cat"}, "timeout"},
	} {
		t.Run(c.want, func(t *testing.T) {
			want := c.want
			f := newFixture(t, []string{"sleep", "100"}, func(r *Record) {
				r.Health = &Health{Command: c.cmd, Interval: 100 * time.Millisecond, Retries: 2}
				if want == "timeout" {
					r.Health.Timeout, r.Health.Retries = 300*time.Millisecond, 1
				}
			})
			if want == "timeout" {
				want = HealthUnhealthy
			}
			if _, err := f.launch(t); err != nil {
				t.Fatal(err)
			}
			st := f.waitState(t, want, func(s State) bool { return s.Health == want })
			if c.want == "timeout" && !strings.Contains(st.HealthLog, "timed out") {
				t.Errorf("health log = %q", st.HealthLog)
			}
			if c.want == HealthUnhealthy && st.HealthLog != "sick" {
				t.Errorf("health log = %q", st.HealthLog)
			}
		})
	}
}

// Starts that race give one shim: the others find it and go away without
// touching the container.
func TestConcurrentLaunchesGiveOneShim(t *testing.T) {
	f := newFixture(t, []string{"sleep", "100"}, func(r *Record) { r.Restart = Restart{Policy: "always"} })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := Launch(ctx, f.dir, exe, []string{"__shim", string(f.dir)})
			errs <- err
		}()
	}
	started := 0
	for range 4 {
		switch err := <-errs; {
		case err == nil:
			started++
		case !errors.Is(err, ErrSupervised):
			t.Errorf("launch: %v", err)
		}
	}
	if started != 1 {
		t.Errorf("%d launches started the container, want 1", started)
	}
	time.Sleep(300 * time.Millisecond)
	st, _ := f.dir.State()
	if st.Status != StatusRunning || st.Restarts != 0 {
		t.Errorf("state after racing launches: %+v", st)
	}
	out, _ := exec.Command("pgrep", "-f", "__shim "+string(f.dir)).Output()
	if n := len(strings.Fields(string(out))); n != 1 {
		t.Errorf("%d shims run, want 1", n)
	}
}

// A first start that fails is reported, not retried by the policy.
func TestFailedFirstStartIsNotRetried(t *testing.T) {
	f := newFixture(t, []string{"no-such-program"}, func(r *Record) { r.Restart = Restart{Policy: "always"} })
	if _, err := f.launch(t); err == nil {
		t.Fatal("launch of a missing program succeeded")
	}
	time.Sleep(300 * time.Millisecond)
	st, _ := f.dir.State()
	if ShimAlive(st) || st.Restarts != 0 || st.Status != StatusExited {
		t.Errorf("after a failed first start: %+v (shim alive %v)", st, ShimAlive(st))
	}
}

func TestShimEnvironmentHoldsNoSecrets(t *testing.T) {
	t.Setenv("BERTH_VAR_registry_password", "hunter2")
	for _, kv := range shimEnv() {
		if strings.Contains(kv, "hunter2") || strings.HasPrefix(kv, "BERTH_") {
			t.Errorf("the shim would inherit %q", kv)
		}
	}
}

func TestLogRotation(t *testing.T) {
	dir := Dir(t.TempDir())
	l, err := openLog(dir.LogPath(), LogConfig{MaxSize: 300, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	w := l.stream("stdout")
	for i := range 40 {
		fmt.Fprintf(w, "line %02d\n", i)
	}
	w.Close()
	l.Close()
	files, _ := filepath.Glob(dir.LogPath() + "*")
	if len(files) != 3 {
		t.Errorf("log files %v, want 3", files)
	}
	var lines []string
	dir.ReadLogs(context.Background(), LogOptions{Tail: -1}, func(e Entry) error {
		lines = append(lines, strings.TrimSpace(e.Log))
		return nil
	})
	if len(lines) == 0 || lines[len(lines)-1] != "line 39" || lines[0] == "line 00" {
		t.Errorf("kept lines %q: want the newest, without the oldest", lines)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i] <= lines[i-1] {
			t.Errorf("lines out of order: %q", lines)
			break
		}
	}
	var tail []string
	dir.ReadLogs(context.Background(), LogOptions{Tail: 2}, func(e Entry) error {
		tail = append(tail, strings.TrimSpace(e.Log))
		return nil
	})
	if strings.Join(tail, ",") != "line 38,line 39" {
		t.Errorf("tail 2 = %q", tail)
	}
}

// A shim killed with SIGKILL leaves its container running, and writing
// its output does not kill it (no SIGPIPE); a new shim adopts it without a
// restart, keeps its log and can stop it.
func TestShimKilledContainerAdopted(t *testing.T) {
	f := newFixture(t, []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done"}, func(r *Record) {
		r.Restart = Restart{Policy: "always"}
		r.StopTimeout = 500 * time.Millisecond
	})
	pid, err := f.launch(t)
	if err != nil {
		t.Fatal(err)
	}
	st := f.waitState(t, "running", func(s State) bool { return s.Status == StatusRunning })
	Kill(f.dir)
	deadline := time.Now().Add(10 * time.Second)
	for ShimAlive(st) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The container outlives its shim while it goes on writing.
	time.Sleep(500 * time.Millisecond)
	if rs, err := f.rt.Status(f.id); err != nil || !rs.Running || rs.Pid != pid {
		t.Fatalf("after the shim was killed: %+v, %v; want pid %d running", rs, err, pid)
	}
	before := strings.Count(f.dir.LastLines(1000), "tick")
	again, err := f.launch(t)
	if err != nil {
		t.Fatal(err)
	}
	if again != pid {
		t.Errorf("the new shim reports pid %d, want the adopted %d", again, pid)
	}
	time.Sleep(500 * time.Millisecond)
	if after := strings.Count(f.dir.LastLines(1000), "tick"); after <= before {
		t.Errorf("the log did not grow after the adoption: %d then %d lines", before, after)
	}
	st2, _ := f.dir.State()
	if st2.Restarts != st.Restarts || st2.Pid != pid {
		t.Errorf("state after adoption %+v, want pid %d and no restart", st2, pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Stop(ctx, f.dir, false); err != nil {
		t.Fatal(err)
	}
	// The adopted process is not the shim's child: it is reaped by the
	// host's init, so it may linger as a zombie, but it does not run.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			t.Errorf("the adopted container %d is still in state %s after a stop", pid, f[0])
		}
	}
	if st3, _ := f.dir.State(); st3.Status != StatusStopped {
		t.Errorf("status after stop %q", st3.Status)
	}
}
