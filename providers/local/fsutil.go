package local

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// errExists is returned by writeAtomic when noReplace is set and path
// exists.
var errExists = errors.New("the file exists")

// errNotRegular is returned when path is a symbolic link or not a regular
// file.
var errNotRegular = errors.New("not a regular file")

// lstat describes what is at path without following a symbolic link there.
// It returns a nil FileInfo when there is nothing.
func lstat(path string) (fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	return fi, err
}

// writeAtomic writes data to path: into a temporary file in the same
// directory (created exclusively, never through a symbolic link), with
// mode, synced, then renamed over path, and the directory synced. A rename
// replaces a symbolic link at path rather than following it; callers
// refuse links before. With noReplace the rename fails with errExists when
// something appeared at path meanwhile.
func writeAtomic(path string, data []byte, mode os.FileMode, noReplace bool) error {
	dir := filepath.Dir(path)
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".berth-"+hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		// Chmod on the descriptor: exact, whatever the umask.
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rename(tmp, path, noReplace)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(dir)
	return nil
}

func rename(from, to string, noReplace bool) error {
	if !noReplace {
		return os.Rename(from, to)
	}
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return errExists
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// The file system cannot refuse to replace: check, then rename.
		if fi, _ := lstat(to); fi != nil {
			return errExists
		}
		return os.Rename(from, to)
	}
	return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// readRegular reads the regular file at path, never through a symbolic
// link and never more than limit bytes. It returns errNotRegular for
// anything but a regular file.
func readRegular(path string, limit int64) ([]byte, fs.FileMode, error) {
	// O_NONBLOCK: a FIFO swapped in after the caller's Lstat must not
	// block the read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, 0, errNotRegular
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, errNotRegular
	}
	if fi.Size() > limit {
		return nil, 0, fmt.Errorf("the file holds %d bytes, more than the %d that berth manages", fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(b)) > limit {
		return nil, 0, fmt.Errorf("the file holds more than the %d bytes that berth manages", limit)
	}
	return b, fi.Mode().Perm(), nil
}
