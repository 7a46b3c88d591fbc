package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CopyIn copies the host path src (a file, a symbolic link or a directory
// tree) to dst inside the container root filesystem root. dst is a
// container path, resolved within root: symbolic links in the container are
// followed as if root were "/", never outside root. A relative dst is taken
// from the container's "/".
//
// As with docker cp: if dst is an existing directory, src is copied into it
// under its own name (its contents if src ends in "/."); if dst does not
// exist, src is copied as dst (its parent must exist; a dst ending in "/"
// must then be a directory); an existing file dst is replaced by a file, and
// a directory cannot replace a file. Copies into existing directories merge.
// Entries belong to the caller (root in the container) and keep their
// permission bits, but setuid and setgid bits only when that does not change
// the owner they refer to.
func CopyIn(ctx context.Context, root, dst, src string) error {
	s, err := hostPath(src)
	if err != nil {
		return fmt.Errorf("copy in: %w", err)
	}
	d, err := containerPath(dst)
	if err != nil {
		return fmt.Errorf("copy in: %w", err)
	}
	if err := copyPath(ctx, resolver{}, "/", s, root, d, false); err != nil {
		return fmt.Errorf("copy %s to %s in the container: %w", src, dst, err)
	}
	return nil
}

// CopyOut copies the container path src, resolved within root, to the host
// path dst, with the rules of CopyIn. Symbolic links inside the copied tree,
// and src itself unless it ends in "/", are copied as symbolic links, never
// followed. Files lose their setuid and setgid bits: what comes out of a
// container brings no privilege onto the host.
func CopyOut(ctx context.Context, root, src, dst string) error {
	s, err := containerPath(src)
	if err != nil {
		return fmt.Errorf("copy out: %w", err)
	}
	d, err := hostPath(dst)
	if err != nil {
		return fmt.Errorf("copy out: %w", err)
	}
	if err := copyPath(ctx, resolver{}, root, s, "/", d, true); err != nil {
		return fmt.Errorf("copy %s from the container to %s: %w", src, dst, err)
	}
	return nil
}

// ErrNoSource reports that the source of CloneDir does not exist or is not
// a directory.
var ErrNoSource = errors.New("no directory to copy")

// CloneDir copies the directory src, resolved within root as CopyOut does
// (its last symbolic link followed within root too), with everything below
// it, to the new host directory dst, whose parent must exist. Unlike CopyIn
// and CopyOut it keeps owners, every mode bit, extended attributes, hard
// links, device nodes and times, like cp -a; it needs root for that. The
// error wraps ErrNoSource if src does not exist within root or is not a
// directory. On any other error dst may be left half-written: the caller
// copies to a temporary place and renames it.
func CloneDir(ctx context.Context, root, src, dst string) error {
	if err := cloneDir(ctx, resolver{}, root, src, dst); err != nil {
		return fmt.Errorf("clone %s to %s: %w", src, dst, err)
	}
	return nil
}

func cloneDir(ctx context.Context, r resolver, root, src, dst string) error {
	s, err := containerPath(src)
	if err != nil {
		return err
	}
	s.dirOnly = true
	rfd, err := openRoot(root)
	if err != nil {
		return err
	}
	defer rfd.Close()
	from, err := r.openSource(rfd, s)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w: %w", ErrNoSource, err)
	}
	if err != nil {
		return err
	}
	defer from.close()
	dst = filepath.Clean(dst)
	pfd, err := unix.Open(filepath.Dir(dst), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(dst), Err: err}
	}
	parent := os.NewFile(uintptr(pfd), filepath.Dir(dst))
	defer parent.Close()
	name := filepath.Base(dst)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != unix.ENOENT {
		if err == nil {
			err = unix.EEXIST
		}
		return &os.PathError{Op: "create", Path: dst, Err: err}
	}
	c := newCopier(ctx, true)
	defer c.close()
	return c.copyDir(from.self, &from.st, parent, name, s.clean, 0)
}

// copyPath copies the path src within the directory srcRoot to the path dst
// within the directory dstRoot, with docker cp's rules. toHost drops
// setuid and setgid bits from files.
func copyPath(ctx context.Context, r resolver, srcRoot string, src pathSpec, dstRoot string, dst pathSpec, toHost bool) error {
	sr, err := openRoot(srcRoot)
	if err != nil {
		return err
	}
	defer sr.Close()
	dr, err := openRoot(dstRoot)
	if err != nil {
		return err
	}
	defer dr.Close()
	from, err := r.openSource(sr, src)
	if err != nil {
		return err
	}
	defer from.close()
	to, err := r.resolveTarget(dr, dst.clean)
	if err != nil {
		return destError(err)
	}
	defer to.close()
	c := newCopier(ctx, false)
	c.toHost = toHost
	defer c.close()
	name := base(src.clean)
	switch {
	case to.isDir():
		d, err := to.openDir()
		if err != nil {
			return err
		}
		defer d.Close()
		switch {
		case !from.isDir():
			return c.copyEntry(from.parent, from.name, &from.st, d, name, name, 0)
		case src.contents || name == "":
			return c.copyContents(from.self, d, src.clean, 0)
		default:
			return c.copyDir(from.self, &from.st, d, name, name, 0)
		}
	case to.exists():
		if dst.dirOnly {
			return &os.PathError{Op: "copy", Path: dst.clean, Err: unix.ENOTDIR}
		}
		if from.isDir() {
			return fmt.Errorf("cannot copy a directory to a file (%s)", dst.clean)
		}
		return c.copyEntry(from.parent, from.name, &from.st, to.dir, to.name, dst.clean, 0)
	case from.isDir():
		return c.copyDir(from.self, &from.st, to.dir, to.name, dst.clean, 0)
	case dst.dirOnly:
		return fmt.Errorf("destination directory %s does not exist", dst.clean)
	default:
		return c.copyEntry(from.parent, from.name, &from.st, to.dir, to.name, dst.clean, 0)
	}
}

// destError explains a destination that cannot be resolved.
func destError(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the destination's parent directory does not exist: %w", err)
	}
	return err
}
