// Package fsync writes files atomically and durably, and makes files and
// directory entries durable: after a function returns nil, what was
// written survives a crash of the machine, and a reader never sees a file
// half written.
package fsync

import (
	"os"
	"path/filepath"
)

// WriteFile replaces the file at path with b, with the given permission
// bits: it writes a temporary file (".tmp-" and a random suffix) in the
// same directory, syncs it, renames it over path and syncs the directory.
// On an error the temporary file is removed and path is left as it was.
func WriteFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		// On the descriptor: exact, whatever the umask.
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return Dir(filepath.Dir(path))
}

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
