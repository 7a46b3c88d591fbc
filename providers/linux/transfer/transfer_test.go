package transfer

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

// direction runs one copy from the "from" tree to the "to" tree, given
// paths relative to each (with their trailing "/" or "/." kept).
type direction struct {
	name string
	// from and to return the directories holding each tree.
	from, to func(w world) string
	copy     func(ctx context.Context, w world, src, dst string) error
}

func directions() []direction {
	return []direction{
		{
			name: "in",
			from: func(w world) string { return w.host },
			to:   func(w world) string { return w.root },
			copy: func(ctx context.Context, w world, src, dst string) error {
				return CopyIn(ctx, w.root, dst, w.host+"/"+src)
			},
		},
		{
			name: "out",
			from: func(w world) string { return w.root },
			to:   func(w world) string { return w.host },
			copy: func(ctx context.Context, w world, src, dst string) error {
				return CopyOut(ctx, w.root, "/"+src, w.host+"/"+dst)
			},
		},
	}
}

// TestDockerCpSemantics runs docker cp's table of source and destination
// kinds in both directions.
func TestDockerCpSemantics(t *testing.T) {
	fromTree := []entry{
		file("f", "F"),
		file("d/a", "A"),
		file("d/sub/b", "B"),
		link("l", "f"),
		link("dl", "d"),
	}
	toTree := []entry{
		file("x", "X"),
		dir("e"),
		file("m/d/old", "OLD"),
		dir("c/f"),
	}
	tests := []struct {
		name     string
		src, dst string
		want     map[string]string
		wantErr  string
	}{
		{name: "file to new name", src: "f", dst: "new", want: map[string]string{"new": "F"}},
		{name: "file to new name with slash", src: "f", dst: "new/", wantErr: "destination directory"},
		{name: "file over file", src: "f", dst: "x", want: map[string]string{"x": "F"}},
		{name: "file into dir", src: "f", dst: "e", want: map[string]string{"e/f": "F", "e": "/"}},
		{name: "file into dir with slash", src: "f", dst: "e/", want: map[string]string{"e/f": "F"}},
		{name: "file to file with slash", src: "f", dst: "x/", wantErr: "not a directory"},
		{name: "file over a directory", src: "f", dst: "c", wantErr: "cannot overwrite directory with non-directory"},
		{name: "file with slash", src: "f/", dst: "new", wantErr: "not a directory"},
		{name: "dir to new name", src: "d", dst: "new", want: map[string]string{"new/a": "A", "new/sub/b": "B"}},
		{name: "dir to new name with slash", src: "d", dst: "new/", want: map[string]string{"new/a": "A", "new/sub/b": "B"}},
		{name: "dir over file", src: "d", dst: "x", wantErr: "cannot copy a directory to a file", want: map[string]string{"x": "X"}},
		{name: "dir into dir", src: "d", dst: "e", want: map[string]string{"e/d/a": "A", "e/d/sub/b": "B", "e/a": ""}},
		{name: "dir contents into dir", src: "d/.", dst: "e", want: map[string]string{"e/a": "A", "e/sub/b": "B", "e/d": ""}},
		{name: "dir contents to new name", src: "d/.", dst: "new", want: map[string]string{"new/a": "A", "new/sub/b": "B"}},
		{name: "dir merges", src: "d", dst: "m", want: map[string]string{"m/d/old": "OLD", "m/d/a": "A"}},
		{name: "symlink copied as a link", src: "l", dst: "e", want: map[string]string{"e/l": "->f"}},
		{name: "symlink to dir copied as a link", src: "dl", dst: "new", want: map[string]string{"new": "->d"}},
		{name: "symlink to dir followed with slash", src: "dl/", dst: "new", want: map[string]string{"new/a": "A"}},
		{name: "missing source", src: "nope", dst: "new", wantErr: "no such file"},
		{name: "missing parent", src: "f", dst: "nope/new", wantErr: "parent directory does not exist"},
	}
	for _, d := range directions() {
		for _, tt := range tests {
			t.Run(d.name+"/"+tt.name, func(t *testing.T) {
				w := newWorld(t)
				w.guard(t)
				build(t, d.from(w), fromTree...)
				build(t, d.to(w), toTree...)
				err := d.copy(context.Background(), w, tt.src, tt.dst)
				switch {
				case tt.wantErr == "" && err != nil:
					t.Fatalf("copy %s → %s: %v", tt.src, tt.dst, err)
				case tt.wantErr != "" && err == nil:
					t.Fatalf("copy %s → %s succeeded, want an error with %q", tt.src, tt.dst, tt.wantErr)
				case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
					t.Fatalf("copy %s → %s: error %q, want it to contain %q", tt.src, tt.dst, err, tt.wantErr)
				}
				for p, want := range tt.want {
					if got := read(t, filepath.Join(d.to(w), p)); got != want {
						t.Errorf("%s = %q, want %q", p, got, want)
					}
				}
				noTemps(t, d.to(w))
			})
		}
	}
}

// noTemps fails if a temporary entry of a copy was left behind.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".berth-cp-") {
			t.Errorf("temporary entry left behind: %s", p)
		}
		return nil
	})
}

// TestCopyInRoot copies into the container's "/" and contents of "/" out.
func TestCopyInRoot(t *testing.T) {
	w := newWorld(t)
	w.guard(t)
	build(t, w.host, file("d/a", "A"), file("f", "F"))
	ctx := context.Background()
	for _, dst := range []string{"/", "."} {
		if err := CopyIn(ctx, w.root, dst, filepath.Join(w.host, "d")); err != nil {
			t.Fatalf("copy in to %q: %v", dst, err)
		}
	}
	if err := CopyIn(ctx, w.root, "relative-name", filepath.Join(w.host, "f")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(w.root, "d/a")); got != "A" {
		t.Errorf("d/a = %q", got)
	}
	if got := read(t, filepath.Join(w.root, "relative-name")); got != "F" {
		t.Errorf("a relative container path is taken from /: relative-name = %q", got)
	}
	out := filepath.Join(w.host, "all")
	if err := CopyOut(ctx, w.root, "/", out); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(out, "d/a")); got != "A" {
		t.Errorf("all/d/a = %q", got)
	}
	if err := CopyIn(ctx, w.root, "", w.host); err == nil {
		t.Error("an empty container path was accepted")
	}
}

// TestModesAndTimes checks that permission bits and modification times
// survive a copy in each direction.
func TestModesAndTimes(t *testing.T) {
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			w := newWorld(t)
			from := d.from(w)
			build(t, from, entry{path: "t/run", content: "#!/bin/sh\n", mode: 0o751}, entry{path: "t/private", content: "p", mode: 0o600}, link("t/l", "run"))
			if err := os.Chmod(filepath.Join(from, "t"), 0o710); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"t/run", "t/private", "t"} {
				if err := os.Chtimes(filepath.Join(from, p), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			if err := unix.Lutimes(filepath.Join(from, "t/l"), []unix.Timeval{unix.NsecToTimeval(mtime.UnixNano()), unix.NsecToTimeval(mtime.UnixNano())}); err != nil {
				t.Fatal(err)
			}
			if err := d.copy(context.Background(), w, "t", "copy"); err != nil {
				t.Fatal(err)
			}
			to := filepath.Join(d.to(w), "copy")
			for p, want := range map[string]os.FileMode{"run": 0o751, "private": 0o600, ".": 0o710 | fs.ModeDir} {
				info, err := os.Lstat(filepath.Join(to, p))
				if err != nil {
					t.Fatal(err)
				}
				if info.Mode() != want {
					t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
				}
				if !info.ModTime().Equal(mtime) {
					t.Errorf("%s: mtime %v, want %v", p, info.ModTime(), mtime)
				}
			}
			info, err := os.Lstat(filepath.Join(to, "l"))
			if err != nil {
				t.Fatal(err)
			}
			if !info.ModTime().Equal(mtime.Truncate(time.Microsecond)) {
				t.Errorf("symlink mtime %v, want %v", info.ModTime(), mtime)
			}
		})
	}
}

// TestOwnersAndSetuid checks docker cp's ownership rule: copies belong to
// the caller, and setuid/setgid bits that would change hands are dropped;
// copies to the host drop them all.
func TestOwnersAndSetuid(t *testing.T) {
	needRoot(t)
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			w := newWorld(t)
			from := d.from(w)
			build(t, from, file("t/theirs", "x"), file("t/ours", "y"), file("t/group", "z"))
			chown(t, filepath.Join(from, "t/theirs"), 1234, 1234, 0o4755|fs.ModeSetuid)
			chown(t, filepath.Join(from, "t/ours"), 0, 0, 0o755|fs.ModeSetuid|fs.ModeSetgid)
			chown(t, filepath.Join(from, "t/group"), 0, 4321, 0o755|fs.ModeSetgid)
			if err := d.copy(context.Background(), w, "t", "copy"); err != nil {
				t.Fatal(err)
			}
			to := filepath.Join(d.to(w), "copy")
			ours := 0o755 | fs.ModeSetuid | fs.ModeSetgid
			if d.name == "out" {
				ours = 0o755
			}
			for p, want := range map[string]os.FileMode{
				"theirs": 0o755,
				"ours":   ours,
				"group":  0o755,
			} {
				info, err := os.Lstat(filepath.Join(to, p))
				if err != nil {
					t.Fatal(err)
				}
				st := info.Sys().(*syscall.Stat_t)
				if st.Uid != 0 || st.Gid != 0 {
					t.Errorf("%s: owner %d:%d, want 0:0", p, st.Uid, st.Gid)
				}
				if info.Mode() != want {
					t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
				}
			}
		})
	}
}

func chown(t *testing.T, p string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// TestHardLinks checks that names of one file stay one file.
func TestHardLinks(t *testing.T) {
	needRoot(t)
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			w := newWorld(t)
			from := d.from(w)
			build(t, from, file("t/a", "shared"), dir("t/sub"))
			if err := os.Link(filepath.Join(from, "t/a"), filepath.Join(from, "t/sub/b")); err != nil {
				t.Fatal(err)
			}
			if err := d.copy(context.Background(), w, "t", "copy"); err != nil {
				t.Fatal(err)
			}
			to := filepath.Join(d.to(w), "copy")
			a, err := os.Stat(filepath.Join(to, "a"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.Stat(filepath.Join(to, "sub/b"))
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(a, b) {
				t.Error("a and sub/b are two files, want one file with two names")
			}
			if got := read(t, filepath.Join(to, "sub/b")); got != "shared" {
				t.Errorf("sub/b = %q", got)
			}
		})
	}
}

// TestDeviceNodes checks that berth cp refuses device nodes, copies FIFOs
// and skips sockets.
func TestDeviceNodes(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	build(t, w.root, dir("dev"), dir("pipes"))
	if err := unix.Mknod(filepath.Join(w.root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(w.root, "pipes/fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err := CopyOut(ctx, w.root, "/dev", filepath.Join(w.host, "dev"))
	if err == nil || !strings.Contains(err.Error(), "device node") {
		t.Errorf("copy of a device node: %v, want a refusal", err)
	}
	if err := CopyOut(ctx, w.root, "/pipes", filepath.Join(w.host, "pipes")); err != nil {
		t.Fatal(err)
	}
	info, err := os.Lstat(filepath.Join(w.host, "pipes/fifo"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != fs.ModeNamedPipe|0o640 {
		t.Errorf("fifo mode %v", info.Mode())
	}
}

// TestIntoItself refuses a copy whose destination lies inside its source.
func TestIntoItself(t *testing.T) {
	w := newWorld(t)
	build(t, w.root, file("a/f", "F"))
	err := CopyOut(context.Background(), w.root, "/a", filepath.Join(w.root, "a/inside"))
	if err == nil || !strings.Contains(err.Error(), "into itself") {
		t.Fatalf("copy into itself: %v", err)
	}
}

// TestCancel checks that a cancelled context stops a copy.
func TestCancel(t *testing.T) {
	w := newWorld(t)
	build(t, w.host, file("d/a", "A"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := CopyIn(ctx, w.root, "/d", filepath.Join(w.host, "d"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("copy with a cancelled context: %v", err)
	}
}

// TestReplaceDoesNotWriteThrough checks that an existing destination file
// is replaced, not written through: another name of it keeps its content.
func TestReplaceDoesNotWriteThrough(t *testing.T) {
	w := newWorld(t)
	build(t, w.host, file("f", "NEW"))
	build(t, w.root, file("etc/target", "OLD"))
	if err := os.Link(filepath.Join(w.root, "etc/target"), filepath.Join(w.root, "other-name")); err != nil {
		t.Fatal(err)
	}
	if err := CopyIn(context.Background(), w.root, "/etc/target", filepath.Join(w.host, "f")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(w.root, "etc/target")); got != "NEW" {
		t.Errorf("target = %q", got)
	}
	if got := read(t, filepath.Join(w.root, "other-name")); got != "OLD" {
		t.Errorf("other name of the replaced file = %q, want OLD", got)
	}
}
