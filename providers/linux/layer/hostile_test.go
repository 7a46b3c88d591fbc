package layer

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sandbox is a temporary directory holding the extraction root "root" and
// sentinel files around it, with a snapshot of everything outside root.
type sandbox struct {
	dir, root string
	before    map[string]string
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	dir := t.TempDir()
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	files := map[string]string{"sentinel": "keep me", "sentinel-dir/inner": "keep me too"}
	if err := os.Mkdir(filepath.Join(dir, "sentinel-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	s := &sandbox{dir: dir, root: filepath.Join(dir, "root")}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "sentinel-dir"), dir} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	s.before = s.snapshot(t)
	return s
}

// snapshot describes every path of the sandbox outside root: type, mode,
// owner, size, link count, inode, modification and change times, content,
// symlink target and extended attributes. Any change made to them (even a
// chown to the same owner, which moves the change time) shows up.
func (s *sandbox) snapshot(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d size=%d nlink=%d ino=%d mtime=%d.%d ctime=%d.%d",
			st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Ino, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
		}
		if d.Type()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			desc += " link=" + l
		}
		buf := make([]byte, 4096)
		n, err := unix.Llistxattr(p, buf)
		if err == nil {
			desc += " xattrs=" + strings.ReplaceAll(string(buf[:n]), "\x00", ",")
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return out
}

// check fails the test when anything outside root changed, appeared or
// disappeared, or when a canary name appeared in / or the temp directory.
func (s *sandbox) check(t testing.TB) {
	t.Helper()
	after := s.snapshot(t)
	for p, d := range s.before {
		if after[p] != d {
			t.Errorf("outside the root, %s changed:\n  before %s\n  after  %s", p, d, after[p])
		}
	}
	for p := range after {
		if _, ok := s.before[p]; !ok {
			t.Errorf("outside the root, %s appeared", p)
		}
	}
	for _, canary := range []string{"/" + canaryName, "/tmp/" + canaryName, filepath.Join(os.TempDir(), canaryName)} {
		if _, err := os.Lstat(canary); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("canary %s exists (%v): something escaped", canary, err)
		}
	}
}

// canaryName is the file name hostile archives try to create outside.
const canaryName = "berth-layer-escape-canary"

type hostileCase struct {
	name    string
	entries func(outside string) []*tar.Header
	wantErr string // empty: the archive is neutralised without error
}

// hostileCases are archives that try to reach outside the extraction root.
// outside is the absolute path of the sandbox that holds the root.
func hostileCases() []hostileCase {
	c := canaryName
	return []hostileCase{
		{"dotdot file", func(string) []*tar.Header { return []*tar.Header{fileE("../"+c, "x", 0o644)} }, "climbs out of the root"},
		{"dotdot overwrite sentinel", func(string) []*tar.Header { return []*tar.Header{fileE("../sentinel", "x", 0o644)} }, "climbs out of the root"},
		{"dotdot after dir", func(string) []*tar.Header { return []*tar.Header{fileE("a/../../sentinel", "x", 0o644)} }, "climbs out of the root"},
		{"absolute dotdot", func(string) []*tar.Header { return []*tar.Header{fileE("/../sentinel", "x", 0o644)} }, "climbs out of the root"},
		{"absolute name is neutralised", func(o string) []*tar.Header {
			return []*tar.Header{fileE(o+"/sentinel", "x", 0o644), fileE("/"+c, "x", 0o644)}
		}, ""},
		{"dotdot dir", func(string) []*tar.Header { return []*tar.Header{dirE("../x/", 0o777)} }, "climbs out of the root"},
		{"dotdot symlink name", func(string) []*tar.Header { return []*tar.Header{symE("../"+c, "/")} }, "climbs out of the root"},
		{"write through absolute symlink dir", func(o string) []*tar.Header {
			return []*tar.Header{symE("a", o), fileE("a/sentinel", "x", 0o644)}
		}, "goes through a symlink"},
		{"write through root symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("a", "/"), fileE("a/"+c, "x", 0o644)}
		}, "goes through a symlink"},
		{"write through relative climbing symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("a", "../../../../../../../.."), fileE("a/tmp/"+c, "x", 0o644)}
		}, "goes through a symlink"},
		{"write through dotdot symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("a", ".."), fileE("a/sentinel", "x", 0o644)}
		}, "goes through a symlink"},
		{"write through symlink chain", func(o string) []*tar.Header {
			return []*tar.Header{symE("b", o+"/sentinel-dir"), symE("a", "b"), fileE("a/inner", "x", 0o644)}
		}, "goes through a symlink"},
		{"mkdir through symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("a", ".."), dirE("a/"+c+"/", 0o755)}
		}, "goes through a symlink"},
		{"implicit parents through symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("a", ".."), fileE("a/new/deeper/"+c, "x", 0o644)}
		}, "goes through a symlink"},
		{"symlink file to sentinel then overwrite", func(string) []*tar.Header {
			return []*tar.Header{symE("s", "../sentinel"), fileE("s", "overwritten", 0o777)}
		}, ""},
		{"symlink to sentinel with mode and owner", func(string) []*tar.Header {
			return []*tar.Header{owned(symE("s", "../sentinel"), 1234, 1234), owned(symE("s", "../sentinel"), 99, 99)}
		}, ""},
		{"symlink dir then replace by dir", func(string) []*tar.Header {
			return []*tar.Header{symE("d", "../sentinel-dir"), dirE("d/", 0o777), fileE("d/inner", "x", 0o644)}
		}, ""},
		{"dir then symlink then write", func(string) []*tar.Header {
			return []*tar.Header{dirE("a/", 0o755), fileE("a/inner", "ok", 0o644), symE("a", "../sentinel-dir"), fileE("a/inner", "x", 0o644)}
		}, "goes through a symlink"},
		{"symlink then dir entry with xattr", func(string) []*tar.Header {
			return []*tar.Header{symE("d", "../sentinel-dir"), withXattr(dirE("d/", 0o700), "user.evil", "1")}
		}, ""},
		{"fifo through symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("a", ".."), fifoE("a/"+c, 0o644)}
		}, "goes through a symlink"},
		{"hardlink to outside by dotdot", func(string) []*tar.Header {
			return []*tar.Header{linkE("h", "../sentinel")}
		}, "outside the root"},
		{"hardlink to outside absolute", func(o string) []*tar.Header {
			return []*tar.Header{linkE("h", o+"/sentinel")}
		}, `layer entry "h"`},
		{"hardlink through symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("s", ".."), linkE("h", "s/sentinel")}
		}, "goes through a symlink"},
		{"hardlink to symlink then write", func(string) []*tar.Header {
			return []*tar.Header{symE("s", "../sentinel"), linkE("h", "s"), fileE("h", "x", 0o644)}
		}, ""},
		{"hardlink named through symlink", func(string) []*tar.Header {
			return []*tar.Header{fileE("f", "x", 0o644), symE("s", ".."), linkE("s/"+c, "f")}
		}, "goes through a symlink"},
		{"hardlink to root", func(string) []*tar.Header { return []*tar.Header{linkE("h", "/")} }, "outside the root"},
		{"whiteout through symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("s", ".."), fileE("s/.wh.sentinel", "", 0)}
		}, "goes through a symlink"},
		{"opaque through symlink", func(string) []*tar.Header {
			return []*tar.Header{symE("s", "../sentinel-dir"), fileE("s/.wh..wh..opq", "", 0)}
		}, "goes through a symlink"},
		{"whiteout dotdot", func(string) []*tar.Header { return []*tar.Header{fileE(".wh...", "", 0)} }, "not a valid whiteout"},
		{"whiteout dot", func(string) []*tar.Header { return []*tar.Header{fileE("d/.wh..", "", 0)} }, "not a valid whiteout"},
		{"whiteout climbing", func(string) []*tar.Header { return []*tar.Header{fileE("../.wh.sentinel", "", 0)} }, "climbs out of the root"},
		{"root replaced by symlink", func(string) []*tar.Header { return []*tar.Header{symE(".", "..")} }, "would replace the root"},
		{"root replaced by file", func(string) []*tar.Header { return []*tar.Header{fileE("x/..", "x", 0o644)} }, "would replace the root"},
		{"device outside", func(string) []*tar.Header {
			return []*tar.Header{symE("d", ".."), charE("d/"+c, 1, 3)}
		}, ""},
		{"device node", func(string) []*tar.Header { return []*tar.Header{charE("null", 1, 3)} }, ""},
		{"pax path climbs", func(string) []*tar.Header {
			h := fileE("../séntinel", "x", 0o644) // not ASCII: the name travels in a PAX path record
			h.Format = tar.FormatPAX
			return []*tar.Header{h}
		}, "climbs out of the root"},
		{"gnu long name climbs", func(string) []*tar.Header {
			h := fileE("../"+strings.Repeat("a", 120)+"/../"+c, "x", 0o644)
			h.Format = tar.FormatGNU
			return []*tar.Header{h}
		}, "climbs out of the root"},
		{"overlay xattrs", func(string) []*tar.Header {
			return []*tar.Header{withXattr(withXattr(dirE("d/", 0o755), "trusted.overlay.redirect", "/../.."), "trusted.overlay.origin", "x")}
		}, ""},
	}
}

func TestUnpackHostile(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			data := buildTar(t, tc.entries(s.dir)...)
			_, err := unpackBytes(t, s.root, data)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Unpack: %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Unpack error %v, want one containing %q", err, tc.wantErr)
			}
			s.check(t)
			if strings.Contains(tc.wantErr, "root") && !strings.Contains(tc.wantErr, "replace") {
				var unsafe *UnsafeEntryError
				if !errors.As(err, &unsafe) {
					t.Errorf("error %v is not an *UnsafeEntryError", err)
				}
			}
		})
	}
}

// TestUnpackHostileLeavesSafeTree checks what the neutralised archives left
// inside the root: files where symlinks were, and no overlay attributes.
func TestUnpackHostileLeavesSafeTree(t *testing.T) {
	tests := []struct {
		entries []*tar.Header
		want    []want
	}{{
		entries: []*tar.Header{symE("s", "../sentinel"), fileE("s", "overwritten", 0o600)},
		want:    []want{{name: "s", kind: unix.S_IFREG, body: "overwritten", mode: 0o600}},
	}, {
		entries: []*tar.Header{symE("d", "../sentinel-dir"), dirE("d/", 0o700), fileE("d/inner", "x", 0o644)},
		want:    []want{{name: "d", kind: unix.S_IFDIR, mode: 0o700}, {name: "d/inner", kind: unix.S_IFREG, body: "x"}},
	}, {
		entries: []*tar.Header{fileE("/"+canaryName, "x", 0o644)},
		want:    []want{{name: canaryName, kind: unix.S_IFREG, body: "x"}},
	}}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			s := newSandbox(t)
			if _, err := unpackBytes(t, s.root, buildTar(t, tc.entries...)); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				w.check(t, s.root)
			}
			s.check(t)
		})
	}
}

// hostileSeeds returns the hostile archives as fuzz seeds, with a made-up
// outside path (the fuzz sandbox differs per run; relative climbs still aim
// at the real sentinels).
func hostileSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, tc := range hostileCases() {
		out = append(out, buildTar(t, tc.entries("/tmp")...))
	}
	return slices.Clip(out)
}
