package content

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Media types of manifests, configs and layers.
const (
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIConfig      = "application/vnd.oci.image.config.v1+json"
	MediaTypeOCILayer       = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeOCILayerGzip   = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCILayerZstd   = "application/vnd.oci.image.layer.v1.tar+zstd"
)

// Size limits of the JSON documents the store reads.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 32 << 20
)

// Layer is one layer of an image.
type Layer struct {
	// Digest is the digest of the stored (usually compressed) blob.
	Digest string `json:"digest"`
	// DiffID is the digest of the uncompressed tar stream, from the
	// image config.
	DiffID    string `json:"diffID"`
	MediaType string `json:"mediaType"`
	// Size is the size of the stored blob.
	Size int64 `json:"size"`
}

// Healthcheck is the health check an image declares.
type Healthcheck struct {
	// Test is ["NONE"], ["CMD", args...] or ["CMD-SHELL", command].
	Test        []string      `json:"test,omitempty"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	StartPeriod time.Duration `json:"startPeriod,omitempty"`
	Retries     int           `json:"retries,omitempty"`
}

// Config is the part of an image config that says how to run a container
// of it. Volumes and ExposedPorts are sorted.
type Config struct {
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          []string          `json:"env,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	User         string            `json:"user,omitempty"`
	Volumes      []string          `json:"volumes,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"` // "80/tcp"
	StopSignal   string            `json:"stopSignal,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Healthcheck  *Healthcheck      `json:"healthcheck,omitempty"`
}

// Image is an image in the store.
type Image struct {
	// Names are the names the image goes by, sorted.
	Names []string `json:"-"`
	// Digest is the digest of the image manifest.
	Digest       string `json:"digest"`
	MediaType    string `json:"mediaType"`
	ConfigDigest string `json:"configDigest"`
	Config       Config `json:"config"`
	// Layers are the layers, lowest first.
	Layers  []Layer   `json:"layers"`
	Created time.Time `json:"created"`
	// Size is the sum of the sizes of the image's blobs as stored: the
	// manifest, the config and the (compressed) layers.
	Size int64 `json:"size"`
	// OS and Architecture are the platform from the image config.
	OS           string `json:"os,omitempty"`
	Architecture string `json:"architecture,omitempty"`
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	URLs        []string          `json:"urls,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *v1.Platform      `json:"platform,omitempty"`
}

// manifest is an image manifest (docker v2 schema 2 or OCI) or an index.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *descriptor       `json:"config,omitempty"`
	Layers        []descriptor      `json:"layers,omitempty"`
	Manifests     []descriptor      `json:"manifests,omitempty"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// isIndex reports whether m is an index or a manifest list.
func (m *manifest) isIndex() bool {
	switch m.MediaType {
	case MediaTypeOCIIndex, MediaTypeDockerList:
		return true
	case "":
		return m.Config == nil && m.Manifests != nil
	}
	return false
}

func isIndexType(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

// parseManifest decodes an image manifest and checks its shape.
func parseManifest(raw []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("unsupported manifest schema version %d (only version 2 is supported)", m.SchemaVersion)
	}
	if m.isIndex() {
		return &m, nil
	}
	switch m.MediaType {
	case "", MediaTypeOCIManifest, MediaTypeDockerManifest:
	default:
		return nil, fmt.Errorf("unsupported manifest media type %q", m.MediaType)
	}
	if m.Config == nil {
		return nil, errors.New("manifest has no config")
	}
	if _, err := hexOf(m.Config.Digest); err != nil {
		return nil, fmt.Errorf("manifest config: %w", err)
	}
	for i, l := range m.Layers {
		if _, err := hexOf(l.Digest); err != nil {
			return nil, fmt.Errorf("manifest layer %d: %w", i, err)
		}
	}
	return &m, nil
}

// parseConfig decodes an image config.
func parseConfig(raw []byte) (*v1.ConfigFile, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decode image config: %w", err)
	}
	return cf, nil
}

// configOf converts the run part of an image config.
func configOf(c v1.Config) Config {
	out := Config{
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		User:       c.User,
		StopSignal: c.StopSignal,
		Labels:     c.Labels,
	}
	for v := range c.Volumes {
		out.Volumes = append(out.Volumes, v)
	}
	sort.Strings(out.Volumes)
	for p := range c.ExposedPorts {
		out.ExposedPorts = append(out.ExposedPorts, p)
	}
	sort.Strings(out.ExposedPorts)
	if h := c.Healthcheck; h != nil {
		out.Healthcheck = &Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	return out
}

// describe builds the record of the image whose manifest is the stored
// blob digest, checking that every blob it references is stored with the
// size the manifest gives.
func (s *Store) describe(digest string) (Image, error) {
	raw, err := s.readBlob(digest, maxManifestSize)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", digest, err)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", digest, err)
	}
	if m.isIndex() {
		return Image{}, fmt.Errorf("image %s is an image index, not an image manifest", digest)
	}
	img := Image{Digest: digest, MediaType: m.MediaType, ConfigDigest: m.Config.Digest, Size: int64(len(raw))}
	if img.MediaType == "" {
		img.MediaType = MediaTypeOCIManifest
	}
	cfgRaw, err := s.readBlob(m.Config.Digest, maxConfigSize)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: config: %w", digest, err)
	}
	if int64(len(cfgRaw)) != m.Config.Size {
		return Image{}, fmt.Errorf("image %s: config blob is %d bytes, the manifest says %d", digest, len(cfgRaw), m.Config.Size)
	}
	img.Size += int64(len(cfgRaw))
	cf, err := parseConfig(cfgRaw)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return Image{}, fmt.Errorf("image %s: config lists %d layer DiffIDs for %d layers", digest, len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	img.Config = configOf(cf.Config)
	img.Created = cf.Created.Time
	img.OS, img.Architecture = cf.OS, cf.Architecture
	for i, l := range m.Layers {
		size, err := s.blobSize(l.Digest)
		if err != nil {
			return Image{}, fmt.Errorf("image %s: layer %d: %w", digest, i, err)
		}
		if size != l.Size {
			return Image{}, fmt.Errorf("image %s: layer blob %s is %d bytes, the manifest says %d", digest, l.Digest, size, l.Size)
		}
		diffID := cf.RootFS.DiffIDs[i].String()
		if !isDigest(diffID) {
			return Image{}, fmt.Errorf("image %s: layer %d: invalid DiffID %q", digest, i, diffID)
		}
		img.Layers = append(img.Layers, Layer{Digest: l.Digest, DiffID: diffID, MediaType: l.MediaType, Size: l.Size})
		img.Size += l.Size
	}
	return img, nil
}

func (s *Store) recordPath(digest string) (string, error) {
	h, err := hexOf(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.root, "images", h+".json"), nil
}

// record reads the record of an image by digest, without names.
func (s *Store) record(digest string) (Image, error) {
	p, err := s.recordPath(digest)
	if err != nil {
		return Image{}, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Image{}, fmt.Errorf("image %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return Image{}, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return Image{}, fmt.Errorf("image record %s: %w", digest, err)
	}
	return img, nil
}

// records reads every image record.
func (s *Store) records() ([]Image, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "images"))
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, e := range ents {
		h, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		img, err := s.record("sha256:" + h)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// names reads the name table.
func (s *Store) names() (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(s.root, "names.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		Names map[string]string `json:"names"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("content store name table: %w", err)
	}
	if doc.Names == nil {
		doc.Names = map[string]string{}
	}
	return doc.Names, nil
}

// saveNames writes the name table; the caller holds the meta lock.
func (s *Store) saveNames(names map[string]string) error {
	b, err := json.MarshalIndent(struct {
		Names map[string]string `json:"names"`
	}{names}, "", "  ")
	if err != nil {
		return err
	}
	return s.writeFileAtomic(filepath.Join(s.root, "names.json"), append(b, '\n'))
}

// namesOf returns the sorted names of digest.
func namesOf(names map[string]string, digest string) []string {
	var out []string
	for n, d := range names {
		if d == digest {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// checkName validates an image name.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty image name")
	case len(name) > 1024:
		return fmt.Errorf("image name %.40q... is too long", name)
	case strings.HasPrefix(name, "sha256:"):
		return fmt.Errorf("invalid image name %q: a name cannot look like a digest", name)
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("invalid image name %q: it contains white space or control characters", name)
	}
	return nil
}

// PutImage records the image whose manifest is the stored blob img.Digest
// and gives it img.Names. Every other field is derived from the stored
// manifest and config (a given ConfigDigest must match); every blob the
// manifest references must be stored already, with the size it gives.
func (s *Store) PutImage(ctx context.Context, img Image) error {
	for _, n := range img.Names {
		if err := checkName(n); err != nil {
			return err
		}
	}
	unlockGC, err := s.lock(ctx, gcLock, false)
	if err != nil {
		return err
	}
	defer unlockGC()
	rec, err := s.describe(img.Digest)
	if err != nil {
		return err
	}
	if img.ConfigDigest != "" && img.ConfigDigest != rec.ConfigDigest {
		return fmt.Errorf("image %s has config %s, not %s", img.Digest, rec.ConfigDigest, img.ConfigDigest)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	p, err := s.recordPath(rec.Digest)
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx, metaLock, true)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.writeFileAtomic(p, append(b, '\n')); err != nil {
		return fmt.Errorf("record image %s: %w", img.Digest, err)
	}
	if len(img.Names) == 0 {
		return nil
	}
	names, err := s.names()
	if err != nil {
		return err
	}
	for _, n := range img.Names {
		names[n] = rec.Digest
	}
	return s.saveNames(names)
}

// Image returns the image with the given name or manifest digest
// ("sha256:…"). The error matches ErrNotFound when there is none.
func (s *Store) Image(nameOrDigest string) (Image, error) {
	names, err := s.names()
	if err != nil {
		return Image{}, err
	}
	digest := nameOrDigest
	if !isDigest(nameOrDigest) {
		d, ok := names[nameOrDigest]
		if !ok {
			return Image{}, fmt.Errorf("image %s: %w", nameOrDigest, ErrNotFound)
		}
		digest = d
	}
	img, err := s.record(digest)
	if err != nil {
		return Image{}, err
	}
	img.Names = namesOf(names, digest)
	return img, nil
}

// Images returns every image in the store, ordered by first name (images
// without names last) and digest.
func (s *Store) Images() ([]Image, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	imgs, err := s.records()
	if err != nil {
		return nil, err
	}
	for i := range imgs {
		imgs[i].Names = namesOf(names, imgs[i].Digest)
	}
	sort.Slice(imgs, func(i, j int) bool {
		a, b := imgs[i], imgs[j]
		if (len(a.Names) == 0) != (len(b.Names) == 0) {
			return len(a.Names) > 0
		}
		if len(a.Names) > 0 && a.Names[0] != b.Names[0] {
			return a.Names[0] < b.Names[0]
		}
		return a.Digest < b.Digest
	})
	return imgs, nil
}

// Tag gives the image digest the name, taking the name from the image that
// had it, if any.
func (s *Store) Tag(name, digest string) error {
	if err := checkName(name); err != nil {
		return err
	}
	unlock, err := s.lock(context.Background(), metaLock, true)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.record(digest); err != nil {
		return err
	}
	names, err := s.names()
	if err != nil {
		return err
	}
	if names[name] == digest {
		return nil
	}
	names[name] = digest
	return s.saveNames(names)
}

// Untag removes a name. The image stays, also when it has no name left.
func (s *Store) Untag(name string) error {
	unlock, err := s.lock(context.Background(), metaLock, true)
	if err != nil {
		return err
	}
	defer unlock()
	names, err := s.names()
	if err != nil {
		return err
	}
	if _, ok := names[name]; !ok {
		return fmt.Errorf("image name %s: %w", name, ErrNotFound)
	}
	delete(names, name)
	return s.saveNames(names)
}

// Remove removes the image digest and its names, and deletes the blobs no
// other image uses unless a pull, load or lease is under way (the next
// Prune or Remove deletes them then).
func (s *Store) Remove(digest string) error {
	p, err := s.recordPath(digest)
	if err != nil {
		return err
	}
	unlock, err := s.lock(context.Background(), metaLock, true)
	if err != nil {
		return err
	}
	if _, err := s.record(digest); err != nil {
		unlock()
		return err
	}
	names, err := s.names()
	if err == nil {
		n := len(names)
		for k, d := range names {
			if d == digest {
				delete(names, k)
			}
		}
		if len(names) != n {
			err = s.saveNames(names)
		}
	}
	if err == nil {
		err = os.Remove(p)
	}
	unlock()
	if err != nil {
		return fmt.Errorf("remove image %s: %w", digest, err)
	}
	if unlockGC, ok := s.tryLock(gcLock); ok {
		defer unlockGC()
		unlockMeta, err := s.lock(context.Background(), metaLock, true)
		if err != nil {
			return err
		}
		defer unlockMeta()
		_, err = s.sweep()
		return err
	}
	return nil
}

// Prune removes every image for which keep returns false, with its names,
// then deletes every blob no remaining image uses and any leftover of an
// interrupted write. It returns the images removed and the bytes freed.
// It waits for pulls, loads and leases under way to finish. keep runs
// while the store is locked: it may read the store but not change it.
func (s *Store) Prune(ctx context.Context, keep func(Image) bool) (removed []Image, freed int64, err error) {
	unlockGC, err := s.lock(ctx, gcLock, true)
	if err != nil {
		return nil, 0, err
	}
	defer unlockGC()
	unlock, err := s.lock(ctx, metaLock, true)
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	names, err := s.names()
	if err != nil {
		return nil, 0, err
	}
	imgs, err := s.records()
	if err != nil {
		return nil, 0, err
	}
	changed := false
	for _, img := range imgs {
		img.Names = namesOf(names, img.Digest)
		if keep(img) {
			continue
		}
		p, err := s.recordPath(img.Digest)
		if err != nil {
			return removed, freed, err
		}
		if err := os.Remove(p); err != nil {
			return removed, freed, fmt.Errorf("prune image %s: %w", img.Digest, err)
		}
		for _, n := range img.Names {
			delete(names, n)
			changed = true
		}
		removed = append(removed, img)
	}
	if changed {
		if err := s.saveNames(names); err != nil {
			return removed, freed, err
		}
	}
	freed, err = s.sweep()
	return removed, freed, err
}

// sweep deletes the blobs no image record references and everything in the
// tmp directory. The caller holds both locks exclusively.
func (s *Store) sweep() (int64, error) {
	imgs, err := s.records()
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	for _, img := range imgs {
		used[img.Digest] = true
		used[img.ConfigDigest] = true
		for _, l := range img.Layers {
			used[l.Digest] = true
		}
	}
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return 0, err
	}
	var freed int64
	for _, e := range ents {
		if used["sha256:"+e.Name()] {
			continue
		}
		p := filepath.Join(s.blobDir(), e.Name())
		if fi, err := e.Info(); err == nil {
			freed += fi.Size()
		}
		if err := os.RemoveAll(p); err != nil {
			return freed, fmt.Errorf("delete blob: %w", err)
		}
	}
	tmp, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return freed, err
	}
	for _, e := range tmp {
		if err := os.RemoveAll(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return freed, err
		}
	}
	return freed, nil
}
