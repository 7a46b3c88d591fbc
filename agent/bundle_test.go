package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBundleRoundTrip(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"main.hcl": "a = 1\n", "sub/web.hcl": "b = 2\n", "templates/page.tpl": "hi"}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, ".git", "HEAD"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteBundle(&buf, src); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := ReadBundle(&buf, dst); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(b) != body {
			t.Fatalf("%s = %q, %v; want %q", name, b, err, body)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, ".git")); !os.IsNotExist(err) {
		t.Fatalf(".git was bundled: %v", err)
	}
}

func TestBundleRefusesSymlinks(t *testing.T) {
	src := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "main.hcl")); err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(&bytes.Buffer{}, src); err == nil {
		t.Fatal("a symbolic link was bundled")
	}
}

// hostile builds a bundle from raw tar headers.
func hostile(t *testing.T, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestReadBundleRefusesEscapes(t *testing.T) {
	cases := map[string][]*tar.Header{
		"dotdot":   {{Typeflag: tar.TypeReg, Name: "../evil", Size: 1, Mode: 0o644}},
		"absolute": {{Typeflag: tar.TypeReg, Name: "/tmp/evil", Size: 1, Mode: 0o644}},
		"symlink":  {{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "/etc"}},
		"hardlink": {{Typeflag: tar.TypeLink, Name: "link", Linkname: "/etc/passwd"}},
		"device":   {{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}},
		"nested":   {{Typeflag: tar.TypeReg, Name: "a/../../evil", Size: 1, Mode: 0o644}},
		"dup":      {{Typeflag: tar.TypeReg, Name: "a", Size: 1, Mode: 0o644}, {Typeflag: tar.TypeReg, Name: "a", Size: 1, Mode: 0o644}},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			err := ReadBundle(bytes.NewReader(hostile(t, hdrs...)), dst)
			if err == nil {
				t.Fatal("the hostile bundle was accepted")
			}
			if _, err := os.Stat(filepath.Join(parent, "evil")); !os.IsNotExist(err) {
				t.Fatal("a file was written outside the bundle's directory")
			}
		})
	}
}

func TestReadBundleBoundsSize(t *testing.T) {
	dst := t.TempDir()
	b := hostile(t, &tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: maxBundleExpanded + 1, Mode: 0o644})
	err := ReadBundle(bytes.NewReader(b), dst)
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("err = %v, want too large", err)
	}
}

func TestReadBundleCountsImpliedDirectories(t *testing.T) {
	// Few files, but deep paths: the directories they imply count too.
	var hdrs []*tar.Header
	for i := 0; i < 50; i++ {
		name := strings.Repeat(fmt.Sprintf("d%d/", i), 300) + "f"
		hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: 1, Mode: 0o644})
	}
	err := ReadBundle(bytes.NewReader(hostile(t, hdrs...)), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("err = %v, want too large", err)
	}
}
