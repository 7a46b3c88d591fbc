package transfer

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// secret is the content of the sentinel files outside every test root: it
// must never turn up in anything a copy writes.
const secret = "TOPSECRET-outside-the-root"

// entry describes one path of a test tree: a file with content, a directory
// (dir), or a symbolic link (link).
type entry struct {
	path    string
	content string
	dir     bool
	link    string
	mode    os.FileMode
}

func file(p, content string) entry { return entry{path: p, content: content} }
func dir(p string) entry           { return entry{path: p, dir: true} }
func link(p, to string) entry      { return entry{path: p, link: to} }

// build creates the entries under base.
func build(t testing.TB, base string, entries ...entry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(base, e.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case e.dir:
			err = os.MkdirAll(p, 0o755)
		case e.link != "":
			err = os.Symlink(e.link, p)
		default:
			mode := e.mode
			if mode == 0 {
				mode = 0o644
			}
			err = os.WriteFile(p, []byte(e.content), mode)
			if err == nil {
				err = os.Chmod(p, mode)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// world is a test layout: a container root, a host directory, and a
// directory outside both holding a sentinel.
type world struct {
	base, root, host, outside string
}

func newWorld(t testing.TB) world {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := world{
		base:    base,
		root:    filepath.Join(base, "root"),
		host:    filepath.Join(base, "host"),
		outside: filepath.Join(base, "outside"),
	}
	build(t, base, dir("root"), dir("host"), file("outside/secret", secret), dir("outside/sub"))
	return w
}

// snapshot describes everything below dir: path → kind, mode and content.
func snapshot(t testing.TB, dir string) map[string]string {
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
		rel, _ := filepath.Rel(dir, p)
		desc := info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// guard checks, when the test ends, that nothing outside the container
// root and the host directory was touched: the sentinel directory is the
// same and the base holds nothing new.
func (w world) guard(t testing.TB) {
	t.Helper()
	before := snapshot(t, w.outside)
	top := names(t, w.base)
	t.Cleanup(func() {
		after := snapshot(t, w.outside)
		if !equal(before, after) {
			t.Errorf("the directory outside the root changed:\nbefore %v\nafter  %v", before, after)
		}
		if got := names(t, w.base); strings.Join(got, ",") != strings.Join(top, ",") {
			t.Errorf("entries next to the root changed: %v, was %v", got, top)
		}
	})
}

func names(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// noSecret fails if any regular file below dir holds the sentinel's
// content. Symbolic links are not followed.
func noSecret(t testing.TB, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds the secret from outside the root", p)
		}
		return nil
	})
}

// read returns the content of a file, "->target" for a symbolic link, "/"
// for a directory, or "" when p is absent.
func read(t testing.TB, p string) string {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		return ""
	}
	switch {
	case info.IsDir():
		return "/"
	case info.Mode()&fs.ModeSymlink != 0:
		l, _ := os.Readlink(p)
		return "->" + l
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (owners, device nodes, hard links through AT_EMPTY_PATH); run the tests as root")
	}
}

type namedResolver struct {
	name string
	r    resolver
}

// resolvers returns both lookup paths: openat2 and the securejoin fallback.
func resolvers() []namedResolver {
	return []namedResolver{{"openat2", resolver{}}, {"securejoin", resolver{legacy: true}}}
}
