package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
	"github.com/berthhq/berth/providers/linux/content"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// newClient returns a client that ignores the caller's docker config.
func newClient(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.DockerConfig == "" {
		opts.DockerConfig = filepath.Join(t.TempDir(), "no-config.json")
	}
	return New(opts)
}

func newStore(t *testing.T) *content.Store {
	t.Helper()
	s, err := content.Open(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t *testing.T, s string) Reference {
	t.Helper()
	ref, err := ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// endpointOf returns the endpoint that fits a test registry.
func endpointOf(r *testenv.Registry) *Endpoint {
	return &Endpoint{Address: r.Addr, Username: r.Username, Password: r.Password, Insecure: !r.TLS, CAFile: r.CAFile}
}

// wantKind checks that err is a *Error of kind whose message holds every
// string in says.
func wantKind(t *testing.T, err error, kind Kind, says ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *registry.Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("kind %v, want %v: %v", e.Kind, kind, err)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	return e
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestPullWithAuth(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	img := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}, Env: []string{"A=1"}, WorkingDir: "/tmp", User: "nobody"})
	testenv.Push(t, r, "tools/busybox:1.35", img)
	ref := mustParse(t, r.Ref("tools/busybox:1.35"))
	c := newClient(t, Options{UserAgent: "berth-test"})

	t.Run("right password", func(t *testing.T) {
		store := newStore(t)
		got, err := c.Pull(ctx, ref, endpointOf(r), store)
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != digestOf(t, img) {
			t.Errorf("pulled %s, pushed %s", got.Digest, digestOf(t, img))
		}
		if strings.Join(got.Names, ",") != r.Addr+"/tools/busybox:1.35" {
			t.Errorf("names %v", got.Names)
		}
		if strings.Join(got.Config.Cmd, " ") != "sh" || got.Config.WorkingDir != "/tmp" || got.Config.User != "nobody" || got.Config.Env[1] != "A=1" {
			t.Errorf("config %+v", got.Config)
		}
		d, err := c.Resolve(ctx, ref, endpointOf(r))
		if err != nil || d != got.Digest {
			t.Errorf("Resolve = %s, %v", d, err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		ep := endpointOf(r)
		ep.Password = "wrong-" + r.Password
		_, err := c.Pull(ctx, ref, ep, newStore(t))
		wantKind(t, err, Unauthorized, r.Addr, `"berth-test"`, "refused", ref.String())
		_, err = c.Resolve(ctx, ref, ep)
		wantKind(t, err, Unauthorized, r.Addr, `"berth-test"`)
	})
	t.Run("no credentials", func(t *testing.T) {
		ep := endpointOf(r)
		ep.Username, ep.Password = "", ""
		_, err := c.Resolve(ctx, ref, ep)
		wantKind(t, err, Unauthorized, r.Addr, "requires credentials")
	})
	t.Run("docker config", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "config.json")
		auth := base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, r.Addr, auth)), 0o600); err != nil {
			t.Fatal(err)
		}
		dc := New(Options{DockerConfig: cfg})
		d, err := dc.Resolve(ctx, ref, &Endpoint{Address: r.Addr, Insecure: true})
		if err != nil || d != digestOf(t, img) {
			t.Fatalf("Resolve with docker config credentials = %s, %v", d, err)
		}
		// A declared username wins over the docker config.
		_, err = dc.Resolve(ctx, ref, &Endpoint{Address: r.Addr, Insecure: true, Username: "someone", Password: "else"})
		wantKind(t, err, Unauthorized, `"someone"`)
	})
	t.Run("endpoint from options", func(t *testing.T) {
		oc := newClient(t, Options{Endpoints: []Endpoint{{Address: "other:1"}, *endpointOf(r)}})
		if _, err := oc.Resolve(ctx, ref, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPlainHTTPOnlyWhenInsecure(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(t, testenv.ImageConfig{})
	testenv.Push(t, r, "tools/busybox:1.35", img)
	ref := mustParse(t, r.Ref("tools/busybox:1.35"))
	c := newClient(t, Options{})

	for _, ep := range []*Endpoint{nil, {Address: r.Addr}} {
		_, err := c.Resolve(ctx, ref, ep)
		e := wantKind(t, err, PlainHTTP, r.Addr, "insecure = true", ref.String())
		if !strings.Contains(e.Err.Error(), plainHTTPPhrase) {
			t.Errorf("cause %v", e.Err)
		}
		_, err = c.Pull(ctx, ref, ep, newStore(t))
		wantKind(t, err, PlainHTTP)
	}
	store := newStore(t)
	got, err := c.Pull(ctx, ref, &Endpoint{Address: r.Addr, Insecure: true}, store)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != digestOf(t, img) {
		t.Errorf("digest %s", got.Digest)
	}
}

// TestNoPlainHTTPRequest proves that without insecure not a single plain
// HTTP request reaches a registry on 127.0.0.1, although
// go-containerregistry would fall back to HTTP for that address.
func TestNoPlainHTTPRequest(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ref := mustParse(t, addr+"/tools/app:1")
	c := newClient(t, Options{})
	_, err := c.Resolve(context.Background(), ref, &Endpoint{Address: addr})
	wantKind(t, err, PlainHTTP, addr)
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d plain HTTP requests reached the server", n)
	}
	// The same server with insecure: the requests do arrive.
	c.Resolve(context.Background(), ref, &Endpoint{Address: addr, Insecure: true})
	if hits.Load() == 0 {
		t.Fatal("no request reached the server with insecure = true")
	}
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{TLS: true, Auth: true})
	img := testenv.BusyboxImage(t, testenv.ImageConfig{})
	testenv.Push(t, r, "tools/busybox:1.35", img)
	ref := mustParse(t, r.Ref("tools/busybox:1.35"))
	c := newClient(t, Options{})

	got, err := c.Pull(ctx, ref, endpointOf(r), newStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != digestOf(t, img) {
		t.Errorf("digest %s", got.Digest)
	}
	ep := endpointOf(r)
	ep.CAFile = ""
	_, err = c.Resolve(ctx, ref, ep)
	wantKind(t, err, Other, r.Addr, "not trusted", "set ca_file")

	ep.CAFile = filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(ep.CAFile, []byte("not a certificate"), 0o600)
	_, err = c.Resolve(ctx, ref, ep)
	wantKind(t, err, Other, "no PEM certificate")
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	testenv.Push(t, r, "tools/busybox:1.35", testenv.BusyboxImage(t, testenv.ImageConfig{}))
	c := newClient(t, Options{})
	for _, s := range []string{"tools/busybox:nope", "tools/nothing:1", "tools/busybox@sha256:" + strings.Repeat("0", 64)} {
		ref := mustParse(t, r.Ref(s))
		_, err := c.Pull(ctx, ref, endpointOf(r), newStore(t))
		wantKind(t, err, NotFound, "image "+ref.String()+" not found", "registry "+r.Addr, `"berth-test"`)
		_, err = c.Resolve(ctx, ref, endpointOf(r))
		wantKind(t, err, NotFound, ref.String())
	}
}

func TestUnreachable(t *testing.T) {
	addr := testenv.FreeAddr(t)
	ref := mustParse(t, addr+"/tools/busybox:1")
	c := newClient(t, Options{})
	for _, ep := range []*Endpoint{nil, {Address: addr, Insecure: true, Username: "u", Password: "p"}} {
		_, err := c.Resolve(context.Background(), ref, ep)
		wantKind(t, err, Unreachable, "registry "+addr+" is unreachable", ref.String())
		if strings.Contains(err.Error(), "refusing plain HTTP") {
			t.Errorf("the refused plain-HTTP fallback clutters the message: %v", err)
		}
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	ctx := context.Background()
	plain := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	tls := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true, TLS: true})
	testenv.Push(t, plain, "tools/busybox:1", testenv.BusyboxImage(t, testenv.ImageConfig{}))
	const secret = "Sup3r-Secret-Pa55word"
	c := newClient(t, Options{})
	cases := []struct {
		name string
		ref  string
		ep   Endpoint
	}{
		{"wrong password", plain.Ref("tools/busybox:1"), Endpoint{Address: plain.Addr, Insecure: true, Username: "berth-test", Password: secret}},
		{"unknown user", plain.Ref("tools/busybox:1"), Endpoint{Address: plain.Addr, Insecure: true, Username: secret, Password: secret}},
		{"plain HTTP", plain.Ref("tools/busybox:1"), Endpoint{Address: plain.Addr, Username: "berth-test", Password: secret}},
		{"bad certificate", tls.Ref("tools/busybox:1"), Endpoint{Address: tls.Addr, Username: "berth-test", Password: secret}},
		{"unreachable", testenv.FreeAddr(t) + "/tools/busybox:1", Endpoint{Insecure: true, Username: "berth-test", Password: secret}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := mustParse(t, tc.ref)
			tc.ep.Address = ref.Registry()
			_, rerr := c.Resolve(ctx, ref, &tc.ep)
			_, perr := c.Pull(ctx, ref, &tc.ep, newStore(t))
			for _, err := range []error{rerr, perr} {
				if err == nil {
					t.Fatal("no error")
				}
				if tc.ep.Username != secret && !strings.Contains(err.Error(), tc.ep.Address) {
					t.Errorf("error does not name the registry: %v", err)
				}
				for e := err; e != nil; e = errors.Unwrap(e) {
					for _, s := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
						if strings.Contains(s, secret) && !(tc.ep.Username == secret) {
							t.Errorf("the password appears in an error: %s", s)
						}
					}
				}
				if tc.ep.Username == secret && strings.Count(err.Error(), secret) > 1 {
					t.Errorf("the password (also the user name here) appears more than once: %v", err)
				}
			}
		})
	}
}

func TestPullFormats(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{})
	c := newClient(t, Options{})
	for _, tc := range []struct {
		name      string
		cfg       testenv.ImageConfig
		mediaType string
		layerType string
	}{
		{"docker", testenv.ImageConfig{DockerMediaTypes: true}, content.MediaTypeDockerManifest, content.MediaTypeDockerLayer},
		{"oci gzip", testenv.ImageConfig{}, content.MediaTypeOCIManifest, content.MediaTypeOCILayerGzip},
		{"oci zstd", testenv.ImageConfig{Compression: "zstd"}, content.MediaTypeOCIManifest, content.MediaTypeOCILayerZstd},
		{"oci uncompressed", testenv.ImageConfig{Compression: "none"}, content.MediaTypeOCIManifest, content.MediaTypeOCILayer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testenv.BusyboxImage(t, tc.cfg)
			tag := "tools/" + strings.ReplaceAll(tc.name, " ", "-") + ":1"
			testenv.Push(t, r, tag, img)
			store := newStore(t)
			got, err := c.Pull(ctx, mustParse(t, r.Ref(tag)), endpointOf(r), store)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != digestOf(t, img) || got.MediaType != tc.mediaType || got.Layers[0].MediaType != tc.layerType {
				t.Fatalf("pulled %+v", got)
			}
			rc, err := store.OpenLayer(ctx, got.Layers[0])
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if d := sha256Reader(t, rc); d != got.Layers[0].DiffID {
				t.Errorf("layer stream %s, DiffID %s", d, got.Layers[0].DiffID)
			}
		})
	}
}

// counter counts the requests for blobs, by digest.
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	gets map[string]int
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	if i := strings.Index(req.URL.Path, "/blobs/"); i >= 0 && req.Method == http.MethodGet {
		c.mu.Lock()
		c.gets[req.URL.Path[i+len("/blobs/"):]]++
		c.mu.Unlock()
	}
	return c.next.RoundTrip(req)
}

func TestPullStoresSharedLayerOnce(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRegistry(t, testenv.RegistryOptions{})
	a := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh"}})
	b := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"true"}})
	testenv.Push(t, r, "tools/a:1", a)
	testenv.Push(t, r, "tools/b:1", b)
	la, _ := a.Layers()
	layer, _ := la[0].Digest()

	cnt := &counter{gets: map[string]int{}}
	c := newClient(t, Options{})
	c.wrap = func(rt http.RoundTripper) http.RoundTripper { cnt.next = rt; return cnt }
	store := newStore(t)
	ia, err := c.Pull(ctx, mustParse(t, r.Ref("tools/a:1")), endpointOf(r), store)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := c.Pull(ctx, mustParse(t, r.Ref("tools/b:1")), endpointOf(r), store)
	if err != nil {
		t.Fatal(err)
	}
	if ia.Layers[0].Digest != layer.String() || ib.Layers[0].Digest != layer.String() {
		t.Fatal("the images do not share their layer")
	}
	if n := cnt.gets[layer.String()]; n != 1 {
		t.Errorf("the shared layer was downloaded %d times", n)
	}
	// Pulling again fetches no blob.
	before := len(cnt.gets)
	if _, err := c.Pull(ctx, mustParse(t, r.Ref("tools/a:1")), endpointOf(r), store); err != nil {
		t.Fatal(err)
	}
	if cnt.gets[layer.String()] != 1 || len(cnt.gets) != before {
		t.Errorf("a second pull fetched blobs again: %v", cnt.gets)
	}
	imgs, err := store.Images()
	if err != nil || len(imgs) != 2 {
		t.Fatalf("images %v %v", imgs, err)
	}
	blobs, err := os.ReadDir(filepath.Join(store.Root(), "blobs", "sha256"))
	if err != nil || len(blobs) != 5 {
		t.Errorf("%d blobs, want 5 (one layer, two configs, two manifests): %v", len(blobs), err)
	}
}

func sha256Reader(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}
