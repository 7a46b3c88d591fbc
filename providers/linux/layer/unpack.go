package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
	maxID          = 1<<32 - 2 // (uid_t)-1 means "unchanged" to chown
)

// UnsafeEntryError reports a layer entry that would create, change or follow
// something outside the directory it is extracted into.
type UnsafeEntryError struct {
	Name   string // the entry's name as written in the layer
	Reason string // for example "climbs out of the root"
}

// Error returns the error text, for example
// `layer entry "../x" climbs out of the root`.
func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("layer entry %q %s", e.Name, e.Reason)
}

// Unpack extracts the uncompressed layer tar stream r into dir, which must be
// an existing, empty directory, and returns the sha256 digest of the stream
// formatted "sha256:<hex>" (the layer's DiffID). It reads r to its end,
// trailing padding included, so that the digest covers the whole stream and a
// verifying reader below it sees EOF. It checks ctx between entries. On error
// dir holds a partial tree that the caller removes.
func Unpack(ctx context.Context, dir string, r io.Reader) (diffID string, err error) {
	return unpack(ctx, dir, r, false)
}

// unpack is Unpack; unprivileged makes failures to chown and to set trusted.*
// extended attributes non-fatal, so that tests can check the escape rules
// without root. berth itself always runs as root and never sets it.
func unpack(ctx context.Context, dir string, r io.Reader, unprivileged bool) (string, error) {
	if err := checkEmpty(dir); err != nil {
		return "", err
	}
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(root)

	h := sha256.New()
	stream := io.TeeReader(r, h)
	u := &unpacker{root: root, unprivileged: unprivileged, dirIndex: map[string]int{}}
	tr := tar.NewReader(stream)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read layer: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return "", err
		}
	}
	if err := u.dirTimes(); err != nil {
		return "", err
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return "", fmt.Errorf("read layer: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func checkEmpty(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("unpack into %s: directory is not empty", dir)
	}
	return nil
}

// unpacker holds the state of one Unpack.
type unpacker struct {
	root         int
	unprivileged bool
	dirs         []dirTime      // directories whose times are set at the end
	dirIndex     map[string]int // name → index in dirs
}

type dirTime struct {
	name  string
	times []unix.Timespec
}

// cleanName turns an entry name into a clean path relative to the root ("."
// for the root itself). It strips leading slashes and reports whether ".."
// components climb above the root.
func cleanName(name string) (string, bool) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}

// split returns the parent (or ".") and the last component of a clean name.
func split(name string) (string, string) {
	dir, base := path.Split(name)
	if dir == "" {
		return ".", base
	}
	return strings.TrimSuffix(dir, "/"), base
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name, ok := cleanName(hdr.Name)
	if !ok {
		return &UnsafeEntryError{Name: hdr.Name, Reason: "climbs out of the root"}
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return &UnsafeEntryError{Name: hdr.Name, Reason: "would replace the root"}
	}
	parent, base := split(name)
	if parent != "." {
		for c := range strings.SplitSeq(parent, "/") {
			if strings.HasPrefix(c, whiteoutPrefix) {
				return nil // inside aufs metadata or a whiteout "directory"
			}
		}
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(hdr, parent, base)
	}
	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return fmt.Errorf("layer entry %q: owner %d:%d out of range", hdr.Name, hdr.Uid, hdr.Gid)
	}
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		return nil // devices, sockets and unknown types are skipped
	}
	pfd, err := u.openDir(hdr.Name, parent, true)
	if err != nil {
		return entryError(hdr.Name, err)
	}
	defer unix.Close(pfd)
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = u.dir(pfd, base, name, hdr)
	case tar.TypeSymlink:
		err = u.symlink(pfd, base, hdr)
	case tar.TypeLink:
		err = u.hardlink(pfd, base, name, hdr)
	case tar.TypeFifo:
		err = u.fifo(pfd, base, hdr)
	default:
		err = u.file(pfd, base, hdr, r)
	}
	return entryError(hdr.Name, err)
}

// entryError names the entry in err, unless err is nil or already an
// *UnsafeEntryError.
func entryError(name string, err error) error {
	var unsafe *UnsafeEntryError
	if err == nil || errors.As(err, &unsafe) {
		return err
	}
	return fmt.Errorf("layer entry %q: %w", name, err)
}

// whiteout handles an entry whose last component starts with ".wh.".
func (u *unpacker) whiteout(hdr *tar.Header, parent, base string) error {
	if strings.HasPrefix(base, whiteoutMeta) && base != opaqueMarker {
		return nil // aufs metadata
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if base != opaqueMarker && (target == "" || target == "." || target == "..") {
		return &UnsafeEntryError{Name: hdr.Name, Reason: "is not a valid whiteout"}
	}
	pfd, err := u.openDir(hdr.Name, parent, true)
	if err != nil {
		return entryError(hdr.Name, err)
	}
	defer unix.Close(pfd)
	if base == opaqueMarker {
		err := unix.Fsetxattr(pfd, opaqueXattr, []byte("y"), 0)
		if err != nil && !(u.unprivileged && errors.Is(err, unix.EPERM)) {
			return entryError(hdr.Name, fmt.Errorf("mark opaque: %w", err))
		}
		return nil
	}
	if err := removeAt(pfd, target); err != nil {
		return entryError(hdr.Name, err)
	}
	if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
		return entryError(hdr.Name, fmt.Errorf("create whiteout: %w", err))
	}
	return nil
}

func (u *unpacker) dir(pfd int, base, name string, hdr *tar.Header) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		// An existing directory stays, with its content.
	case err == nil:
		if err := removeAt(pfd, base); err != nil {
			return err
		}
		fallthrough
	case errors.Is(err, unix.ENOENT):
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	default:
		return fmt.Errorf("stat: %w", err)
	}
	fd, err := openBeneath(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	if err := u.attrs(fd, hdr); err != nil {
		return err
	}
	if i, ok := u.dirIndex[name]; ok {
		u.dirs[i].times = times(hdr)
	} else {
		u.dirIndex[name] = len(u.dirs)
		u.dirs = append(u.dirs, dirTime{name: name, times: times(hdr)})
	}
	return nil
}

func (u *unpacker) file(pfd int, base string, hdr *tar.Header, r io.Reader) error {
	if err := removeAt(pfd, base); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := u.attrs(fd, hdr); err != nil {
		return err
	}
	if err := unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return f.Close()
}

func (u *unpacker) symlink(pfd int, base string, hdr *tar.Header) error {
	if err := removeAt(pfd, base); err != nil {
		return err
	}
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	if err := u.chown(unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
		return err
	}
	if err := unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (u *unpacker) hardlink(pfd int, base, name string, hdr *tar.Header) error {
	target, ok := cleanName(hdr.Linkname)
	if !ok || target == "." {
		return &UnsafeEntryError{Name: hdr.Name, Reason: fmt.Sprintf("links to %q outside the root", hdr.Linkname)}
	}
	if target == name {
		return nil // a link to itself changes nothing
	}
	tparent, tbase := split(target)
	tfd, err := u.openDir(hdr.Name, tparent, false)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	if err := removeAt(pfd, base); err != nil {
		return err
	}
	// Flags 0: a symlink target is linked itself, never followed.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("link to %q: %w", hdr.Linkname, err)
	}
	return nil
}

func (u *unpacker) fifo(pfd int, base string, hdr *tar.Header) error {
	if err := removeAt(pfd, base); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
		return fmt.Errorf("mkfifo: %w", err)
	}
	if err := u.chown(unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
		return err
	}
	mode := uint32(hdr.Mode) & 0o7777
	err := unix.Fchmodat(pfd, base, mode, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		// No fchmodat2: the fifo was just created here and nothing else
		// writes to this tree, so following is the same.
		err = unix.Fchmodat(pfd, base, mode, 0)
	}
	if err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// attrs sets owner, mode and extended attributes through fd, in that order:
// chown clears the setuid and setgid bits and security.capability.
func (u *unpacker) attrs(fd int, hdr *tar.Header) error {
	if err := u.chown(unix.Fchown(fd, hdr.Uid, hdr.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return setXattrs(fd, hdr.PAXRecords)
}

func (u *unpacker) chown(err error) error {
	if err == nil || (u.unprivileged && errors.Is(err, unix.EPERM)) {
		return nil
	}
	return fmt.Errorf("chown: %w", err)
}

// dirTimes sets the times of directories, after their content is complete.
func (u *unpacker) dirTimes() error {
	for _, d := range u.dirs {
		parent, base := split(d.name)
		pfd, err := u.openDir(d.name, parent, false)
		if err != nil {
			continue // replaced or removed by a later entry
		}
		err = unix.UtimesNanoAt(pfd, base, d.times, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("layer entry %q: set times: %w", d.name, err)
		}
	}
	return nil
}

func times(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// openDir opens the directory rel (a clean relative path, or ".") below the
// root without following any symlink. With create, missing directories are
// made with mode 0755. entry names the layer entry for an
// *UnsafeEntryError; other errors do not name it.
func (u *unpacker) openDir(entry, rel string, create bool) (int, error) {
	if rel == "." {
		return unix.FcntlInt(uintptr(u.root), unix.F_DUPFD_CLOEXEC, 0)
	}
	fd, err := openBeneath(u.root, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) && create {
		fd, err = u.mkdirAll(rel)
	}
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ELOOP):
		return -1, &UnsafeEntryError{Name: entry, Reason: "goes through a symlink"}
	case errors.Is(err, unix.EXDEV):
		return -1, &UnsafeEntryError{Name: entry, Reason: "climbs out of the root"}
	default:
		return -1, fmt.Errorf("open %q: %w", rel, err)
	}
}

// mkdirAll opens rel one component at a time, creating missing ones.
func (u *unpacker) mkdirAll(rel string) (int, error) {
	cur, err := unix.FcntlInt(uintptr(u.root), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for c := range strings.SplitSeq(rel, "/") {
		next, err := openBeneath(cur, c, unix.O_RDONLY|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(cur, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openBeneath(cur, c, unix.O_RDONLY|unix.O_DIRECTORY)
				if err == nil {
					err = unix.Fchmod(next, 0o755) // undo the umask
				}
			}
		}
		unix.Close(cur)
		if err != nil {
			if next >= 0 {
				unix.Close(next)
			}
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// openBeneath opens rel below dirfd without following any symlink, magic
// link or mount point, and without climbing above dirfd. A symlink anywhere
// in rel, the last component included, gives ELOOP.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for range 16 {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return -1, err
		}
	}
	return -1, unix.EAGAIN
}

// removeAt removes name from the directory dirfd, with its content when it
// is a directory. A missing name is not an error. No symlink is followed.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case !errors.Is(err, unix.EISDIR):
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := openBeneath(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}
