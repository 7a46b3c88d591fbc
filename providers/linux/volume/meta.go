package volume

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Files and directories of a store.
const (
	lockFile     = ".lock"
	metaFile     = "meta.json"
	dataDir      = "_data"
	newPrefix    = ".new-"
	trashPrefix  = ".trash-"
	copyupPrefix = "copyup-"
	metaVersion  = 1
)

// meta is a volume's metadata file.
type meta struct {
	Version  int               `json:"version"`
	Name     string            `json:"name"`
	Owner    string            `json:"owner"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
	CopiedUp bool              `json:"copied_up"`
	Users    []string          `json:"users,omitempty"`
}

// readMeta reads the metadata file of the volume directory dir. The error
// wraps fs.ErrNotExist when there is none.
func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Join(dir, metaFile), err)
	}
	if m.Version != metaVersion {
		return m, fmt.Errorf("read %s: unknown metadata version %d", filepath.Join(dir, metaFile), m.Version)
	}
	return m, nil
}

// writeMeta replaces the metadata file of the volume directory dir
// atomically: a temporary file, fsync, rename, fsync of dir.
func writeMeta(dir string, m meta) error {
	m.Version = metaVersion
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+metaFile+"-*")
	if err != nil {
		return fmt.Errorf("write volume metadata: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, metaFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write volume metadata: %w", err)
	}
	return syncDir(dir)
}

// syncDir flushes the directory entries of dir to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// lock takes the store's exclusive lock and returns the function that
// releases it. Each call opens the lock file anew, so the lock also works
// between goroutines of one process.
func (s *Store) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.root, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock volume store: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock volume store: %w", err)
	}
	return func() { f.Close() }, nil
}
