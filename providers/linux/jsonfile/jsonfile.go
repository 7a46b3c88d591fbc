// Package jsonfile reads and writes small JSON files that must never be
// seen half written: a write goes to a temporary file in the same
// directory, is synced, renamed over the file, and the directory synced.
package jsonfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/berthhq/berth/internal/fsync"
)

// Read decodes the JSON file at path into v. A missing file gives an error
// that satisfies errors.Is(err, fs.ErrNotExist).
func Read(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// Write replaces the file at path with v as indented JSON, mode 0600,
// atomically and durably. Concurrent writers each use their own temporary
// file; the last rename wins.
func Write(path string, v any) error {
	b, err := encode(path, v)
	if err != nil {
		return err
	}
	return write(path, b)
}

// WriteChanged is Write, except that a file that already holds what Write
// would write is not written again: it is only made durable, in case its
// writer died before it was, which costs next to nothing when it was.
func WriteChanged(path string, v any) error {
	b, err := encode(path, v)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		if err := fsync.File(path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	return write(path, b)
}

// encode returns v as Write writes it.
func encode(path string, v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return append(b, '\n'), nil
}

// write replaces the file at path with b, atomically and durably, mode
// 0600.
func write(path string, b []byte) error {
	if err := fsync.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
