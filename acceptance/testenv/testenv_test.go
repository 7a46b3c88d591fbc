package testenv

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestStartRegistryAndPush(t *testing.T) {
	img := BusyboxImage(t, ImageConfig{Cmd: []string{"sh"}})
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts RegistryOptions
	}{
		{"plain", RegistryOptions{}},
		{"auth", RegistryOptions{Auth: true}},
		{"tls", RegistryOptions{TLS: true}},
		{"tls+auth", RegistryOptions{TLS: true, Auth: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := StartRegistry(t, tc.opts)
			if got := strings.HasPrefix(r.URL(), "https://"); got != tc.opts.TLS {
				t.Errorf("URL %s, TLS %v", r.URL(), tc.opts.TLS)
			}
			if (r.Password != "") != tc.opts.Auth || (r.CAFile != "") != tc.opts.TLS {
				t.Errorf("registry %+v does not match options %+v", r, tc.opts)
			}
			Push(t, r, "tools/busybox:1.35", img)

			req, err := http.NewRequest(http.MethodHead, r.URL()+"/v2/tools/busybox/manifests/1.35", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
			resp, err := r.Client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wantStatus := http.StatusOK
			if tc.opts.Auth {
				wantStatus = http.StatusUnauthorized
			}
			if resp.StatusCode != wantStatus {
				t.Fatalf("HEAD manifest without credentials: %s, want %d", resp.Status, wantStatus)
			}
			if tc.opts.Auth {
				req.SetBasicAuth(r.Username, r.Password)
				resp, err = r.Client(t).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("HEAD manifest with credentials: %s", resp.Status)
				}
			}
			if got := resp.Header.Get("Docker-Content-Digest"); got != digest.String() {
				t.Errorf("registry has digest %s, pushed %s", got, digest)
			}
		})
	}
}

func TestBusyboxImageIsDeterministic(t *testing.T) {
	cfg := ImageConfig{Cmd: []string{"sh", "-c", "echo hi"}, Env: []string{"A=1"}, WorkingDir: "/tmp", User: "nobody"}
	a, err := BusyboxImage(t, cfg).Digest()
	if err != nil {
		t.Fatal(err)
	}
	b, err := BusyboxImage(t, cfg).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("two builds differ: %s, %s", a, b)
	}
	cfg.User = "root"
	c, err := BusyboxImage(t, cfg).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Fatal("a different config gave the same digest")
	}
}

func TestBusyboxImageContent(t *testing.T) {
	img := BusyboxImage(t, ImageConfig{
		Cmd:   []string{"sh"},
		Env:   []string{"A=1"},
		Files: map[string]string{"srv/www/index.html": "hello"},
	})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Env, ","); got != DefaultPath+",A=1" {
		t.Errorf("Env = %s", got)
	}
	if got := strings.Join(cf.Config.Cmd, " "); got != "sh" {
		t.Errorf("Cmd = %s", got)
	}
	files := layerFiles(t, img)
	for _, want := range []string{"bin/busybox", "bin/sh", "bin/wget", "etc/passwd", "tmp/", "srv/", "srv/www/", "srv/www/index.html"} {
		if _, ok := files[want]; !ok {
			t.Errorf("layer has no %s", want)
		}
	}
	if h := files["bin/sh"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/sh = %+v", h)
	}
	if h := files["tmp/"]; h.Mode != 0o1777 {
		t.Errorf("tmp mode %o", h.Mode)
	}
}

func TestGoImage(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a program")
	}
	img := GoImage(t, "package main\n\nfunc main() { println(\"hi\") }\n", ImageConfig{Cmd: []string{"x"}})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/app" {
		t.Errorf("Entrypoint = %s", got)
	}
	files := layerFiles(t, img)
	if h, ok := files["app"]; !ok || h.Mode != 0o755 || h.Size < 1000 {
		t.Fatalf("app = %+v", h)
	}
}

func TestCompressions(t *testing.T) {
	for _, c := range []string{"gzip", "zstd", "none"} {
		t.Run(c, func(t *testing.T) {
			img := BusyboxImage(t, ImageConfig{Compression: c})
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"gzip": "application/vnd.oci.image.layer.v1.tar+gzip", "zstd": "application/vnd.oci.image.layer.v1.tar+zstd", "none": "application/vnd.oci.image.layer.v1.tar"}[c]
			if got := string(m.Layers[0].MediaType); got != want {
				t.Errorf("layer media type %s, want %s", got, want)
			}
			if files := layerFiles(t, img); len(files) < 10 {
				t.Errorf("layer has %d entries", len(files))
			}
		})
	}
}

func TestSave(t *testing.T) {
	img := BusyboxImage(t, ImageConfig{DockerMediaTypes: true})
	dir := t.TempDir()
	docker := filepath.Join(dir, "docker.tar")
	SaveDocker(t, docker, "busybox:1.35", img)
	tag, err := name.NewTag("busybox:1.35")
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(docker, &tag)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	if got, _ := back.ConfigName(); got != want {
		t.Errorf("docker tarball config %s, want %s", got, want)
	}

	oci := filepath.Join(dir, "oci.tar")
	SaveOCI(t, oci, "busybox:1.35", img)
	names := tarNames(t, oci)
	d, _ := img.Digest()
	for _, want := range []string{"oci-layout", "index.json", "blobs/sha256/" + d.Hex} {
		if !names[want] {
			t.Errorf("OCI tarball has no %s: %v", want, names)
		}
	}
}

func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %v, %d", err, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
	}
}

func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
}
