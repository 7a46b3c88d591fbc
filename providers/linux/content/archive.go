package content

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Annotations of OCI index entries that name an image.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// dockerEntry is one image in the manifest.json of a docker save archive.
type dockerEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Save writes the images with the given names or digests to w as a tarball
// that `docker load` accepts (manifest.json, repositories) and that is also
// an OCI image layout (oci-layout, index.json, blobs/sha256/…), so that
// Load gets the images back with the same digests. Names become RepoTags
// and index annotations; a digest saves the image without a name.
func (s *Store) Save(ctx context.Context, w io.Writer, names []string) error {
	if len(names) == 0 {
		return errors.New("save: no image given")
	}
	lease, err := s.Lease(ctx)
	if err != nil {
		return err
	}
	defer lease.Release()

	type saved struct {
		img  Image
		tags []string
	}
	var order []*saved
	byDigest := map[string]*saved{}
	for _, n := range names {
		img, err := s.Image(n)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		e := byDigest[img.Digest]
		if e == nil {
			e = &saved{img: img}
			byDigest[img.Digest] = e
			order = append(order, e)
		}
		if !isDigest(n) && !strings.Contains(n, "@") && !contains(e.tags, n) {
			e.tags = append(e.tags, n)
		}
	}

	aw := &archiveWriter{tw: tar.NewWriter(w), written: map[string]bool{}}
	aw.dir("blobs/")
	aw.dir("blobs/sha256/")
	aw.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	index := manifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []descriptor{}}
	dockerManifest := []dockerEntry{}
	repos := map[string]map[string]string{}
	for _, e := range order {
		img := e.img
		blobs := []string{img.Digest, img.ConfigDigest}
		entry := dockerEntry{Config: "blobs/sha256/" + strings.TrimPrefix(img.ConfigDigest, "sha256:"), RepoTags: e.tags, Layers: []string{}}
		for _, l := range img.Layers {
			blobs = append(blobs, l.Digest)
			entry.Layers = append(entry.Layers, "blobs/sha256/"+strings.TrimPrefix(l.Digest, "sha256:"))
		}
		for _, b := range blobs {
			aw.blob(ctx, s, b)
		}
		size, err := s.blobSize(img.Digest)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		desc := descriptor{MediaType: img.MediaType, Digest: img.Digest, Size: size}
		if len(e.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range e.tags {
			d := desc
			repo, tag := splitTag(t)
			d.Annotations = map[string]string{annotationImageName: t, annotationRefName: tag}
			index.Manifests = append(index.Manifests, d)
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tag] = strings.TrimPrefix(img.ConfigDigest, "sha256:")
		}
		dockerManifest = append(dockerManifest, entry)
	}
	aw.json("index.json", index)
	aw.json("manifest.json", dockerManifest)
	if len(repos) > 0 {
		aw.json("repositories", repos)
	}
	if aw.err == nil {
		aw.err = aw.tw.Close()
	}
	if aw.err != nil {
		return fmt.Errorf("save: %w", aw.err)
	}
	return nil
}

// splitTag splits "repo:tag" into repo and tag ("latest" when there is
// none).
func splitTag(n string) (repo, tag string) {
	if i := strings.LastIndexByte(n, ':'); i > strings.LastIndexByte(n, '/') {
		return n[:i], n[i+1:]
	}
	return n, "latest"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// archiveWriter writes a tar archive with fixed times, keeping the first
// error.
type archiveWriter struct {
	tw      *tar.Writer
	written map[string]bool
	err     error
}

// archiveTime is the modification time of every entry Save writes.
func archiveTime() time.Time { return time.Unix(0, 0).UTC() }

func (a *archiveWriter) dir(name string) {
	if a.err == nil {
		a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: archiveTime()})
	}
}

func (a *archiveWriter) file(name string, data []byte) {
	if a.err != nil {
		return
	}
	a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: archiveTime()})
	if a.err == nil {
		_, a.err = a.tw.Write(data)
	}
}

func (a *archiveWriter) json(name string, v any) {
	if a.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		a.err = err
		return
	}
	a.file(name, b)
}

// blob writes a stored blob as blobs/sha256/<hex>, once.
func (a *archiveWriter) blob(ctx context.Context, s *Store, digest string) {
	if a.err != nil || a.written[digest] {
		return
	}
	a.written[digest] = true
	f, err := s.Blob(digest)
	if err != nil {
		a.err = err
		return
	}
	defer f.Close()
	size, err := s.blobSize(digest)
	if err != nil {
		a.err = err
		return
	}
	name := "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
	if a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o444, Size: size, ModTime: archiveTime()}); a.err != nil {
		return
	}
	_, a.err = io.CopyN(a.tw, ctxReader{ctx, f}, size)
}

// archive is a tar archive read into a staging directory: every regular
// file staged (and hashed) under a number, links recorded by name.
type archive struct {
	files map[string]staged
	links map[string]string
}

// cleanName returns a tar entry name as a clean relative path, "" for the
// root.
func cleanName(n string) string {
	n = path.Clean("/" + n)
	return strings.TrimPrefix(n, "/")
}

// readArchive stages the regular files of a tar stream (plain, gzip or
// zstd) in dir.
func (s *Store) readArchive(ctx context.Context, r io.Reader, dir string) (*archive, error) {
	rc, _, err := decompress(r)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	a := &archive{files: map[string]staged{}, links: map[string]string{}}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		p := cleanName(h.Name)
		if p == "" {
			continue
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, fmt.Errorf("read archive entry %q: sparse files are not supported", h.Name)
			}
		}
		switch h.Typeflag {
		case tar.TypeReg:
			st, err := s.stage(ctx, dir, tr)
			if err != nil {
				return nil, fmt.Errorf("read archive entry %q: %w", h.Name, err)
			}
			a.files[p] = st
			delete(a.links, p)
		case tar.TypeSymlink:
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(p), target)
			}
			a.links[p] = cleanName(target)
			delete(a.files, p)
		case tar.TypeLink:
			a.links[p] = cleanName(h.Linkname)
			delete(a.files, p)
		}
	}
}

// lookup returns the staged file of a name, following links.
func (a *archive) lookup(p string) (staged, bool) {
	p = cleanName(p)
	for range 16 {
		if st, ok := a.files[p]; ok {
			return st, true
		}
		t, ok := a.links[p]
		if !ok {
			break
		}
		p = t
	}
	return staged{}, false
}

// read returns the content of a staged file up to limit bytes.
func readStaged(st staged, limit int64) ([]byte, error) {
	if st.size > limit {
		return nil, fmt.Errorf("%d bytes is more than the limit of %d", st.size, limit)
	}
	return os.ReadFile(st.path)
}

func (a *archive) readJSON(name string, v any) error {
	st, ok := a.lookup(name)
	if !ok {
		return fmt.Errorf("archive has no %s", name)
	}
	b, err := readStaged(st, maxConfigSize)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

// blob returns the archive's blob of an OCI descriptor, checking its
// digest and size.
func (a *archive) blob(d descriptor) (staged, error) {
	h, err := hexOf(d.Digest)
	if err != nil {
		return staged{}, err
	}
	st, ok := a.lookup("blobs/sha256/" + h)
	if !ok {
		return staged{}, fmt.Errorf("archive has no blob %s", d.Digest)
	}
	if st.digest != d.Digest {
		return staged{}, fmt.Errorf("archive blob %s is corrupt: its content has digest %s", d.Digest, st.digest)
	}
	if st.size != d.Size {
		return staged{}, fmt.Errorf("archive blob %s is %d bytes, its descriptor says %d", d.Digest, st.size, d.Size)
	}
	return st, nil
}

// candidate is an image found in an archive, verified but not stored.
type candidate struct {
	manifest staged
	config   staged
	cf       *v1.ConfigFile
	layers   []staged
	names    []string
}

// Load reads a docker save tarball or a tarball of an OCI image layout
// (either may be gzip- or zstd-compressed), verifies every blob digest and
// every layer's DiffID, and only then stores the images and their names
// (normalised: "busybox" becomes "docker.io/library/busybox:latest"). It
// stores nothing when anything fails to verify. Of an index, the image for
// linux and the host's architecture is loaded.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]Image, error) {
	lease, err := s.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	dir, err := os.MkdirTemp(s.tmpDir(), "load-")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer os.RemoveAll(dir)

	a, err := s.readArchive(ctx, r, dir)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var cands []*candidate
	_, isOCI := a.lookup("index.json")
	_, isDocker := a.lookup("manifest.json")
	switch {
	case isOCI:
		cands, err = a.ociImages(isDocker)
	case isDocker:
		cands, err = a.dockerImages(ctx, s, dir)
	default:
		err = errors.New("the archive is neither an OCI image layout (no index.json) nor a docker save archive (no manifest.json)")
	}
	if err == nil && len(cands) == 0 {
		err = errors.New("the archive holds no image")
	}
	if err == nil {
		err = verifyDiffIDs(ctx, cands)
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}

	committed := map[string]bool{}
	var out []Image
	for _, c := range cands {
		for _, st := range append(append([]staged{}, c.layers...), c.config, c.manifest) {
			if committed[st.digest] {
				continue
			}
			if err := s.commitBlob(st); err != nil {
				return out, fmt.Errorf("load: store blob %s: %w", st.digest, err)
			}
			committed[st.digest] = true
		}
		if err := s.PutImage(ctx, Image{Digest: c.manifest.digest, Names: c.names}); err != nil {
			return out, fmt.Errorf("load: %w", err)
		}
		img, err := s.Image(c.manifest.digest)
		if err != nil {
			return out, fmt.Errorf("load: %w", err)
		}
		out = append(out, img)
	}
	return out, nil
}

// verifyDiffIDs checks every layer's uncompressed digest against its
// image config.
func verifyDiffIDs(ctx context.Context, cands []*candidate) error {
	known := map[string]string{}
	for _, c := range cands {
		for i, l := range c.layers {
			got, ok := known[l.digest]
			if !ok {
				var err error
				if got, err = diffIDOf(ctx, l); err != nil {
					return fmt.Errorf("layer %s: %w", l.digest, err)
				}
				known[l.digest] = got
			}
			if want := c.cf.RootFS.DiffIDs[i].String(); got != want {
				return fmt.Errorf("layer %s is corrupt: its uncompressed content has digest %s, the image config says %s", l.digest, got, want)
			}
		}
	}
	return nil
}

// diffIDOf hashes the uncompressed content of a staged layer.
func diffIDOf(ctx context.Context, st staged) (string, error) {
	f, err := os.Open(st.path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rc, c, err := decompress(ctxReader{ctx, f})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	if c == uncompressed {
		return st.digest, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ociImages finds the images of an OCI image layout. With manifest.json
// present too (docker 25 and later write both), its RepoTags name the
// images.
func (a *archive) ociImages(withDocker bool) ([]*candidate, error) {
	var layout struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	if _, ok := a.lookup("oci-layout"); ok {
		if err := a.readJSON("oci-layout", &layout); err != nil {
			return nil, err
		}
		if layout.ImageLayoutVersion != "1.0.0" {
			return nil, fmt.Errorf("unsupported OCI image layout version %q", layout.ImageLayoutVersion)
		}
	}
	var index manifest
	if err := a.readJSON("index.json", &index); err != nil {
		return nil, err
	}
	if index.SchemaVersion != 2 {
		return nil, fmt.Errorf("index.json: unsupported schema version %d", index.SchemaVersion)
	}
	var out []*candidate
	byDigest := map[string]*candidate{}
	for _, d := range index.Manifests {
		if d.MediaType != "" && d.MediaType != MediaTypeOCIManifest && d.MediaType != MediaTypeDockerManifest && !isIndexType(d.MediaType) {
			continue // not an image (an artifact, an attestation)
		}
		c, err := a.ociImage(d, 0)
		if err != nil {
			return nil, err
		}
		names, err := namesFromAnnotations(d.Annotations)
		if err != nil {
			return nil, err
		}
		if prev := byDigest[c.manifest.digest]; prev != nil {
			prev.names = appendNew(prev.names, names...)
			continue
		}
		c.names = names
		byDigest[c.manifest.digest] = c
		out = append(out, c)
	}
	if withDocker {
		var entries []dockerEntry
		if err := a.readJSON("manifest.json", &entries); err != nil {
			return nil, err
		}
		for _, e := range entries {
			st, ok := a.lookup(e.Config)
			if !ok {
				continue
			}
			for _, c := range out {
				if c.config.digest == st.digest {
					for _, t := range e.RepoTags {
						n, err := normalizeName(t)
						if err != nil {
							return nil, err
						}
						c.names = appendNew(c.names, n)
					}
				}
			}
		}
	}
	return out, nil
}

// ociImage reads the image of a descriptor; of an index, the image for
// linux and the host architecture present in the archive.
func (a *archive) ociImage(d descriptor, depth int) (*candidate, error) {
	if depth > 4 {
		return nil, errors.New("index nesting is too deep")
	}
	st, err := a.blob(d)
	if err != nil {
		return nil, err
	}
	raw, err := readStaged(st, maxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.isIndex() {
		for _, child := range m.Manifests {
			if child.Platform != nil && (child.Platform.OS != "linux" || child.Platform.Architecture != runtime.GOARCH) {
				continue
			}
			if h, err := hexOf(child.Digest); err != nil || !a.has("blobs/sha256/"+h) {
				continue
			}
			return a.ociImage(child, depth+1)
		}
		return nil, fmt.Errorf("index %s has no image for linux/%s in the archive", d.Digest, runtime.GOARCH)
	}
	c := &candidate{manifest: st}
	if c.config, err = a.blob(*m.Config); err != nil {
		return nil, err
	}
	raw, err = readStaged(c.config, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if c.cf, err = parseConfig(raw); err != nil {
		return nil, err
	}
	if len(c.cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: config lists %d layer DiffIDs for %d layers", d.Digest, len(c.cf.RootFS.DiffIDs), len(m.Layers))
	}
	for _, l := range m.Layers {
		lst, err := a.blob(l)
		if err != nil {
			return nil, err
		}
		c.layers = append(c.layers, lst)
	}
	return c, nil
}

func (a *archive) has(p string) bool {
	_, ok := a.lookup(p)
	return ok
}

// dockerImages finds the images of a docker save archive and makes an OCI
// manifest for each (staged in dir), since the archive has none.
func (a *archive) dockerImages(ctx context.Context, s *Store, dir string) ([]*candidate, error) {
	var entries []dockerEntry
	if err := a.readJSON("manifest.json", &entries); err != nil {
		return nil, err
	}
	var out []*candidate
	for _, e := range entries {
		c := &candidate{}
		var ok bool
		if c.config, ok = a.lookup(e.Config); !ok {
			return nil, fmt.Errorf("archive has no config file %q", e.Config)
		}
		if want := digestInPath(e.Config); want != "" && want != c.config.digest {
			return nil, fmt.Errorf("archive file %s is corrupt: its content has digest %s", e.Config, c.config.digest)
		}
		raw, err := readStaged(c.config, maxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", e.Config, err)
		}
		if c.cf, err = parseConfig(raw); err != nil {
			return nil, err
		}
		if len(c.cf.RootFS.DiffIDs) != len(e.Layers) {
			return nil, fmt.Errorf("image %s: config lists %d layer DiffIDs for %d layers", e.Config, len(c.cf.RootFS.DiffIDs), len(e.Layers))
		}
		m := manifest{
			SchemaVersion: 2,
			MediaType:     MediaTypeOCIManifest,
			Config:        &descriptor{MediaType: MediaTypeOCIConfig, Digest: c.config.digest, Size: c.config.size},
			Layers:        []descriptor{},
		}
		for _, lp := range e.Layers {
			st, ok := a.lookup(lp)
			if !ok {
				return nil, fmt.Errorf("archive has no layer file %q", lp)
			}
			if want := digestInPath(lp); want != "" && want != st.digest {
				return nil, fmt.Errorf("archive file %s is corrupt: its content has digest %s", lp, st.digest)
			}
			mt, err := layerMediaType(st)
			if err != nil {
				return nil, err
			}
			m.Layers = append(m.Layers, descriptor{MediaType: mt, Digest: st.digest, Size: st.size})
			c.layers = append(c.layers, st)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		if c.manifest, err = s.stage(ctx, dir, bytes.NewReader(b)); err != nil {
			return nil, err
		}
		for _, t := range e.RepoTags {
			n, err := normalizeName(t)
			if err != nil {
				return nil, err
			}
			c.names = appendNew(c.names, n)
		}
		out = append(out, c)
	}
	return out, nil
}

// layerMediaType returns the OCI media type of a staged layer from its
// first bytes.
func layerMediaType(st staged) (string, error) {
	f, err := os.Open(st.path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	switch sniff(bufio.NewReader(f)) {
	case gzipped:
		return MediaTypeOCILayerGzip, nil
	case zstded:
		return MediaTypeOCILayerZstd, nil
	}
	return MediaTypeOCILayer, nil
}

// digestInPath returns the digest a docker archive file name carries
// ("blobs/sha256/<hex>", "sha256:<hex>", "<hex>.json", "<hex>.tar.gz"), or
// "".
func digestInPath(p string) string {
	p = cleanName(p)
	var h string
	switch {
	case strings.HasPrefix(p, "blobs/sha256/"):
		h = strings.TrimPrefix(p, "blobs/sha256/")
	case strings.HasPrefix(p, "sha256:"):
		h = strings.TrimPrefix(p, "sha256:")
	case strings.HasSuffix(p, ".json"):
		h = strings.TrimSuffix(p, ".json")
	case strings.HasSuffix(p, ".tar.gz"):
		h = strings.TrimSuffix(p, ".tar.gz")
	default:
		return ""
	}
	if !isDigest("sha256:" + h) {
		return ""
	}
	return "sha256:" + h
}

// namesFromAnnotations returns the normalised image name of an index entry:
// io.containerd.image.name, else org.opencontainers.image.ref.name when it
// is a full reference (a bare tag names no repository).
func namesFromAnnotations(ann map[string]string) ([]string, error) {
	n := ann[annotationImageName]
	if n == "" {
		n = ann[annotationRefName]
		if !strings.ContainsAny(n, "/:") {
			return nil, nil
		}
	}
	norm, err := normalizeName(n)
	if err != nil {
		return nil, err
	}
	return []string{norm}, nil
}

// normalizeName turns an image name from an archive into a full reference
// ("busybox" → "docker.io/library/busybox:latest").
func normalizeName(s string) (string, error) {
	t, err := name.NewTag(s)
	if err != nil {
		return "", fmt.Errorf("invalid image name %q in the archive: %w", s, err)
	}
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + t.RepositoryStr() + ":" + t.TagStr(), nil
}

func appendNew(list []string, add ...string) []string {
	for _, s := range add {
		if !contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}
