package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

const (
	// legacyMountDataMax is the most the mount(2) data page holds (one page,
	// NUL included).
	legacyMountDataMax = 4095
	// unmountTries and unmountDelay bound how long Unmount waits for a busy
	// mount to be released before it reports the error.
	unmountTries = 20
	unmountDelay = 50 * time.Millisecond
)

// overlayOptions returns the options set on every mount, so that the upper
// directory holds whole files and plain directories (see layer.Diff), and so
// that lower layers can be shared and removed without overlayfs index
// bookkeeping.
func overlayOptions() [][2]string {
	return [][2]string{{"index", "off"}, {"metacopy", "off"}, {"redirect_dir", "off"}}
}

// Mount creates the container's upper and work directories if needed and
// mounts overlayfs at its merged directory, with lowers (top first, as
// Prepare returns them; none means an empty lower directory). It returns the
// merged path. Mounting again with the same lowers does nothing; a container
// mounted with other lowers is an error.
func (s *Store) Mount(ctx context.Context, id string, lowers []string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := validID(id); err != nil {
		return "", err
	}
	if len(lowers) == 0 {
		lowers = []string{s.empty}
	}
	for _, l := range lowers {
		if !filepath.IsAbs(l) || strings.ContainsAny(l, ",:\\") {
			return "", fmt.Errorf("mount %s: lower directory %q is not an absolute path without , : or \\", id, l)
		}
	}
	dir := filepath.Join(s.containers, id)
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {upper, 0o755}, {work, 0o700}, {merged, 0o755}} {
		if err := mkdir(d.path, d.mode); err != nil {
			return "", fmt.Errorf("mount %s: %w", id, err)
		}
	}
	current, mounted, err := mountedLowers(merged)
	if err != nil {
		return "", fmt.Errorf("mount %s: %w", id, err)
	}
	if mounted {
		if slices.Equal(current, lowers) {
			return merged, nil
		}
		return "", fmt.Errorf("mount %s: already mounted at %s with other layers", id, merged)
	}
	if err := mountOverlay(lowers, upper, work, merged); err != nil {
		return "", fmt.Errorf("mount %s: %w", id, err)
	}
	return merged, nil
}

// Unmount unmounts the container's root filesystem. It is not an error when
// it is not mounted. A busy mount is retried for about a second and then
// reported as an error: it is never detached lazily.
func (s *Store) Unmount(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	merged := filepath.Join(s.containers, id, "merged")
	for busy, n := 0, 0; n < 64; n++ { // 64 bounds stacked mounts
		err := unix.Unmount(merged, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue // another mount may be stacked below
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		case errors.Is(err, unix.EBUSY) && busy < unmountTries:
			busy++
			time.Sleep(unmountDelay)
		default:
			return fmt.Errorf("unmount %s: %w", merged, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", merged)
}

// Remove unmounts the container's root filesystem and removes its upper,
// work and merged directories. It is not an error when they are gone.
func (s *Store) Remove(id string) error {
	if err := s.Unmount(id); err != nil {
		return err
	}
	if mounted, err := s.Mounted(id); err != nil {
		return err
	} else if mounted {
		return fmt.Errorf("remove %s: still mounted", id)
	}
	if err := os.RemoveAll(filepath.Join(s.containers, id)); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}

// Mounted reports whether the container's root filesystem is mounted.
func (s *Store) Mounted(id string) (bool, error) {
	if err := validID(id); err != nil {
		return false, err
	}
	_, mounted, err := mountedLowers(filepath.Join(s.containers, id, "merged"))
	return mounted, err
}

// Upper returns the container's upper directory, which holds its changes (for
// layer.Diff), or "" when id is not a valid container ID.
func (s *Store) Upper(id string) string {
	if validID(id) != nil {
		return ""
	}
	return filepath.Join(s.containers, id, "upper")
}

// validID reports an error unless id can name a directory: 1 to 128 letters,
// digits, '_', '.' and '-', starting with a letter or digit.
func validID(id string) error {
	ok := len(id) > 0 && len(id) <= 128
	for i, c := range id {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("_.-", c)) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid container id %q", id)
	}
	return nil
}

// mkdir creates dir with mode unless it exists; an existing dir must be a
// directory, not a symlink.
func mkdir(dir string, mode os.FileMode) error {
	err := os.Mkdir(dir, mode)
	if err == nil {
		return os.Chmod(dir, mode) // undo the umask
	}
	fi, lerr := os.Lstat(dir)
	if lerr != nil || !fi.IsDir() {
		return err
	}
	return nil
}

// mountedLowers reports whether merged is a mount point and, if it is an
// overlay, its lower directories (top first).
func mountedLowers(merged string) ([]string, bool, error) {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(merged))
	if err != nil {
		return nil, false, fmt.Errorf("read mountinfo: %w", err)
	}
	if len(infos) == 0 {
		return nil, false, nil
	}
	return lowerDirs(infos[len(infos)-1]), true, nil
}

// overlayUsing returns the mount point of an overlay that has dir as a lower
// directory, or "".
func overlayUsing(dir string) (string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("overlay"))
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	for _, info := range infos {
		if slices.Contains(lowerDirs(info), dir) {
			return info.Mountpoint, nil
		}
	}
	return "", nil
}

// lowerDirs returns the lower directories of an overlay mount, top first.
func lowerDirs(info *mountinfo.Info) []string {
	if info.FSType != "overlay" {
		return nil
	}
	var lowers []string
	for o := range strings.SplitSeq(info.VFSOptions, ",") {
		if l, ok := strings.CutPrefix(o, "lowerdir+="); ok {
			lowers = append(lowers, l)
		} else if l, ok := strings.CutPrefix(o, "lowerdir="); ok {
			lowers = append(lowers, strings.Split(l, ":")...)
		}
	}
	return lowers
}

// mountOverlay mounts overlayfs at target with the new mount API, one
// "lowerdir+" per layer, and falls back to mount(2) with the classic options
// when the kernel lacks fsopen or "lowerdir+".
func mountOverlay(lowers []string, upper, work, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return mountLegacy(lowers, upper, work, target)
	}
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return fmt.Errorf("overlay option %s=%s: %w%s", key, value, err, fsLog(fsfd))
		}
		return nil
	}
	if err := set("source", "overlay"); err != nil {
		return err
	}
	for i, l := range lowers {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
			msg := fsLog(fsfd)
			if i == 0 && errors.Is(err, unix.EINVAL) && strings.Contains(msg, "Unknown parameter") {
				return mountLegacy(lowers, upper, work, target)
			}
			return fmt.Errorf("overlay layer %s: %w%s", l, err, msg)
		}
	}
	if err := set("upperdir", upper); err != nil {
		return err
	}
	if err := set("workdir", work); err != nil {
		return err
	}
	for _, o := range overlayOptions() {
		if err := set(o[0], o[1]); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	// Attach through a descriptor of the target opened without following a
	// symlink (CVE-2021-30465 swapped mount targets for symlinks).
	tfd, err := unix.Open(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", target, err)
	}
	defer unix.Close(tfd)
	if err := unix.MoveMount(mfd, "", tfd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach overlay at %s: %w", target, err)
	}
	return nil
}

// mountLegacy mounts overlayfs with mount(2), whose options must fit in one
// page.
func mountLegacy(lowers []string, upper, work, target string) error {
	data := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	for _, o := range overlayOptions() {
		data += "," + o[0] + "=" + o[1]
	}
	if len(data) > legacyMountDataMax {
		return fmt.Errorf("overlay options for %d layers take %d bytes, more than the %d that mount(2) accepts (the kernel lacks lowerdir+, added in Linux 6.8)",
			len(lowers), len(data), legacyMountDataMax)
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}

// fsLog returns the messages the kernel logged on an fs context, for errors.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}
