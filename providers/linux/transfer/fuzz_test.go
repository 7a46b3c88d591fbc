package transfer

import (
	"os"
	"strings"
	"testing"
)

// FuzzResolve resolves arbitrary container paths, as destinations and as
// sources, in a root full of links that try to leave it, with both
// resolvers, and checks that every directory handed back lies inside the
// root and every name is a single element.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"/", ".", "", "/.", "//", "/..", "../../..", "/up/x", "/up/../../x", "/to-root/etc/shadow",
		"/rel-out/secret", "rel-out/", "/secret-abs", "/secret-abs/", "/etc/shadow", "/dangling",
		"/loop", "/loop/", "/chain1", "/chain1/.", "/tree/escape/x", "/tree/sub/abs/", "a/./b/../../c/",
		"/nope/nope", "/tree/sub/ok/", "/outside/secret/..", "x\x00y", strings.Repeat("/up", 50),
		strings.Repeat("a/", 600),
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	w := newWorld(f)
	hostileRoot(f, w)
	root, err := openRoot(w.root)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	f.Fuzz(func(t *testing.T, p string, legacy bool) {
		r := resolver{legacy: legacy}
		spec, err := containerPath(p)
		if err != nil {
			return
		}
		if !strings.HasPrefix(spec.clean, "/") {
			t.Fatalf("containerPath(%q) = %q, not absolute", p, spec.clean)
		}
		if tgt, err := r.resolveTarget(root, spec.clean); err == nil {
			inside(t, p, "target directory", root, tgt.dir)
			if strings.Contains(tgt.name, "/") || tgt.name == "." || tgt.name == ".." {
				t.Fatalf("%q: target name %q is not one element", p, tgt.name)
			}
			if tgt.isDir() {
				d, err := tgt.openDir()
				if err == nil {
					inside(t, p, "target", root, d)
					d.Close()
				}
			}
			tgt.close()
		}
		if src, err := r.openSource(root, spec); err == nil {
			if src.self != nil {
				inside(t, p, "source directory", root, src.self)
			}
			if src.parent != nil {
				inside(t, p, "source parent", root, src.parent)
				if strings.Contains(src.name, "/") || src.name == ".." {
					t.Fatalf("%q: source name %q is not one element", p, src.name)
				}
			}
			src.close()
		}
	})
}

// inside fails unless the open directory d lies within root.
func inside(t *testing.T, p, what string, root, d *os.File) {
	t.Helper()
	if _, err := inRootPath(root, d); err != nil {
		t.Fatalf("%q: %s outside the root: %v", p, what, err)
	}
}
