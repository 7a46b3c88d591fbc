package transfer

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCloneDirKeepsEverything clones a tree with owners, special bits,
// extended attributes, hard links, symbolic links, a FIFO, a device node
// and old times, and compares every attribute.
func TestCloneDirKeepsEverything(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	src := filepath.Join(w.root, "var/lib/app")
	build(t, w.root,
		entry{path: "var/lib/app/bin/tool", content: "tool", mode: 0o755},
		entry{path: "var/lib/app/data/db", content: "rows", mode: 0o640},
		dir("var/lib/app/empty"),
		link("var/lib/app/current", "data/db"),
		link("var/lib/app/abs", "/etc/shadow"),
	)
	p := func(rel string) string { return filepath.Join(src, rel) }
	must(t, os.Link(p("data/db"), p("bin/db-link")))
	must(t, os.Lchown(p("bin/tool"), 0, 0))
	must(t, os.Chmod(p("bin/tool"), 0o755|fs.ModeSetuid))
	must(t, os.Lchown(p("data"), 999, 998))
	must(t, os.Chmod(p("data"), 0o2770|fs.ModeSetgid|fs.ModeSticky))
	must(t, os.Lchown(p("data/db"), 999, 998))
	must(t, os.Lchown(p("current"), 777, 776))
	must(t, unix.Mkfifo(p("fifo"), 0o620))
	must(t, unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.Chmod(p("fifo"), 0o624))
	must(t, os.Chmod(p("null"), 0o666))
	must(t, unix.Lsetxattr(p("data/db"), "user.berth", []byte("label"), 0))
	must(t, unix.Lsetxattr(p("data"), "trusted.berth", []byte("dir"), 0))
	must(t, os.Chmod(p("."), 0o750))
	old := time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, rel := range []string{"bin/tool", "data/db", "data", "empty", "fifo", "."} {
		must(t, os.Chtimes(p(rel), old, old))
	}

	dst := filepath.Join(w.host, "clone")
	if err := CloneDir(context.Background(), w.root, "/var/lib/app", dst); err != nil {
		t.Fatal(err)
	}
	before, after := describe(t, src), describe(t, dst)
	for rel, want := range before {
		if got := after[rel]; got != want {
			t.Errorf("%s:\n got %s\nwant %s", rel, got, want)
		}
	}
	for rel := range after {
		if _, ok := before[rel]; !ok {
			t.Errorf("%s: in the clone only", rel)
		}
	}
	a, err := os.Stat(filepath.Join(dst, "data/db"))
	must(t, err)
	b, err := os.Stat(filepath.Join(dst, "bin/db-link"))
	must(t, err)
	if !os.SameFile(a, b) {
		t.Error("hard link not kept: data/db and bin/db-link are two files")
	}
	if err := CloneDir(context.Background(), w.root, "/var/lib/app", dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("clone onto an existing directory: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// describe lists every entry below dir with its type, mode, owner, size,
// modification time (but not for directories and links whose times the
// test does not set), link target, device number, xattrs and content.
func describe(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		var b strings.Builder
		b.WriteString(info.Mode().String())
		b.WriteString(" " + itoa(st.Uid) + ":" + itoa(st.Gid))
		b.WriteString(" mtime=" + info.ModTime().UTC().Format(time.RFC3339Nano))
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		case info.Mode()&fs.ModeDevice != 0:
			b.WriteString(" dev=" + itoa(uint32(unix.Major(st.Rdev))) + "," + itoa(uint32(unix.Minor(st.Rdev))))
		case info.Mode().IsRegular():
			c, _ := os.ReadFile(p)
			b.WriteString(" " + string(c))
			b.WriteString(" nlink=" + itoa(uint32(st.Nlink)))
		}
		if info.Mode()&fs.ModeSymlink == 0 && info.Mode()&fs.ModeNamedPipe == 0 && info.Mode()&fs.ModeDevice == 0 {
			for _, n := range []string{"user.berth", "trusted.berth"} {
				buf := make([]byte, 64)
				if k, err := unix.Lgetxattr(p, n, buf); err == nil {
					b.WriteString(" " + n + "=" + string(buf[:k]))
				}
			}
		}
		out[rel] = b.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
