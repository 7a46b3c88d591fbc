package volume

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const secret = "TOPSECRET-outside-the-image"

func flock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }

// fixture is an image root filesystem next to a directory outside it that
// holds a secret, and a store.
type fixture struct {
	s       *Store
	root    string // the store
	img     string // the image root filesystem
	outside string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{
		root:    filepath.Join(base, "volumes"),
		img:     filepath.Join(base, "image"),
		outside: filepath.Join(base, "outside"),
	}
	write(t, filepath.Join(f.outside, "secret"), secret)
	write(t, filepath.Join(f.img, "data/file"), "v1")
	write(t, filepath.Join(f.img, "data/sub/deep"), "deep")
	f.s = open(t, f.root)
	return f
}

func write(t *testing.T, p, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func (f fixture) create(t *testing.T, name string) Volume {
	t.Helper()
	v, err := f.s.Create(context.Background(), name, "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f fixture) copyUp(t *testing.T, name, srcPath string) bool {
	t.Helper()
	copied, err := f.s.CopyUp(context.Background(), name, f.img, srcPath)
	if err != nil {
		t.Fatalf("CopyUp(%s): %v", srcPath, err)
	}
	return copied
}

func (f fixture) decided(t *testing.T, name string) bool {
	t.Helper()
	v, err := f.s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return v.CopiedUp
}

// contents lists the files below dir with their content.
func contents(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "->" + l
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func noSecret(t *testing.T, dir string) {
	t.Helper()
	for p, c := range contents(t, dir) {
		if strings.Contains(c, secret) {
			t.Errorf("%s in the volume holds the secret from outside the image", p)
		}
	}
}

func TestCopyUpOnce(t *testing.T) {
	f := newFixture(t)
	v := f.create(t, "db")
	if !f.copyUp(t, "db", "/data") {
		t.Fatal("first CopyUp did not copy")
	}
	want := map[string]string{"file": "v1", "sub/deep": "deep"}
	if got := contents(t, v.Path); !equalMaps(got, want) {
		t.Fatalf("volume after CopyUp = %v, want %v", got, want)
	}
	if !f.decided(t, "db") {
		t.Error("CopiedUp not recorded")
	}
	// A new image version, and the volume emptied by the application:
	// neither brings the copy back.
	write(t, filepath.Join(f.img, "data/file"), "v2")
	write(t, filepath.Join(f.img, "data/new"), "new")
	if f.copyUp(t, "db", "/data") {
		t.Error("second CopyUp copied")
	}
	if got := contents(t, v.Path); !equalMaps(got, want) {
		t.Errorf("volume after a second CopyUp = %v, want %v", got, want)
	}
	must(t, os.RemoveAll(filepath.Join(v.Path, "file")))
	must(t, os.RemoveAll(filepath.Join(v.Path, "sub")))
	if f.copyUp(t, "db", "/data") {
		t.Error("CopyUp into the emptied volume copied")
	}
	if ents, _ := os.ReadDir(filepath.Join(f.root, "db")); len(ents) != 2 {
		t.Errorf("volume directory holds %v, want only _data and meta.json", ents)
	}
}

func TestCopyUpDecisions(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, f fixture, v Volume)
		srcPath string
		copied  bool
	}{
		{
			name:    "empty volume, image has data",
			srcPath: "/data",
			copied:  true,
		},
		{
			name:    "volume already has data",
			prepare: func(t *testing.T, f fixture, v Volume) { write(t, filepath.Join(v.Path, "mine"), "app data") },
			srcPath: "/data",
		},
		{
			name:    "volume in use",
			prepare: func(t *testing.T, f fixture, v Volume) { must(t, f.s.Use(v.Name, "c1")) },
			srcPath: "/data",
		},
		{name: "nothing at the path", srcPath: "/nope"},
		{name: "a file at the path", srcPath: "/data/file"},
		{name: "the image's root", srcPath: "/", copied: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			v := f.create(t, "db")
			if tt.prepare != nil {
				tt.prepare(t, f, v)
			}
			before := contents(t, v.Path)
			if got := f.copyUp(t, "db", tt.srcPath); got != tt.copied {
				t.Fatalf("CopyUp copied = %v, want %v", got, tt.copied)
			}
			if !f.decided(t, "db") {
				t.Error("the decision was not recorded")
			}
			if !tt.copied {
				if got := contents(t, v.Path); !equalMaps(got, before) {
					t.Errorf("volume changed without a copy: %v, was %v", got, before)
				}
			}
			// Whatever was decided, the image cannot fill it later.
			if info, err := os.Stat(filepath.Join(f.img, tt.srcPath)); err == nil && !info.IsDir() {
				must(t, os.Remove(filepath.Join(f.img, tt.srcPath)))
			}
			write(t, filepath.Join(f.img, tt.srcPath, "later"), "later")
			if f.copyUp(t, "db", tt.srcPath) {
				t.Error("a later CopyUp copied")
			}
		})
	}
}

// TestCopyUpHostileImage gives CopyUp image paths that lead outside the
// image through links: they resolve within the image, and the secret
// outside never reaches the volume (CVE-2022-23648).
func TestCopyUpHostileImage(t *testing.T) {
	tests := []struct {
		name    string
		links   map[string]string // link (in the image) → target
		srcPath string
		want    map[string]string // nil: nothing copied
	}{
		{name: "relative escape", links: map[string]string{"vol": "../outside"}, srcPath: "/vol",
			want: map[string]string{"secret": "decoy"}},
		{name: "absolute host path", links: map[string]string{"vol": "$OUT"}, srcPath: "/vol"},
		{name: "link to /", links: map[string]string{"vol": "/"}, srcPath: "/vol/outside",
			want: map[string]string{"secret": "decoy"}},
		{name: "dot-dot path", srcPath: "/../../../outside", want: map[string]string{"secret": "decoy"}},
		{name: "dot-dot host path", srcPath: "/../../../$OUT"},
		{name: "symlinked parent", links: map[string]string{"lib": "../../../../"}, srcPath: "/lib/outside",
			want: map[string]string{"secret": "decoy"}},
		{name: "link inside the tree is kept as a link", links: map[string]string{"outside/escape": "$OUT/secret"}, srcPath: "/outside",
			want: map[string]string{"secret": "decoy", "escape": "->$OUT/secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			expand := func(s string) string { return strings.ReplaceAll(s, "$OUT", f.outside) }
			write(t, filepath.Join(f.img, "outside/secret"), "decoy")
			for l, target := range tt.links {
				must(t, os.Symlink(expand(target), filepath.Join(f.img, l)))
			}
			v := f.create(t, "db")
			copied := f.copyUp(t, "db", expand(tt.srcPath))
			noSecret(t, v.Path)
			if copied != (tt.want != nil) {
				t.Fatalf("copied = %v, want %v", copied, tt.want != nil)
			}
			got := contents(t, v.Path)
			want := map[string]string{}
			for k, c := range tt.want {
				want[k] = expand(c)
			}
			if !equalMaps(got, want) {
				t.Errorf("volume = %v, want %v", got, want)
			}
			if b, err := os.ReadFile(filepath.Join(f.outside, "secret")); err != nil || string(b) != secret {
				t.Errorf("the secret outside changed: %q, %v", b, err)
			}
		})
	}
}

// TestCopyUpKeepsAttributes checks owners, modes, extended attributes,
// hard links and times, and that the volume's directory takes the image
// directory's owner and mode, as Docker does.
func TestCopyUpKeepsAttributes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files other owners; run the tests as root")
	}
	f := newFixture(t)
	d := filepath.Join(f.img, "data")
	must(t, os.Chown(d, 70, 71))
	must(t, os.Chmod(d, 0o750|fs.ModeSetgid))
	must(t, os.Chown(filepath.Join(d, "file"), 1000, 1001))
	must(t, os.Chmod(filepath.Join(d, "file"), 0o4711|fs.ModeSetuid))
	must(t, unix.Setxattr(filepath.Join(d, "file"), "user.berth", []byte("x"), 0))
	must(t, os.Link(filepath.Join(d, "file"), filepath.Join(d, "sub/hard")))
	must(t, os.Symlink("file", filepath.Join(d, "soft")))
	must(t, os.Lchown(filepath.Join(d, "soft"), 5, 6))
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(d, "file"), old, old))

	v := f.create(t, "db")
	if !f.copyUp(t, "db", "/data") {
		t.Fatal("no copy")
	}
	check := func(rel string, uid, gid uint32, mode fs.FileMode) {
		t.Helper()
		info, err := os.Lstat(filepath.Join(v.Path, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid || info.Mode() != mode {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", rel, st.Uid, st.Gid, info.Mode(), uid, gid, mode)
		}
	}
	check(".", 70, 71, fs.ModeDir|fs.ModeSetgid|0o750)
	check("file", 1000, 1001, fs.ModeSetuid|0o711)
	check("soft", 5, 6, fs.ModeSymlink|0o777)
	a, _ := os.Stat(filepath.Join(v.Path, "file"))
	b, _ := os.Stat(filepath.Join(v.Path, "sub/hard"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("hard link not kept")
	}
	if !a.ModTime().Equal(old) {
		t.Errorf("mtime %v, want %v", a.ModTime(), old)
	}
	buf := make([]byte, 8)
	if n, err := unix.Getxattr(filepath.Join(v.Path, "file"), "user.berth", buf); err != nil || string(buf[:n]) != "x" {
		t.Errorf("xattr user.berth = %q, %v", buf[:n], err)
	}
}

// TestCopyUpCrash simulates the states a crash can leave and checks that
// no data is lost and no half copy is taken for a done one.
func TestCopyUpCrash(t *testing.T) {
	t.Run("during the copy", func(t *testing.T) {
		f := newFixture(t)
		v := f.create(t, "db")
		// A dead process's half copy: unlocked work directory.
		write(t, filepath.Join(f.root, "db/copyup-dead/data/file"), "half")
		s := open(t, f.root)
		if _, err := os.Stat(filepath.Join(f.root, "db/copyup-dead")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale copy-up left after Open: %v", err)
		}
		if got := contents(t, v.Path); len(got) != 0 {
			t.Fatalf("a half copy reached the volume: %v", got)
		}
		if copied, err := s.CopyUp(context.Background(), "db", f.img, "/data"); err != nil || !copied {
			t.Fatalf("CopyUp after the crash = %v, %v, want a fresh copy", copied, err)
		}
		if got := contents(t, v.Path); got["file"] != "v1" || got["sub/deep"] != "deep" {
			t.Errorf("volume = %v", got)
		}
	})
	t.Run("after the rename, before the metadata", func(t *testing.T) {
		f := newFixture(t)
		v := f.create(t, "db")
		// The complete copy is in place, copied_up not written yet.
		write(t, filepath.Join(v.Path, "file"), "complete copy")
		write(t, filepath.Join(f.img, "data/file"), "v2")
		if f.copyUp(t, "db", "/data") {
			t.Fatal("CopyUp copied over data")
		}
		if !f.decided(t, "db") {
			t.Error("the decision was not recorded")
		}
		if got := contents(t, v.Path); got["file"] != "complete copy" || len(got) != 1 {
			t.Errorf("volume = %v", got)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		f := newFixture(t)
		v := f.create(t, "db")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := f.s.CopyUp(ctx, "db", f.img, "/data"); !errors.Is(err, context.Canceled) {
			t.Fatalf("CopyUp with a cancelled context = %v", err)
		}
		if f.decided(t, "db") {
			t.Error("a cancelled copy was recorded as decided")
		}
		if got := contents(t, v.Path); len(got) != 0 {
			t.Errorf("a cancelled copy reached the volume: %v", got)
		}
		if ents, _ := os.ReadDir(filepath.Join(f.root, "db")); len(ents) != 2 {
			t.Errorf("volume directory holds %v after a cancelled copy", ents)
		}
		if !f.copyUp(t, "db", "/data") {
			t.Error("CopyUp after a cancelled one did not copy")
		}
	})
	t.Run("failing copy", func(t *testing.T) {
		f := newFixture(t)
		v := f.create(t, "db")
		// Deeper than transfer copies: the copy fails half way.
		deep := filepath.Join(f.img, "data", strings.Repeat("d/", 600))
		must(t, os.MkdirAll(deep, 0o755))
		if _, err := f.s.CopyUp(context.Background(), "db", f.img, "/data"); err == nil {
			t.Fatal("CopyUp of a tree too deep succeeded")
		}
		if f.decided(t, "db") {
			t.Error("a failed copy was recorded as decided")
		}
		if got := contents(t, v.Path); len(got) != 0 {
			t.Errorf("a failed copy reached the volume: %v", got)
		}
		if ents, _ := os.ReadDir(filepath.Join(f.root, "db")); len(ents) != 2 {
			t.Errorf("volume directory holds %v after a failed copy", ents)
		}
	})
	t.Run("missing image root", func(t *testing.T) {
		f := newFixture(t)
		f.create(t, "db")
		if _, err := f.s.CopyUp(context.Background(), "db", filepath.Join(f.img, "nope"), "/data"); err == nil {
			t.Fatal("CopyUp from a missing root filesystem succeeded")
		}
		if f.decided(t, "db") {
			t.Error("a failed copy-up was recorded as decided")
		}
	})
	t.Run("missing volume", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.s.CopyUp(context.Background(), "nope", f.img, "/data"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("CopyUp of a missing volume = %v", err)
		}
	})
}

// TestRemoveRefusesMount checks that removing a volume never deletes what
// a mount inside it shows: Remove refuses while the mount is there, and
// the deletion itself stops at a mount it meets.
func TestRemoveRefusesMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind mount; run the tests as root")
	}
	f := newFixture(t)
	v := f.create(t, "db")
	target := filepath.Join(v.Path, "sub dir", "mnt")
	must(t, os.MkdirAll(target, 0o755))
	must(t, unix.Mount(f.outside, target, "", unix.MS_BIND, ""))
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	err := f.s.Remove(context.Background(), "db")
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "mount point") {
		t.Fatalf("Remove of a volume with a mount inside = %v, want a refusal", err)
	}
	if _, err := f.s.Get("db"); err != nil {
		t.Errorf("the volume is gone after a refused Remove: %v", err)
	}
	if err := removeTree(context.Background(), f.root, "db"); err == nil || !strings.Contains(err.Error(), "mount point") {
		t.Errorf("removeTree across a mount = %v, want a refusal", err)
	}
	if b, err := os.ReadFile(filepath.Join(f.outside, "secret")); err != nil || string(b) != secret {
		t.Fatalf("the removal deleted through the mount: %v", err)
	}
	must(t, unix.Unmount(target, 0))
	must(t, f.s.Remove(context.Background(), "db"))
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
