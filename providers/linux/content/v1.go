package content

import (
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// V1Image returns a go-containerregistry view of a stored image, to push
// it: its manifest and config are the stored bytes (so its digest is
// img.Digest) and its layers read the stored blobs. Hold a Lease while
// using it, or a concurrent Prune may delete the blobs.
func (s *Store) V1Image(img Image) (v1.Image, error) {
	rec, err := s.record(img.Digest)
	if err != nil {
		return nil, err
	}
	raw, err := s.readBlob(rec.Digest, maxManifestSize)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", rec.Digest, err)
	}
	cfgRaw, err := s.readBlob(rec.ConfigDigest, maxConfigSize)
	if err != nil {
		return nil, err
	}
	blobs := map[string]descriptor{m.Config.Digest: *m.Config}
	for _, l := range m.Layers {
		blobs[l.Digest] = l
	}
	return partial.CompressedToImage(&v1Core{s: s, manifest: raw, mediaType: rec.MediaType, config: cfgRaw, blobs: blobs})
}

// v1Core is the minimal go-containerregistry image over the store.
type v1Core struct {
	s         *Store
	manifest  []byte
	mediaType string
	config    []byte
	blobs     map[string]descriptor
}

func (c *v1Core) RawConfigFile() ([]byte, error)      { return c.config, nil }
func (c *v1Core) MediaType() (types.MediaType, error) { return types.MediaType(c.mediaType), nil }
func (c *v1Core) RawManifest() ([]byte, error)        { return c.manifest, nil }

func (c *v1Core) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := c.blobs[h.String()]
	if !ok {
		return nil, fmt.Errorf("image has no blob %s", h)
	}
	return &v1Blob{s: c.s, d: d}, nil
}

// v1Blob is a stored blob as a go-containerregistry compressed layer.
type v1Blob struct {
	s *Store
	d descriptor
}

func (b *v1Blob) Digest() (v1.Hash, error)            { return v1.NewHash(b.d.Digest) }
func (b *v1Blob) Compressed() (io.ReadCloser, error)  { return b.s.Blob(b.d.Digest) }
func (b *v1Blob) Size() (int64, error)                { return b.d.Size, nil }
func (b *v1Blob) MediaType() (types.MediaType, error) { return types.MediaType(b.d.MediaType), nil }
