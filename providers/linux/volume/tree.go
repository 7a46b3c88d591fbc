package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxDepth bounds how deep a tree removeTree and usage walk: each level
// holds a directory descriptor open.
const maxDepth = 4096

// mountOf identifies the mount the open file fd is on: its mount ID where
// the kernel reports one (Linux 5.8), else its device number.
func mountOf(fd int) (uint64, error) {
	var stx unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
	if err != nil {
		return 0, err
	}
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		return stx.Mnt_id, nil
	}
	return unix.Mkdev(stx.Dev_major, stx.Dev_minor) | 1<<63, nil
}

func openDir(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// removeTree removes the entry name of the directory parent with
// everything below it. It never follows a symbolic link and refuses to
// descend into another mount (a bind mount left inside a volume must not
// make berth delete what it shows). An entry that is already gone is not
// an error.
func removeTree(ctx context.Context, parent, name string) error {
	p, err := os.Open(parent)
	if err != nil {
		return err
	}
	defer p.Close()
	mnt, err := mountOf(int(p.Fd()))
	if err != nil {
		return err
	}
	return removeAt(ctx, int(p.Fd()), name, filepath.Join(parent, name), mnt, 0)
}

func removeAt(ctx context.Context, dirfd int, name, full string, mnt uint64, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return fmt.Errorf("remove %s: %w", full, err)
	}
	if depth >= maxDepth {
		return fmt.Errorf("remove %s: deeper than %d levels", full, maxDepth)
	}
	d, err := openDir(dirfd, name)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", full, err)
	}
	defer d.Close()
	m, err := mountOf(int(d.Fd()))
	if err != nil {
		return fmt.Errorf("remove %s: %w", full, err)
	}
	if m != mnt {
		return fmt.Errorf("remove %s: it is a mount point; unmount it first", full)
	}
	// Entries may appear while we remove (a process still writing): read
	// again from the start while rmdir finds the directory not empty.
	for range 8 {
		if _, err := d.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("remove %s: %w", full, err)
		}
		names, err := d.Readdirnames(-1)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("remove %s: %w", full, err)
		}
		for _, n := range names {
			if err := removeAt(ctx, int(d.Fd()), n, filepath.Join(full, n), mnt, depth+1); err != nil {
				return err
			}
		}
		err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.ENOTEMPTY {
			return fmt.Errorf("remove %s: %w", full, err)
		}
	}
	return fmt.Errorf("remove %s: entries keep appearing", full)
}

// mountsUnder returns the mount points of this mount namespace that lie
// below dir, from /proc/self/mountinfo.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		// ID parent major:minor root mount-point options ...
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeOctal(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// unescapeOctal undoes mountinfo's escapes of space, tab, newline and
// backslash (\040 and the like).
func unescapeOctal(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

type fileID struct{ dev, ino uint64 }

// usage sums the sizes of the files below dir, each file once, without
// following links or entering other mounts.
func usage(dir string) (int64, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	mnt, err := mountOf(int(d.Fd()))
	if err != nil {
		return 0, err
	}
	seen := map[fileID]bool{}
	return usageOf(d, mnt, seen, 0)
}

func usageOf(d *os.File, mnt uint64, seen map[fileID]bool, depth int) (int64, error) {
	if depth >= maxDepth {
		return 0, fmt.Errorf("%s: deeper than %d levels", d.Name(), maxDepth)
	}
	names, err := d.Readdirnames(-1)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	var total int64
	for _, n := range names {
		var st unix.Stat_t
		err := unix.Fstatat(int(d.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return 0, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			id := fileID{st.Dev, st.Ino}
			if st.Nlink > 1 {
				if seen[id] {
					continue
				}
				seen[id] = true
			}
			total += st.Size
			continue
		}
		sub, err := openDir(int(d.Fd()), n)
		if err == unix.ENOENT || err == unix.ELOOP || err == unix.ENOTDIR {
			continue // changed meanwhile
		}
		if err != nil {
			return 0, err
		}
		m, err := mountOf(int(sub.Fd()))
		if err == nil && m == mnt {
			var k int64
			k, err = usageOf(sub, mnt, seen, depth+1)
			total += k
		}
		sub.Close()
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}

// isEmpty reports whether the directory dir holds no entry. A directory
// that does not exist is empty.
func isEmpty(dir string) (bool, error) {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(names) == 0, nil
}

// cleanCopyups removes the copy-up directories of the volume directory dir
// whose process is gone: those that nobody holds a lock on.
func cleanCopyups(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), copyupPrefix) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // a copy-up in progress
			continue
		}
		err = removeTree(context.Background(), dir, e.Name())
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
