package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
	"github.com/berthhq/berth/providers/linux/content"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPushRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	c := newClient(t, Options{})
	src := newStore(t)
	base := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}})
	testenv.Push(t, r, "tools/base:1", base)
	baseImg, err := c.Pull(ctx, mustParse(t, r.Ref("tools/base:1")), endpointOf(r), src)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "hello", Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	committed, err := src.Commit(ctx, baseImg, &layer, "", content.Config{Env: []string{"X=1"}}, "local/app:1")
	if err != nil {
		t.Fatal(err)
	}

	ref := mustParse(t, r.Ref("tools/app:2"))
	ep := endpointOf(r)
	ep.Password = "wrong"
	wantKind(t, c.Push(ctx, ref, ep, src, committed), Unauthorized, r.Addr, `"berth-test"`)

	if err := c.Push(ctx, ref, endpointOf(r), src, committed); err != nil {
		t.Fatal(err)
	}
	d, err := c.Resolve(ctx, ref, endpointOf(r))
	if err != nil || d != committed.Digest {
		t.Fatalf("pushed image resolves to %s, %v; want %s", d, err, committed.Digest)
	}
	dst := newStore(t)
	got, err := c.Pull(ctx, ref, endpointOf(r), dst)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != committed.Digest || len(got.Layers) != 2 || strings.Join(got.Config.Env, ",") != testenv.DefaultPath+",X=1" {
		t.Errorf("pulled back %+v", got)
	}

	// By digest: the digest must be the image's.
	byDigest := mustParse(t, r.Ref("tools/app@"+committed.Digest))
	if err := c.Push(ctx, byDigest, endpointOf(r), src, committed); err != nil {
		t.Fatal(err)
	}
	if err := c.Push(ctx, byDigest, endpointOf(r), src, baseImg); err == nil {
		t.Error("push of another image under a digest worked")
	}
}

func TestPullIndex(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{})
	host := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"host"}})
	other := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"other"}})
	otherArch := "arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: host, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	tag, err := name.NewTag(r.Ref("tools/multi:1"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, remote.WithAuth(authn.Anonymous)); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	c := newClient(t, Options{})
	ref := mustParse(t, r.Ref("tools/multi:1"))
	d, err := c.Resolve(ctx, ref, endpointOf(r))
	if err != nil {
		t.Fatal(err)
	}
	if d != digestOf(t, host) {
		t.Errorf("Resolve = %s, want the host image %s (index %s)", d, digestOf(t, host), idxDigest)
	}
	store := newStore(t)
	got, err := c.Pull(ctx, ref, endpointOf(r), store)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != digestOf(t, host) || strings.Join(got.Config.Cmd, " ") != "host" {
		t.Errorf("pulled %s %v", got.Digest, got.Config.Cmd)
	}
	// Pinned to the index digest, the same image comes.
	got, err = c.Pull(ctx, mustParse(t, r.Ref("tools/multi@"+idxDigest.String())), endpointOf(r), newStore(t))
	if err != nil || got.Digest != digestOf(t, host) || len(got.Names) != 0 {
		t.Errorf("pull by index digest: %+v %v", got, err)
	}
}
