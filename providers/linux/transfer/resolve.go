package transfer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symbolic links followed for one path, as the
// kernel's MAXSYMLINKS does.
const maxSymlinks = 40

// resolver opens paths within a root directory. It uses openat2(2) with
// RESOLVE_IN_ROOT unless legacy is set or the kernel lacks openat2, and then
// falls back to the pure Go resolver of filepath-securejoin.
type resolver struct {
	legacy bool
}

// open opens p within root with the open(2) flags, following symbolic links
// (the last one too) as if root were "/".
func (r resolver) open(root *os.File, p string, flags int) (*os.File, error) {
	if !r.legacy {
		how := unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC),
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		}
		var err error
		for range 64 {
			var fd int
			fd, err = unix.Openat2(int(root.Fd()), p, &how)
			if err == nil {
				return os.NewFile(uintptr(fd), p), nil
			}
			// EAGAIN: a rename or mount raced with the lookup; retry.
			if err != unix.EINTR && err != unix.EAGAIN {
				break
			}
		}
		if err != unix.ENOSYS && err != unix.EPERM {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
	}
	h, err := pathrs.OpenatInRoot(root, p)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: underlying(err)}
	}
	if flags&unix.O_PATH != 0 {
		return h, nil
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, flags)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: underlying(err)}
	}
	return f, nil
}

// underlying digs the errno out of an error, so that errors.Is sees the same
// values on both resolver paths.
func underlying(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// inRootPath returns the path of the directory dir as seen from root.
func inRootPath(root, dir *os.File) (string, error) {
	rp, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(root.Fd())))
	if err != nil {
		return "", err
	}
	dp, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(dir.Fd())))
	if err != nil {
		return "", err
	}
	switch {
	case dp == rp:
		return "/", nil
	case rp == "/":
		return dp, nil
	case strings.HasPrefix(dp, rp+"/"):
		return dp[len(rp):], nil
	}
	return "", fmt.Errorf("directory %s moved out of %s during the copy", dp, rp)
}

// pathSpec is a path given by the user, made absolute and clean, with what
// its trailing characters ask for.
type pathSpec struct {
	clean string
	// contents is set by a trailing "/.": the contents of a directory.
	contents bool
	// dirOnly is set by a trailing "/" or "/.": the path must name a
	// directory (its last symbolic link is followed).
	dirOnly bool
}

// containerPath parses a path inside a container. A relative path is taken
// from the container's "/".
func containerPath(p string) (pathSpec, error) {
	if p == "" {
		return pathSpec{}, errors.New("empty container path")
	}
	s := trailing(p)
	s.clean = path.Clean("/" + p)
	return s, nil
}

// hostPath parses a path on the host. A relative path is taken from the
// working directory.
func hostPath(p string) (pathSpec, error) {
	if p == "" {
		return pathSpec{}, errors.New("empty host path")
	}
	s := trailing(p)
	abs, err := filepath.Abs(p)
	if err != nil {
		return pathSpec{}, err
	}
	s.clean = filepath.ToSlash(abs)
	return s, nil
}

func trailing(p string) pathSpec {
	var s pathSpec
	s.contents = p == "." || strings.HasSuffix(p, "/.")
	s.dirOnly = s.contents || strings.HasSuffix(p, "/")
	return s
}

// base returns the last element of the clean path p, or "" for "/".
func base(p string) string {
	if p == "/" {
		return ""
	}
	return path.Base(p)
}

// split splits p into its directory and its last element after removing
// trailing slashes; the last element is "" for "/".
func split(p string) (dir, name string) {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/", ""
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "/", p
	}
	dir = p[:i]
	if dir == "" {
		dir = "/"
	}
	return dir, p[i+1:]
}

// target is where a copy lands: the entry name in the directory dir, or the
// directory dir itself when name is "". st is the entry's lstat(2), nil when
// the entry does not exist.
type target struct {
	dir  *os.File
	name string
	st   *unix.Stat_t
}

func (t target) close() {
	if t.dir != nil {
		t.dir.Close()
	}
}

func (t target) exists() bool { return t.st != nil }

func (t target) isDir() bool { return t.st != nil && t.st.Mode&unix.S_IFMT == unix.S_IFDIR }

// openDir opens the directory the target names.
func (t target) openDir() (*os.File, error) {
	if t.name == "" {
		return dup(t.dir)
	}
	return openDirAt(t.dir, t.name, t.st)
}

// resolveTarget finds where p lands within root, following every symbolic
// link, the last one included, as if root were "/". The last link is
// followed by hand (readlinkat, then a new lookup within root), so that a
// link that points at nothing yields the directory and name it points at.
func (r resolver) resolveTarget(root *os.File, p string) (target, error) {
	for range maxSymlinks + 1 {
		dir, name := split(p)
		if name == "" || name == "." || name == ".." {
			d, err := r.open(root, p, unix.O_RDONLY|unix.O_DIRECTORY)
			if err != nil {
				return target{}, err
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(d.Fd()), &st); err != nil {
				d.Close()
				return target{}, &os.PathError{Op: "stat", Path: p, Err: err}
			}
			return target{dir: d, st: &st}, nil
		}
		d, err := r.open(root, dir, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return target{}, err
		}
		var st unix.Stat_t
		err = unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			return target{dir: d, name: name}, nil
		}
		if err != nil {
			d.Close()
			return target{}, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return target{dir: d, name: name, st: &st}, nil
		}
		link, err := readlinkAt(d, name, st.Size)
		if err != nil {
			d.Close()
			return target{}, &os.PathError{Op: "readlink", Path: p, Err: err}
		}
		if !path.IsAbs(link) {
			dp, err := inRootPath(root, d)
			if err != nil {
				d.Close()
				return target{}, err
			}
			link = dp + "/" + link
		}
		d.Close()
		p = link
	}
	return target{}, &os.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
}

// source is the top of a copy: either the directory self, or the entry name
// in the directory parent. st describes the entry.
type source struct {
	self   *os.File
	parent *os.File
	name   string
	st     unix.Stat_t
}

func (s source) close() {
	if s.self != nil {
		s.self.Close()
	}
	if s.parent != nil {
		s.parent.Close()
	}
}

func (s source) isDir() bool { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }

// openSource opens the source of a copy within root. Its last symbolic link
// is followed only when the path asks for a directory (a trailing "/").
func (r resolver) openSource(root *os.File, s pathSpec) (source, error) {
	if s.dirOnly || s.clean == "/" {
		d, err := r.open(root, s.clean, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return source{}, err
		}
		src := source{self: d}
		if err := unix.Fstat(int(d.Fd()), &src.st); err != nil {
			d.Close()
			return source{}, &os.PathError{Op: "stat", Path: s.clean, Err: err}
		}
		return src, nil
	}
	dir, name := split(s.clean)
	parent, err := r.open(root, dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return source{}, err
	}
	src := source{parent: parent, name: name}
	if err := unix.Fstatat(int(parent.Fd()), name, &src.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		parent.Close()
		return source{}, &os.PathError{Op: "stat", Path: s.clean, Err: err}
	}
	if src.isDir() {
		d, err := openDirAt(parent, name, &src.st)
		if err != nil {
			parent.Close()
			return source{}, err
		}
		src.self = d
	}
	return src, nil
}

// openRoot opens the directory that container paths are resolved in.
func openRoot(root string) (*os.File, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open root", Path: root, Err: err}
	}
	return os.NewFile(uintptr(fd), root), nil
}

// openDirAt opens the directory name in dir without following a symbolic
// link, and checks that it is the entry st describes when st is not nil.
func openDirAt(dir *os.File, name string, st *unix.Stat_t) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	if st != nil {
		if err := sameFile(f, st); err != nil {
			f.Close()
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return f, nil
}

// errChanged reports an entry that was replaced while it was being copied.
var errChanged = errors.New("changed during the copy")

// sameFile checks that the open file f is the entry st describes.
func sameFile(f *os.File, st *unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &now); err != nil {
		return err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		return errChanged
	}
	return nil
}

func dup(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// readlinkAt reads the symbolic link name in dir; size is its lstat size.
func readlinkAt(dir *os.File, name string, size int64) (string, error) {
	n := int(size) + 1
	if n < 128 {
		n = 128
	}
	for {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(int(dir.Fd()), name, buf)
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
		if n >= unix.PathMax*4 {
			return "", unix.ENAMETOOLONG
		}
		n *= 2
	}
}
