package content

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
)

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// tarEntries reads a tar archive into name → content (regular files only).
func tarEntries(t *testing.T, b []byte) (map[string][]byte, []string) {
	t.Helper()
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, order
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, h.Name)
		if h.Typeflag == tar.TypeReg {
			c, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = c
		}
	}
}

// writeTar writes files (in order) as a tar archive.
func writeTar(t *testing.T, order []string, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range order {
		c, ok := files[n]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(c))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(c)
	}
	tw.Close()
	return buf.Bytes()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	a := putV1(t, src, testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}, DockerMediaTypes: true}),
		"docker.io/library/busybox:latest", "127.0.0.1:5000/tools/busybox:1.35")
	b := putV1(t, src, testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"httpd", "-f"}, Compression: "zstd"}),
		"127.0.0.1:5000/tools/httpd:1")

	var buf bytes.Buffer
	if err := src.Save(ctx, &buf, []string{"docker.io/library/busybox:latest", "127.0.0.1:5000/tools/busybox:1.35", b.Digest}); err != nil {
		t.Fatal(err)
	}
	files, _ := tarEntries(t, buf.Bytes())
	for _, want := range []string{"oci-layout", "index.json", "manifest.json", "repositories",
		"blobs/sha256/" + strings.TrimPrefix(a.Digest, "sha256:"), "blobs/sha256/" + strings.TrimPrefix(b.Layers[0].Digest, "sha256:")} {
		if _, ok := files[want]; !ok {
			t.Errorf("archive has no %s", want)
		}
	}
	var dm []dockerEntry
	if err := json.Unmarshal(files["manifest.json"], &dm); err != nil {
		t.Fatal(err)
	}
	if len(dm) != 2 || strings.Join(dm[0].RepoTags, ",") != "docker.io/library/busybox:latest,127.0.0.1:5000/tools/busybox:1.35" || len(dm[1].RepoTags) != 0 {
		t.Errorf("manifest.json = %+v", dm)
	}
	for _, e := range dm {
		for _, p := range append([]string{e.Config}, e.Layers...) {
			if _, ok := files[p]; !ok {
				t.Errorf("manifest.json names %s, which is not in the archive", p)
			}
		}
	}
	var again bytes.Buffer
	if err := src.Save(ctx, &again, []string{"docker.io/library/busybox:latest", "127.0.0.1:5000/tools/busybox:1.35", b.Digest}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two saves of the same images differ")
	}

	dst := openStore(t)
	loaded, err := dst.Load(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 2 {
		t.Fatalf("loaded %d images", len(loaded))
	}
	for _, want := range []Image{a, b} {
		got, err := dst.Image(want.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if want.Digest == b.Digest {
			want.Names = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("loaded\n%+v\nsaved\n%+v", got, want)
		}
	}
	if !reflect.DeepEqual(blobList(t, dst), blobList(t, src)) {
		t.Errorf("blobs differ:\n%v\n%v", blobList(t, dst), blobList(t, src))
	}
	tmpEmpty(t, dst)

	if err := src.Save(ctx, io.Discard, []string{"docker.io/library/none:latest"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("save of a missing image: %v", err)
	}
}

func TestLoadDockerArchive(t *testing.T) {
	img := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"echo", "hi"}, WorkingDir: "/tmp"})
	path := filepath.Join(t.TempDir(), "docker.tar")
	testenv.SaveDocker(t, path, "busybox:1.35", img)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := openStore(t)
	imgs, err := s.Load(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 {
		t.Fatalf("loaded %d images", len(imgs))
	}
	got := imgs[0]
	if strings.Join(got.Names, ",") != "docker.io/library/busybox:1.35" {
		t.Errorf("names %v", got.Names)
	}
	cfgName, _ := img.ConfigName()
	if got.ConfigDigest != cfgName.String() {
		t.Errorf("config %s, want %s", got.ConfigDigest, cfgName)
	}
	if got.MediaType != MediaTypeOCIManifest || got.Layers[0].MediaType != MediaTypeOCILayerGzip {
		t.Errorf("media types %s %s", got.MediaType, got.Layers[0].MediaType)
	}
	if strings.Join(got.Config.Cmd, " ") != "echo hi" || got.Config.WorkingDir != "/tmp" {
		t.Errorf("config %+v", got.Config)
	}
	rc, err := s.OpenLayer(context.Background(), got.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if sha(b) != got.Layers[0].DiffID {
		t.Error("layer does not match its DiffID")
	}
	tmpEmpty(t, s)
}

func TestLoadOCILayout(t *testing.T) {
	img := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}})
	path := filepath.Join(t.TempDir(), "oci.tar")
	testenv.SaveOCI(t, path, "127.0.0.1:5000/tools/busybox:1.35", img)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := openStore(t)
	imgs, err := s.Load(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if len(imgs) != 1 || imgs[0].Digest != d.String() || strings.Join(imgs[0].Names, ",") != "127.0.0.1:5000/tools/busybox:1.35" {
		t.Fatalf("loaded %+v", imgs)
	}
}

func TestLoadCompressedArchive(t *testing.T) {
	src := openStore(t)
	a := putV1(t, src, testenv.BusyboxImage(t, testenv.ImageConfig{}), "docker.io/library/busybox:latest")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := src.Save(context.Background(), zw, []string{"docker.io/library/busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	dst := openStore(t)
	imgs, err := dst.Load(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Digest != a.Digest {
		t.Fatalf("loaded %+v", imgs)
	}
}

func TestLoadRefusesCorruptArchives(t *testing.T) {
	ctx := context.Background()
	img := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}})
	src := openStore(t)
	saved := putV1(t, src, img, "docker.io/library/busybox:latest")
	var buf bytes.Buffer
	if err := src.Save(ctx, &buf, []string{"docker.io/library/busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	files, order := tarEntries(t, buf.Bytes())
	layerPath := "blobs/sha256/" + strings.TrimPrefix(saved.Layers[0].Digest, "sha256:")
	flip := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		c[len(c)/2] ^= 0xff
		return c
	}
	without := func(name string) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range files {
			if k != name {
				out[k] = v
			}
		}
		return out
	}
	with := func(m map[string][]byte, name string, content []byte) map[string][]byte {
		m[name] = content
		return m
	}

	// A docker archive (no OCI index) whose layer file is not named by a
	// digest, holding a valid gzip stream of different content: only the
	// DiffID check can catch it.
	other := testenv.BusyboxImage(t, testenv.ImageConfig{Files: map[string]string{"x": "y"}})
	otherLayers, _ := other.Layers()
	rc, _ := otherLayers[0].Compressed()
	otherLayer, _ := io.ReadAll(rc)
	rc.Close()
	dm, _ := json.Marshal([]dockerEntry{{Config: "config.json", RepoTags: []string{"busybox:latest"}, Layers: []string{"abc/layer.tar"}}})
	cfgBlob := files["blobs/sha256/"+strings.TrimPrefix(saved.ConfigDigest, "sha256:")]
	swapped := writeTar(t, []string{"config.json", "abc/layer.tar", "manifest.json"},
		map[string][]byte{"config.json": cfgBlob, "abc/layer.tar": otherLayer, "manifest.json": dm})

	for _, tc := range []struct {
		name    string
		archive []byte
		want    string
	}{
		{"OCI layer blob corrupted", writeTar(t, order, with(without(""), layerPath, flip(files[layerPath]))), "corrupt"},
		{"OCI layer blob missing", writeTar(t, order, without(layerPath)), "no blob"},
		{"docker layer with another layer's content", swapped, "corrupt"},
		{"docker layer named by digest corrupted", writeTar(t, order, with(without("index.json"), layerPath, flip(files[layerPath]))), "corrupt"},
		{"neither format", writeTar(t, []string{"x"}, map[string][]byte{"x": []byte("y")}), "neither"},
		{"not a tar", bytes.Repeat([]byte("garbage!"), 200), "archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := openStore(t)
			// The destination has an image already: a failed load
			// must leave it as it was.
			before := putV1(t, dst, testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"true"}}), "docker.io/library/before:1")
			blobsBefore := blobList(t, dst)
			imgs, err := dst.Load(ctx, bytes.NewReader(tc.archive))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, %v; want an error about %q", imgs, err, tc.want)
			}
			if got := blobList(t, dst); !reflect.DeepEqual(got, blobsBefore) {
				t.Errorf("blobs changed:\n%v\n%v", blobsBefore, got)
			}
			all, _ := dst.Images()
			if len(all) != 1 || all[0].Digest != before.Digest {
				t.Errorf("images changed: %+v", all)
			}
			tmpEmpty(t, dst)
		})
	}
}

// tarBlock returns a ustar header block.
func tarBlock(name string, typeflag byte, size int) []byte {
	b := make([]byte, 512)
	copy(b[0:], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

func TestLoadRefusesSparseFiles(t *testing.T) {
	// A PAX GNU sparse 1.0 entry: a 512-byte sparse map with no data
	// blocks, 10 MB of holes that a tar reader expands to zeros.
	var records string
	for _, kv := range []string{"GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=blobs/sha256/x", "GNU.sparse.realsize=10485760"} {
		n := len(kv) + 2
		n += len(fmt.Sprint(n + len(fmt.Sprint(n))))
		records += fmt.Sprintf("%d %s\n", n, kv)
	}
	var b bytes.Buffer
	b.Write(tarBlock("PaxHeaders/x", 'x', len(records)))
	b.Write(padBlock([]byte(records)))
	b.Write(tarBlock("x", '0', 512))
	b.Write(padBlock([]byte("0\n")))
	b.Write(make([]byte, 1024))

	hdr, err := tar.NewReader(bytes.NewReader(b.Bytes())).Next()
	if err != nil || hdr.Size != 10485760 {
		t.Fatalf("the test archive is not a sparse file: %+v, %v", hdr, err)
	}
	s := openStore(t)
	if _, err := s.Load(context.Background(), &b); err == nil || !strings.Contains(err.Error(), "sparse files are not supported") {
		t.Fatalf("Load of a sparse entry: %v", err)
	}
	tmpEmpty(t, s)
}
