package local

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// index records which file each owner token owns: one small JSON file per
// token, so that entries never need a read-modify-write of a shared file.
// The token is hashed into the file name, so any token is safe.
type index struct {
	dir string
}

// entry is one ownership mark.
type entry struct {
	Token   string `json:"token"`
	Address string `json:"address,omitempty"`
	Path    string `json:"path"`
	// Sensitive tells that the content was given as sensitive_content, so
	// that Read returns it under that attribute. The content itself is
	// never stored here.
	Sensitive bool `json:"sensitive,omitempty"`
}

func (ix *index) file(token string) string {
	sum := sha256.Sum256([]byte(token))
	return filepath.Join(ix.dir, hex.EncodeToString(sum[:16])+".json")
}

// get returns the entry of token; ok is false when there is none.
func (ix *index) get(token string) (e entry, ok bool, err error) {
	if token == "" {
		return entry{}, false, nil
	}
	b, err := os.ReadFile(ix.file(token))
	if errors.Is(err, fs.ErrNotExist) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, fmt.Errorf("read the ownership index: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Token != token {
		return entry{}, false, fmt.Errorf("ownership index entry %s is damaged; delete it and import the file again", ix.file(token))
	}
	return e, true, nil
}

// put writes the entry of e.Token.
func (ix *index) put(e entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode the ownership index entry: %w", err)
	}
	if err := os.MkdirAll(ix.dir, 0o700); err != nil {
		return fmt.Errorf("create the ownership index: %w", err)
	}
	if err := writeAtomic(ix.file(e.Token), append(b, '\n'), 0o600, false); err != nil {
		return fmt.Errorf("write the ownership index: %w", err)
	}
	return nil
}

// remove deletes the entry of token; a missing entry is not an error.
func (ix *index) remove(token string) error {
	if token == "" {
		return nil
	}
	if err := os.Remove(ix.file(token)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("update the ownership index: %w", err)
	}
	return nil
}

// claims returns the entries that own path.
func (ix *index) claims(path string) ([]entry, error) {
	des, err := os.ReadDir(ix.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the ownership index: %w", err)
	}
	var out []entry
	for _, de := range des {
		if !de.Type().IsRegular() || strings.HasPrefix(de.Name(), ".") || !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(ix.dir, de.Name()))
		if err != nil {
			continue // removed meanwhile
		}
		var e entry
		if json.Unmarshal(b, &e) == nil && e.Path == path {
			out = append(out, e)
		}
	}
	return out, nil
}
