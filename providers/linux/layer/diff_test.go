package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: whiteouts, trusted.* extended attributes, chown and overlay mounts")
	}
}

// fsOp is one step building a test directory tree.
type fsOp func(t *testing.T, dir string)

func mkfile(name, body string, mode os.FileMode, uid, gid int) fsOp {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(body), 0o600))
		must(t, os.Lchown(p, uid, gid))
		must(t, unix.Chmod(p, uint32(mode)))
	}
}

func mkdir(name string, mode os.FileMode, uid, gid int) fsOp {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, name)
		must(t, os.Mkdir(p, 0o700))
		must(t, os.Lchown(p, uid, gid))
		must(t, unix.Chmod(p, uint32(mode)))
	}
}

func mknod(name string, mode uint32, dev int) fsOp {
	return func(t *testing.T, dir string) { must(t, unix.Mknod(filepath.Join(dir, name), mode, dev)) }
}

func mklink(name, target string) fsOp {
	return func(t *testing.T, dir string) { must(t, os.Link(filepath.Join(dir, target), filepath.Join(dir, name))) }
}

func mksym(name, target string, uid, gid int) fsOp {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, name)
		must(t, os.Symlink(target, p))
		must(t, os.Lchown(p, uid, gid))
	}
}

func setxattr(name, attr, value string) fsOp {
	return func(t *testing.T, dir string) {
		must(t, unix.Lsetxattr(filepath.Join(dir, name), attr, []byte(value), 0))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// touchAll sets every modification time below dir (the directories last) to
// testTime plus a sub-second part, which Diff drops.
func touchAll(t *testing.T, dir string) {
	ts := []unix.Timespec{unix.NsecToTimespec(testTime.UnixNano() + 123), unix.NsecToTimespec(testTime.UnixNano() + 123)}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	must(t, err)
	for _, p := range dirs {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// describe lists a tree: per path its type, mode, owner, mtime in seconds,
// content or target, device, allowed and overlay extended attributes, and
// which other paths share its inode.
func describe(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("type=%o mode=%o owner=%d:%d", st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" body=%q", b)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc += " link=" + l
		case unix.S_IFCHR:
			desc += fmt.Sprintf(" rdev=%d", st.Rdev)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR {
			desc += fmt.Sprintf(" mtime=%d", st.Mtim.Sec) // whiteouts carry no time
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			buf := make([]byte, 4096)
			n, _ := unix.Llistxattr(p, buf)
			var names []string
			for _, a := range strings.Split(string(buf[:max(n, 0)]), "\x00") {
				if xattrAllowed(a) || a == opaqueXattr {
					v := make([]byte, 256)
					m, _ := unix.Lgetxattr(p, a, v)
					names = append(names, a+"="+string(v[:max(m, 0)]))
				}
			}
			sort.Strings(names)
			desc += " xattrs=" + strings.Join(names, ",")
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Mode&unix.S_IFMT != unix.S_IFCHR {
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		}
		out[rel] = desc
		return nil
	})
	must(t, err)
	for _, names := range inodes {
		if len(names) > 1 {
			for _, n := range names {
				out[n] += " links=" + strings.Join(names, ",")
			}
		}
	}
	return out
}

// upperTree builds a directory that looks like an overlayfs upper dir.
func upperTree(t *testing.T) string {
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))
	for _, op := range []fsOp{
		mkdir("etc", 0o755, 0, 0),
		mkfile("etc/passwd", "root:x:0:0\n", 0o644, 0, 0),
		mkfile("etc/shadow", "secret", 0o640, 0, 42),
		mklink("etc/shadow-", "etc/shadow"),
		mkdir("bin", 0o755, 0, 0),
		mkfile("bin/su", "elf", 0o4755, 0, 0),
		setxattr("bin/su", "user.note", "setuid"),
		mkdir("tmp", 0o1777, 0, 0),
		mkdir("srv", 0o2775, 1000, 1000),
		mkfile("srv/data", strings.Repeat("x", 70000), 0o600, 1000, 1000),
		mksym("srv/link", "../etc/passwd", 1000, 1000),
		mksym("abs", "/etc/passwd", 0, 0),
		mknod("fifo", unix.S_IFIFO|0o620, 0),
		mknod("gone", unix.S_IFCHR, 0), // whiteout
		mklink("etc/gone-too", "gone"), // overlayfs shares one inode between whiteouts
		mkdir("opaque", 0o750, 0, 0),   // opaque directory
		setxattr("opaque", opaqueXattr, "y"),
		mkfile("opaque/new", "n", 0o644, 0, 0),
		setxattr("etc", "trusted.overlay.impure", "y"), // overlayfs bookkeeping, not copied
		setxattr("etc/passwd", "trusted.overlay.origin", "x"),
	} {
		op(t, dir)
	}
	touchAll(t, dir)
	return dir
}

func TestDiffUnpackRoundTrip(t *testing.T) {
	needRoot(t)
	upper := upperTree(t)
	var buf bytes.Buffer
	id, err := Diff(context.Background(), &buf, upper)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if want := "sha256:" + hex.EncodeToString(sum[:]); id != want {
		t.Errorf("Diff diffID %s, want %s", id, want)
	}
	var again bytes.Buffer
	if _, err := Diff(context.Background(), &again, upper); err != nil || !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("a second Diff of the same tree differs (err %v)", err)
	}

	dir := t.TempDir()
	got, err := Unpack(context.Background(), dir, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if got != id {
		t.Errorf("Unpack diffID %s, Diff said %s", got, id)
	}
	want, have := describe(t, upper), describe(t, dir)
	for k, w := range want {
		if have[k] != w {
			t.Errorf("%s:\n  upper    %s\n  unpacked %s", k, w, have[k])
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unpacked but not in upper: %s", k, have[k])
		}
	}
}

// entries lists the names and types in a tar stream.
func entries(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		must(t, err)
		out = append(out, fmt.Sprintf("%c %s", h.Typeflag, h.Name))
	}
}

func TestDiffEntries(t *testing.T) {
	needRoot(t)
	upper := upperTree(t)
	var buf bytes.Buffer
	if _, err := Diff(context.Background(), &buf, upper); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(entries(t, &buf), "\n")
	for _, want := range []string{
		"0 .wh.gone", "0 etc/.wh.gone-too", "5 opaque/", "0 opaque/.wh..wh..opq", "0 opaque/new",
		"1 etc/shadow-", "2 abs", "6 fifo", "5 srv/",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("Diff entries lack %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "5 opaque/") > strings.Index(got, "0 opaque/.wh..wh..opq") {
		t.Errorf("the opaque marker comes before its directory:\n%s", got)
	}
}

func TestDiffRefusesOverlayIndirections(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		ops  []fsOp
		want string
	}{
		{"metacopy", []fsOp{mkfile("f", "", 0o644, 0, 0), setxattr("f", "trusted.overlay.metacopy", "")}, "metacopy"},
		{"redirect", []fsOp{mkdir("d", 0o755, 0, 0), setxattr("d", "trusted.overlay.redirect", "/old")}, "redirect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, op := range tc.ops {
				op(t, dir)
			}
			_, err := Diff(context.Background(), io.Discard, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Diff error %v, want one about %s", err, tc.want)
			}
		})
	}
}

func TestDiffCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "f"), nil, 0o644))
	if _, err := Diff(ctx, io.Discard, dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("Diff error %v, want context.Canceled", err)
	}
}

// TestDiffOfRealOverlay changes a real overlay mount and checks that Diff of
// its upper directory records what overlayfs did.
func TestDiffOfRealOverlay(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, work, merged, lower + "/dir"} {
		must(t, os.MkdirAll(d, 0o755))
	}
	must(t, os.WriteFile(lower+"/deleted", []byte("x"), 0o644))
	must(t, os.WriteFile(lower+"/dir/old", []byte("x"), 0o644))
	must(t, os.WriteFile(lower+"/changed", []byte("x"), 0o644))
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",index=off,metacopy=off,redirect_dir=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("overlayfs not available: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	must(t, os.Remove(merged+"/deleted"))
	must(t, os.RemoveAll(merged+"/dir"))
	must(t, os.Mkdir(merged+"/dir", 0o755))
	must(t, os.WriteFile(merged+"/dir/new", []byte("n"), 0o644))
	must(t, os.WriteFile(merged+"/changed", []byte("changed"), 0o644))
	must(t, unix.Unmount(merged, 0))

	var buf bytes.Buffer
	if _, err := Diff(context.Background(), &buf, upper); err != nil {
		t.Fatal(err)
	}
	got := entries(t, &buf)
	want := []string{"0 changed", "0 .wh.deleted", "5 dir/", "0 dir/.wh..wh..opq", "0 dir/new"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Diff entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
