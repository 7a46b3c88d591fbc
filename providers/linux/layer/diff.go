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
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Diff writes, as an uncompressed tar stream to w, the changes recorded in
// the overlayfs upper directory upper, and returns the DiffID of what it
// wrote. Regular files, directories, symlinks, fifos and device nodes are
// written with their mode, numeric owner, modification time (in whole
// seconds, so that the same tree always gives the same layer) and, for files
// and directories, the extended attributes xattrAllowed accepts. Names of the
// same inode after the first become hard links. Whiteouts (character devices
// 0/0) become ".wh.NAME" entries and opaque directories get a
// ".wh..wh..opq" entry. Sockets are skipped.
//
// The overlay must have been mounted with metacopy and redirect_dir off (as
// package rootfs does): a metacopy file or a redirected directory in upper is
// an error, since its content lives in a lower layer. The container should
// be paused or stopped: a file that changes size while it is read is an
// error. Diff resolves nothing through symlinks in upper.
func Diff(ctx context.Context, w io.Writer, upper string) (diffID string, err error) {
	root, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", upper, err)
	}
	defer unix.Close(root)
	h := sha256.New()
	d := &differ{ctx: ctx, tw: tar.NewWriter(io.MultiWriter(w, h)), links: map[inode]string{}}
	opaque, err := isOpaque(root)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", upper, err)
	}
	if opaque {
		if err := d.marker(opaqueMarker, &unix.Stat_t{}); err != nil {
			return "", err
		}
	}
	if err := d.dir(root, ""); err != nil {
		return "", err
	}
	if err := d.tw.Close(); err != nil {
		return "", fmt.Errorf("write layer: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

type inode struct{ dev, ino uint64 }

// differ holds the state of one Diff.
type differ struct {
	ctx   context.Context
	tw    *tar.Writer
	links map[inode]string // first name written for an inode with several links
}

// dir writes the entries of the directory fd, whose name in the layer is
// prefix (empty or ending in "/"), sorted by name.
func (d *differ) dir(fd int, prefix string) error {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), prefix)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read directory %q: %w", prefix, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		if err := d.entry(fd, n, prefix+n); err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) entry(dirfd int, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %q: %w", name, err)
	}
	kind := st.Mode & unix.S_IFMT
	if kind == unix.S_IFCHR && st.Rdev == 0 {
		// A whiteout. Overlayfs links all of them to one inode: never a hard link.
		return d.marker(pathDir(name)+whiteoutPrefix+base, &st)
	}
	if kind == unix.S_IFDIR {
		return d.subdir(dirfd, base, name)
	}
	hdr := header(name, &st)
	if st.Nlink > 1 {
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := d.links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.PAXRecords = tar.TypeLink, first, nil
			return d.write(hdr)
		}
		d.links[key] = name
	}
	switch kind {
	case unix.S_IFREG:
		return d.file(dirfd, base, name, &st)
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return fmt.Errorf("read link %q: %w", name, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, string(buf[:n])
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if kind == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	default:
		return nil // sockets
	}
	return d.write(hdr)
}

func (d *differ) subdir(dirfd int, base, name string) error {
	fd, err := openBeneath(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %q: %w", name, err)
	}
	hdr := header(name+"/", &st)
	hdr.Typeflag = tar.TypeDir
	xa, err := xattrs(fd)
	if err != nil {
		return fmt.Errorf("read %q: %w", name, err)
	}
	if _, ok := xa["trusted.overlay.redirect"]; ok {
		return fmt.Errorf("directory %q is an overlayfs redirect (mount with redirect_dir=off)", name)
	}
	addXattrs(hdr, xa)
	if err := d.write(hdr); err != nil {
		return err
	}
	if string(xa[opaqueXattr]) == "y" {
		if err := d.marker(name+"/"+opaqueMarker, &st); err != nil {
			return err
		}
	}
	return d.dir(fd, name+"/")
}

func (d *differ) file(dirfd int, base, name string, st *unix.Stat_t) error {
	fd, err := openBeneath(dirfd, base, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := unix.Fstat(fd, st); err != nil {
		return fmt.Errorf("stat %q: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%q changed type while reading", name)
	}
	hdr := header(name, st)
	hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	xa, err := xattrs(fd)
	if err != nil {
		return fmt.Errorf("read %q: %w", name, err)
	}
	if _, ok := xa["trusted.overlay.metacopy"]; ok {
		return fmt.Errorf("file %q is an overlayfs metacopy (mount with metacopy=off)", name)
	}
	addXattrs(hdr, xa)
	if err := d.write(hdr); err != nil {
		return err
	}
	n, err := io.Copy(d.tw, f)
	if err != nil && !errors.Is(err, tar.ErrWriteTooLong) {
		return fmt.Errorf("write %q: %w", name, err)
	}
	if err != nil || n != st.Size {
		return fmt.Errorf("%q changed size while reading", name)
	}
	return nil
}

// marker writes an empty regular file entry: a whiteout or an opaque marker.
func (d *differ) marker(name string, st *unix.Stat_t) error {
	return d.write(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Format: tar.FormatPAX,
		Uid: int(st.Uid), Gid: int(st.Gid), ModTime: mtime(st),
	})
}

func (d *differ) write(hdr *tar.Header) error {
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write layer entry %q: %w", hdr.Name, err)
	}
	return nil
}

func header(name string, st *unix.Stat_t) *tar.Header {
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime(st),
		Format:  tar.FormatPAX,
	}
}

func mtime(st *unix.Stat_t) time.Time {
	return time.Unix(st.Mtim.Sec, 0)
}

func addXattrs(hdr *tar.Header, xa map[string][]byte) {
	for name, v := range xa {
		if xattrAllowed(name) {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[paxXattr+name] = string(v)
		}
	}
}

func isOpaque(fd int) (bool, error) {
	v, err := getXattr(fd, opaqueXattr)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return false, nil
	}
	return string(v) == "y", err
}

// pathDir returns the directory part of a layer name, with its trailing slash.
func pathDir(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i+1]
		}
	}
	return ""
}
