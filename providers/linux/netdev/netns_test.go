package netdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestNetNSLifecycle(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	path := filepath.Join(dir, fmt.Sprintf("life-%d", os.Getpid()))
	t.Cleanup(func() { _ = DeleteNetNS(path) })

	if ok, err := NetNSExists(path); err != nil || ok {
		t.Fatalf("NetNSExists before create = %v, %v; want false", ok, err)
	}
	if err := CreateNetNS(path); err != nil {
		t.Fatalf("CreateNetNS: %v", err)
	}
	if ok, err := NetNSExists(path); err != nil || !ok {
		t.Fatalf("NetNSExists after create = %v, %v; want true", ok, err)
	}
	ino := netnsIno(t, path)
	if ino == netnsIno(t, "/proc/self/ns/net") {
		t.Fatal("the new namespace is the test's own")
	}
	// The directory is a shared mount point, as iproute2 makes /run/netns.
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil || len(mounts) == 0 {
		t.Fatalf("%s is not a mount point: %v", dir, err)
	}
	if !strings.Contains(mounts[len(mounts)-1].Optional, "shared:") {
		t.Errorf("%s propagation = %q, want shared", dir, mounts[len(mounts)-1].Optional)
	}
	// lo is up inside, and only lo exists.
	if out := in(t, path, "ip", "-o", "link"); !strings.Contains(out, "lo: <LOOPBACK,UP,LOWER_UP>") || strings.Count(out, "\n") != 1 {
		t.Errorf("links in the new namespace:\n%s", out)
	}

	// Idempotent: same namespace, and lo brought back up.
	in(t, path, "ip", "link", "set", "lo", "down")
	if err := CreateNetNS(path); err != nil {
		t.Fatalf("second CreateNetNS: %v", err)
	}
	if got := netnsIno(t, path); got != ino {
		t.Errorf("second CreateNetNS made a new namespace (inode %d, was %d)", got, ino)
	}
	if out := in(t, path, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, ",UP") {
		t.Errorf("lo not brought up again: %s", out)
	}
	if n := countMounts(t, path); n != 1 {
		t.Errorf("%d mounts at %s, want 1", n, path)
	}

	if err := DeleteNetNS(path); err != nil {
		t.Fatalf("DeleteNetNS: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after DeleteNetNS, %s: %v; want not exist", path, err)
	}
	if n := countMounts(t, path); n != 0 {
		t.Errorf("%d mounts left at %s", n, path)
	}
	if err := DeleteNetNS(path); err != nil {
		t.Errorf("second DeleteNetNS: %v", err)
	}
	if err := RemoveNetNSDir(dir); err != nil {
		t.Fatalf("RemoveNetNSDir: %v", err)
	}
	if n := countMounts(t, dir); n != 0 {
		t.Errorf("%d mounts left at %s", n, dir)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after RemoveNetNSDir, %s: %v; want not exist", dir, err)
	}
}

// countMounts returns the number of mounts at path.
func countMounts(t *testing.T, path string) int {
	t.Helper()
	m, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestNetNSNotANamespace(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if ok, err := NetNSExists(plain); err != nil || ok {
		t.Errorf("NetNSExists(plain file) = %v, %v; want false, nil", ok, err)
	}
	if err := Do(plain, func() error { return nil }); !errors.Is(err, errNotNetNS) {
		t.Errorf("Do(plain file) = %v, want errNotNetNS", err)
	}
	// Not a network namespace: a mount namespace file.
	if ok, err := NetNSExists("/proc/self/ns/mnt"); err != nil || ok {
		t.Errorf("NetNSExists(mnt namespace) = %v, %v; want false, nil", ok, err)
	}
	// An empty mount point left by a crash is removed by DeleteNetNS; a
	// file with content is not.
	if err := DeleteNetNS(plain); err != nil {
		t.Errorf("DeleteNetNS(empty file): %v", err)
	}
	full := filepath.Join(dir, "full")
	if err := os.WriteFile(full, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DeleteNetNS(full); err == nil {
		t.Error("DeleteNetNS(file with data) succeeded")
	}
	if _, err := os.Stat(full); err != nil {
		t.Errorf("file with data removed: %v", err)
	}
}

func TestRemoveNetNSDirRefusesLiveNamespace(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	newNS(t, dir, "keep")
	if err := RemoveNetNSDir(dir); err == nil {
		t.Fatal("RemoveNetNSDir succeeded with a namespace mounted")
	}
}

func TestCreateNetNSConcurrent(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	const n = 8
	paths := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("conc%d-%d", i, os.Getpid()))
		t.Cleanup(func() { _ = DeleteNetNS(paths[i]) })
		// Two creators per path.
		for j := range 2 {
			wg.Go(func() { errs[2*i+j] = CreateNetNS(paths[i]) })
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreateNetNS %d: %v", i, err)
		}
	}
	for _, p := range paths {
		if c := countMounts(t, p); c != 1 {
			t.Errorf("%d mounts at %s, want 1", c, p)
		}
	}
	if c := countMounts(t, dir); c != 1 {
		t.Errorf("%d mounts at %s, want 1", c, dir)
	}
}

// threadNetNSIno returns the inode of the calling thread's network
// namespace.
func threadNetNSIno() (uint64, error) {
	var st unix.Stat_t
	err := unix.Stat(threadNetNS, &st)
	return st.Ino, err
}

// tasksOutside returns the threads of this process that are not in the
// network namespace with inode want.
func tasksOutside(t *testing.T, want uint64) []string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/task/"+task.Name()+"/ns/net", &st); err != nil {
			continue // exited meanwhile
		}
		if st.Ino != want {
			out = append(out, task.Name())
		}
	}
	return out
}

func TestDoConcurrent(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	const nss = 4
	paths := make([]string, nss)
	inos := make([]uint64, nss)
	for i := range paths {
		paths[i] = newNS(t, dir, fmt.Sprintf("do%d", i))
		inos[i] = netnsIno(t, paths[i])
	}
	home := netnsIno(t, "/proc/self/ns/net")

	const workers, rounds = 64, 40
	var wg sync.WaitGroup
	errc := make(chan error, 2*workers*rounds)
	stop := make(chan struct{})
	// Watchers: goroutines that never enter a namespace must always find
	// their thread at home, whatever thread the scheduler gives them.
	var watchers sync.WaitGroup
	for range 8 {
		watchers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ino, err := threadNetNSIno()
				if err != nil {
					errc <- err
					return
				}
				if ino != home {
					errc <- fmt.Errorf("a goroutine outside Do ran in namespace %d", ino)
					return
				}
				runtime.Gosched()
			}
		})
	}
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				i := (w + r) % nss
				var inside uint64
				err := Do(paths[i], func() error {
					var err error
					inside, err = threadNetNSIno()
					if unix.Gettid() == os.Getpid() {
						return errors.New("fn ran on the main thread")
					}
					// Something in the namespace through netlink too.
					if _, lerr := netlink.LinkByName("lo"); lerr != nil {
						return lerr
					}
					return err
				})
				if err != nil {
					errc <- err
					return
				}
				if inside != inos[i] {
					errc <- fmt.Errorf("Do(%s) ran in namespace %d, want %d", paths[i], inside, inos[i])
					return
				}
				if ino, err := threadNetNSIno(); err != nil || ino != home {
					errc <- fmt.Errorf("after Do, caller in namespace %d (%v)", ino, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	watchers.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if out := tasksOutside(t, home); len(out) > 0 {
		t.Errorf("threads %v left in another network namespace", out)
	}
}

func TestDoPanic(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	ns := newNS(t, dir, "panic")
	home := netnsIno(t, "/proc/self/ns/net")
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want boom", p)
			}
		}()
		_ = Do(ns, func() error { panic("boom") })
		t.Error("Do returned after a panic in fn")
	}()
	if out := tasksOutside(t, home); len(out) > 0 {
		t.Errorf("threads %v left in another network namespace", out)
	}
}

func TestDoError(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	ns := newNS(t, dir, "err")
	want := errors.New("from fn")
	if err := Do(ns, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do = %v, want %v", err, want)
	}
}

func TestDoRestoreFailureEndsThread(t *testing.T) {
	requireRoot(t)
	dir := nsDir(t)
	ns := newNS(t, dir, "stuck")
	home := netnsIno(t, "/proc/self/ns/net")
	fd, err := openNetNS(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	var tid int
	failRestore := func(int) error { return unix.EPERM }
	err = doFd(fd, func() error { tid = unix.Gettid(); return nil }, failRestore)
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("doFd with failing restore = %v, want EPERM", err)
	}
	if tid == os.Getpid() {
		t.Fatal("fn ran on the main thread, which cannot end")
	}
	// The thread that stayed in the namespace is ended by the runtime, not
	// reused. Wait for it to go (the test's own timeout bounds the wait).
	task := "/proc/self/task/" + strconv.Itoa(tid)
	for {
		if _, err := os.Stat(task); errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// No goroutine runs there: many goroutines, each on whatever thread
	// the scheduler gives it, all find themselves at home.
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for range 200 {
				ino, err := threadNetNSIno()
				if err == nil && ino != home {
					err = fmt.Errorf("a goroutine ran in namespace %d", ino)
				}
				if err != nil {
					errc <- err
					return
				}
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if out := tasksOutside(t, home); len(out) > 0 {
		t.Errorf("threads %v left in another network namespace", out)
	}
	// The process goes on working.
	if err := Do(ns, func() error { return nil }); err != nil {
		t.Errorf("Do after a lost thread: %v", err)
	}
}
