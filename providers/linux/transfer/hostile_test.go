package transfer

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// copyIn and copyOut are CopyIn and CopyOut with a chosen resolver.
func copyIn(r resolver, root, dst, src string) error {
	s, err := hostPath(src)
	if err != nil {
		return err
	}
	d, err := containerPath(dst)
	if err != nil {
		return err
	}
	return copyPath(context.Background(), r, "/", s, root, d, false)
}

func copyOut(r resolver, root, src, dst string) error {
	s, err := containerPath(src)
	if err != nil {
		return err
	}
	d, err := hostPath(dst)
	if err != nil {
		return err
	}
	return copyPath(context.Background(), r, root, s, "/", d, true)
}

// hostileRoot fills the container root with links that try to leave it.
// Inside the root, "outside/secret" is a decoy with other content: it is
// where a link to ../outside/secret lands when resolved within the root.
func hostileRoot(t testing.TB, w world) {
	t.Helper()
	build(t, w.root,
		file("outside/secret", "decoy"),
		dir("etc"),
		link("to-root", "/"),
		link("up", "../../../../../../../.."),
		link("rel-out", "../outside"),
		link("host-abs", w.outside),
		link("secret-abs", filepath.Join(w.outside, "secret")),
		link("secret-rel", "../outside/secret"),
		link("etc/shadow", "/../../../outside/secret"),
		link("dangling", "../../outside/created"),
		link("loop", "loop"),
		link("chain1", "chain2"),
		link("chain2", "/up/rel-out"),
		dir("tree/sub"),
		file("tree/sub/ok", "ok"),
		link("tree/escape", "../../outside"),
		link("tree/sub/abs", w.outside),
	)
}

// TestHostileCopyIn writes through hostile links and checks every write
// lands inside the root.
func TestHostileCopyIn(t *testing.T) {
	tests := []struct {
		dst string
		// want is where the file must land, relative to the root; "" when
		// the copy must fail.
		want string
		// setup are directories made in the root first.
		setup []string
	}{
		{dst: "/to-root/x", want: "x"},
		{dst: "/up/x", want: "x"},
		{dst: "/up/../../x", want: "x"},
		{dst: "/../../../x", want: "x"},
		{dst: "/rel-out/x", want: "outside/x"},
		{dst: "/rel-out/sub/x"}, // root/outside/sub does not exist
		{dst: "/host-abs/x"},    // <root><outside> does not exist
		{dst: "/secret-abs"},    // <root><outside> does not exist
		{dst: "/secret-abs", want: "$REL/secret", setup: []string{"$REL"}},
		{dst: "/secret-rel", want: "outside/secret"},
		{dst: "/etc/shadow", want: "outside/secret"},
		{dst: "/dangling", want: "outside/created"},
		{dst: "/chain1", want: "outside/payload"}, // ends at the directory root/outside
		{dst: "/loop"},
		{dst: "/tree/escape/x", want: "outside/x"},
		{dst: "/tree/sub/abs/x"},
	}
	for _, nr := range resolvers() {
		for _, tt := range tests {
			t.Run(nr.name+tt.dst, func(t *testing.T) {
				w := newWorld(t)
				w.guard(t)
				hostileRoot(t, w)
				build(t, w.host, file("payload", "PAYLOAD"))
				for _, d := range tt.setup {
					build(t, w.root, dir(w.expand(d)))
				}
				want := w.expand(tt.want)
				err := copyIn(nr.r, w.root, tt.dst, filepath.Join(w.host, "payload"))
				if want == "" {
					if err == nil {
						t.Fatalf("copy to %s succeeded, want an error", tt.dst)
					}
					return
				}
				if err != nil {
					t.Fatalf("copy to %s: %v", tt.dst, err)
				}
				if got := read(t, filepath.Join(w.root, want)); got != "PAYLOAD" {
					t.Errorf("copy to %s: %s in the root = %q, want the payload", tt.dst, want, got)
				}
			})
		}
	}
}

// expand replaces $ABS in s by the host path of the directory outside the
// root and $REL by the same path without its leading slash.
func (w world) expand(s string) string {
	s = strings.ReplaceAll(s, "$ABS", w.outside)
	return strings.ReplaceAll(s, "$REL", strings.TrimPrefix(w.outside, "/"))
}

func isNotExist(err error) bool { return errors.Is(err, ErrNoSource) && errors.Is(err, fs.ErrNotExist) }

func isNotDir(err error) bool { return errors.Is(err, ErrNoSource) && errors.Is(err, syscall.ENOTDIR) }

// TestHostileCopyOut reads through hostile links and checks that nothing
// outside the root is read.
func TestHostileCopyOut(t *testing.T) {
	tests := []struct {
		src string
		// want maps paths under the destination to their expected content
		// (see read); nil when the copy must fail.
		want map[string]string
	}{
		{src: "/secret-rel", want: map[string]string{"": "->../outside/secret"}},
		{src: "/secret-abs", want: map[string]string{"": "->$ABS/secret"}},
		{src: "/rel-out/secret", want: map[string]string{"": "decoy"}},
		{src: "/up/outside/secret", want: map[string]string{"": "decoy"}},
		{src: "/to-root/etc/shadow", want: map[string]string{"": "->/../../../outside/secret"}},
		{src: "/rel-out/", want: map[string]string{"secret": "decoy"}},
		{src: "/up/", want: map[string]string{"outside/secret": "decoy", "up": "->../../../../../../../.."}},
		{src: "/host-abs/"},
		{src: "/secret-abs/"},
		{src: "/loop/"},
		{src: "/tree", want: map[string]string{"sub/ok": "ok", "escape": "->../../outside", "sub/abs": "->$ABS"}},
		{src: "/", want: map[string]string{"outside/secret": "decoy", "tree/sub/ok": "ok"}},
		{src: "/chain1/", want: map[string]string{"secret": "decoy"}},
	}
	for _, nr := range resolvers() {
		for _, tt := range tests {
			t.Run(nr.name+tt.src, func(t *testing.T) {
				w := newWorld(t)
				w.guard(t)
				hostileRoot(t, w)
				dst := filepath.Join(w.host, "out")
				err := copyOut(nr.r, w.root, tt.src, dst)
				noSecret(t, w.host)
				if tt.want == nil {
					if err == nil {
						t.Fatalf("copy of %s succeeded, want an error", tt.src)
					}
					return
				}
				if err != nil {
					t.Fatalf("copy of %s: %v", tt.src, err)
				}
				for p, want := range tt.want {
					want = w.expand(want)
					if got := read(t, filepath.Join(dst, p)); got != want {
						t.Errorf("copy of %s: %q = %q, want %q", tt.src, p, got, want)
					}
				}
			})
		}
	}
}

// TestHostileCloneDir checks that CloneDir resolves its source within the
// root, its last link included, and reports a source that is missing or
// not a directory.
func TestHostileCloneDir(t *testing.T) {
	tests := []struct {
		src     string
		want    string // a file that must be in the clone
		notDir  bool
		missing bool
	}{
		{src: "/rel-out", want: "secret"},
		{src: "/up/outside", want: "secret"},
		{src: "/host-abs", missing: true},
		{src: "/../../outside", want: "secret"},
		{src: "/secret-rel", notDir: true},
		{src: "/etc/shadow", notDir: true},
		{src: "/nope", missing: true},
	}
	for _, nr := range resolvers() {
		for _, tt := range tests {
			t.Run(nr.name+tt.src, func(t *testing.T) {
				w := newWorld(t)
				w.guard(t)
				hostileRoot(t, w)
				dst := filepath.Join(w.host, "clone")
				err := cloneDir(context.Background(), nr.r, w.root, tt.src, dst)
				noSecret(t, w.host)
				switch {
				case tt.missing:
					if !isNotExist(err) {
						t.Fatalf("clone of %s: %v, want a not-exist error", tt.src, err)
					}
				case tt.notDir:
					if !isNotDir(err) {
						t.Fatalf("clone of %s: %v, want a not-a-directory error", tt.src, err)
					}
				case err != nil:
					t.Fatalf("clone of %s: %v", tt.src, err)
				default:
					if got := read(t, filepath.Join(dst, tt.want)); got != "decoy" {
						t.Errorf("clone of %s: %s = %q, want the decoy", tt.src, tt.want, got)
					}
				}
			})
		}
	}
}
