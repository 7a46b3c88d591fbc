package content

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
)

// tinyLayer returns a one-file layer tar.
func tinyLayer() []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	return b.Bytes()
}

// FuzzLoad feeds arbitrary archives to Load: it must never panic, must
// store nothing when it fails, and what it stores must be consistent.
func FuzzLoad(f *testing.F) {
	ctx := context.Background()
	seedStore, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := seedStore.Commit(ctx, Image{}, bytes.NewReader(tinyLayer()), "", Config{Cmd: []string{"/f"}}, "docker.io/library/tiny:1"); err != nil {
		f.Fatal(err)
	}
	var saved bytes.Buffer
	if err := seedStore.Save(ctx, &saved, []string{"docker.io/library/tiny:1"}); err != nil {
		f.Fatal(err)
	}
	f.Add(saved.Bytes())

	// A docker archive without OCI index, uncompressed layer.
	layer := tinyLayer()
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{sha(layer)}},
		"config": map[string]any{"Cmd": []string{"/f"}},
	})
	dm, _ := json.Marshal([]dockerEntry{{Config: "c.json", RepoTags: []string{"tiny:2"}, Layers: []string{"l/layer.tar"}}})
	var docker bytes.Buffer
	tw := tar.NewWriter(&docker)
	for _, e := range []struct {
		name string
		data []byte
	}{{"c.json", cfg}, {"l/layer.tar", layer}, {"manifest.json", dm}} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data))})
		tw.Write(e.data)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "m.json", Linkname: "manifest.json"})
	tw.Close()
	f.Add(docker.Bytes())

	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	s.noSync = true
	f.Fuzz(func(t *testing.T, archive []byte) {
		imgs, err := s.Load(ctx, bytes.NewReader(archive))
		if err != nil {
			if all, _ := s.Images(); len(all) != 0 {
				t.Fatalf("a failed load stored images: %v", all)
			}
			if b := blobList(t, s); len(b) != 0 {
				t.Fatalf("a failed load stored blobs: %v", b)
			}
			tmpEmpty(t, s)
			return
		}
		for _, img := range imgs {
			got, err := s.Image(img.Digest)
			if err != nil {
				t.Fatalf("loaded image %s: %v", img.Digest, err)
			}
			for _, l := range got.Layers {
				rc, err := s.OpenLayer(ctx, l)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || sha(b) != l.DiffID {
					t.Fatalf("loaded layer %s does not match its DiffID: %v", l.Digest, err)
				}
			}
		}
		if _, _, err := s.Prune(ctx, func(Image) bool { return false }); err != nil {
			t.Fatal(err)
		}
	})
}
