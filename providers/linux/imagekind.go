package linux

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/content"
	"github.com/berthhq/berth/providers/linux/registry"
	"github.com/zclconf/go-cty/cty"
)

// validateImage checks an image's configuration; hostPaths tells whether
// it may look at the host's files (the archive).
func validateImage(o obj, hostPaths bool) providers.Diagnostics {
	var diags providers.Diagnostics
	if !o.set("ref") && !o.unknown("ref") && !o.set("archive") && !o.unknown("archive") {
		diags = append(diags, providers.Errorf("an image needs ref (to pull it) or archive (to load it)")...)
	}
	if r := o.str("ref"); r != "" {
		ref, err := registry.ParseReference(r)
		switch {
		case err != nil:
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("ref"), "%s", err)...)
		case o.str("registry") != "" && ref.Registry() != o.str("registry"):
			// The registry's credentials must never go to another host.
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("registry"),
				"the image %q is on %s, not on the registry %s: write the ref as \"%s/%s\", or drop registry",
				r, ref.Registry(), o.str("registry"), o.str("registry"), ref.Repository())...)
		}
	}
	switch o.str("pull") {
	case "", "missing", "always":
	default:
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("pull"), `unknown pull policy %q: use "missing" or "always"`, o.str("pull"))...)
	}
	if a := o.str("archive"); a != "" && hostPaths {
		if _, err := os.Stat(a); err != nil {
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("archive"), "image archive %q cannot be read: %s", a, err)...)
		}
	}
	return diags
}

// imageName is the name under which the content store keeps the image of
// a resource.
func imageName(o obj) string {
	r := o.str("ref")
	if r == "" {
		return ""
	}
	ref, err := registry.ParseReference(r)
	if err != nil {
		return r
	}
	return ref.String()
}

// endpointFor returns the registry settings for ref: the registry resource
// the image names, else one declared for the ref's host.
// Only a registry whose address is the ref's host is ever used.
func (p *Provider) endpointFor(_ obj, ref registry.Reference) *registry.Endpoint {
	return p.endpoint(ref.Registry())
}

func (p *Provider) planImage(ctx context.Context, prior, cfg cty.Value) (resp providers.PlanResponse) {
	o, po := obj{cfg}, obj{prior}
	pull := o.str("pull")
	if pull == "" {
		pull = "missing"
	}
	planned := with(cfg, "pull", cty.StringVal(pull))
	unknown := func() providers.PlanResponse {
		planned = with(planned, "digest", cty.UnknownVal(cty.String))
		resp.Planned = with(planned, "id", cty.UnknownVal(cty.String))
		return resp
	}
	known := func(name, digest string) providers.PlanResponse {
		planned = with(planned, "digest", cty.StringVal(digest))
		resp.Planned = with(planned, "id", cty.StringVal(name+"@"+digest))
		return resp
	}
	if o.unknown("ref") || o.unknown("archive") || o.unknown("registry") {
		return unknown()
	}
	if o.str("ref") == "" {
		// From an archive: the digest is known once it is loaded.
		if !prior.IsNull() && po.str("archive") == o.str("archive") && po.str("digest") != "" {
			return known(po.str("archive"), po.str("digest"))
		}
		return unknown()
	}
	ref, err := registry.ParseReference(o.str("ref"))
	if err != nil {
		resp.Diagnostics = providers.AttributeErrorf(cty.GetAttrPath("ref"), "%s", err)
		return resp
	}
	// A digest in the reference may name an index: what the store and the
	// registry give for it is the image of this host's platform.
	name := ref.String()
	local, lerr := p.hosts.Content.Image(name)
	haveLocal := lerr == nil
	if haveLocal && (pull == "missing" || ref.Digest() != "") {
		return known(name, local.Digest)
	}
	if o.str("archive") != "" {
		if haveLocal {
			return known(name, local.Digest)
		}
		return unknown()
	}
	if p.opts.Confined {
		resp.Diagnostics = append(resp.Diagnostics, providers.Diagnostic{
			Severity: providers.Warning,
			Summary:  fmt.Sprintf("%s not checked on its registry: a plan sent to the agent contacts no registry", name),
			Detail:   "The host's own plans and applies check it.",
		})
		if haveLocal {
			return known(name, local.Digest)
		}
		return unknown()
	}
	ep := p.endpointFor(o, ref)
	digest, err := p.regCli.Resolve(ctx, ref, ep)
	if err == nil {
		return known(name, digest)
	}
	switch {
	case haveLocal:
		resp.Diagnostics = append(resp.Diagnostics, providers.Diagnostic{
			Severity: providers.Warning,
			Summary:  fmt.Sprintf("cannot check %s on its registry; planning with the local image %s", name, local.Digest),
			Detail:   err.Error(),
		})
		return known(name, local.Digest)
	case o.str("registry") != "" && ep == nil:
		// The registry resource is not applied yet: its credentials
		// come with this apply.
		return unknown()
	case o.str("registry") != "" && !isNotFound(err):
		// The registry resource may be changing in this same apply (a
		// new password, a ca_file): the image is resolved after it,
		// with its new settings. Nothing uses the image yet (it is not
		// in the store), so nothing is replaced for it.
		resp.Diagnostics = append(resp.Diagnostics, providers.Diagnostic{
			Severity: providers.Warning,
			Summary:  fmt.Sprintf("cannot resolve %s with the registry's current settings; it is resolved again at apply, after the registry resource", name),
			Detail:   err.Error(),
		})
		return unknown()
	}
	resp.Diagnostics = providers.AttributeErrorf(cty.GetAttrPath("ref"), "image %s: %s", name, err)
	return resp
}

func (p *Provider) applyImage(ctx context.Context, owner providers.Owner, prior, planned cty.Value) (resp providers.ApplyResponse) {
	o := obj{planned}
	if err := p.remember(owner, KindImage, "", planned); err != nil {
		resp.Diagnostics = providers.Errorf("image: %s", err)
		return resp
	}
	name := imageName(o)
	var img content.Image
	var err error
	if a := o.str("archive"); a != "" {
		img, err = p.loadArchive(ctx, a, name)
	} else {
		img, err = p.pullImage(ctx, o, name)
	}
	if err != nil {
		resp.Diagnostics = providers.AttributeErrorf(cty.GetAttrPath("ref"), "%s", err)
		return resp
	}
	label := name
	if label == "" {
		label = o.str("archive")
	}
	id := label + "@" + img.Digest
	planned = with(planned, "digest", cty.StringVal(img.Digest))
	planned = with(planned, "id", cty.StringVal(id))
	if err := p.remember(owner, KindImage, id, planned); err != nil {
		resp.Diagnostics = providers.Errorf("image %s: %s", label, err)
		return resp
	}
	resp.ID, resp.State = id, planned
	return resp
}

// pullImage pulls the image unless the store has it already as planned.
func (p *Provider) pullImage(ctx context.Context, o obj, name string) (content.Image, error) {
	ref, err := registry.ParseReference(o.str("ref"))
	if err != nil {
		return content.Image{}, err
	}
	want := o.str("digest")
	if local, err := p.hosts.Content.Image(name); err == nil && (want == "" && o.str("pull") != "always" || local.Digest == want) {
		return local, nil
	}
	if want != "" {
		if local, err := p.hosts.Content.Image(want); err == nil {
			if err := p.hosts.Content.Tag(name, local.Digest); err != nil {
				return content.Image{}, err
			}
			return local, nil
		}
	}
	img, err := p.regCli.Pull(ctx, ref, p.endpointFor(o, ref), p.hosts.Content)
	if err != nil {
		return content.Image{}, err
	}
	if err := p.hosts.Content.Tag(name, img.Digest); err != nil {
		return content.Image{}, err
	}
	return img, nil
}

// loadArchive loads a docker save or OCI layout tarball and returns the
// image named name in it, or its only image.
func (p *Provider) loadArchive(ctx context.Context, path, name string) (content.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return content.Image{}, fmt.Errorf("image archive: %w", err)
	}
	defer f.Close()
	imgs, err := p.hosts.Content.Load(ctx, f)
	if err != nil {
		return content.Image{}, fmt.Errorf("image archive %s: %w", path, err)
	}
	for _, img := range imgs {
		for _, n := range img.Names {
			if n == name {
				return img, nil
			}
		}
	}
	if len(imgs) == 1 {
		if name != "" {
			if err := p.hosts.Content.Tag(name, imgs[0].Digest); err != nil {
				return content.Image{}, err
			}
		}
		return imgs[0], nil
	}
	return content.Image{}, fmt.Errorf("image archive %s holds %d images and none is named %q", path, len(imgs), name)
}

// isNotFound reports whether a registry error says the image does not
// exist.
func isNotFound(err error) bool {
	var re *registry.Error
	return errors.As(err, &re) && re.Kind == registry.NotFound
}

// digestOf returns the digest part of an image ID "name@sha256:...".
func digestOf(id string) string {
	if i := strings.LastIndex(id, "@"); i >= 0 {
		return id[i+1:]
	}
	return id
}

func (p *Provider) readImage(id string, applied cty.Value) (resp providers.ReadResponse) {
	d := digestOf(id)
	if _, err := p.hosts.Content.Image(d); err != nil {
		if errors.Is(err, content.ErrNotFound) {
			resp.State = cty.NullVal(p.types[KindImage])
			return resp
		}
		resp.Diagnostics = providers.Errorf("image %s: %s", id, err)
		return resp
	}
	if applied.IsNull() {
		resp.State = applied
		return resp
	}
	resp.ID, resp.State = id, applied
	return resp
}

// deleteImage drops the image's name; the image itself goes when no name
// and no container is left to use it.
func (p *Provider) deleteImage(_ context.Context, id string, prior cty.Value) error {
	if id == "" {
		return nil
	}
	d := digestOf(id)
	name := strings.TrimSuffix(id, "@"+d)
	if img, err := p.hosts.Content.Image(name); err == nil && img.Digest == d {
		if err := p.hosts.Content.Untag(name); err != nil {
			return err
		}
	}
	img, err := p.hosts.Content.Image(d)
	if errors.Is(err, content.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(img.Names) > 0 || p.imageInUse(d) {
		return nil
	}
	return p.hosts.Content.Remove(d)
}

// imageInUse reports whether a container was made from the image.
func (p *Provider) imageInUse(digest string) bool {
	recs, _ := p.hosts.Containers()
	for _, r := range recs {
		if r.ImageDigest == digest {
			return true
		}
	}
	return false
}
