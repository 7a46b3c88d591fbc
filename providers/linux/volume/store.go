package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of a store, for errors.Is.
var (
	// ErrNotFound reports a volume that does not exist.
	ErrNotFound = errors.New("no such volume")
	// ErrInUse reports a volume that containers still use.
	ErrInUse = errors.New("volume is in use")
	// ErrOwner reports a volume that another owner created.
	ErrOwner = errors.New("volume belongs to another owner")
	// ErrInvalidName reports a name that is not a valid volume name.
	ErrInvalidName = errors.New("invalid volume name")
)

// maxName is the longest volume name.
const maxName = 128

// Volume is a named volume.
type Volume struct {
	Name string
	// Path is the volume's data directory, the source of its bind mounts.
	Path string
	// Owner is the ownership token of the berth object that created it.
	Owner   string
	Labels  map[string]string
	Created time.Time
	// CopiedUp reports whether the volume's one copy-up decision was made
	// (see CopyUp): once set, the volume is never filled from an image.
	CopiedUp bool
	// Size is the size of the volume's data in bytes; only Usage computes
	// it, elsewhere it is 0.
	Size int64
}

// Store keeps named volumes under its root directory: the data of a volume
// in <root>/<name>/_data and its metadata in <root>/<name>/meta.json.
type Store struct {
	root string
}

// Open opens the store in the directory root, creating it if needed, and
// finishes what a crash interrupted: volumes half created or half removed,
// and copy-ups that no process is running any more.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open volume store: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open volume store: %w", err)
	}
	// The real path, as /proc/self/mountinfo shows mount points.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, fmt.Errorf("open volume store: %w", err)
	}
	s := &Store{root: abs}
	trash, err := s.recover()
	if err != nil {
		return nil, err
	}
	for _, t := range trash {
		// Best effort: a removal that fails again (a mount inside the
		// volume) was reported by Remove and stays for the operator.
		_ = removeTree(context.Background(), s.root, t)
	}
	return s, nil
}

// recover removes, under the lock, volumes whose creation a crash cut
// short and stale copy-ups, and returns the volumes left half removed.
func (s *Store) recover() (trash []string, err error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("open volume store: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, newPrefix):
			if err := removeTree(context.Background(), s.root, n); err != nil {
				return nil, fmt.Errorf("open volume store: remove unfinished volume: %w", err)
			}
		case strings.HasPrefix(n, trashPrefix):
			trash = append(trash, n)
		case validName(n) == nil && e.IsDir():
			if err := cleanCopyups(filepath.Join(s.root, n)); err != nil {
				return nil, fmt.Errorf("open volume store: volume %q: %w", n, err)
			}
			// Metadata files a crash left half written (writers hold the lock).
			temps, _ := filepath.Glob(filepath.Join(s.root, n, "."+metaFile+"-*"))
			for _, t := range temps {
				os.Remove(t)
			}
		}
	}
	return trash, nil
}

// validName checks a volume name.
func validName(name string) error {
	ok := name != "" && len(name) <= maxName
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("%w %q: a volume name starts with a letter or digit and continues with letters, digits, '_', '.' or '-' ([a-zA-Z0-9][a-zA-Z0-9_.-]*), at most %d characters", ErrInvalidName, name, maxName)
	}
	return nil
}

func (s *Store) dir(name string) string { return filepath.Join(s.root, name) }

func (m meta) volume(dir string) Volume {
	return Volume{
		Name:     m.Name,
		Path:     filepath.Join(dir, dataDir),
		Owner:    m.Owner,
		Labels:   maps.Clone(m.Labels),
		Created:  m.Created,
		CopiedUp: m.CopiedUp,
	}
}

// read reads the metadata of the volume name; the error wraps ErrNotFound
// when the volume does not exist.
func (s *Store) read(name string) (meta, error) {
	if err := validName(name); err != nil {
		return meta{}, err
	}
	m, err := readMeta(s.dir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("volume %q: %w", name, err)
	}
	m.Name = name
	return m, nil
}

// Create creates the volume name for owner, with an empty data directory.
// It is idempotent for the same owner: for an existing volume of that
// owner it returns the volume, with its labels updated to labels. A volume
// of another owner is an error wrapping ErrOwner.
func (s *Store) Create(ctx context.Context, name, owner string, labels map[string]string) (Volume, error) {
	if err := validName(name); err != nil {
		return Volume{}, err
	}
	if err := ctx.Err(); err != nil {
		return Volume{}, err
	}
	if len(labels) == 0 {
		labels = nil
	}
	unlock, err := s.lock()
	if err != nil {
		return Volume{}, err
	}
	defer unlock()
	dir := s.dir(name)
	m, err := s.read(name)
	switch {
	case err == nil:
		if m.Owner != owner {
			return Volume{}, fmt.Errorf("create volume %q: it exists and %w", name, ErrOwner)
		}
		if !maps.Equal(m.Labels, labels) {
			m.Labels = maps.Clone(labels)
			if err := writeMeta(dir, m); err != nil {
				return Volume{}, fmt.Errorf("volume %q: %w", name, err)
			}
		}
		return m.volume(dir), nil
	case !errors.Is(err, ErrNotFound):
		return Volume{}, err
	}
	if _, err := os.Lstat(dir); err == nil {
		return Volume{}, fmt.Errorf("create volume %q: %s exists but is not a volume (no %s); move it away", name, dir, metaFile)
	}
	m = meta{Name: name, Owner: owner, Labels: maps.Clone(labels), Created: time.Now().UTC().Truncate(time.Second)}
	stage, err := os.MkdirTemp(s.root, newPrefix+name+"-")
	if err != nil {
		return Volume{}, fmt.Errorf("create volume %q: %w", name, err)
	}
	err = os.Mkdir(filepath.Join(stage, dataDir), 0o755)
	if err == nil {
		err = os.Chmod(filepath.Join(stage, dataDir), 0o755)
	}
	if err == nil {
		err = writeMeta(stage, m)
	}
	if err == nil {
		// The volume appears whole, or not at all.
		err = unix.Renameat2(unix.AT_FDCWD, stage, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	}
	if err == nil {
		err = syncDir(s.root)
	}
	if err != nil {
		_ = removeTree(context.Background(), s.root, filepath.Base(stage))
		return Volume{}, fmt.Errorf("create volume %q: %w", name, err)
	}
	return m.volume(dir), nil
}

// SetOwner gives the volume name a new owner: `berth import` adopts a
// volume that berth did not create, or that another object made.
func (s *Store) SetOwner(name, owner string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	m, err := s.read(name)
	if err != nil {
		return err
	}
	m.Owner = owner
	if err := writeMeta(s.dir(name), m); err != nil {
		return fmt.Errorf("volume %q: %w", name, err)
	}
	return nil
}

// Get returns the volume name; the error wraps ErrNotFound if there is none.
func (s *Store) Get(name string) (Volume, error) {
	m, err := s.read(name)
	if err != nil {
		return Volume{}, err
	}
	return m.volume(s.dir(name)), nil
}

// List returns every volume, sorted by name.
func (s *Store) List() ([]Volume, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Volume
	for _, e := range ents {
		if !e.IsDir() || validName(e.Name()) != nil {
			continue
		}
		v, err := s.Get(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile, or not a volume
		}
		if err != nil {
			return nil, fmt.Errorf("list volumes: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Remove removes the volume name and its data. Removing a volume that does
// not exist is not an error; removing a volume in use is, wrapping ErrInUse.
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	trash, err := s.discard(name)
	if err != nil || trash == "" {
		return err
	}
	if err := removeTree(ctx, s.root, trash); err != nil {
		return fmt.Errorf("remove volume %q: %w (what is left is in %s, removed by the next start)", name, err, filepath.Join(s.root, trash))
	}
	return nil
}

// discard renames the volume name, unless it is in use, to a trash name,
// under the lock, and returns the trash name ("" if there is no volume).
func (s *Store) discard(name string) (string, error) {
	unlock, err := s.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	dir := s.dir(name)
	m, err := s.read(name)
	switch {
	case errors.Is(err, ErrNotFound):
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		// A directory without metadata: nothing can use it.
	case err != nil:
		return "", fmt.Errorf("remove volume: %w", err)
	case len(m.Users) > 0:
		return "", fmt.Errorf("remove volume %q: used by container %s: %w", name, strings.Join(m.Users, ", "), ErrInUse)
	}
	mounts, err := mountsUnder(dir)
	if err != nil {
		return "", fmt.Errorf("remove volume %q: %w", name, err)
	}
	if len(mounts) > 0 {
		return "", fmt.Errorf("remove volume %q: %s is a mount point; unmount it first: %w", name, mounts[0], ErrInUse)
	}
	trash, err := os.MkdirTemp(s.root, trashPrefix+name+"-")
	if err != nil {
		return "", fmt.Errorf("remove volume %q: %w", name, err)
	}
	// Rename over the fresh empty directory: the volume disappears at once.
	// (os.Rename refuses any existing directory, hence unix.Rename.)
	if err := unix.Rename(dir, trash); err != nil {
		os.Remove(trash)
		return "", fmt.Errorf("remove volume %q: %w", name, err)
	}
	if err := syncDir(s.root); err != nil {
		return "", fmt.Errorf("remove volume %q: %w", name, err)
	}
	return filepath.Base(trash), nil
}

// Use records that the container containerID uses the volume name.
// Recording the same container twice is the same as once.
func (s *Store) Use(name, containerID string) error {
	return s.users(name, containerID, true)
}

// Release records that the container containerID no longer uses the
// volume name. Releasing a container that does not use the volume, or a
// volume that no longer exists, is not an error.
func (s *Store) Release(name, containerID string) error {
	return s.users(name, containerID, false)
}

func (s *Store) users(name, id string, use bool) error {
	if id == "" {
		return errors.New("volume user: empty container ID")
	}
	if err := validName(name); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	m, err := s.read(name)
	if !use && errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	has := slices.Contains(m.Users, id)
	switch {
	case use && !has:
		m.Users = append(m.Users, id)
		slices.Sort(m.Users)
	case !use && has:
		m.Users = slices.DeleteFunc(m.Users, func(u string) bool { return u == id })
	default:
		return nil
	}
	if err := writeMeta(s.dir(name), m); err != nil {
		return fmt.Errorf("volume %q: %w", name, err)
	}
	return nil
}

// Users returns the IDs of the containers that use the volume name, sorted.
func (s *Store) Users(name string) ([]string, error) {
	m, err := s.read(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(m.Users), nil
}

// Usage returns the size in bytes of the data of the volume name: the sum
// of the sizes of its files (each file once, whatever its number of hard
// links), not counting what other file systems mounted inside it hold.
func (s *Store) Usage(name string) (int64, error) {
	if _, err := s.read(name); err != nil {
		return 0, err
	}
	n, err := usage(filepath.Join(s.dir(name), dataDir))
	if err != nil {
		return 0, fmt.Errorf("volume %q: usage: %w", name, err)
	}
	return n, nil
}
