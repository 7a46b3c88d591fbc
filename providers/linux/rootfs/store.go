package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthhq/berth/internal/fsync"
	"github.com/berthhq/berth/providers/linux/layer"
)

// Store keeps unpacked layers under root/layers/<chainID hex>/ (each unpacked
// once, shared by every image and container) and container root filesystems
// under root/containers/<id>/{upper,work,merged}. A Store is safe for
// concurrent use, also by several processes.
type Store struct {
	root       string
	layers     string
	locks      string
	containers string
	empty      string
}

// Layer is one layer of an image, bottom first in a chain.
type Layer struct {
	// DiffID is the digest of the uncompressed layer, "sha256:<hex>".
	DiffID string
	// Open returns the layer as an uncompressed tar stream. It is called only
	// when the layer is not unpacked yet; the stream is read to its end.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Open opens the store in root, creating its directories when needed, and
// removes what interrupted unpacks and removals left behind. The root path
// (after resolving symlinks) must not contain commas, colons, backslashes or
// white space, which overlay mount options cannot carry.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open layer store: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open layer store: %w", err)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, fmt.Errorf("open layer store: %w", err)
	}
	if i := strings.IndexFunc(abs, func(r rune) bool { return strings.ContainsRune(",:\\", r) || r <= ' ' || r == 0x7f }); i >= 0 {
		return nil, fmt.Errorf("open layer store: path %q contains %q, which overlay mount options cannot carry", abs, abs[i])
	}
	s := &Store{
		root:       abs,
		layers:     filepath.Join(abs, "layers"),
		locks:      filepath.Join(abs, "locks"),
		containers: filepath.Join(abs, "containers"),
		empty:      filepath.Join(abs, "empty"),
	}
	for _, d := range []string{s.layers, s.locks, s.containers, s.empty} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("open layer store: %w", err)
		}
	}
	if err := s.sweep(); err != nil {
		return nil, err
	}
	return s, nil
}

// sweep removes temporary layer directories whose chain is not locked, that
// is, whose unpack or removal was interrupted.
func (s *Store) sweep() error {
	ents, err := os.ReadDir(s.layers)
	if err != nil {
		return fmt.Errorf("open layer store: %w", err)
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), ".tmp-")
		if !ok {
			rest, ok = strings.CutPrefix(e.Name(), ".rm-")
		}
		hexID, _, _ := strings.Cut(rest, "-")
		if !ok || !isHex(hexID) {
			continue
		}
		unlock, err := s.lock(hexID, false)
		if err != nil {
			continue // in use by another process
		}
		err = os.RemoveAll(filepath.Join(s.layers, e.Name()))
		unlock()
		if err != nil {
			return fmt.Errorf("open layer store: remove leftover: %w", err)
		}
	}
	return nil
}

// ChainIDs returns the ChainID of every prefix of a chain of DiffIDs, bottom
// first: the first is the first DiffID, each next one is sha256 of the
// previous ChainID, a space and the layer's DiffID.
func ChainIDs(diffIDs []string) ([]string, error) {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if !validDigest(d) {
			return nil, fmt.Errorf("layer %d: diffID %q is not a sha256 digest", i+1, d)
		}
		if i == 0 {
			out[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d))
		out[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out, nil
}

// Prepare makes sure every layer of the chain (bottom first) is unpacked and
// returns the lower directories, top layer first (overlay lowerdir order).
// Each new layer's content is checked against its DiffID: a mismatch is an
// error naming the layer and both digests, and nothing of it is kept. An
// image without layers gives no lower directories (Mount then uses an empty
// one).
func (s *Store) Prepare(ctx context.Context, layers []Layer) (lowers []string, err error) {
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.DiffID
	}
	chain, err := ChainIDs(diffIDs)
	if err != nil {
		return nil, err
	}
	lowers = make([]string, len(layers))
	for i, l := range layers {
		hexID := strings.TrimPrefix(chain[i], "sha256:")
		if err := s.unpack(ctx, hexID, l, fmt.Sprintf("layer %d of %d", i+1, len(layers))); err != nil {
			return nil, err
		}
		lowers[len(layers)-1-i] = filepath.Join(s.layers, hexID)
	}
	return lowers, nil
}

// unpack unpacks l as chain hexID, unless it is there already.
func (s *Store) unpack(ctx context.Context, hexID string, l Layer, what string) error {
	dir := filepath.Join(s.layers, hexID)
	if exists(dir) {
		return nil
	}
	unlock, err := s.lockCtx(ctx, hexID)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	if exists(dir) {
		return nil // another process unpacked it meanwhile
	}
	tmp, err := os.MkdirTemp(s.layers, ".tmp-"+hexID+"-")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	got, err := unpackLayer(ctx, tmp, l)
	if err != nil {
		return fmt.Errorf("%s (%s): %w", what, l.DiffID, err)
	}
	if got != l.DiffID {
		return fmt.Errorf("%s: content digest %s does not match diffID %s", what, got, l.DiffID)
	}
	if err := syncFS(tmp); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if exists(dir) {
			return nil // someone not holding the lock was faster; ours is removed
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	keep = true
	return syncDir(s.layers)
}

func unpackLayer(ctx context.Context, dir string, l Layer) (string, error) {
	if l.Open == nil {
		return "", errors.New("layer has no content to open")
	}
	rc, err := l.Open(ctx)
	if err != nil {
		return "", err
	}
	diffID, err := layer.Unpack(ctx, dir, rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return diffID, err
}

// Layers returns the chain IDs of the unpacked layers, sorted.
func (s *Store) Layers() ([]string, error) {
	ents, err := os.ReadDir(s.layers)
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && isHex(e.Name()) {
			out = append(out, "sha256:"+e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// RemoveLayer removes the unpacked layer chainID ("sha256:<hex>"). It is not
// an error when the layer is not there. It refuses a layer that a mounted
// overlay uses; the caller makes sure no image that will be mounted needs it.
func (s *Store) RemoveLayer(chainID string) error {
	hexID, ok := strings.CutPrefix(chainID, "sha256:")
	if !ok || !isHex(hexID) {
		return fmt.Errorf("remove layer: %q is not a sha256 chain ID", chainID)
	}
	dir := filepath.Join(s.layers, hexID)
	if user, err := overlayUsing(dir); err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	} else if user != "" {
		return fmt.Errorf("remove layer %s: in use by the overlay mounted at %s", chainID, user)
	}
	unlock, err := s.lock(hexID, true)
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	defer unlock()
	if !exists(dir) {
		return nil
	}
	// Rename first: a crash in RemoveAll must not leave a half layer that
	// looks complete.
	gone := filepath.Join(s.layers, fmt.Sprintf(".rm-%s-%d", hexID, time.Now().UnixNano()))
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	if err := syncDir(s.layers); err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	return nil
}

// lock takes the chain's lock, waiting for it when wait is set, and returns
// the function that releases it.
func (s *Store) lock(hexID string, wait bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.locks, hexID+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock layer %s: %w", hexID, err)
	}
	return func() { f.Close() }, nil
}

// lockCtx takes the chain's lock, polling so that ctx can end the wait.
func (s *Store) lockCtx(ctx context.Context, hexID string) (func(), error) {
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		unlock, err := s.lock(hexID, false)
		if err == nil {
			return unlock, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the lock of layer %s: %w", hexID, ctx.Err())
		case <-time.After(delay):
		}
	}
}

func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// syncDir flushes the entries of dir to disk.
func syncDir(dir string) error {
	if err := fsync.Dir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	return ok && isHex(h)
}

// isHex reports whether s is 64 lowercase hexadecimal digits.
func isHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
