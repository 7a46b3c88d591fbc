package content

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Commit makes a new image from base plus one layer, the uncompressed tar
// stream layerTar, and stores it (named name unless name is ""). A
// non-empty diffID must be the digest of layerTar. A zero base (no Digest)
// makes an image from scratch.
//
// changes are applied over base's config the way `docker commit --change`
// does: Entrypoint, Cmd, WorkingDir, User, StopSignal and Healthcheck
// replace base's when set; Env entries replace the base entry of the same
// variable or are added; Labels are merged; Volumes and ExposedPorts are
// added. The layer is stored gzip-compressed, the manifest keeps base's
// kind (docker v2 schema 2 or OCI) and every other field of base's config
// is kept.
func (s *Store) Commit(ctx context.Context, base Image, layerTar io.Reader, diffID string, changes Config, name string) (Image, error) {
	if name != "" {
		if err := checkName(name); err != nil {
			return Image{}, err
		}
	}
	lease, err := s.Lease(ctx)
	if err != nil {
		return Image{}, err
	}
	defer lease.Release()

	m := manifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, Config: &descriptor{MediaType: MediaTypeOCIConfig}}
	cfg := map[string]json.RawMessage{}
	var cf v1.ConfigFile
	if base.Digest != "" {
		raw, err := s.readBlob(base.Digest, maxManifestSize)
		if err != nil {
			return Image{}, fmt.Errorf("commit: base image: %w", err)
		}
		bm, err := parseManifest(raw)
		if err != nil {
			return Image{}, fmt.Errorf("commit: base image %s: %w", base.Digest, err)
		}
		if bm.isIndex() {
			return Image{}, fmt.Errorf("commit: base %s is an index", base.Digest)
		}
		m = *bm
		cfgRaw, err := s.readBlob(m.Config.Digest, maxConfigSize)
		if err != nil {
			return Image{}, fmt.Errorf("commit: base config: %w", err)
		}
		if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
			return Image{}, fmt.Errorf("commit: base config: %w", err)
		}
		if err := json.Unmarshal(cfgRaw, &cf); err != nil {
			return Image{}, fmt.Errorf("commit: base config: %w", err)
		}
	} else {
		cf = v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}}
	}

	layer, gotDiffID, err := s.stageGzip(ctx, layerTar)
	if err != nil {
		return Image{}, fmt.Errorf("commit: layer: %w", err)
	}
	defer os.Remove(layer.path)
	if diffID != "" && diffID != gotDiffID {
		return Image{}, fmt.Errorf("commit: the layer has DiffID %s, not %s", gotDiffID, diffID)
	}
	h, err := v1.NewHash(gotDiffID)
	if err != nil {
		return Image{}, err
	}

	now := time.Now().UTC()
	cf.Config = applyChanges(cf.Config, changes)
	cf.RootFS.Type = "layers"
	cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, h)
	cf.History = append(cf.History, v1.History{Created: v1.Time{Time: now}, CreatedBy: "berth commit"})
	cf.Created = v1.Time{Time: now}
	for key, v := range map[string]any{
		"config": cf.Config, "rootfs": cf.RootFS, "history": cf.History, "created": cf.Created,
		"os": cf.OS, "architecture": cf.Architecture,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return Image{}, err
		}
		cfg[key] = b
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return Image{}, err
	}
	cfgDigest := digestOf(cfgRaw)

	layerType := MediaTypeOCILayerGzip
	if m.MediaType == MediaTypeDockerManifest {
		layerType = MediaTypeDockerLayer
	}
	m.Config = &descriptor{MediaType: m.Config.MediaType, Digest: cfgDigest, Size: int64(len(cfgRaw))}
	m.Layers = append(m.Layers, descriptor{MediaType: layerType, Digest: layer.digest, Size: layer.size})
	manRaw, err := json.Marshal(m)
	if err != nil {
		return Image{}, err
	}
	manDigest := digestOf(manRaw)

	if err := s.commitBlob(layer); err != nil {
		return Image{}, fmt.Errorf("commit: store layer: %w", err)
	}
	if err := s.PutBlob(ctx, cfgDigest, bytes.NewReader(cfgRaw)); err != nil {
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	if err := s.PutBlob(ctx, manDigest, bytes.NewReader(manRaw)); err != nil {
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	var names []string
	if name != "" {
		names = []string{name}
	}
	if err := s.PutImage(ctx, Image{Digest: manDigest, Names: names}); err != nil {
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	return s.Image(manDigest)
}

// stageGzip writes r gzip-compressed to the tmp directory and returns the
// staged blob and the digest of the uncompressed stream.
func (s *Store) stageGzip(ctx context.Context, r io.Reader) (staged, string, error) {
	f, err := os.CreateTemp(s.tmpDir(), "layer-")
	if err != nil {
		return staged{}, "", err
	}
	compressed, plain := sha256.New(), sha256.New()
	counter := &countWriter{w: io.MultiWriter(f, compressed)}
	zw := gzip.NewWriter(counter)
	_, err = io.Copy(io.MultiWriter(zw, plain), ctxReader{ctx, r})
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = s.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return staged{}, "", err
	}
	st := staged{path: f.Name(), digest: "sha256:" + hex.EncodeToString(compressed.Sum(nil)), size: counter.n}
	return st, "sha256:" + hex.EncodeToString(plain.Sum(nil)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// applyChanges applies commit changes to an image config.
func applyChanges(c v1.Config, ch Config) v1.Config {
	if ch.Entrypoint != nil {
		c.Entrypoint = ch.Entrypoint
	}
	if ch.Cmd != nil {
		c.Cmd = ch.Cmd
	}
	if ch.WorkingDir != "" {
		c.WorkingDir = ch.WorkingDir
	}
	if ch.User != "" {
		c.User = ch.User
	}
	if ch.StopSignal != "" {
		c.StopSignal = ch.StopSignal
	}
	if h := ch.Healthcheck; h != nil {
		c.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	for _, kv := range ch.Env {
		key, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range c.Env {
			if k, _, _ := strings.Cut(old, "="); k == key {
				c.Env[i], replaced = kv, true
			}
		}
		if !replaced {
			c.Env = append(c.Env, kv)
		}
	}
	if len(ch.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range c.Labels {
			labels[k] = v
		}
		for k, v := range ch.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	if len(ch.Volumes) > 0 {
		vols := map[string]struct{}{}
		for k := range c.Volumes {
			vols[k] = struct{}{}
		}
		for _, v := range ch.Volumes {
			vols[v] = struct{}{}
		}
		c.Volumes = vols
	}
	if len(ch.ExposedPorts) > 0 {
		ports := map[string]struct{}{}
		for k := range c.ExposedPorts {
			ports[k] = struct{}{}
		}
		for _, p := range ch.ExposedPorts {
			ports[p] = struct{}{}
		}
		c.ExposedPorts = ports
	}
	return c
}
