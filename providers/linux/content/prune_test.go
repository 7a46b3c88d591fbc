package content

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	// Same layer, different configs: the layer blob is shared.
	keep := putV1(t, s, testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}}), "docker.io/library/keep:1")
	drop := putV1(t, s, testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"true"}}), "docker.io/library/drop:1")
	if keep.Layers[0].Digest != drop.Layers[0].Digest {
		t.Fatal("fixture images do not share their layer")
	}
	if n := len(blobList(t, s)); n != 5 {
		t.Fatalf("%d blobs, want 5 (one layer, two configs, two manifests)", n)
	}
	removed, freed, err := s.Prune(ctx, func(img Image) bool {
		for _, n := range img.Names {
			if strings.HasPrefix(n, "docker.io/library/keep:") {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Digest != drop.Digest {
		t.Fatalf("removed %+v", removed)
	}
	if freed <= 0 || freed >= drop.Size {
		t.Errorf("freed %d bytes; the dropped image's own blobs are less than %d", freed, drop.Size)
	}
	want := []string{hexPart(keep.Digest), hexPart(keep.ConfigDigest), hexPart(keep.Layers[0].Digest)}
	sort.Strings(want)
	if got := blobList(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("blobs after prune\n%v\nwant\n%v", got, want)
	}
	if _, err := s.Image("docker.io/library/drop:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped name: %v", err)
	}
	if got, err := s.Image("docker.io/library/keep:1"); err != nil || got.Digest != keep.Digest {
		t.Errorf("kept image: %v", err)
	}
	rc, err := s.OpenLayer(ctx, keep.Layers[0])
	if err != nil {
		t.Fatalf("kept image's layer: %v", err)
	}
	rc.Close()

	// Leftovers of an interrupted write go too.
	if _, err := s.stage(ctx, s.tmpDir(), strings.NewReader("leftover")); err != nil {
		t.Fatal(err)
	}
	removed, _, err = s.Prune(ctx, func(Image) bool { return false })
	if err != nil || len(removed) != 1 {
		t.Fatalf("prune all: %v %v", removed, err)
	}
	if got := blobList(t, s); len(got) != 0 {
		t.Errorf("blobs left: %v", got)
	}
	tmpEmpty(t, s)
}

func TestRemove(t *testing.T) {
	s := openStore(t)
	a := putV1(t, s, testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}}), "docker.io/library/a:1", "docker.io/library/a:2")
	b := putV1(t, s, testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"true"}}), "docker.io/library/b:1")
	if err := s.Remove(a.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(a.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed image: %v", err)
	}
	if _, err := s.Image("docker.io/library/a:2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed image's name: %v", err)
	}
	want := []string{hexPart(b.Digest), hexPart(b.ConfigDigest), hexPart(b.Layers[0].Digest)}
	sort.Strings(want)
	if got := blobList(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("blobs after remove\n%v\nwant\n%v", got, want)
	}
	if err := s.Remove(a.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}

	// Under a lease, Remove drops the record and leaves the blobs for
	// the next collection.
	lease, err := s.Lease(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(b.Digest); err != nil {
		t.Fatal(err)
	}
	if len(blobList(t, s)) != 3 {
		t.Error("Remove deleted blobs under a lease")
	}
	lease.Release()
	if _, freed, err := s.Prune(context.Background(), func(Image) bool { return true }); err != nil || freed == 0 || len(blobList(t, s)) != 0 {
		t.Errorf("prune after remove: freed %d, %v, blobs %v", freed, err, blobList(t, s))
	}
}

func TestCommit(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	base := putV1(t, s, testenv.BusyboxImage(t, testenv.ImageConfig{
		Cmd: []string{"sh", "-c", "cat /hello"}, Env: []string{"A=1", "B=2"}, WorkingDir: "/tmp",
		ExposedPorts: []string{"80/tcp"}, Labels: map[string]string{"base": "1"},
	}), "docker.io/library/base:1")

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "hello", Mode: 0o644, Size: 5})
	tw.Write([]byte("world"))
	tw.Close()
	diffID := sha(layer.Bytes())

	if _, err := s.Commit(ctx, base, bytes.NewReader(layer.Bytes()), sha([]byte("other")), Config{}, "x:1"); err == nil || !strings.Contains(err.Error(), "DiffID") {
		t.Fatalf("wrong DiffID: %v", err)
	}
	tmpEmpty(t, s)

	got, err := s.Commit(ctx, base, bytes.NewReader(layer.Bytes()), diffID,
		Config{Env: []string{"B=3", "C=4"}, ExposedPorts: []string{"443/tcp"}, Labels: map[string]string{"commit": "1"}},
		"docker.io/library/committed:1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Names, ",") != "docker.io/library/committed:1" {
		t.Errorf("names %v", got.Names)
	}
	if len(got.Layers) != 2 || got.Layers[0] != base.Layers[0] || got.Layers[1].DiffID != diffID || got.Layers[1].MediaType != MediaTypeOCILayerGzip {
		t.Fatalf("layers %+v", got.Layers)
	}
	c := got.Config
	if strings.Join(c.Cmd, " ") != "sh -c cat /hello" || c.WorkingDir != "/tmp" {
		t.Errorf("base config lost: %+v", c)
	}
	if strings.Join(c.Env, ",") != testenv.DefaultPath+",A=1,B=3,C=4" {
		t.Errorf("env %v", c.Env)
	}
	if strings.Join(c.ExposedPorts, ",") != "443/tcp,80/tcp" || c.Labels["base"] != "1" || c.Labels["commit"] != "1" {
		t.Errorf("ports %v labels %v", c.ExposedPorts, c.Labels)
	}
	rc, err := s.OpenLayer(ctx, got.Layers[1])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, layer.Bytes()) {
		t.Error("committed layer differs from the given tar")
	}
	v, err := s.V1Image(got)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := v.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.RootFS.DiffIDs) != 2 || cf.OS != "linux" || len(cf.History) != 2 || cf.History[1].CreatedBy != "berth commit" {
		t.Errorf("config file %+v", cf)
	}
	if d, _ := v.Digest(); d.String() != got.Digest {
		t.Errorf("v1 digest %s", d)
	}

	// From scratch, Cmd given by the changes; and the base unchanged.
	scratch, err := s.Commit(ctx, Image{}, bytes.NewReader(layer.Bytes()), "", Config{Cmd: []string{"/hello"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(scratch.Layers) != 1 || scratch.Layers[0].DiffID != diffID || strings.Join(scratch.Config.Cmd, " ") != "/hello" || len(scratch.Names) != 0 {
		t.Errorf("scratch image %+v", scratch)
	}
	if again, _ := s.Image(base.Digest); !reflect.DeepEqual(again, base) {
		t.Error("commit changed the base image")
	}
}

func hexPart(d string) string { return strings.TrimPrefix(d, "sha256:") }
