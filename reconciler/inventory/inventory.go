// Package inventory is berth's crash-safe record of the objects it owns.
//
// Each owned object is one JSON file in <state-dir>/inventory, named by the
// object's token and written with write-temp, fsync, rename and fsync of the
// directory, so that after a crash at any instant every entry is either its
// old or its new version, never torn. Readers need no lock: a plan may read
// while an apply writes.
package inventory

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Status is the stage of an object's life an entry records.
type Status string

const (
	// Creating is written before the provider is asked to create.
	Creating Status = "creating"
	// Created is written once the provider has created the object.
	Created Status = "created"
	// Deleting is written before the provider is asked to delete.
	Deleting Status = "deleting"
)

// Entry is one owned object.
type Entry struct {
	Token        string    `json:"token"`
	Address      string    `json:"address"`
	Kind         string    `json:"kind"`
	Provider     string    `json:"provider"`
	ID           string    `json:"id,omitempty"`
	Status       Status    `json:"status"`
	Dependencies []string  `json:"dependencies,omitempty"`
	Private      []byte    `json:"private,omitempty"`
	ConfigHash   string    `json:"config_hash,omitempty"`
	Revision     string    `json:"revision,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Output is the last applied value of an output; Value is null when the
// output is sensitive.
type Output struct {
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value,omitempty"`
	Sensitive bool            `json:"sensitive,omitempty"`
}

// Store is the inventory of one state directory.
type Store struct {
	dir string
}

// NewToken returns a new random token of 128 bits in hex.
func NewToken() string {
	var b [16]byte
	// crypto/rand.Read never returns an error; it aborts the program when
	// the system has no randomness to give.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validToken(t string) bool {
	if len(t) < 16 || len(t) > 128 {
		return false
	}
	for _, r := range t {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// tmpPrefix starts the name of every temporary file.
const tmpPrefix = ".tmp-"

// writeAttempts bounds how often a write starts over when its temporary file
// was removed under it by a concurrent Open.
const writeAttempts = 5

// errTempGone reports that a write's temporary file vanished before rename.
var errTempGone = errors.New("temporary file removed during write")

// Open opens the inventory under stateDir, creating it when missing, and
// removes temporary files that a crash left behind. Open takes no lock: a
// temporary file that a live writer still holds is left alone.
func Open(stateDir string) (*Store, error) {
	dir := filepath.Join(stateDir, "inventory")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open inventory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open inventory: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			removeAbandoned(filepath.Join(dir, e.Name()))
		}
	}
	return &Store{dir: dir}, nil
}

// removeAbandoned removes the temporary file p unless a live writer holds
// its lock. Errors are ignored: a temporary file left behind is harmless.
func removeAbandoned(p string) {
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return // a writer is at work, or flock is unsupported: keep it
	}
	_ = os.Remove(p)
}

// Dir returns the inventory's directory.
func (s *Store) Dir() string { return s.dir }

// writeFile writes name atomically and durably.
func (s *Store) writeFile(name string, data []byte) error {
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(name, data)
		if errors.Is(err, errTempGone) && attempt < writeAttempts {
			continue
		}
		return err
	}
}

// writeOnce writes data to a temporary file, which it holds an flock on so
// that a concurrent Open leaves it alone, then renames it to name.
func (s *Store) writeOnce(name string, data []byte) error {
	tmp, err := os.CreateTemp(s.dir, tmpPrefix)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		// The data is synced before the rename, so a failing close after
		// it loses nothing; closing releases the flock.
		_ = tmp.Close()
		if !renamed {
			_ = os.Remove(tmp.Name())
		}
	}()
	// An Open between CreateTemp and Flock may remove the file; the rename
	// below then fails and the write starts over.
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errTempGone
		}
		return err
	}
	renamed = true
	return s.syncDir()
}

func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Put records e; it is durable when Put returns. The token must be what
// NewToken returns, and the address and status must be set.
func (s *Store) Put(e Entry) error {
	if !validToken(e.Token) {
		return fmt.Errorf("inventory: invalid token %q", e.Token)
	}
	if e.Address == "" || e.Status == "" {
		return fmt.Errorf("inventory: entry %s has no address or status", e.Token)
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("inventory: encode %s: %w", e.Address, err)
	}
	if err := s.writeFile(e.Token+".json", append(b, '\n')); err != nil {
		return fmt.Errorf("inventory: write %s: %w", e.Address, err)
	}
	return nil
}

// Remove deletes the entry with token; a missing entry is not an error.
func (s *Store) Remove(token string) error {
	if !validToken(token) {
		return fmt.Errorf("inventory: invalid token %q", token)
	}
	err := os.Remove(filepath.Join(s.dir, token+".json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("inventory: remove %s: %w", token, err)
	}
	return s.syncDir()
}

// Entries returns every entry, sorted by address then creation time.
func (s *Store) Entries() ([]Entry, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	out := make([]Entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		tok, ok := strings.CutSuffix(name, ".json")
		if !ok || !validToken(tok) {
			continue
		}
		p := filepath.Join(s.dir, name)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while listing
		}
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil || e.Token != tok || e.Address == "" || e.Status == "" {
			return nil, fmt.Errorf("inventory entry %s is damaged (%v); restore it from a backup, or remove it and adopt the object again with berth import", p, errOr(err, "token, address or status missing"))
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].Token < out[j].Token
	})
	return out, nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// Fingerprint returns a hash of every entry's content; any Put or Remove
// that changes what Entries returns changes it.
func (s *Store) Fingerprint() (string, error) {
	entries, err := s.Entries()
	if err != nil {
		return "", err
	}
	return FingerprintOf(entries), nil
}

// FingerprintOf returns the fingerprint of entries as read by Entries.
func FingerprintOf(entries []Entry) string {
	h := sha256.New()
	for _, e := range entries {
		b, _ := json.Marshal(e)
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

const outputsFile = "outputs.json"

// PutOutputs records the outputs of the last apply; the values of
// sensitive outputs are dropped. outs is not modified.
func (s *Store) PutOutputs(outs []Output) error {
	recs := make([]Output, len(outs))
	copy(recs, outs)
	for i := range recs {
		if recs[i].Sensitive {
			recs[i].Value = nil
		}
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return fmt.Errorf("inventory: encode outputs: %w", err)
	}
	if err := s.writeFile(outputsFile, append(b, '\n')); err != nil {
		return fmt.Errorf("inventory: write outputs: %w", err)
	}
	return nil
}

// Outputs returns the outputs of the last apply, each value as compact
// JSON, or nil when none were recorded.
func (s *Store) Outputs() ([]Output, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, outputsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var outs []Output
	if err := json.Unmarshal(b, &outs); err != nil {
		return nil, fmt.Errorf("inventory: %s is damaged: %w; the next apply writes it again", filepath.Join(s.dir, outputsFile), err)
	}
	for i := range outs {
		if outs[i].Sensitive {
			outs[i].Value = nil // never hand out a value written by hand
			continue
		}
		// The file is indented for people; hand values back on one line,
		// as they were given to PutOutputs.
		if len(outs[i].Value) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, outs[i].Value); err == nil {
				outs[i].Value = json.RawMessage(buf.Bytes())
			}
		}
	}
	return outs, nil
}
