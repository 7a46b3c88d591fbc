package netdev

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nsGetNSType is the NS_GET_NSTYPE ioctl of nsfs (_IO(0xb7, 0x3)), which
// returns the CLONE_NEW* type of a namespace file.
const nsGetNSType = 0xb703

// threadNetNS is the network namespace of the calling thread.
const threadNetNS = "/proc/thread-self/ns/net"

// errNotNetNS is returned for a path that exists but is not a network
// namespace.
var errNotNetNS = errors.New("not a network namespace")

// CreateNetNS creates a network namespace and bind-mounts it at path, so
// that it lives until DeleteNetNS, with its loopback interface up. The
// parent directory is created if needed and made a shared mount point. A
// namespace already mounted at path is kept (and its loopback brought up):
// CreateNetNS is idempotent. Creation and deletion of namespaces in one
// directory are serialised with flock(2) on the directory, across
// processes.
func CreateNetNS(path string) error {
	if path == "" {
		return errors.New("create network namespace: empty path")
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	defer unlock()

	ok, err := NetNSExists(path)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	if ok {
		if err := Do(path, loopbackUp); err != nil {
			return fmt.Errorf("create network namespace %s: %w", path, err)
		}
		return nil
	}
	if err := makeSharedMountPoint(dir); err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	// The mount point: an empty file, left by a failed attempt or made now.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o444)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	if err := newNetNSAt(path); err != nil {
		_ = unmountAll(path)
		_ = os.Remove(path)
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	return nil
}

// newNetNSAt makes a new network namespace on a dedicated locked thread,
// bind-mounts it at path and brings its loopback up, then returns the
// thread to its original namespace. The thread is never unlocked while it
// is elsewhere: if the return fails, the goroutine exits locked and the
// runtime ends the thread.
func newNetNSAt(path string) error {
	err := errors.New("network namespace thread exited early")
	onLockedThread(func() {
		orig, oerr := unix.Open(threadNetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if oerr != nil {
			runtime.UnlockOSThread()
			err = fmt.Errorf("open current network namespace: %w", oerr)
			return
		}
		defer unix.Close(orig)
		if uerr := unix.Unshare(unix.CLONE_NEWNET); uerr != nil {
			// unshare failed: the thread is still where it was.
			runtime.UnlockOSThread()
			err = fmt.Errorf("unshare network namespace: %w", uerr)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		err = unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err != nil {
			err = fmt.Errorf("bind-mount network namespace: %w", err)
		} else {
			err = loopbackUp()
		}
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			// Stay locked: this thread dies with its goroutine.
			err = errors.Join(err, fmt.Errorf("return to original network namespace: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
	})
	return err
}

// onLockedThread runs f on a new goroutine locked to an OS thread other
// than the process's main thread, and waits for it to end. f unlocks the
// thread (runtime.UnlockOSThread) only once the thread is fit for reuse;
// if it returns with the thread still locked, the runtime ends the thread
// with the goroutine. The main thread is avoided because it cannot end (the
// runtime would park it for good, in whatever namespace it is) and because
// /proc/self/ns shows its namespaces: when the new goroutine lands on it,
// the goroutine keeps it locked and idle and runs f on a nested goroutine,
// which therefore gets another thread.
func onLockedThread(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			onLockedThread(f)
			runtime.UnlockOSThread()
			return
		}
		f()
	}()
	<-done
}

// loopbackUp brings up lo in the calling thread's network namespace.
func loopbackUp() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if lo.Attrs().Flags&unix.IFF_UP != 0 {
		return nil
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// DeleteNetNS unmounts the network namespace at path (lazily, so that a
// process still using it keeps it until it exits) and removes the file. A
// path that does not exist is not an error; a path that exists and is not
// a namespace mount is removed only if it is an empty regular file (the
// mount point left by a crash).
func DeleteNetNS(path string) error {
	if path == "" {
		return errors.New("delete network namespace: empty path")
	}
	path = filepath.Clean(path)
	unlock, err := lockDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete network namespace %s: %w", path, err)
	}
	defer unlock()
	if err := unmountAll(path); err != nil {
		return fmt.Errorf("delete network namespace %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete network namespace %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != 0 {
		return fmt.Errorf("delete network namespace %s: not a namespace mount point", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete network namespace %s: %w", path, err)
	}
	return nil
}

// unmountAll lazily unmounts every nsfs mount stacked at path.
func unmountAll(path string) error {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("statfs: %w", err)
		}
		if st.Type != unix.NSFS_MAGIC {
			return nil
		}
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount: %w", err)
		}
	}
}

// NetNSExists reports whether a network namespace is mounted at path.
func NetNSExists(path string) (bool, error) {
	fd, err := openNetNS(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotNetNS) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	unix.Close(fd)
	return true, nil
}

// openNetNS opens the network namespace file at path. The error wraps
// fs.ErrNotExist when path does not exist and errNotNetNS when it is
// something else than a network namespace.
func openNetNS(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return -1, fmt.Errorf("open network namespace %s: %w", path, errNotNetNS)
	}
	typ, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	if typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, fmt.Errorf("open network namespace %s: %w", path, errNotNetNS)
	}
	return fd, nil
}

// Do runs fn on an OS thread that has entered the network namespace at
// path, and returns fn's error. fn runs on its own goroutine; a panic in fn
// is re-raised in the caller once the thread is back in its namespace.
// Goroutines that fn starts do not run in the namespace. fn must not call
// runtime.UnlockOSThread, and must not switch namespaces itself.
//
// fn never runs on the process's main thread. If its thread cannot return
// to its namespace, Do returns an error and the runtime ends the thread.
func Do(path string, fn func() error) error {
	fd, err := openNetNS(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return doFd(fd, fn, setNetNS)
}

// setNetNS moves the calling thread into the network namespace fd.
func setNetNS(fd int) error {
	return unix.Setns(fd, unix.CLONE_NEWNET)
}

// doResult is what the goroutine of doFd hands back.
type doResult struct {
	err      error
	panicked bool
	panicVal any
}

// doFd runs fn in the network namespace fd as Do does; restore moves the
// thread back (a parameter so that tests can make it fail).
func doFd(fd int, fn func() error, restore func(fd int) error) error {
	// A goroutine that ends through runtime.Goexit in fn leaves this
	// error, and its thread, locked, is ended by the runtime.
	r := doResult{err: errors.New("network namespace function exited without returning")}
	onLockedThread(func() {
		orig, err := unix.Open(threadNetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := setNetNS(fd); err != nil {
			// setns failed: the thread is still where it was.
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("enter network namespace: %w", err)
			return
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.panicked, r.panicVal = true, p
				}
			}()
			r.err = fn()
		}()
		if err := restore(orig); err != nil {
			// Stay locked: the runtime ends this thread with its
			// goroutine rather than reuse it in the wrong namespace.
			r.err = errors.Join(r.err, fmt.Errorf("return to original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
	})
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// makeSharedMountPoint makes dir a shared mount point, bind-mounting it on
// itself first when it is not a mount point, as iproute2 does for
// /run/netns.
func makeSharedMountPoint(dir string) error {
	made := false
	for {
		err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("make %s a shared mount: %w", dir, err)
		}
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s on itself: %w", dir, err)
		}
		made = true
	}
}

// RemoveNetNSDir undoes what CreateNetNS did to a directory: it unmounts
// the mounts at dir (the bind mount on itself) and removes dir if it is
// empty. It refuses while a network namespace is still mounted in dir. A
// missing dir is not an error.
func RemoveNetNSDir(dir string) error {
	dir = filepath.Clean(dir)
	unlock, err := lockDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove network namespace directory %s: %w", dir, err)
	}
	defer unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove network namespace directory %s: %w", dir, err)
	}
	for _, e := range entries {
		ok, err := NetNSExists(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("remove network namespace directory %s: %w", dir, err)
		}
		if ok {
			return fmt.Errorf("remove network namespace directory %s: network namespace %s is still mounted", dir, e.Name())
		}
	}
	for {
		mounted, err := mountinfo.Mounted(dir)
		if err != nil {
			return fmt.Errorf("remove network namespace directory %s: %w", dir, err)
		}
		if !mounted {
			break
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("remove network namespace directory %s: unmount: %w", dir, err)
		}
	}
	if len(entries) > 0 {
		return nil
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) {
		return fmt.Errorf("remove network namespace directory %s: %w", dir, err)
	}
	return nil
}

// lockDir takes an exclusive flock on dir and returns its release.
func lockDir(dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}
