package linux

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/ident"
	"github.com/berthhq/berth/providers/linux/volume"
	"github.com/berthhq/berth/spec/addr"
	"github.com/zclconf/go-cty/cty"
)

// validVolumeName reports whether s can name a volume: up to 128
// letters, digits, '_', '.' and '-', starting with a letter or digit.
func validVolumeName(s string) bool { return ident.Valid(s, 128, "", "_.-") }

func validateName(o obj, what string) providers.Diagnostics {
	if n := o.str("name"); n != "" && !validVolumeName(n) {
		return providers.AttributeErrorf(cty.GetAttrPath("name"),
			"invalid %s name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", what, n)
	}
	return nil
}

func validateVolume(o obj) providers.Diagnostics { return validateName(o, "volume") }

// defaultName derives an object's name from its address: volume.site is
// "site", volume.site[1] is "site-1", volume.site["blue"] is "site-blue".
func defaultName(address string) string {
	ia, err := addr.Parse(address)
	if err != nil {
		return sanitize(address)
	}
	n := ia.Resource.Name
	switch ia.Key.Type() {
	case addr.IntKeyType:
		n += "-" + strconv.Itoa(ia.Key.Int())
	case addr.StringKeyType:
		n += "-" + ia.Key.Str()
	}
	return sanitize(n)
}

func sanitize(s string) string {
	var b strings.Builder
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '_' || r == '.' || r == '-'))
		if ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := b.String()
	if out == "" || out[0] == '-' {
		out = "v" + out
	}
	if len(out) > 128 {
		out = out[:128]
	}
	return out
}

func planVolume(prior, cfg cty.Value) (resp providers.PlanResponse) {
	o, po := obj{cfg}, obj{prior}
	name := cfg.GetAttr("name")
	switch {
	case o.set("name") || o.unknown("name"):
	case !prior.IsNull():
		name = prior.GetAttr("name")
	default:
		name = cty.UnknownVal(cty.String)
	}
	planned := with(cfg, "name", name)
	planned = with(planned, "id", name)
	if prior.IsNull() || !name.IsKnown() {
		planned = with(planned, "path", cty.UnknownVal(cty.String))
	} else {
		planned = with(planned, "path", prior.GetAttr("path"))
	}
	if !prior.IsNull() && po.str("name") != "" && (!name.IsKnown() || name.AsString() != po.str("name")) {
		resp.RequiresReplace = []cty.Path{cty.GetAttrPath("name")}
	}
	resp.Planned = planned
	return resp
}

func (p *Provider) applyVolume(ctx context.Context, owner providers.Owner, id string, planned cty.Value) (resp providers.ApplyResponse) {
	o := obj{planned}
	name := o.str("name")
	if name == "" {
		name = defaultName(owner.Address)
	}
	planned = with(planned, "name", cty.StringVal(name))
	planned = with(planned, "id", cty.StringVal(name))
	// Remember first, without an ID: an interrupted create is found again
	// by its token, and a failed one never claims a volume of another.
	if err := p.remember(owner, KindVolume, "", planned); err != nil {
		resp.Diagnostics = providers.Errorf("volume %s: %s", name, err)
		return resp
	}
	v, err := p.hosts.Volumes.Create(ctx, name, owner.Token, o.stringMap("labels"))
	if err != nil {
		resp.Diagnostics = providers.Errorf("volume %s: %s", name, err)
		return resp
	}
	planned = with(planned, "path", cty.StringVal(v.Path))
	if err := p.remember(owner, KindVolume, name, planned); err != nil {
		resp.Diagnostics = providers.Errorf("volume %s: %s", name, err)
		return resp
	}
	resp.ID, resp.State = name, planned
	return resp
}

func (p *Provider) readVolume(_ context.Context, id, token string, applied cty.Value) (resp providers.ReadResponse) {
	resp.State = cty.NullVal(p.types[KindVolume])
	v, err := p.hosts.Volumes.Get(id)
	if errors.Is(err, volume.ErrNotFound) {
		return resp
	}
	if err != nil {
		resp.Diagnostics = providers.Errorf("volume %s: %s", id, err)
		return resp
	}
	if token != "" && v.Owner != token {
		// Another object's volume (or one berth did not make): never
		// this object's, whatever its records say.
		return resp
	}
	state := applied
	if state.IsNull() {
		state = cty.ObjectVal(map[string]cty.Value{
			"name": cty.StringVal(v.Name), "labels": cty.NullVal(cty.Map(cty.String)),
			"id": cty.StringVal(v.Name), "path": cty.StringVal(v.Path),
		})
		if len(v.Labels) > 0 {
			m := map[string]cty.Value{}
			for k, l := range v.Labels {
				m[k] = cty.StringVal(l)
			}
			state = with(state, "labels", cty.MapVal(m))
		}
	}
	state = with(state, "path", cty.StringVal(v.Path))
	resp.ID, resp.State = id, state
	return resp
}

// deleteVolume removes the volume id if token owns it; another owner's
// volume is left alone.
func (p *Provider) deleteVolume(ctx context.Context, id, token string) error {
	if id == "" {
		return nil
	}
	v, err := p.hosts.Volumes.Get(id)
	if errors.Is(err, volume.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if v.Owner != token {
		return nil
	}
	return p.hosts.Volumes.Remove(ctx, id)
}
