package lock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holderEnv, when set to a state directory, turns the test binary into a
// child that takes the lock there and holds it until it is killed.
const holderEnv = "BERTH_LOCK_TEST_HOLDER"

// sleeperEnv, when set, turns the test binary into a child that only
// sleeps until it is killed.
const sleeperEnv = "BERTH_LOCK_TEST_SLEEPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holderEnv); dir != "" {
		os.Exit(holdForever(dir))
	}
	if os.Getenv(sleeperEnv) != "" {
		fmt.Println("sleeping")
		time.Sleep(time.Minute)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func holdForever(dir string) int {
	if _, err := Acquire(context.Background(), dir, 0, "child-apply"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	return 2
}

func mustAcquire(t *testing.T, dir string, command string) *Lock {
	t.Helper()
	l, err := Acquire(context.Background(), dir, 0, command)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	t.Cleanup(func() { _ = l.Release() })
	return l
}

func readInfoFile(t *testing.T, dir string) Info {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "lock.info"))
	if err != nil {
		t.Fatalf("lock.info: %v", err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("lock.info: %v", err)
	}
	return info
}

func TestSecondAcquireFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	mustAcquire(t, dir, "apply")
	info := readInfoFile(t, dir)
	if info.PID != os.Getpid() || info.Command != "apply" || info.Since.IsZero() || time.Since(info.Since) > time.Minute {
		t.Errorf("lock.info = %+v, want this process running apply, since now", info)
	}

	// Without a timeout Acquire does not wait even one retry interval.
	// The fastest of a few tries is measured, so that a loaded machine
	// does not fail the test.
	var l *Lock
	var err error
	fastest := time.Hour
	for range 5 {
		start := time.Now()
		l, err = Acquire(context.Background(), dir, 0, "plan")
		fastest = min(fastest, time.Since(start))
		if err == nil {
			break
		}
	}
	if fastest >= retryInterval/2 {
		t.Errorf("Acquire without timeout took at least %v", fastest)
	}
	if err == nil {
		_ = l.Release()
		t.Fatal("second Acquire succeeded while the lock was held")
	}
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("error %T %v, want *HeldError", err, err)
	}
	if held.Info.PID != os.Getpid() || held.Info.Command != "apply" || held.Dir != dir {
		t.Errorf("HeldError = %+v, want holder pid %d running apply on %s", held, os.Getpid(), dir)
	}
	msg := err.Error()
	for _, want := range []string{"locked by pid", fmt.Sprint(os.Getpid()), "apply", "-lock-timeout", dir} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	// The failed attempt did not disturb the holder's record.
	if got := readInfoFile(t, dir); got.PID != os.Getpid() || got.Command != "apply" {
		t.Errorf("lock.info after a failed Acquire = %+v", got)
	}
}

func TestHeldErrorMessage(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name string
		err  HeldError
		want []string
		not  []string
	}{
		{"known holder", HeldError{Dir: "/var/lib/berth", Info: Info{PID: 42, Command: "berth apply", Host: host, Since: now}},
			[]string{"state directory /var/lib/berth is locked by pid 42 (berth apply, since " + now.Format("15:04:05") + "); wait for it to finish or use -lock-timeout to wait"}, []string{"host"}},
		{"holder on another host", HeldError{Dir: "/s", Info: Info{PID: 42, Command: "berth apply", Host: host + "-other", Since: now}},
			[]string{"locked by pid 42 on host " + host + "-other (berth apply, since "}, nil},
		{"no time recorded", HeldError{Dir: "/s", Info: Info{PID: 42, Command: "berth apply"}},
			[]string{"locked by pid 42 (berth apply);"}, []string{"since", "0001"}},
		{"no command recorded", HeldError{Dir: "/s", Info: Info{PID: 42}},
			[]string{"locked by pid 42 (unknown command);"}, nil},
		{"unknown holder", HeldError{Dir: "/s"},
			[]string{"state directory /s is locked by another process; wait for it to finish or use -lock-timeout to wait"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(msg, w) {
					t.Errorf("message %q contains %q", msg, w)
				}
			}
		})
	}
}

func TestFormatSince(t *testing.T) {
	now := time.Date(2024, 3, 10, 15, 0, 0, 0, time.Local)
	tests := []struct {
		name  string
		since time.Time
		want  string
	}{
		{"same day", time.Date(2024, 3, 10, 9, 8, 7, 0, time.Local), "09:08:07"},
		{"start of the day", time.Date(2024, 3, 10, 0, 0, 0, 0, time.Local), "00:00:00"},
		{"the day before", time.Date(2024, 3, 9, 23, 59, 59, 0, time.Local), "2024-03-09 23:59:59"},
		{"same day another year", time.Date(2023, 3, 10, 9, 8, 7, 0, time.Local), "2023-03-10 09:08:07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatSince(tt.since, now); got != tt.want {
				t.Errorf("formatSince(%v) = %q, want %q", tt.since, got, tt.want)
			}
		})
	}
}

// TestHolderUnknown checks that a lock.info that cannot be trusted does not
// name a holder.
func TestHolderUnknown(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	record := func(i Info) string {
		b, err := json.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name    string
		info    string // "": no lock.info
		wantPID int
	}{
		{"no record", "", 0},
		{"damaged record", `{"PID": 4`, 0},
		{"holder gone", record(Info{PID: gone.Process.Pid, Command: "berth apply", Host: host, Since: time.Now()}), 0},
		{"holder alive", record(Info{PID: os.Getpid(), Command: "berth apply", Host: host, Since: time.Now()}), os.Getpid()},
		{"holder on another host", record(Info{PID: gone.Process.Pid, Command: "berth apply", Host: host + "-other", Since: time.Now()}), gone.Process.Pid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Hold the lock as a process would that has not written its
			// record (yet).
			f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				t.Fatal(err)
			}
			if tt.info != "" {
				if err := os.WriteFile(filepath.Join(dir, "lock.info"), []byte(tt.info), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err = Acquire(context.Background(), dir, 0, "plan")
			var held *HeldError
			if !errors.As(err, &held) {
				t.Fatalf("error %v, want *HeldError", err)
			}
			if held.Info.PID != tt.wantPID {
				t.Errorf("holder pid %d, want %d", held.Info.PID, tt.wantPID)
			}
			if tt.wantPID == 0 && !strings.Contains(err.Error(), "locked by another process") {
				t.Errorf("message %q names a holder", err)
			}
		})
	}
}

func TestWaitForRelease(t *testing.T) {
	dir := t.TempDir()
	first, err := Acquire(context.Background(), dir, 0, "apply")
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		released <- first.Release()
	}()
	start := time.Now()
	second, err := Acquire(context.Background(), dir, 5*time.Second, "destroy")
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Acquire with a timeout: %v", err)
	}
	defer second.Release()
	if err := <-released; err != nil {
		t.Errorf("Release: %v", err)
	}
	if elapsed < 250*time.Millisecond || elapsed > 4*time.Second {
		t.Errorf("Acquire took %v; want it to return after the release at 300ms, before its timeout of 5s", elapsed)
	}
	if info := readInfoFile(t, dir); info.Command != "destroy" {
		t.Errorf("lock.info = %+v, want the new holder", info)
	}
}

func TestTimeoutExpires(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
	}{
		{"shorter than the retry interval", 30 * time.Millisecond},
		{"a few retries", 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustAcquire(t, dir, "apply")
			start := time.Now()
			_, err := Acquire(context.Background(), dir, tt.timeout, "plan")
			elapsed := time.Since(start)
			var held *HeldError
			if !errors.As(err, &held) {
				t.Fatalf("error %v, want *HeldError", err)
			}
			// The upper bound is loose: a loaded machine may be slow.
			if elapsed < tt.timeout || elapsed > tt.timeout+2*time.Second {
				t.Errorf("gave up after %v, want about %v", elapsed, tt.timeout)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	dir := t.TempDir()
	mustAcquire(t, dir, "apply")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	l, err := Acquire(ctx, dir, 10*time.Second, "plan")
	elapsed := time.Since(start)
	if err == nil {
		_ = l.Release()
		t.Fatal("Acquire succeeded while the lock was held")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Acquire returned %v after start, %v after cancel", elapsed, elapsed-100*time.Millisecond)
	}
}

func TestContextDoneBefore(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprint(timeout), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			l, err := Acquire(ctx, dir, timeout, "apply")
			if err == nil {
				_ = l.Release()
				t.Fatal("Acquire took the lock with a cancelled context")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "lock.info")); !os.IsNotExist(err) {
				t.Errorf("lock.info written (stat: %v)", err)
			}
		})
	}
}

// TestChildDoesNotInherit checks that a process started while the lock is
// held (as berth apply starts container shims that outlive it) does not keep
// the lock after the holder releases it.
func TestChildDoesNotInherit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := Acquire(context.Background(), dir, 0, "apply")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), sleeperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "sleeping\n" {
		t.Fatalf("child did not start: %q %v", line, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(context.Background(), dir, 0, "apply")
	if err != nil {
		t.Fatalf("Acquire after Release, with a child of the old holder alive: %v", err)
	}
	_ = again.Release()
}

func TestKilledHolderReleases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child did not take the lock: %q %v: %s", line, err, stderr.String())
	}

	_, err = Acquire(context.Background(), dir, 0, "plan")
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("Acquire while the child holds the lock: %v, want *HeldError", err)
	}
	if held.Info.PID != cmd.Process.Pid || held.Info.Command != "child-apply" {
		t.Errorf("holder %+v, want the child (pid %d)", held.Info, cmd.Process.Pid)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("locked by pid %d", cmd.Process.Pid)) {
		t.Errorf("message %q does not name the child", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The killed child left its lock.info behind; that must not matter.
	l, err := Acquire(context.Background(), dir, 0, "apply")
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	defer l.Release()
	if info := readInfoFile(t, dir); info.PID != os.Getpid() || info.Command != "apply" {
		t.Errorf("lock.info = %+v, want this process", info)
	}
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	l := mustAcquire(t, dir, "apply")
	infoPath := filepath.Join(dir, "lock.info")
	if _, err := os.Stat(infoPath); err != nil {
		t.Fatalf("lock.info missing while held: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, err := os.Stat(infoPath); !os.IsNotExist(err) {
		t.Errorf("lock.info still there after Release (stat: %v)", err)
	}
	if _, err := os.Stat(infoPath + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("lock.info.tmp left behind (stat: %v)", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	var none *Lock
	if err := none.Release(); err != nil {
		t.Errorf("Release of a nil lock: %v", err)
	}
	again, err := Acquire(context.Background(), dir, 0, "apply")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if err := again.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestCreatesStateDir(t *testing.T) {
	tests := []struct {
		name string
		rel  string
	}{
		{"missing", "state"},
		{"missing with parents", "a/b/state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.rel)
			mustAcquire(t, dir, "apply")
			for _, c := range []struct {
				path string
				mode os.FileMode
			}{
				{dir, 0o700 | os.ModeDir},
				{filepath.Join(dir, "lock"), 0o600},
				{filepath.Join(dir, "lock.info"), 0o600},
			} {
				fi, err := os.Stat(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != c.mode {
					t.Errorf("%s has mode %v, want %v", c.path, got, c.mode)
				}
			}
		})
	}
}

func TestStateDirUnusable(t *testing.T) {
	// A file where the state directory should be.
	p := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(context.Background(), p, 0, "apply")
	if err == nil {
		_ = l.Release()
		t.Fatal("Acquire succeeded on a file")
	}
	var held *HeldError
	if errors.As(err, &held) {
		t.Errorf("error %v is a HeldError; want the real cause", err)
	}
}
