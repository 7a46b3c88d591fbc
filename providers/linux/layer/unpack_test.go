package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// unprivileged tells unpack to tolerate EPERM from chown and trusted.*
// xattrs when the tests do not run as root.
func unprivileged() bool { return os.Geteuid() != 0 }

func unpackBytes(t testing.TB, dir string, data []byte) (string, error) {
	t.Helper()
	return unpack(context.Background(), dir, bytes.NewReader(data), unprivileged())
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

// want describes one path of an extracted tree. Zero fields are not checked,
// except kind.
type want struct {
	name   string
	kind   uint32 // unix.S_IFREG, …; 0 means "must not exist"
	mode   uint32 // permission bits including setuid/setgid/sticky
	body   string
	link   string
	uid    int
	gid    int
	mtime  bool // the modification time must be testTime
	xattrs map[string]string
	noXa   []string // extended attributes that must be absent
}

func (w want) check(t *testing.T, root string) {
	t.Helper()
	p := filepath.Join(root, w.name)
	var st unix.Stat_t
	err := unix.Lstat(p, &st)
	if w.kind == 0 {
		if !errors.Is(err, unix.ENOENT) {
			t.Errorf("%s exists (mode %o), want it absent", w.name, st.Mode)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", w.name, err)
		return
	}
	if got := st.Mode & unix.S_IFMT; got != w.kind {
		t.Errorf("%s: type %o, want %o", w.name, got, w.kind)
		return
	}
	if w.mode != 0 && st.Mode&0o7777 != w.mode {
		t.Errorf("%s: mode %o, want %o", w.name, st.Mode&0o7777, w.mode)
	}
	if w.kind == unix.S_IFCHR && st.Rdev != 0 {
		t.Errorf("%s: device %d, want 0/0", w.name, st.Rdev)
	}
	if !unprivileged() && (int(st.Uid) != w.uid || int(st.Gid) != w.gid) {
		t.Errorf("%s: owner %d:%d, want %d:%d", w.name, st.Uid, st.Gid, w.uid, w.gid)
	}
	if w.mtime && (st.Mtim.Sec != testTime.Unix() || st.Mtim.Nsec != 0) {
		t.Errorf("%s: mtime %d, want %d", w.name, st.Mtim.Sec, testTime.Unix())
	}
	if w.kind == unix.S_IFREG && w.body != "" {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != w.body {
			t.Errorf("%s: content %q (%v), want %q", w.name, b, err, w.body)
		}
	}
	if w.kind == unix.S_IFLNK {
		if got, _ := os.Readlink(p); got != w.link {
			t.Errorf("%s: link %q, want %q", w.name, got, w.link)
		}
	}
	for k, v := range w.xattrs {
		buf := make([]byte, 256)
		n, err := unix.Lgetxattr(p, k, buf)
		if err != nil || string(buf[:n]) != v {
			t.Errorf("%s: xattr %s = %q (%v), want %q", w.name, k, buf[:max(n, 0)], err, v)
		}
	}
	for _, k := range w.noXa {
		if _, err := unix.Lgetxattr(p, k, nil); !errors.Is(err, unix.ENODATA) {
			t.Errorf("%s: xattr %s present (%v), want absent", w.name, k, err)
		}
	}
}

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value granting
// CAP_NET_RAW (13), permitted and effective.
const capNetRaw = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

func TestUnpackGood(t *testing.T) {
	root := os.Geteuid() == 0
	tests := []struct {
		name    string
		entries []*tar.Header
		want    []want
		root    bool // needs root to run at all
	}{{
		name: "tree",
		entries: []*tar.Header{
			owned(dirE("etc/", 0o750), 10, 20),
			owned(fileE("etc/passwd", "root:x:0:0\n", 0o644), 0, 0),
			owned(fileE("bin/su", "elf", 0o4755), 0, 0),
			owned(dirE("tmp/", 0o1777), 0, 0),
			owned(dirE("srv/", 0o2775), 5, 6),
			owned(symE("lib", "usr/lib"), 7, 8),
			owned(symE("abs", "/etc/passwd"), 0, 0),
			linkE("etc/passwd-", "etc/passwd"),
			owned(fifoE("run/ctl", 0o620), 3, 4),
		},
		want: []want{
			{name: "etc", kind: unix.S_IFDIR, mode: 0o750, uid: 10, gid: 20, mtime: true},
			{name: "etc/passwd", kind: unix.S_IFREG, mode: 0o644, body: "root:x:0:0\n", mtime: true},
			{name: "etc/passwd-", kind: unix.S_IFREG, body: "root:x:0:0\n"},
			{name: "bin", kind: unix.S_IFDIR, mode: 0o755},
			{name: "bin/su", kind: unix.S_IFREG, mode: 0o4755, body: "elf"},
			{name: "tmp", kind: unix.S_IFDIR, mode: 0o1777},
			{name: "srv", kind: unix.S_IFDIR, mode: 0o2775, uid: 5, gid: 6},
			{name: "lib", kind: unix.S_IFLNK, link: "usr/lib", uid: 7, gid: 8, mtime: true},
			{name: "abs", kind: unix.S_IFLNK, link: "/etc/passwd"},
			{name: "run/ctl", kind: unix.S_IFIFO, mode: 0o620, uid: 3, gid: 4, mtime: true},
		},
	}, {
		name: "whiteouts",
		entries: []*tar.Header{
			dirE("d/", 0o755),
			fileE("d/.wh..wh..opq", "", 0),
			fileE("d/new", "n", 0o644),
			fileE(".wh.gone", "", 0),
			fileE("x/y/.wh.z", "", 0),
			fileE(".wh..wh.plnk/12.34", "aufs", 0o644),
			dirE(".wh..wh.orph/", 0o755),
			fileE(".wh.dir/inside", "", 0o644),
		},
		want: []want{
			{name: "d", kind: unix.S_IFDIR, mode: 0o755, xattrs: map[string]string{opaqueXattr: "y"}, mtime: true},
			{name: "d/new", kind: unix.S_IFREG, body: "n"},
			{name: "gone", kind: unix.S_IFCHR, mode: 0},
			{name: ".wh.gone"},
			{name: "x/y", kind: unix.S_IFDIR, mode: 0o755},
			{name: "x/y/z", kind: unix.S_IFCHR},
			{name: ".wh..wh.plnk"},
			{name: ".wh..wh.orph"},
			{name: ".wh.dir"},
			{name: "dir"},
		},
		root: true, // trusted.* xattrs
	}, {
		name: "replacements",
		entries: []*tar.Header{
			fileE("a", "file", 0o644),
			dirE("a/", 0o755), // file → dir
			dirE("b/", 0o755),
			fileE("b/child", "c", 0o644),
			fileE("b", "now a file", 0o600), // dir with content → file
			dirE("c/", 0o700),
			fileE("c/keep", "k", 0o644),
			dirE("c/", 0o755), // dir → dir keeps content, takes new mode
			symE("d", "/nowhere"),
			fileE("d", "d", 0o644), // symlink → file
			fileE("e", "e", 0o644),
			fileE(".wh.e", "", 0), // whiteout replaces an entry of the same layer
			fileE("f", "old", 0o644),
			fileE("f", "new", 0o640),
		},
		want: []want{
			{name: "a", kind: unix.S_IFDIR, mode: 0o755},
			{name: "b", kind: unix.S_IFREG, mode: 0o600, body: "now a file"},
			{name: "c", kind: unix.S_IFDIR, mode: 0o755},
			{name: "c/keep", kind: unix.S_IFREG, body: "k"},
			{name: "d", kind: unix.S_IFREG, body: "d"},
			{name: "e", kind: unix.S_IFCHR},
			{name: "f", kind: unix.S_IFREG, mode: 0o640, body: "new"},
		},
	}, {
		name: "names",
		entries: []*tar.Header{
			fileE("/abs/file", "a", 0o644),
			fileE("./dot/file", "d", 0o644),
			fileE("p/../q/file", "q", 0o644),
			fileE("deep/er/still/file", "x", 0o644),
			dirE("./", 0o700), // the root itself: skipped
			dirE("/", 0o700),
		},
		want: []want{
			{name: "abs/file", kind: unix.S_IFREG, body: "a"},
			{name: "dot/file", kind: unix.S_IFREG, body: "d"},
			{name: "q/file", kind: unix.S_IFREG, body: "q"},
			{name: "p"},
			{name: "deep/er/still", kind: unix.S_IFDIR, mode: 0o755},
			{name: ".", kind: unix.S_IFDIR, mode: 0o755},
		},
	}, {
		name: "devices are skipped",
		entries: []*tar.Header{
			dirE("dev/", 0o755),
			charE("dev/null", 1, 3),
			{Typeflag: tar.TypeBlock, Name: "dev/sda", Devmajor: 8, Mode: 0o660, ModTime: testTime},
			fileE("dev/.keep", "", 0o644),
		},
		want: []want{
			{name: "dev", kind: unix.S_IFDIR},
			{name: "dev/null"},
			{name: "dev/sda"},
			{name: "dev/.keep", kind: unix.S_IFREG},
		},
	}, {
		name: "xattrs",
		entries: []*tar.Header{
			withXattr(fileE("f", "x", 0o644), "user.note", "hello"),
			withXattr(withXattr(dirE("d/", 0o755), "user.d", "dir"), "trusted.overlay.opaque", "y"),
			withXattr(fileE("r", "x", 0o644), "trusted.overlay.redirect", "/etc"),
			withXattr(fileE("s", "x", 0o644), "security.selinux", "system_u:object_r:etc_t"),
			// File capabilities survive the chown that precedes them.
			withXattr(owned(fileE("ping", "x", 0o755), 0, 0), "security.capability", capNetRaw),
		},
		want: []want{
			{name: "f", kind: unix.S_IFREG, xattrs: map[string]string{"user.note": "hello"}},
			{name: "d", kind: unix.S_IFDIR, xattrs: map[string]string{"user.d": "dir"}, noXa: []string{opaqueXattr}},
			{name: "r", kind: unix.S_IFREG, noXa: []string{"trusted.overlay.redirect"}},
			{name: "s", kind: unix.S_IFREG, noXa: []string{"security.selinux"}},
			{name: "ping", kind: unix.S_IFREG, mode: 0o755, xattrs: map[string]string{"security.capability": capNetRaw}},
		},
		root: true, // reading trusted.* needs root
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && !root {
				t.Skip("needs root (trusted.* extended attributes)")
			}
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			data := buildTar(t, tc.entries...)
			got, err := unpackBytes(t, dir, data)
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			sum := sha256.Sum256(data)
			if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
				t.Errorf("diffID %s, want %s", got, want)
			}
			for _, w := range tc.want {
				w.check(t, dir)
			}
		})
	}
}

func TestUnpackHardlinkSharesInode(t *testing.T) {
	dir := t.TempDir()
	data := buildTar(t, fileE("a", "x", 0o644), linkE("b", "a"), linkE("/c", "/a"), symE("s", "a"), linkE("t", "s"))
	if _, err := unpackBytes(t, dir, data); err != nil {
		t.Fatal(err)
	}
	a, b, c := lstat(t, filepath.Join(dir, "a")), lstat(t, filepath.Join(dir, "b")), lstat(t, filepath.Join(dir, "c"))
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("inodes %d %d %d nlink %d, want one inode with 3 links", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
	if s, tt := lstat(t, filepath.Join(dir, "s")), lstat(t, filepath.Join(dir, "t")); s.Ino != tt.Ino || tt.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("hard link to a symlink: got mode %o inode %d, want the symlink %d itself", tt.Mode, tt.Ino, s.Ino)
	}
}

func TestUnpackDigestCoversPadding(t *testing.T) {
	data := append(buildTar(t, fileE("a", "x", 0o644)), make([]byte, 10240)...)
	got, err := unpackBytes(t, t.TempDir(), data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		t.Errorf("diffID %s, want %s (the whole stream)", got, want)
	}
}

func TestUnpackErrors(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string
		data []byte
		ctx  func() context.Context
		want string
	}{{
		name: "not empty",
		dir: func(t *testing.T) string {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, "x"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return d
		},
		data: buildTar(t, fileE("a", "x", 0o644)),
		want: "directory is not empty",
	}, {
		name: "cancelled",
		ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		},
		data: buildTar(t, fileE("a", "x", 0o644)),
		want: context.Canceled.Error(),
	}, {
		name: "truncated",
		data: buildTar(t, fileE("a", "0123456789", 0o644))[:520],
		want: "unexpected EOF",
	}, {
		name: "hard link to a missing entry",
		data: buildTar(t, linkE("b", "missing")),
		want: `layer entry "b": link to "missing"`,
	}, {
		name: "hard link to a directory",
		data: buildTar(t, dirE("d/", 0o755), linkE("b", "d")),
		want: `layer entry "b": link to "d"`,
	}, {
		name: "owner out of range",
		data: buildTar(t, owned(fileE("a", "", 0o644), 1<<32, 0)),
		want: "out of range",
	}, {
		name: "file where a directory is needed",
		data: buildTar(t, fileE("a", "", 0o644), fileE("a/b", "", 0o644)),
		want: `layer entry "a/b"`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.dir != nil {
				dir = tc.dir(t)
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			_, err := unpack(ctx, dir, bytes.NewReader(tc.data), unprivileged())
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("Unpack error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
