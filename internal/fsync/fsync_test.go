package fsync

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestFileAndDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := File(path); err != nil {
		t.Errorf("File(%s): %v", path, err)
	}
	if err := Dir(dir); err != nil {
		t.Errorf("Dir(%s): %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	if err := File(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("File of a missing file: %v, want an error that is fs.ErrNotExist", err)
	}
	if err := Dir(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Dir of a missing directory: %v, want an error that is fs.ErrNotExist", err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read back %q, %v; want %q", b, err, content)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Errorf("the directory holds %v (%v); want only f, no temporary file", ents, err)
	}
	// A directory that does not exist: an error, and nothing written.
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile into a missing directory: %v, want an error that is fs.ErrNotExist", err)
	}
}
