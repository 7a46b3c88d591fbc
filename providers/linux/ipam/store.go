package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/fsync"
	"golang.org/x/sys/unix"
)

// Errors that callers may test for with errors.Is.
var (
	// ErrFull means a subnet, a pool of subnets or a port range has
	// nothing left to hand out.
	ErrFull = errors.New("full")
	// ErrInUse means an address, subnet or port is held by someone else;
	// the error names who.
	ErrInUse = errors.New("in use")
	// ErrConflict means a request disagrees with what is recorded (another
	// subnet for a network, another address for an owner).
	ErrConflict = errors.New("conflicts with the recorded state")
	// ErrCorrupt means a state file cannot be read back; the store never
	// resets it.
	ErrCorrupt = errors.New("corrupt state file (repair or remove it by hand)")
)

const (
	lockFile    = "lock"
	portsFile   = "ports.json"
	networksDir = "networks"
	tmpPrefix   = ".tmp-"
	version     = 1
)

// Store keeps address and port allocations in one directory. Its methods
// are safe for concurrent use, also by several Stores and processes on
// the same directory.
type Store struct {
	dir string
}

// Open opens the store in dir, creating the directory if needed, and
// removes temporary files left by a crash.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open ipam store: empty directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, networksDir), 0o700); err != nil {
		return nil, fmt.Errorf("open ipam store: %w", err)
	}
	s := &Store{dir: dir}
	unlock, err := s.lock(context.Background())
	if err != nil {
		return nil, fmt.Errorf("open ipam store: %w", err)
	}
	defer unlock()
	// Writers hold the lock while their temporary file exists, so any
	// temporary file seen under the lock was left by a crash.
	for _, d := range []string{dir, filepath.Join(dir, networksDir)} {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("open ipam store: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if err := os.Remove(filepath.Join(d, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("open ipam store: %w", err)
				}
			}
		}
	}
	return s, nil
}

// Dir returns the directory of the store.
func (s *Store) Dir() string { return s.dir }

// lock takes the store's exclusive flock and returns the function that
// releases it. Each call opens the lock file anew, so the lock also works
// between goroutines and between Stores of one process. It polls while
// another holder has the lock, so that ctx can end the wait.
func (s *Store) lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock ipam store: %w", err)
	}
	wait := 100 * time.Microsecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock ipam store: %w", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("lock ipam store: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// readJSON decodes the file at path into v and reports whether the file
// exists. A file that does not decode is an error wrapping ErrCorrupt.
func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("read %s: %w: %w", path, ErrCorrupt, err)
	}
	return true, nil
}

// writeJSON replaces the file at path with v, atomically and durably: it
// returns only once the new content and the rename are on disk, so that a
// crash can never bring back a state older than one a caller has seen.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// removeFile removes the file at path, if any, durably.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir flushes the entries of dir to disk.
func syncDir(dir string) error {
	if err := fsync.Dir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// checkName checks that a network name can be a file name: a letter or
// digit, then letters, digits, "_", "." and "-", at most 128 characters.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty network name")
	}
	if len(name) > 128 {
		return fmt.Errorf("network name %.20q... is longer than 128 characters", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i > 0 {
			ok = ok || c == '_' || c == '.' || c == '-'
		}
		if !ok {
			return fmt.Errorf("invalid network name %q: use a letter or digit, then letters, digits, '_', '.' or '-'", name)
		}
	}
	return nil
}
