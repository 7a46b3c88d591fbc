package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotFound is the error (matched with errors.Is) for an image, name or
// blob the store does not have.
var ErrNotFound = errors.New("not found")

const (
	gcLock   = "gc.lock"
	metaLock = "meta.lock"
)

// Store is a content store under one root directory. Its methods are safe
// for concurrent use, also by several processes.
type Store struct {
	root string
	// noSync skips fsync (for fuzzing, where durability does not matter).
	noSync bool
}

// Open opens the store under root, creating the directories it needs.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("content store: empty root directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	s := &Store{root: abs}
	for _, d := range []string{abs, s.blobDir(), filepath.Join(abs, "images"), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	return s, nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir() string { return filepath.Join(s.root, "blobs", "sha256") }
func (s *Store) tmpDir() string  { return filepath.Join(s.root, "tmp") }

// blobPath returns the file of a blob with a valid digest.
func (s *Store) blobPath(digest string) (string, error) {
	h, err := hexOf(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.blobDir(), h), nil
}

// hexOf returns the hex part of a "sha256:<64 lowercase hex>" digest.
func hexOf(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		if i := strings.IndexByte(digest, ':'); i > 0 {
			return "", fmt.Errorf("unsupported digest algorithm in %q: only sha256 is supported", digest)
		}
		return "", fmt.Errorf("invalid digest %q: want sha256:<64 hex digits>", digest)
	}
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("invalid digest %q: want sha256:<64 hex digits>", digest)
	}
	return h, nil
}

// isDigest reports whether s is a valid sha256 digest.
func isDigest(s string) bool {
	_, err := hexOf(s)
	return err == nil
}

// lock takes a flock on one of the store's lock files and returns the
// function that releases it. It polls, so that ctx can end the wait.
func (s *Store) lock(ctx context.Context, name string, exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.root, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock content store: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock content store: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock content store: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// tryLock takes an exclusive flock if nobody holds the lock, and reports
// whether it did.
func (s *Store) tryLock(name string) (func(), bool) {
	f, err := os.OpenFile(filepath.Join(s.root, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// Lease keeps the store from collecting garbage while it is held, so that
// blobs written under it survive until an image record uses them. Release
// it when done.
type Lease struct {
	release func()
}

// Lease takes a lease on the store; it waits while a garbage collection
// runs.
func (s *Store) Lease(ctx context.Context) (*Lease, error) {
	unlock, err := s.lock(ctx, gcLock, false)
	if err != nil {
		return nil, err
	}
	return &Lease{release: unlock}, nil
}

// Release ends the lease. Calling it again does nothing.
func (l *Lease) Release() {
	if l != nil && l.release != nil {
		l.release()
		l.release = nil
	}
}

// staged is a blob written to the tmp directory and not yet in place.
type staged struct {
	path   string
	digest string
	size   int64
}

// stage writes r to a new file in dir, synced, and hashes it.
func (s *Store) stage(ctx context.Context, dir string, r io.Reader) (staged, error) {
	f, err := os.CreateTemp(dir, "blob-")
	if err != nil {
		return staged{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err == nil {
		err = s.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return staged{}, err
	}
	return staged{path: f.Name(), digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), size: n}, nil
}

// commitBlob moves a staged blob into place, or drops it when the store
// has the blob already.
func (s *Store) commitBlob(st staged) error {
	dst, err := s.blobPath(st.digest)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dst); err == nil {
		return os.Remove(st.path)
	}
	if err := os.Chmod(st.path, 0o444); err != nil {
		return err
	}
	if err := os.Rename(st.path, dst); err != nil {
		return err
	}
	return s.syncDir(s.blobDir())
}

// PutBlob stores the content of r as the blob digest. It hashes what it
// reads and stores nothing when the content does not match digest. When the
// store has the blob already, PutBlob returns nil without reading r.
func (s *Store) PutBlob(ctx context.Context, digest string, r io.Reader) error {
	if _, err := hexOf(digest); err != nil {
		return err
	}
	unlock, err := s.lock(ctx, gcLock, false)
	if err != nil {
		return err
	}
	defer unlock()
	if s.HasBlob(digest) {
		return nil
	}
	st, err := s.stage(ctx, s.tmpDir(), r)
	if err != nil {
		return fmt.Errorf("write blob %s: %w", digest, err)
	}
	if st.digest != digest {
		os.Remove(st.path)
		return fmt.Errorf("blob %s: content has digest %s", digest, st.digest)
	}
	if err := s.commitBlob(st); err != nil {
		os.Remove(st.path)
		return fmt.Errorf("write blob %s: %w", digest, err)
	}
	return nil
}

// HasBlob reports whether the store has the blob digest.
func (s *Store) HasBlob(digest string) bool {
	p, err := s.blobPath(digest)
	if err != nil {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Blob opens the blob digest. The error matches ErrNotFound when the store
// does not have it.
func (s *Store) Blob(digest string) (io.ReadCloser, error) {
	p, err := s.blobPath(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// readBlob returns the content of a small blob (a manifest or a config),
// refusing blobs larger than limit.
func (s *Store) readBlob(digest string, limit int64) ([]byte, error) {
	rc, err := s.Blob(digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", digest, limit)
	}
	return b, nil
}

// blobSize returns the size of a stored blob.
func (s *Store) blobSize(digest string) (int64, error) {
	p, err := s.blobPath(digest)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// writeFileAtomic replaces path with data: a synced temporary file in the
// tmp directory renamed over it.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(s.tmpDir(), "meta-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = s.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return s.syncDir(filepath.Dir(path))
}

// fsync flushes a file to disk.
func (s *Store) fsync(f *os.File) error {
	if s.noSync {
		return nil
	}
	return f.Sync()
}

// syncDir flushes a directory (its entries) to disk.
func (s *Store) syncDir(dir string) error {
	if s.noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader is a reader that stops when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
