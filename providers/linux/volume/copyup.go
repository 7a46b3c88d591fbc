package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthhq/berth/providers/linux/transfer"
	"golang.org/x/sys/unix"
)

// CopyUp fills the volume name, once in its life, from the directory
// srcPath of the image root filesystem srcRoot (a path resolved within
// srcRoot: symbolic links are followed as if srcRoot were "/", never out of
// it), keeping owners, modes, extended attributes, links, hard links and
// times. It reports whether it copied.
//
// The first call decides for good and records the decision (Volume's
// CopiedUp): it copies only if the volume's data directory is empty and no
// container uses the volume; if srcPath does not exist in the image or is
// not a directory there is nothing to copy. Every later call copies
// nothing, whatever the image holds then. A copy cut short by an error, a
// cancelled ctx or a crash leaves the volume empty and undecided. See the
// package documentation for how a crash at any point is handled.
func (s *Store) CopyUp(ctx context.Context, name string, srcRoot, srcPath string) (copied bool, err error) {
	work, err := s.startCopyUp(name)
	if err != nil || work == nil {
		return false, err
	}
	defer func() {
		// Closing releases the flock; remove the work directory first so
		// that no other process removes it under us.
		_ = removeTree(context.Background(), s.dir(name), filepath.Base(work.Name()))
		work.Close()
	}()
	info, err := os.Stat(srcRoot)
	if err != nil {
		return false, fmt.Errorf("fill volume %q: image root filesystem: %w", name, err)
	}
	if !info.IsDir() {
		return false, fmt.Errorf("fill volume %q: image root filesystem %s is not a directory", name, srcRoot)
	}
	staged := filepath.Join(work.Name(), "data")
	err = transfer.CloneDir(ctx, srcRoot, srcPath, staged)
	nothing := errors.Is(err, transfer.ErrNoSource)
	if err != nil && !nothing {
		return false, fmt.Errorf("fill volume %q: %w", name, err)
	}
	if !nothing {
		// The copy must be on disk before the rename can make it visible.
		if err := unix.Syncfs(int(work.Fd())); err != nil {
			return false, fmt.Errorf("fill volume %q: sync: %w", name, err)
		}
	}
	return s.finishCopyUp(name, staged, nothing)
}

// startCopyUp decides, under the store lock, whether the volume name may
// still be filled. If it may not (already decided, in use, or not empty)
// it records copied_up and returns nil. Otherwise it returns the new work
// directory for the copy, open and locked with flock.
func (s *Store) startCopyUp(name string) (*os.File, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	m, err := s.read(name)
	if err != nil {
		return nil, err
	}
	if m.CopiedUp {
		return nil, nil
	}
	dir := s.dir(name)
	empty, err := isEmpty(filepath.Join(dir, dataDir))
	if err != nil {
		return nil, fmt.Errorf("fill volume %q: %w", name, err)
	}
	if !empty || len(m.Users) > 0 {
		return nil, s.decided(name, m)
	}
	if err := cleanCopyups(dir); err != nil {
		return nil, fmt.Errorf("fill volume %q: %w", name, err)
	}
	path, err := os.MkdirTemp(dir, copyupPrefix)
	if err != nil {
		return nil, fmt.Errorf("fill volume %q: %w", name, err)
	}
	work, err := os.Open(path)
	if err == nil {
		err = unix.Flock(int(work.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			work.Close()
		}
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("fill volume %q: %w", name, err)
	}
	return work, nil
}

// finishCopyUp makes the copy at staged the volume's data, under the store
// lock, unless the volume was decided, used or written meanwhile, and
// records the decision. nothing reports that the image had nothing to copy.
func (s *Store) finishCopyUp(name, staged string, nothing bool) (bool, error) {
	unlock, err := s.lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	m, err := s.read(name)
	if err != nil {
		return false, err
	}
	if m.CopiedUp {
		return false, nil
	}
	if nothing || len(m.Users) > 0 {
		return false, s.decided(name, m)
	}
	dir := s.dir(name)
	// rename(2) replaces a directory only if it is empty: data written
	// into the volume meanwhile is never lost.
	// (os.Rename refuses any existing directory, hence unix.Rename.)
	err = unix.Rename(staged, filepath.Join(dir, dataDir))
	if err == unix.ENOTEMPTY || err == unix.EEXIST {
		return false, s.decided(name, m)
	}
	if err != nil {
		return false, fmt.Errorf("fill volume %q: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return false, fmt.Errorf("fill volume %q: %w", name, err)
	}
	if err := s.decided(name, m); err != nil {
		return false, err
	}
	return true, nil
}

// decided records that the copy-up of the volume name was decided.
func (s *Store) decided(name string, m meta) error {
	m.CopiedUp = true
	if err := writeMeta(s.dir(name), m); err != nil {
		return fmt.Errorf("volume %q: %w", name, err)
	}
	return nil
}
