package layer

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const paxXattr = "SCHILY.xattr."

// xattrAllowed reports whether the extended attribute name may travel in a
// layer: user.*, trusted.* and security.capability, but none of overlayfs's
// own attributes, which could redirect lookups or fake metadata.
func xattrAllowed(name string) bool {
	switch {
	case strings.HasPrefix(name, "trusted.overlay."), strings.HasPrefix(name, "user.overlay."):
		return false
	case strings.HasPrefix(name, "user."), strings.HasPrefix(name, "trusted."):
		return true
	default:
		return name == "security.capability"
	}
}

// setXattrs applies the allowed extended attributes of PAX records to fd. A
// failure because the attribute is unsupported or not permitted is ignored.
func setXattrs(fd int, records map[string]string) error {
	names := make([]string, 0, len(records))
	for k := range records {
		if name, ok := strings.CutPrefix(k, paxXattr); ok && xattrAllowed(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		err := unix.Fsetxattr(fd, name, []byte(records[paxXattr+name]), 0)
		switch {
		case err == nil,
			errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES),
			errors.Is(err, unix.EINVAL), errors.Is(err, unix.E2BIG), errors.Is(err, unix.ERANGE):
		default:
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

// xattrs returns the extended attributes of fd, all of them, keyed by name.
func xattrs(fd int) (map[string][]byte, error) {
	size, err := unix.Flistxattr(fd, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Flistxattr(fd, buf)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for name := range bytes.SplitSeq(buf[:size], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v, err := getXattr(fd, string(name))
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", name, err)
		}
		out[string(name)] = v
	}
	return out, nil
}

func getXattr(fd int, name string) ([]byte, error) {
	for {
		size, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(fd, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
