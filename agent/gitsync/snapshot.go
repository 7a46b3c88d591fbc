package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berthhq/berth/internal/fsync"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxSymlinkHops is how many symlinks a path may go through when a
// snapshot's symlinks are checked, as the kernel's limit.
const maxSymlinkHops = 40

// Checkout writes a clean snapshot of the files under Options.Path at rev
// to Dir/snapshots/<hash>/ and returns that directory; a snapshot already
// there is reused. The snapshot is written to a temporary directory and
// renamed into place once complete and checked. It holds regular files
// (the executable bit kept), directories, and the symlinks that stay
// inside it; a symlink that points outside the snapshot (absolute, or
// through "..") fails the checkout. Submodules are left out.
func (s *Syncer) Checkout(ctx context.Context, rev Revision) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.commitLocked(rev)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(s.snapshotsDir(), c.Hash.String())
	if fi, err := os.Lstat(dest); err == nil && fi.IsDir() {
		return dest, nil
	}
	tree, err := c.Tree()
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", rev, err)
	}
	if s.subdir != "" {
		e, err := tree.FindEntry(s.subdir)
		if err != nil {
			return "", fmt.Errorf("checkout %s: path %q: not found in the revision", rev, s.subdir)
		}
		if e.Mode != filemode.Dir {
			return "", fmt.Errorf("checkout %s: path %q: not a directory", rev, s.subdir)
		}
		if tree, err = s.repo.TreeObject(e.Hash); err != nil {
			return "", fmt.Errorf("checkout %s: path %q: %w", rev, s.subdir, err)
		}
	}
	if err := os.MkdirAll(s.snapshotsDir(), 0o700); err != nil {
		return "", fmt.Errorf("checkout %s: %w", rev, err)
	}
	tmp, err := os.MkdirTemp(s.snapshotsDir(), ".tmp-"+c.Hash.String()+"-")
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", rev, err)
	}
	w := &snapshotWriter{ctx: ctx, s: s, root: tmp, prefix: s.subdir}
	err = w.writeTree(tree, "")
	if err == nil {
		err = w.writeLinks()
	}
	if err == nil {
		err = checkSymlinks(tmp, s.subdir, w.links)
	}
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		err = fsync.Dir(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkout %s: %w", rev, err)
	}
	if err := fsync.Dir(s.snapshotsDir()); err != nil {
		return "", fmt.Errorf("checkout %s: %w", rev, err)
	}
	s.log.Debug("snapshot written", "revision", rev.String(), "dir", dest)
	return dest, nil
}

// snapshotWriter writes a tree below root.
type snapshotWriter struct {
	ctx    context.Context
	s      *Syncer
	root   string
	prefix string // the tree's path in the repository, for messages
	links  []symlink
}

// symlink is a symlink to create once every file and directory exists, so
// that no file is ever written through one.
type symlink struct {
	rel, target string
}

// repoPath names rel in the repository, for messages.
func (w *snapshotWriter) repoPath(rel string) string {
	if p := path.Join(w.prefix, rel); p != "" {
		return p
	}
	return "."
}

// writeTree writes tree at rel ("" for the root, which exists).
func (w *snapshotWriter) writeTree(tree *object.Tree, rel string) error {
	for _, e := range tree.Entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := checkName(e.Name); err != nil {
			return fmt.Errorf("%q in %q: %w", e.Name, w.repoPath(rel), err)
		}
		erel := path.Join(rel, e.Name)
		full := filepath.Join(w.root, filepath.FromSlash(erel))
		switch e.Mode {
		case filemode.Dir:
			if err := os.Mkdir(full, 0o755); err != nil {
				return err
			}
			sub, err := w.s.repo.TreeObject(e.Hash)
			if err != nil {
				return fmt.Errorf("%q: %w", w.repoPath(erel), err)
			}
			if err := w.writeTree(sub, erel); err != nil {
				return err
			}
			if err := os.Chmod(full, 0o755); err != nil {
				return err
			}
			if err := fsync.Dir(full); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			mode := os.FileMode(0o644)
			if e.Mode == filemode.Executable {
				mode = 0o755
			}
			if err := w.writeFile(full, e.Hash, mode); err != nil {
				return fmt.Errorf("%q: %w", w.repoPath(erel), err)
			}
		case filemode.Symlink:
			target, err := w.readLink(e.Hash)
			if err != nil {
				return fmt.Errorf("%q: %w", w.repoPath(erel), err)
			}
			w.links = append(w.links, symlink{rel: erel, target: target})
		case filemode.Submodule:
			w.s.log.Info("submodule left out of the snapshot", "path", w.repoPath(erel), "commit", e.Hash.String())
		default:
			return fmt.Errorf("%q: unsupported file mode %s", w.repoPath(erel), e.Mode)
		}
	}
	return nil
}

// checkName refuses tree entry names that could leave their directory or
// write into a git directory.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errors.New("invalid name")
	case strings.ContainsAny(name, "/\x00"):
		return errors.New("name contains a slash or NUL")
	case strings.EqualFold(name, ".git"):
		return errors.New("a .git entry is not allowed")
	}
	return nil
}

func (w *snapshotWriter) writeFile(full string, h plumbing.Hash, mode os.FileMode) (err error) {
	blob, err := w.s.repo.BlobObject(h)
	if err != nil {
		return err
	}
	r, err := blob.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	return f.Sync()
}

// readLink reads a symlink's target from its blob.
func (w *snapshotWriter) readLink(h plumbing.Hash) (string, error) {
	blob, err := w.s.repo.BlobObject(h)
	if err != nil {
		return "", err
	}
	if blob.Size > 4096 {
		return "", errors.New("symlink target too long")
	}
	r, err := blob.Reader()
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 4097))
	if err != nil {
		return "", err
	}
	t := string(b)
	if t == "" || strings.ContainsRune(t, 0) {
		return "", errors.New("invalid symlink target")
	}
	if path.IsAbs(t) {
		return "", fmt.Errorf("symlink to %q points outside the snapshot", t)
	}
	return t, nil
}

// writeLinks creates the symlinks collected by writeTree.
func (w *snapshotWriter) writeLinks() error {
	for _, l := range w.links {
		if err := os.Symlink(l.target, filepath.Join(w.root, filepath.FromSlash(l.rel))); err != nil {
			return fmt.Errorf("%q: %w", w.repoPath(l.rel), err)
		}
	}
	return nil
}

// checkSymlinks resolves every symlink of the snapshot at root as the
// kernel would, following the symlinks it meets, and fails when one leads
// outside root. prefix is the snapshot's path in the repository, for
// messages.
func checkSymlinks(root, prefix string, links []symlink) error {
	for _, l := range links {
		hops := 0
		dir := strings.Split(path.Dir(l.rel), "/")
		if path.Dir(l.rel) == "." {
			dir = nil
		}
		if _, err := resolveIn(root, dir, l.target, &hops); err != nil {
			return fmt.Errorf("symlink %q -> %q: %w", path.Join(prefix, l.rel), l.target, err)
		}
	}
	return nil
}

// resolveIn resolves target from the directory cur (components below
// root) and returns the components it leads to. A component that does
// not exist is taken as a plain name.
func resolveIn(root string, cur []string, target string, hops *int) ([]string, error) {
	if path.IsAbs(target) {
		return nil, errors.New("points outside the snapshot")
	}
	cur = append([]string(nil), cur...)
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return nil, errors.New("points outside the snapshot")
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := append(cur, c)
		p := filepath.Join(append([]string{root}, next...)...)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		*hops++
		if *hops > maxSymlinkHops {
			return nil, errors.New("too many levels of symlinks")
		}
		t, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		if cur, err = resolveIn(root, cur, t, hops); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// Prune removes the snapshots other than those of keep, given as commit
// hashes or revisions (main@sha1:<hash>), and any unfinished snapshot.
func (s *Syncer) Prune(keep ...string) error {
	want := make(map[string]bool, len(keep))
	for _, k := range keep {
		h := k
		if !isHash(h) {
			rev, err := ParseRevision(k)
			if err != nil {
				return fmt.Errorf("prune: keep %q: not a commit hash or revision", k)
			}
			h = rev.Hash
		}
		want[h] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.snapshotsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if want[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.snapshotsDir(), e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Debug("snapshot pruned", "hash", e.Name())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}
