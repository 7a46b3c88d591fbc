package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch returns the modification time of every file in the fixture images
// and their creation time: the images are the same bytes in every run.
func Epoch() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// DefaultPath is the PATH an image gets when its ImageConfig sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ImageConfig is the image configuration and the layer options of a
// fixture image.
type ImageConfig struct {
	Entrypoint   []string
	Cmd          []string
	Env          []string // DefaultPath is added unless a PATH is given
	WorkingDir   string
	User         string
	ExposedPorts []string // "80/tcp"
	Volumes      []string
	Labels       map[string]string
	StopSignal   string
	Healthcheck  *v1.HealthConfig

	// Files are extra regular files (path → content, mode 0644) put in the
	// layer; parent directories are made as needed.
	Files map[string]string
	// DockerMediaTypes makes a docker v2 schema 2 image instead of an
	// OCI one.
	DockerMediaTypes bool
	// Compression of the layer blob: "gzip" (the default), "zstd" (OCI
	// only) or "none" (an uncompressed tar blob, OCI only).
	Compression string
}

// Applets are the busybox applets BusyboxImage links in /bin.
func Applets() []string {
	return []string{
		"[", "ash", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd",
		"df", "dirname", "du", "echo", "env", "expr", "false", "find", "free", "grep",
		"gzip", "head", "hostname", "httpd", "id", "ifconfig", "ip", "kill", "less", "ln",
		"ls", "md5sum", "mkdir", "mount", "mv", "nc", "netstat", "nslookup", "ping", "printf",
		"ps", "pwd", "readlink", "rm", "rmdir", "route", "sed", "seq", "sh", "sha256sum",
		"sleep", "sort", "stat", "sync", "tail", "tar", "tee", "test", "timeout", "top",
		"touch", "tr", "true", "umount", "uname", "uptime", "vi", "wc", "wget", "which",
		"whoami", "xargs", "yes",
	}
}

// BusyboxImage builds a one-layer image from /bin/busybox: bin/busybox, a
// symlink in /bin for each of Applets, /etc/passwd and /etc/group with root
// and nobody, empty /dev, /proc, /sys, /root, /tmp (1777) and cfg.Files.
// Every file has the mtime Epoch, so the same cfg gives the same digest.
// The test is skipped when /bin/busybox is missing.
func BusyboxImage(t testing.TB, cfg ImageConfig) v1.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no /bin/busybox (Debian package busybox-static): %v", err)
	}
	var l layerBuilder
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys"} {
		l.dir(d, 0o755)
	}
	l.dir("root", 0o700)
	l.dir("tmp", 0o1777)
	l.file("bin/busybox", bb, 0o755)
	for _, a := range Applets() {
		l.symlink("bin/"+a, "busybox")
	}
	l.file("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
	l.file("etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	return buildImage(t, &l, cfg)
}

// GoImage builds an image whose only file is /app, a static Go program
// compiled in the test from mainSrc (package main, standard library only)
// with CGO_ENABLED=0, plus cfg.Files. The entrypoint is ["/app"] unless cfg
// sets one. The test is skipped when the go command is missing.
func GoImage(t testing.TB, mainSrc string, cfg ImageConfig) v1.Image {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the image's program: %v", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), []byte("module berthtestprog\n\ngo 1.21\n"), 0o644)
	writeFile(t, filepath.Join(dir, "main.go"), []byte(mainSrc), 0o644)
	out := filepath.Join(dir, "app")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=mod -buildvcs=false", "GOTOOLCHAIN=local", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the image program: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var l layerBuilder
	l.file("app", bin, 0o755)
	if cfg.Entrypoint == nil {
		cfg.Entrypoint = []string{"/app"}
	}
	return buildImage(t, &l, cfg)
}

// Push writes img to r under ref, which is "repo:tag" on r
// ("tools/busybox:1.35") or a full reference starting with r.Addr. It uses
// r's credentials and CA and fails the test on error.
func Push(t testing.TB, r *Registry, ref string, img v1.Image) {
	t.Helper()
	if !strings.HasPrefix(ref, r.Addr+"/") {
		ref = r.Ref(ref)
	}
	var opts []name.Option
	if !r.TLS {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	if r.CAFile != "" {
		pool, err := caPool(r.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	auth := authn.Anonymous
	if r.Username != "" {
		auth = &authn.Basic{Username: r.Username, Password: r.Password}
	}
	if err := remote.Write(tag, img, remote.WithAuth(auth), remote.WithTransport(tr), remote.WithContext(context.Background())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// SaveDocker writes img as a `docker save` tarball (manifest.json, config
// and compressed layers, as go-containerregistry's tarball package writes
// it) to path, tagged ref ("busybox:1.35").
func SaveDocker(t testing.TB, path string, ref string, img v1.Image) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatalf("save %s: %v", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatalf("save %s: %v", ref, err)
	}
}

// SaveOCI writes img as a tarball of an OCI image layout (oci-layout,
// index.json, blobs/sha256/…) to path. A non-empty ref is recorded in the
// index as the annotation org.opencontainers.image.ref.name.
func SaveOCI(t testing.TB, path string, ref string, img v1.Image) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var opts []layout.Option
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
	if err := tarDir(dir, path); err != nil {
		t.Fatalf("save OCI layout %s: %v", path, err)
	}
}

// tarDir writes the regular files and directories under dir to a tar file.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.ModTime = Epoch()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// layerBuilder collects the entries of a layer tar.
type layerBuilder struct {
	entries map[string]entry
}

type entry struct {
	hdr  tar.Header
	data []byte
}

func (l *layerBuilder) add(h tar.Header, data []byte) {
	if l.entries == nil {
		l.entries = map[string]entry{}
	}
	h.Name = strings.Trim(path.Clean("/"+h.Name), "/")
	for p := path.Dir(h.Name); p != "." && p != "/"; p = path.Dir(p) {
		if _, ok := l.entries[p]; !ok {
			l.entries[p] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p, Mode: 0o755}}
		}
	}
	l.entries[h.Name] = entry{hdr: h, data: data}
}

func (l *layerBuilder) dir(name string, mode int64) {
	l.add(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}, nil)
}

func (l *layerBuilder) file(name string, data []byte, mode int64) {
	l.add(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data)
}

func (l *layerBuilder) symlink(name, target string) {
	l.add(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil)
}

// bytes returns the layer as an uncompressed tar, entries sorted by name
// (so parents come first), owned by root, with mtime Epoch.
func (l *layerBuilder) bytes(t testing.TB) []byte {
	t.Helper()
	names := make([]string, 0, len(l.entries))
	for n := range l.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := l.entries[n]
		h := e.hdr
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		h.ModTime = Epoch()
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// buildImage makes a one-layer image of l with cfg.
func buildImage(t testing.TB, l *layerBuilder, cfg ImageConfig) v1.Image {
	t.Helper()
	for p, content := range cfg.Files {
		l.file(p, []byte(content), 0o644)
	}
	tarBytes := l.bytes(t)
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil }

	base := empty.Image
	layerType := types.DockerLayer
	if !cfg.DockerMediaTypes {
		base = mutate.MediaType(base, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
		layerType = types.OCILayer
	}
	var layer v1.Layer
	var err error
	switch cfg.Compression {
	case "", "gzip":
		layer, err = tarball.LayerFromOpener(opener, tarball.WithMediaType(layerType))
	case "zstd":
		layer, err = tarball.LayerFromOpener(opener, tarball.WithCompression("zstd"), tarball.WithMediaType(types.OCILayerZStd))
	case "none":
		layer = static.NewLayer(tarBytes, types.OCIUncompressedLayer)
	default:
		t.Fatalf("unknown layer compression %q", cfg.Compression)
	}
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: Epoch()}, CreatedBy: "berth testenv", Comment: "fixture"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cf.Created = v1.Time{Time: Epoch()}
	c := &cf.Config
	c.Entrypoint, c.Cmd = cfg.Entrypoint, cfg.Cmd
	c.Env = append([]string(nil), cfg.Env...)
	hasPath := false
	for _, e := range c.Env {
		hasPath = hasPath || strings.HasPrefix(e, "PATH=")
	}
	if !hasPath {
		c.Env = append([]string{DefaultPath}, c.Env...)
	}
	c.WorkingDir, c.User, c.StopSignal, c.Labels = cfg.WorkingDir, cfg.User, cfg.StopSignal, cfg.Labels
	c.Healthcheck = cfg.Healthcheck
	if len(cfg.ExposedPorts) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			c.ExposedPorts[p] = struct{}{}
		}
	}
	if len(cfg.Volumes) > 0 {
		c.Volumes = map[string]struct{}{}
		for _, v := range cfg.Volumes {
			c.Volumes[v] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
