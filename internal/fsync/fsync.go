// Package fsync makes files and directory entries durable: after File or
// Dir returns nil, what was written survives a crash of the machine.
package fsync

import (
	"os"
	"path/filepath"
)

// Dir flushes the entries of the directory dir (names created, renamed or
// removed in it) to disk.
func Dir(dir string) error {
	return syncPath(dir)
}

// File flushes the file at path, and its entry in its directory, to disk.
func File(path string) error {
	if err := syncPath(path); err != nil {
		return err
	}
	return Dir(filepath.Dir(path))
}

// syncPath opens path read-only and syncs it.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
