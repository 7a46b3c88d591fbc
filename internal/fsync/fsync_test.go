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
