package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

const (
	// maxDepth bounds how deep a copied tree may be: every level holds two
	// directory descriptors open.
	maxDepth = 512
	// maxLinkHandles bounds the descriptors kept open to recreate hard
	// links; files linked beyond it are copied instead.
	maxLinkHandles = 1024
	// chunk is how much file data is copied between two context checks.
	chunk = 32 << 20
)

// fileID names a file by device and inode.
type fileID struct{ dev, ino uint64 }

// copier copies trees from directory descriptors to directory descriptors.
// It never follows a symbolic link, never opens a path of more than one
// element and creates every entry under a fresh temporary name (O_EXCL)
// before it renames it into place.
type copier struct {
	ctx context.Context
	// archive keeps owners, every mode bit, extended attributes and device
	// nodes; without it entries belong to the caller (uid, gid).
	archive  bool
	uid, gid uint32
	// toHost drops setuid and setgid bits from every non-directory: what
	// comes out of a container must not carry privileges onto the host.
	toHost bool
	// links holds an O_PATH handle of every copied file with more than one
	// link, by the source file's identity, to link its other names to.
	links map[fileID]*os.File
	// made holds the directories this copy created, to refuse copying a
	// directory into itself.
	made map[fileID]bool
}

func newCopier(ctx context.Context, archive bool) *copier {
	return &copier{
		ctx:     ctx,
		archive: archive,
		uid:     uint32(os.Geteuid()),
		gid:     uint32(os.Getegid()),
		links:   map[fileID]*os.File{},
		made:    map[fileID]bool{},
	}
}

func (c *copier) close() {
	for _, h := range c.links {
		h.Close()
	}
	clear(c.links)
}

// copyDir copies the directory src (described by st) to the entry name in
// dst: a new directory, or the directory already there, merged into. rel is
// the path shown in errors.
func (c *copier) copyDir(src *os.File, st *unix.Stat_t, dst *os.File, name, rel string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s: tree deeper than %d levels", rel, maxDepth)
	}
	if c.made[fileID{uint64(st.Dev), st.Ino}] {
		return fmt.Errorf("%s: cannot copy a directory into itself", rel)
	}
	d, created, err := c.makeDir(dst, name, rel)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := c.copyContents(src, d, rel, depth); err != nil {
		return err
	}
	if !created {
		return nil
	}
	if err := c.setAttrs(src, d, st); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := setTimes(dst, name, st); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// copyContents copies every entry of the directory src into the directory
// dst.
func (c *copier) copyContents(src, dst *os.File, rel string, depth int) error {
	names, err := readNames(src)
	if err != nil {
		return fmt.Errorf("%s: read directory: %w", rel, err)
	}
	for _, n := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		err := unix.Fstatat(int(src.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue // removed while we copy: as if it never was
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path.Join(rel, n), err)
		}
		if err := c.copyEntry(src, n, &st, dst, n, path.Join(rel, n), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies the entry srcName of the directory srcDir (described by
// st) to the entry name of the directory dst.
func (c *copier) copyEntry(srcDir *os.File, srcName string, st *unix.Stat_t, dst *os.File, name, rel string, depth int) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		d, err := openDirAt(srcDir, srcName, st)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		defer d.Close()
		return c.copyDir(d, st, dst, name, rel, depth)
	case unix.S_IFREG:
		return c.copyFile(srcDir, srcName, st, dst, name, rel)
	case unix.S_IFLNK:
		return c.copySymlink(srcDir, srcName, st, dst, name, rel)
	case unix.S_IFIFO:
		return c.copyNode(st, dst, name, rel)
	case unix.S_IFCHR, unix.S_IFBLK:
		if !c.archive {
			return fmt.Errorf("%s: refusing to copy a device node", rel)
		}
		return c.copyNode(st, dst, name, rel)
	}
	return nil // sockets: nothing to copy, as tar does
}

// makeDir opens the directory name in dst, creating it if it is absent.
func (c *copier) makeDir(dst *os.File, name, rel string) (d *os.File, created bool, err error) {
	var st unix.Stat_t
	err = unix.Fstatat(int(dst.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		d, err := openDirAt(dst, name, &st)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", rel, err)
		}
		return d, false, nil
	case err == nil:
		return nil, false, fmt.Errorf("%s: cannot overwrite non-directory with directory", rel)
	case err != unix.ENOENT:
		return nil, false, fmt.Errorf("%s: %w", rel, err)
	}
	if err := unix.Mkdirat(int(dst.Fd()), name, 0o700); err != nil {
		return nil, false, fmt.Errorf("%s: mkdir: %w", rel, err)
	}
	d, err = openDirAt(dst, name, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", rel, err)
	}
	var made unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &made); err != nil {
		d.Close()
		return nil, false, fmt.Errorf("%s: %w", rel, err)
	}
	c.made[fileID{uint64(made.Dev), made.Ino}] = true
	return d, true, nil
}

// refuseDir fails when the entry name of dst is a directory, which a
// non-directory may not replace.
func refuseDir(dst *os.File, name, rel string) error {
	var st unix.Stat_t
	err := unix.Fstatat(int(dst.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%s: cannot overwrite directory with non-directory", rel)
	}
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// tempName returns a fresh name for an entry under construction.
func tempName() string {
	return ".berth-cp-" + strconv.FormatUint(rand.Uint64(), 36)
}

// create makes an entry under a temporary name with mk, retrying on
// collisions, and returns the name.
func create(mk func(name string) error) (string, error) {
	for range 16 {
		n := tempName()
		err := mk(n)
		if err == unix.EEXIST {
			continue
		}
		return n, err
	}
	return "", unix.EEXIST
}

// place renames the temporary entry tmp of dir to name, or removes it when
// err is set.
func place(dir *os.File, tmp, name string, err error) error {
	if err == nil {
		err = unix.Renameat(int(dir.Fd()), tmp, int(dir.Fd()), name)
		if err != nil {
			err = fmt.Errorf("rename into place: %w", err)
		}
	}
	if err != nil {
		_ = unix.Unlinkat(int(dir.Fd()), tmp, 0)
	}
	return err
}

// copyFile copies the regular file srcName of srcDir to name in dst.
func (c *copier) copyFile(srcDir *os.File, srcName string, st *unix.Stat_t, dst *os.File, name, rel string) error {
	if err := refuseDir(dst, name, rel); err != nil {
		return err
	}
	id := fileID{uint64(st.Dev), st.Ino}
	if h := c.links[id]; h != nil {
		tmp, err := create(func(n string) error {
			return unix.Linkat(int(h.Fd()), "", int(dst.Fd()), n, unix.AT_EMPTY_PATH)
		})
		if err == nil {
			if err := place(dst, tmp, name, nil); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			return nil
		}
		// No CAP_DAC_READ_SEARCH, or the file is gone: copy it again.
	}
	in, err := openFileAt(srcDir, srcName, st)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer in.Close()
	var out *os.File
	tmp, err := create(func(n string) error {
		fd, err := unix.Openat(int(dst.Fd()), n, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			out = os.NewFile(uintptr(fd), n)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: create: %w", rel, err)
	}
	defer out.Close()
	err = c.copyData(out, in)
	if err == nil {
		err = c.setAttrs(in, out, st)
	}
	if err == nil {
		err = setTimes(dst, tmp, st)
	}
	var made unix.Stat_t
	if err == nil {
		err = unix.Fstat(int(out.Fd()), &made)
	}
	if err := place(dst, tmp, name, err); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if st.Nlink > 1 && len(c.links) < maxLinkHandles {
		c.remember(id, dst, name, &made)
	}
	return nil
}

// remember keeps an O_PATH handle of the file name in dir, if it is still
// the file made (st), for the other names of the source file id.
func (c *copier) remember(id fileID, dir *os.File, name string, made *unix.Stat_t) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	h := os.NewFile(uintptr(fd), name)
	if sameFile(h, made) != nil {
		h.Close()
		return
	}
	c.links[id] = h
}

// openFileAt opens the regular file name in dir for reading without
// following a symbolic link, and checks that it is the entry st describes.
// O_NONBLOCK keeps a FIFO swapped in from blocking the open.
func openFileAt(dir *os.File, name string, st *unix.Stat_t) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if err := sameFile(f, st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// copyData copies in to out, checking the context between chunks. The
// chunks go through os.File.ReadFrom, which uses copy_file_range(2).
func (c *copier) copyData(out, in *os.File) error {
	for {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		_, err := io.CopyN(out, in, chunk)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// copySymlink copies the symbolic link srcName of srcDir to name in dst,
// with the same target text.
func (c *copier) copySymlink(srcDir *os.File, srcName string, st *unix.Stat_t, dst *os.File, name, rel string) error {
	if err := refuseDir(dst, name, rel); err != nil {
		return err
	}
	link, err := readlinkAt(srcDir, srcName, st.Size)
	if err != nil {
		return fmt.Errorf("%s: readlink: %w", rel, err)
	}
	tmp, err := create(func(n string) error { return unix.Symlinkat(link, int(dst.Fd()), n) })
	if err != nil {
		return fmt.Errorf("%s: symlink: %w", rel, err)
	}
	if c.archive {
		if err = unix.Fchownat(int(dst.Fd()), tmp, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			err = fmt.Errorf("chown: %w", err)
		}
	}
	if err == nil {
		err = setTimes(dst, tmp, st)
	}
	if err := place(dst, tmp, name, err); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// copyNode recreates a FIFO or a device node as name in dst.
func (c *copier) copyNode(st *unix.Stat_t, dst *os.File, name, rel string) error {
	if err := refuseDir(dst, name, rel); err != nil {
		return err
	}
	tmp, err := create(func(n string) error {
		return unix.Mknodat(int(dst.Fd()), n, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	})
	if err != nil {
		return fmt.Errorf("%s: mknod: %w", rel, err)
	}
	if c.archive {
		if err = unix.Fchownat(int(dst.Fd()), tmp, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			err = fmt.Errorf("chown: %w", err)
		}
	}
	if err == nil {
		if err = chmodNode(dst, tmp, st.Mode&unix.S_IFMT, c.mode(st)); err != nil {
			err = fmt.Errorf("chmod: %w", err)
		}
	}
	if err == nil {
		err = setTimes(dst, tmp, st)
	}
	if err := place(dst, tmp, name, err); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// chmodNode sets the mode of the node name in dir (of type typ) without
// following a symbolic link: with fchmodat2(2) where the kernel has it
// (Linux 6.6), else through an O_PATH descriptor checked to be the node.
func chmodNode(dir *os.File, name string, typ, mode uint32) error {
	err := unix.Fchmodat(int(dir.Fd()), name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.ENOSYS && err != unix.EOPNOTSUPP {
		return err
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != typ {
		return errChanged
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// mode returns the permission bits an entry copied from st gets. Without
// archive, setuid and setgid bits are kept only if the owner they refer to
// does not change, and never on files copied to the host.
func (c *copier) mode(st *unix.Stat_t) uint32 {
	m := st.Mode & 0o7777
	if c.toHost && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		m &^= unix.S_ISUID | unix.S_ISGID
	}
	if !c.archive {
		if st.Uid != c.uid {
			m &^= unix.S_ISUID
		}
		if st.Gid != c.gid {
			m &^= unix.S_ISGID
		}
	}
	return m
}

// setAttrs gives the open copy out the owner, mode and extended attributes
// of the open source in (described by st). Owner first: chown clears setuid
// bits and file capabilities.
func (c *copier) setAttrs(in, out *os.File, st *unix.Stat_t) error {
	if c.archive {
		if err := unix.Fchown(int(out.Fd()), int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(int(out.Fd()), c.mode(st)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if c.archive {
		return copyXattrs(in, out)
	}
	return nil
}

// setTimes sets the access and modification times of the entry name in
// dir to those of st, without following a symbolic link.
func setTimes(dir *os.File, name string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(int(dir.Fd()), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// copyXattrs copies every extended attribute of in to out.
func copyXattrs(in, out *os.File) error {
	names, err := listXattrs(in)
	if err != nil {
		return err
	}
	for _, n := range names {
		v, err := getXattr(in, n)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return fmt.Errorf("read xattr %s: %w", n, err)
		}
		if err := unix.Fsetxattr(int(out.Fd()), n, v, 0); err != nil {
			return fmt.Errorf("write xattr %s: %w", n, err)
		}
	}
	return nil
}

func listXattrs(f *os.File) ([]string, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Flistxattr(int(f.Fd()), buf)
		if err == unix.ERANGE {
			size *= 4
			continue
		}
		if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs: %w", err)
		}
		var names []string
		for _, b := range splitNul(buf[:n]) {
			names = append(names, string(b))
		}
		return names, nil
	}
}

func splitNul(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

func getXattr(f *os.File, name string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(int(f.Fd()), name, buf)
		if err == unix.ERANGE {
			if size > 1<<20 {
				return nil, err
			}
			size *= 4
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// readNames returns the names in the directory d, sorted.
func readNames(d *os.File) ([]string, error) {
	names, err := d.Readdirnames(-1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
