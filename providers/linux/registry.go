package linux

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/registry"
	"github.com/zclconf/go-cty/cty"
)

// validateRegistry checks a registry's configuration; hostPaths tells
// whether it may look at the host's files (the CA file).
func validateRegistry(o obj, hostPaths bool) providers.Diagnostics {
	var diags providers.Diagnostics
	if a := o.str("address"); a != "" && (strings.Contains(a, "/") || strings.ContainsAny(a, " \t")) {
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("address"),
			"invalid registry address %q: give host[:port] only, without a scheme or a path, e.g. \"127.0.0.1:5000\"", a)...)
	}
	if o.set("password") && !o.set("username") && !o.unknown("username") {
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("password"), "a password needs a username: set username too")...)
	}
	if f := o.str("ca_file"); f != "" && hostPaths {
		if _, err := os.Stat(f); err != nil {
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("ca_file"), "ca_file %q cannot be read: %s", f, err)...)
		}
	}
	return diags
}

func planRegistry(prior, cfg cty.Value) providers.PlanResponse {
	planned := with(cfg, "id", cfg.GetAttr("address"))
	var resp providers.PlanResponse
	resp.Planned = planned
	if !prior.IsNull() && !prior.GetAttr("address").RawEquals(cfg.GetAttr("address")) {
		resp.RequiresReplace = []cty.Path{cty.GetAttrPath("address")}
	}
	return resp
}

func (p *Provider) applyRegistry(owner providers.Owner, planned cty.Value) (resp providers.ApplyResponse) {
	id := planned.GetAttr("address").AsString()
	defer p.forgetEndpoints()
	if err := p.remember(owner, KindRegistry, id, planned); err != nil {
		resp.Diagnostics = providers.Errorf("registry %s: %s", id, err)
		return resp
	}
	resp.ID, resp.State = id, planned
	return resp
}

func (p *Provider) readRegistry(id string, applied cty.Value) (resp providers.ReadResponse) {
	resp.ID, resp.State = id, applied
	return resp
}

// endpoint returns the declared registry of address, or nil.
func (p *Provider) endpoint(address string) *registry.Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.endpoints == nil {
		p.endpoints = p.hosts.Endpoints()
	}
	return p.endpoints[address]
}

// forgetEndpoints drops the cache of registry settings.
func (p *Provider) forgetEndpoints() {
	p.mu.Lock()
	p.endpoints = nil
	p.mu.Unlock()
}

// Endpoint returns the settings of the registry resource applied for
// address, or nil when there is none.
func (h *Host) Endpoint(address string) *registry.Endpoint { return h.Endpoints()[address] }

// Endpoints returns the settings of every registry resource applied, by
// address.
func (h *Host) Endpoints() map[string]*registry.Endpoint {
	out := map[string]*registry.Endpoint{}
	all, err := objects{dir: filepath.Join(h.Root, "objects")}.all()
	if err != nil {
		return out
	}
	ty := registryKind().Block.ImpliedType()
	for _, st := range all {
		if st.Kind != KindRegistry || st.ID == "" {
			continue
		}
		v, err := decodeValue(st.Value, ty)
		if err != nil || v.IsNull() {
			continue
		}
		o := obj{v}
		out[st.ID] = &registry.Endpoint{
			Address:  st.ID,
			Username: o.str("username"),
			Password: o.str("password"),
			Insecure: o.boolean("insecure", false),
			CAFile:   o.str("ca_file"),
		}
	}
	return out
}
