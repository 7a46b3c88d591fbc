package content

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// putV1 stores every blob of img and records it under names.
func putV1(t *testing.T, s *Store, img v1.Image, names ...string) Image {
	t.Helper()
	ctx := context.Background()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		err = s.PutBlob(ctx, d.String(), rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(ctx, sha(cfg), bytes.NewReader(cfg)); err != nil {
		t.Fatal(err)
	}
	m, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(ctx, sha(m), bytes.NewReader(m)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(ctx, Image{Digest: sha(m), Names: names}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Image(sha(m))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// blobList returns the sorted blob file names.
func blobList(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(s.blobDir())
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

func tmpEmpty(t *testing.T, s *Store) {
	t.Helper()
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("tmp directory not empty: %v", ents)
	}
}

// failReader fails the test when read.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("PutBlob read content of a blob the store has")
	return 0, io.EOF
}

func TestPutBlob(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	data := []byte("hello blob")
	d := sha(data)

	if err := s.PutBlob(ctx, d, bytes.NewReader([]byte("other content"))); err == nil || !strings.Contains(err.Error(), "content has digest") {
		t.Fatalf("wrong content: %v", err)
	}
	if s.HasBlob(d) || len(blobList(t, s)) != 0 {
		t.Fatal("a blob with wrong content was stored")
	}
	tmpEmpty(t, s)

	if err := s.PutBlob(ctx, d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if !s.HasBlob(d) {
		t.Fatal("HasBlob false after PutBlob")
	}
	if err := s.PutBlob(ctx, d, failReader{t}); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Blob(d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("Blob = %q", got)
	}
	tmpEmpty(t, s)

	if _, err := s.Blob(sha([]byte("missing"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
	for _, bad := range []string{"", "sha256:abc", "md5:0123", "sha256:" + strings.Repeat("A", 64), "sha256:../../" + strings.Repeat("a", 58)} {
		if err := s.PutBlob(ctx, bad, bytes.NewReader(data)); err == nil {
			t.Errorf("PutBlob(%q) accepted", bad)
		}
		if _, err := s.Blob(bad); err == nil {
			t.Errorf("Blob(%q) accepted", bad)
		}
	}
}

func TestPutBlobConcurrent(t *testing.T) {
	root := filepath.Join(t.TempDir(), "content")
	data := bytes.Repeat([]byte("x"), 1<<20)
	d := sha(data)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(root) // separate handles, as two processes would have
			if err == nil {
				err = s.PutBlob(context.Background(), d, bytes.NewReader(data))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := Open(root)
	if got := blobList(t, s); len(got) != 1 {
		t.Fatalf("blobs: %v", got)
	}
	tmpEmpty(t, s)
}

func TestImageRecord(t *testing.T) {
	s := openStore(t)
	hc := &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: 5 * time.Second, Retries: 3}
	img := testenv.BusyboxImage(t, testenv.ImageConfig{
		Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}, Env: []string{"A=1"},
		WorkingDir: "/tmp", User: "nobody", ExposedPorts: []string{"80/tcp", "53/udp"},
		Volumes: []string{"/data", "/cache"}, Labels: map[string]string{"l": "v"}, StopSignal: "SIGINT",
		Healthcheck: hc,
	})
	const name = "127.0.0.1:5000/tools/busybox:1.35"
	got := putV1(t, s, img, name)

	digest, _ := img.Digest()
	cfgName, _ := img.ConfigName()
	if got.Digest != digest.String() || got.ConfigDigest != cfgName.String() {
		t.Errorf("digests %s %s", got.Digest, got.ConfigDigest)
	}
	if got.MediaType != MediaTypeOCIManifest {
		t.Errorf("media type %s", got.MediaType)
	}
	want := Config{
		Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}, Env: []string{testenv.DefaultPath, "A=1"},
		WorkingDir: "/tmp", User: "nobody", ExposedPorts: []string{"53/udp", "80/tcp"},
		Volumes: []string{"/cache", "/data"}, Labels: map[string]string{"l": "v"}, StopSignal: "SIGINT",
		Healthcheck: &Healthcheck{Test: []string{"CMD", "true"}, Interval: 5 * time.Second, Retries: 3},
	}
	if !equalJSON(t, got.Config, want) {
		t.Errorf("config\n got %+v\nwant %+v", got.Config, want)
	}
	layers, _ := img.Layers()
	if len(got.Layers) != 1 {
		t.Fatalf("layers %v", got.Layers)
	}
	ld, _ := layers[0].Digest()
	diffID, _ := layers[0].DiffID()
	size, _ := layers[0].Size()
	if got.Layers[0] != (Layer{Digest: ld.String(), DiffID: diffID.String(), MediaType: MediaTypeOCILayerGzip, Size: size}) {
		t.Errorf("layer %+v", got.Layers[0])
	}
	if !got.Created.Equal(testenv.Epoch()) {
		t.Errorf("created %v", got.Created)
	}
	if got.Size <= size {
		t.Errorf("size %d", got.Size)
	}
	if strings.Join(got.Names, ",") != name {
		t.Errorf("names %v", got.Names)
	}

	byName, err := s.Image(name)
	if err != nil || byName.Digest != got.Digest {
		t.Fatalf("Image(name) = %v, %v", byName.Digest, err)
	}
	if _, err := s.Image("docker.io/library/nothing:latest"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := s.Image(sha([]byte("x"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown digest: %v", err)
	}

	if err := s.Tag("docker.io/library/busybox:latest", got.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("x:1", sha([]byte("x"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag of a missing image: %v", err)
	}
	for _, bad := range []string{"", "sha256:" + strings.Repeat("a", 64), "a b"} {
		if err := s.Tag(bad, got.Digest); err == nil {
			t.Errorf("Tag(%q) accepted", bad)
		}
	}
	imgs, err := s.Images()
	if err != nil || len(imgs) != 1 || strings.Join(imgs[0].Names, ",") != "127.0.0.1:5000/tools/busybox:1.35,docker.io/library/busybox:latest" {
		t.Fatalf("Images = %+v, %v", imgs, err)
	}
	if err := s.Untag(name); err != nil {
		t.Fatal(err)
	}
	if err := s.Untag(name); !errors.Is(err, ErrNotFound) {
		t.Errorf("second untag: %v", err)
	}
	if _, err := s.Image(name); !errors.Is(err, ErrNotFound) {
		t.Errorf("untagged name still resolves: %v", err)
	}
	if _, err := s.Image(got.Digest); err != nil {
		t.Errorf("untag removed the image: %v", err)
	}
}

func TestPutImageNeedsBlobs(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img := testenv.BusyboxImage(t, testenv.ImageConfig{})
	m, _ := img.RawManifest()
	cfg, _ := img.RawConfigFile()
	if err := s.PutBlob(ctx, sha(m), bytes.NewReader(m)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(ctx, Image{Digest: sha(m)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no config blob: %v", err)
	}
	if err := s.PutBlob(ctx, sha(cfg), bytes.NewReader(cfg)); err != nil {
		t.Fatal(err)
	}
	err := s.PutImage(ctx, Image{Digest: sha(m)})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "layer 0") {
		t.Fatalf("no layer blob: %v", err)
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Fatalf("an image was recorded: %v", imgs)
	}
	if err := s.PutImage(ctx, Image{Digest: sha(cfg)}); err == nil {
		t.Fatal("a config was accepted as a manifest")
	}
}

func TestOpenLayer(t *testing.T) {
	for _, c := range []string{"gzip", "zstd", "none"} {
		t.Run(c, func(t *testing.T) {
			s := openStore(t)
			img := testenv.BusyboxImage(t, testenv.ImageConfig{Compression: c})
			got := putV1(t, s, img)
			rc, err := s.OpenLayer(context.Background(), got.Layers[0])
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			if sha(b) != got.Layers[0].DiffID {
				t.Fatalf("uncompressed stream has digest %s, DiffID %s", sha(b), got.Layers[0].DiffID)
			}
			if _, err := tar.NewReader(bytes.NewReader(b)).Next(); err != nil {
				t.Fatalf("not a tar: %v", err)
			}
		})
	}
	s := openStore(t)
	if _, err := s.OpenLayer(context.Background(), Layer{Digest: sha([]byte("nope"))}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing layer: %v", err)
	}
}

func TestV1Image(t *testing.T) {
	s := openStore(t)
	img := testenv.BusyboxImage(t, testenv.ImageConfig{DockerMediaTypes: true, Cmd: []string{"sh"}})
	got := putV1(t, s, img)
	v, err := s.V1Image(got)
	if err != nil {
		t.Fatal(err)
	}
	d, err := v.Digest()
	if err != nil || d.String() != got.Digest {
		t.Fatalf("digest %v, %v, want %s", d, err, got.Digest)
	}
	mt, _ := v.MediaType()
	if string(mt) != MediaTypeDockerManifest {
		t.Errorf("media type %s", mt)
	}
	layers, err := v.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v %v", layers, err)
	}
	diffID, err := layers[0].DiffID()
	if err != nil || diffID.String() != got.Layers[0].DiffID {
		t.Errorf("diffID %v %v", diffID, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if sha(b) != got.Layers[0].DiffID {
		t.Error("uncompressed layer does not match its DiffID")
	}
	cf, err := v.ConfigFile()
	if err != nil || strings.Join(cf.Config.Cmd, " ") != "sh" {
		t.Errorf("config %v %v", cf, err)
	}
	if _, err := s.V1Image(Image{Digest: sha([]byte("x"))}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing image: %v", err)
	}
}

func TestLeaseHoldsOffPrune(t *testing.T) {
	s := openStore(t)
	lease, err := s.Lease(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := s.Prune(ctx, func(Image) bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Prune under a lease: %v", err)
	}
	lease.Release()
	lease.Release()
	if _, _, err := s.Prune(context.Background(), func(Image) bool { return false }); err != nil {
		t.Fatal(err)
	}
}
