package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// BinaryPrefix starts the file name of every third-party provider binary:
// the provider named NAME lives in a file named berth-provider-NAME.
const BinaryPrefix = "berth-provider-"

// Discover finds provider binaries in dirs and maps each provider name to
// the path of its binary. It considers executable regular files (or
// symbolic links to them) named berth-provider-NAME, where NAME is made of
// letters, digits, '-' and '_'. When several directories hold the same
// name, the first directory wins. A directory that does not exist is
// skipped; one that cannot be read is an error.
func Discover(dirs ...string) (map[string]string, error) {
	found := map[string]string{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look for providers in %s: %w", dir, err)
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			if !ok || !validName(name) {
				continue
			}
			if _, dup := found[name]; dup {
				continue
			}
			path := filepath.Join(dir, e.Name())
			// Stat follows symbolic links; a broken link is skipped.
			fi, err := os.Stat(path)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
				continue
			}
			found[name] = path
		}
	}
	return found, nil
}

// validName reports whether name can name a provider.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}
