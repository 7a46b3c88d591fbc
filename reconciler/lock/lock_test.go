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

func TestMain(m *testing.M) {
	if dir := os.Getenv(holderEnv); dir != "" {
		os.Exit(holdForever(dir))
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

	start := time.Now()
	l, err := Acquire(context.Background(), dir, 0, "plan")
	if elapsed := time.Since(start); elapsed > 50*time.Millisecond {
		t.Errorf("Acquire without timeout took %v", elapsed)
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
	since := time.Date(2024, 1, 2, 3, 4, 5, 0, time.Local)
	tests := []struct {
		name string
		err  HeldError
		want []string
	}{
		{"known holder", HeldError{Dir: "/var/lib/berth", Info: Info{PID: 42, Command: "apply", Since: since}},
			[]string{"/var/lib/berth", "locked by pid 42 (apply, since 03:04:05)", "-lock-timeout"}},
		{"unknown holder", HeldError{Dir: "/s"},
			[]string{"/s", "locked by another process", "-lock-timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
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
	if elapsed < 250*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("Acquire took %v; want it to return soon after the release at 300ms", elapsed)
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
			if elapsed < tt.timeout || elapsed > tt.timeout+150*time.Millisecond {
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
	if elapsed > 400*time.Millisecond {
		t.Errorf("Acquire returned %v after start, %v after cancel", elapsed, elapsed-100*time.Millisecond)
	}
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
