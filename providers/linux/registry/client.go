package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/berthhq/berth/providers/linux/content"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Endpoint is a declared registry resource: where it is and how to talk
// to it.
type Endpoint struct {
	// Address is host[:port], as in image references.
	Address string
	// Username and Password are basic-auth credentials. With no Username,
	// the docker config's credentials for the host are used, if any.
	Username string
	Password string
	// Insecure allows plain HTTP. Without it, berth only speaks HTTPS,
	// also to 127.0.0.1, localhost and private addresses.
	Insecure bool
	// CAFile is a PEM file of CA certificates trusted for this registry in
	// addition to the system's.
	CAFile string
}

// Options configures a Client.
type Options struct {
	// Endpoints are the declared registries; one is used for a reference
	// whose registry is its Address when the caller gives no Endpoint.
	Endpoints []Endpoint
	// DockerConfig is the path of a docker config.json with credentials
	// (auths, credHelpers, credsStore). "" means $DOCKER_CONFIG/config.json
	// when DOCKER_CONFIG is set, else ~/.docker/config.json.
	DockerConfig string
	// UserAgent is sent with every request.
	UserAgent string
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	opts         Options
	dockerConfig string
	// wrap, when set, wraps every transport (tests count requests).
	wrap func(http.RoundTripper) http.RoundTripper
}

// New returns a Client.
func New(opts Options) *Client {
	c := &Client{opts: opts, dockerConfig: opts.DockerConfig}
	if c.dockerConfig == "" {
		if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
			c.dockerConfig = filepath.Join(dir, "config.json")
		} else if home, err := os.UserHomeDir(); err == nil {
			c.dockerConfig = filepath.Join(home, ".docker", "config.json")
		}
	}
	return c
}

// Platform returns the platform Resolve and Pull pick from an index:
// linux and the architecture berth runs on.
func Platform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// session is what one operation needs: the go-containerregistry reference
// and options, and who it authenticates as.
type session struct {
	op       string
	ref      Reference
	gref     name.Reference
	opts     []remote.Option
	username string
	password string
	tr       *http.Transport
}

func (s *session) close() { s.tr.CloseIdleConnections() }

// fail returns err classified as a *Error.
func (s *session) fail(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(s.op, s.ref, s.username, s.password, err)
}

// endpoint returns ep, else the declared endpoint of ref's registry, else
// a default one (HTTPS, docker config credentials).
func (c *Client) endpoint(ref Reference, ep *Endpoint) Endpoint {
	if ep != nil {
		return *ep
	}
	for _, e := range c.opts.Endpoints {
		if e.Address == ref.Registry() {
			return e
		}
	}
	return Endpoint{Address: ref.Registry()}
}

// session prepares an operation on ref.
func (c *Client) session(ctx context.Context, op string, ref Reference, epp *Endpoint) (*session, error) {
	if ref.registry == "" {
		return nil, fmt.Errorf("%s: empty image reference", op)
	}
	ep := c.endpoint(ref, epp)
	s := &session{op: op, ref: ref, username: ep.Username, password: ep.Password}
	var nopts []name.Option
	if ep.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	var err error
	if ref.digest != "" {
		s.gref, err = name.NewDigest(ref.Name()+"@"+ref.digest, nopts...)
	} else {
		s.gref, err = name.NewTag(ref.Name()+":"+ref.tag, nopts...)
	}
	if err != nil {
		return nil, newError(op, ref, s.username, s.password, err)
	}

	s.tr = remote.DefaultTransport.(*http.Transport).Clone()
	if ep.CAFile != "" {
		pool, err := caPool(ep.CAFile)
		if err != nil {
			return nil, newError(op, ref, s.username, s.password, err)
		}
		s.tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = s.tr
	if c.wrap != nil {
		rt = c.wrap(rt)
	}
	s.opts = []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(&schemeGuard{next: rt, insecure: ep.Insecure}),
		remote.WithPlatform(Platform()),
	}
	if c.opts.UserAgent != "" {
		s.opts = append(s.opts, remote.WithUserAgent(c.opts.UserAgent))
	}
	var auth authn.Authenticator = authn.Anonymous
	if ep.Username != "" {
		auth = &authn.Basic{Username: ep.Username, Password: ep.Password}
	} else if c.dockerConfig != "" {
		a, user, secret, err := dockerCredentials(c.dockerConfig, ref.Registry())
		if err != nil {
			s.tr.CloseIdleConnections()
			return nil, newError(op, ref, "", "", err)
		}
		auth, s.username, s.password = a, user, secret
	}
	s.opts = append(s.opts, remote.WithAuth(auth))
	return s, nil
}

// caPool returns the system CAs plus those of caFile.
func caPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// schemeGuard refuses plain HTTP requests unless the registry is declared
// insecure. go-containerregistry tries plain HTTP by itself for registries
// on 127.0.0.1, localhost and private (RFC 1918) addresses; berth does not.
type schemeGuard struct {
	next     http.RoundTripper
	insecure bool
}

// RoundTrip implements http.RoundTripper.
func (g *schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !g.insecure {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &errPlainHTTPRefused{host: req.URL.Host}
	}
	return g.next.RoundTrip(req)
}

// Resolve returns the digest of the image manifest ref names. When ref
// names an index (a multi-platform image), it returns the digest of the
// image manifest for the host platform (see Platform), which is what Pull
// stores, not the index digest.
func (c *Client) Resolve(ctx context.Context, ref Reference, ep *Endpoint) (string, error) {
	s, err := c.session(ctx, "resolve", ref, ep)
	if err != nil {
		return "", err
	}
	defer s.close()
	desc, err := remote.Get(s.gref, s.opts...)
	if err != nil {
		return "", s.fail(err)
	}
	if !desc.MediaType.IsIndex() {
		return desc.Digest.String(), nil
	}
	img, err := desc.Image()
	if err != nil {
		return "", s.fail(err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", s.fail(err)
	}
	return d.String(), nil
}

// Pull fetches the image ref names (of an index, the image for the host
// platform) into store: every blob it does not have yet, digest verified,
// then the image record, named ref (registry/repository:tag) when ref has
// a tag. Layers are stored as the registry serves them (gzip, zstd or
// uncompressed), never unpacked.
func (c *Client) Pull(ctx context.Context, ref Reference, ep *Endpoint, store *content.Store) (content.Image, error) {
	s, err := c.session(ctx, "pull", ref, ep)
	if err != nil {
		return content.Image{}, err
	}
	defer s.close()
	lease, err := store.Lease(ctx)
	if err != nil {
		return content.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer lease.Release()

	desc, err := remote.Get(s.gref, s.opts...)
	if err != nil {
		return content.Image{}, s.fail(err)
	}
	img, err := desc.Image()
	if err != nil {
		return content.Image{}, s.fail(err)
	}
	digest, err := img.Digest()
	if err != nil {
		return content.Image{}, s.fail(err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return content.Image{}, s.fail(err)
	}
	m, err := img.Manifest()
	if err != nil {
		return content.Image{}, s.fail(err)
	}
	if err := c.fetchLayers(ctx, s, img, m, store); err != nil {
		return content.Image{}, err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return content.Image{}, s.fail(err)
	}
	if err := store.PutBlob(ctx, m.Config.Digest.String(), bytes.NewReader(rawConfig)); err != nil {
		return content.Image{}, s.fail(err)
	}
	if err := store.PutBlob(ctx, digest.String(), bytes.NewReader(rawManifest)); err != nil {
		return content.Image{}, s.fail(err)
	}
	rec := content.Image{Digest: digest.String()}
	if ref.tag != "" {
		rec.Names = []string{ref.Name() + ":" + ref.tag}
	}
	if err := store.PutImage(ctx, rec); err != nil {
		return content.Image{}, s.fail(err)
	}
	out, err := store.Image(digest.String())
	if err != nil {
		return content.Image{}, s.fail(err)
	}
	return out, nil
}

// fetchLayers stores the layer blobs the store lacks, a few at a time.
func (c *Client) fetchLayers(ctx context.Context, s *session, img v1.Image, m *v1.Manifest, store *content.Store) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, 3)
	seen := map[v1.Hash]bool{}
	for _, l := range m.Layers {
		if seen[l.Digest] || store.HasBlob(l.Digest.String()) {
			continue
		}
		seen[l.Digest] = true
		sem <- struct{}{}
		wg.Add(1)
		go func(d v1.Hash) {
			defer func() { <-sem; wg.Done() }()
			err := fetchBlob(ctx, img, d, store)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = s.fail(err)
					cancel()
				}
				mu.Unlock()
			}
		}(l.Digest)
	}
	wg.Wait()
	return firstErr
}

// fetchBlob copies one layer blob into the store, which verifies it.
func fetchBlob(ctx context.Context, img v1.Image, d v1.Hash, store *content.Store) error {
	layer, err := img.LayerByDigest(d)
	if err != nil {
		return err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return store.PutBlob(ctx, d.String(), rc)
}

// Push writes a stored image to the registry under ref (its tag, or its
// digest, which must then be img.Digest).
func (c *Client) Push(ctx context.Context, ref Reference, ep *Endpoint, store *content.Store, img content.Image) error {
	if ref.digest != "" && ref.digest != img.Digest {
		return fmt.Errorf("push %s: the image's digest is %s", ref, img.Digest)
	}
	target := ref
	if ref.tag != "" {
		target.digest = ""
	}
	s, err := c.session(ctx, "push", target, ep)
	if err != nil {
		return err
	}
	defer s.close()
	s.ref = ref
	lease, err := store.Lease(ctx)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	defer lease.Release()
	v1img, err := store.V1Image(img)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if err := remote.Write(s.gref, v1img, s.opts...); err != nil {
		return s.fail(err)
	}
	return nil
}
