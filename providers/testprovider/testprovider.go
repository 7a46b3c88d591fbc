// Package testprovider is the provider that berth's own tests use, named
// "test". It manages two kinds of objects that need no privileges:
//
//   - thing: name, value, secret (sensitive), flavor (a change replaces the
//     what), tags, size, fail, the computed id and serial (1 after the
//     create, one more after each update), a settings block and port blocks
//     whose protocol defaults to "tcp";
//   - widget: label (a change replaces it), ref and the computed id, for
//     dependency tests.
//
// New keeps each object as a JSON file, <id>.json, in a directory; the file
// records the object's owner (address and token) next to its attributes.
// Tests simulate drift by editing the files by hand: Read returns exactly
// what a file says, and a missing file is an object that is gone.
//
// Faults are injected by configuration (fail = "plan", "apply" or "delete"
// makes that operation fail for the what) or by options (WithFaults,
// WithDelay), which the provider binary reads from BERTH_TESTPROVIDER_FAULT
// and BERTH_TESTPROVIDER_DELAY (see OptionsFromEnv).
//
// NewMemory keeps the objects in memory, answers at once and injects no
// faults: it is meant for benchmarks of the engine.
package testprovider

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// Name is the provider's name.
const Name = "test"

// provider implements providers.Provider over a store.
type provider struct {
	store store
	kinds map[string]*kindSpec
	opts  options
	// private tells whether to return the owner address as private data
	// (which plan faults with an address need).
	private bool
}

// New returns the test provider, keeping its objects in dir.
func New(dir string, opts ...Option) providers.Provider {
	p := &provider{store: &fileStore{dir: dir}, kinds: kinds(), private: true}
	for _, o := range opts {
		o(&p.opts)
	}
	return p
}

// NewMemory returns the test provider keeping its objects in memory, without
// faults or delays. Its Read and Plan are cheap enough for benchmarks of a
// thousand objects.
func NewMemory() providers.Provider {
	return &provider{store: newMemStore(), kinds: kinds()}
}

// Schema describes thing and widget.
func (p *provider) Schema(context.Context) providers.SchemaResponse {
	out := make(map[string]*providers.Kind, len(p.kinds))
	for n, k := range p.kinds {
		out[n] = k.schema
	}
	return providers.SchemaResponse{Name: Name, Kinds: out}
}

func (p *provider) kind(name string) (*kindSpec, providers.Diagnostics) {
	k, ok := p.kinds[name]
	if !ok {
		return nil, providers.Errorf("the test provider has no kind %q; use thing or widget", name)
	}
	return k, nil
}

// recovered turns a panic into an error diagnostic, so that a malformed
// request cannot bring the provider down.
func recovered(diags *providers.Diagnostics) {
	if r := recover(); r != nil {
		*diags = append(*diags, providers.Errorf("internal error in the test provider: %v", r)...)
	}
}

// Validate checks a configuration.
func (p *provider) Validate(_ context.Context, req providers.ValidateRequest) (resp providers.ValidateResponse) {
	defer recovered(&resp.Diagnostics)
	k, diags := p.kind(req.Kind)
	if diags.HasErrors() {
		return providers.ValidateResponse{Diagnostics: diags}
	}
	return providers.ValidateResponse{Diagnostics: k.validate(req.Config)}
}

// privateData returns the private data kept for an object: its owner
// address, which plan faults with an address use.
func (p *provider) privateData(o object) []byte {
	if !p.private || o.owner.Address == "" {
		return nil
	}
	b, _ := json.Marshal(privateRecord{Address: o.owner.Address})
	return b
}

type privateRecord struct {
	Address string `json:"address"`
}

func addressFromPrivate(b []byte) string {
	var r privateRecord
	if len(b) == 0 || json.Unmarshal(b, &r) != nil {
		return ""
	}
	return r.Address
}

// Read returns what the store holds for the what, or a null state.
func (p *provider) Read(ctx context.Context, req providers.ReadRequest) (resp providers.ReadResponse) {
	defer recovered(&resp.Diagnostics)
	k, diags := p.kind(req.Kind)
	if diags.HasErrors() {
		return providers.ReadResponse{Diagnostics: diags}
	}
	if len(p.opts.faults) > 0 || p.opts.delay > 0 {
		if diags := p.opts.before(ctx, OpRead, req.Owner.Address, describe(req.Owner.Address, cty.NilVal)); diags.HasErrors() {
			return providers.ReadResponse{Diagnostics: diags}
		}
		if diags := p.opts.sleep(ctx); diags.HasErrors() {
			return providers.ReadResponse{Diagnostics: diags}
		}
	}
	var o object
	var ok bool
	var err error
	if req.ID != "" {
		o, ok, err = p.store.get(req.ID, p.kinds)
	} else {
		o, ok, err = p.store.byOwner(req.Owner.Token, p.kinds)
	}
	if err != nil {
		return providers.ReadResponse{Diagnostics: providers.Errorf("read %s: %v", k.name, err)}
	}
	if !ok {
		return providers.ReadResponse{State: cty.NullVal(k.ty)}
	}
	if o.kind != k.name {
		return providers.ReadResponse{Diagnostics: providers.Errorf("object %s is a %s, not a %s", o.id, o.kind, k.name)}
	}
	resp = providers.ReadResponse{ID: o.id, State: o.state, Private: p.privateData(o)}
	if len(p.opts.faults) > 0 {
		resp.Diagnostics = p.opts.after(OpRead, req.Owner.Address)
	}
	return resp
}

// Plan computes the planned state. It writes nothing.
func (p *provider) Plan(ctx context.Context, req providers.PlanRequest) (resp providers.PlanResponse) {
	defer recovered(&resp.Diagnostics)
	k, diags := p.kind(req.Kind)
	if diags.HasErrors() {
		return providers.PlanResponse{Diagnostics: diags}
	}
	var address string
	if len(p.opts.faults) > 0 {
		address = addressFromPrivate(req.Private)
		if diags := p.opts.before(ctx, OpPlan, address, describe(address, req.Config)); diags.HasErrors() {
			return providers.PlanResponse{Diagnostics: diags}
		}
	}
	planned, replace, diags := k.plan(req.Prior, req.Config)
	if diags.HasErrors() {
		return providers.PlanResponse{Diagnostics: diags}
	}
	resp = providers.PlanResponse{Planned: planned, RequiresReplace: replace}
	if len(p.opts.faults) > 0 {
		resp.Diagnostics = p.opts.after(OpPlan, address)
	}
	return resp
}

// Apply creates (empty ID) or updates an object.
func (p *provider) Apply(ctx context.Context, req providers.ApplyRequest) (resp providers.ApplyResponse) {
	defer recovered(&resp.Diagnostics)
	k, diags := p.kind(req.Kind)
	if diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	planned, diags := k.conform(req.Planned, "planned state")
	if diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	what := describe(req.Owner.Address, planned)
	if diags := p.opts.before(ctx, OpApply, req.Owner.Address, what); diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	if diags := p.opts.sleep(ctx); diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	if planned.IsNull() {
		return providers.ApplyResponse{Diagnostics: providers.Errorf("nothing to apply to %s: the planned state is null; deleting is Delete's work", what)}
	}
	if failMode(planned) == failApply {
		return providers.ApplyResponse{Diagnostics: providers.Diagnostics{{
			Severity: providers.Error,
			Summary:  fmt.Sprintf("injected failure: applying %s fails", what),
			Detail:   `fail = "apply" makes every apply of this object fail; remove it to apply normally.`,
			Path:     cty.GetAttrPath("fail"),
		}}}
	}

	o := object{kind: k.name, owner: req.Owner}
	serial := int64(1)
	if req.ID == "" {
		o.id = p.store.newID(k.name)
	} else {
		cur, ok, err := p.store.get(req.ID, p.kinds)
		if err != nil {
			return providers.ApplyResponse{Diagnostics: providers.Errorf("update %s: %v", what, err)}
		}
		if !ok {
			return providers.ApplyResponse{Diagnostics: providers.Errorf("update %s: object %s no longer exists; run berth plan again to create it", what, req.ID)}
		}
		if cur.kind != k.name {
			return providers.ApplyResponse{Diagnostics: providers.Errorf("update %s: object %s is a %s, not a %s", what, cur.id, cur.kind, k.name)}
		}
		for _, a := range k.forceNew {
			if !cur.state.GetAttr(a).RawEquals(planned.GetAttr(a)) {
				return providers.ApplyResponse{Diagnostics: providers.AttributeErrorf(cty.GetAttrPath(a),
					"%s of %s cannot change in place; the object must be replaced, so plan again", a, what)}
			}
		}
		if o.owner.Token == "" {
			o.owner = cur.owner
		}
		o.id = cur.id
		serial = serialOf(cur.state) + 1
	}
	state, diags := k.finish(planned, o.id, serial)
	if diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	o.state = state
	if err := p.store.put(o); err != nil {
		return providers.ApplyResponse{Diagnostics: providers.Errorf("apply %s: %v", what, err)}
	}
	resp = providers.ApplyResponse{ID: o.id, State: state, Private: p.privateData(o)}
	resp.Diagnostics = p.opts.after(OpApply, req.Owner.Address)
	return resp
}

// Delete removes an object; one already gone is not an error.
func (p *provider) Delete(ctx context.Context, req providers.DeleteRequest) (resp providers.DeleteResponse) {
	defer recovered(&resp.Diagnostics)
	k, diags := p.kind(req.Kind)
	if diags.HasErrors() {
		return providers.DeleteResponse{Diagnostics: diags}
	}
	what := describe(req.Owner.Address, req.Prior)
	if diags := p.opts.before(ctx, OpDelete, req.Owner.Address, what); diags.HasErrors() {
		return providers.DeleteResponse{Diagnostics: diags}
	}
	if diags := p.opts.sleep(ctx); diags.HasErrors() {
		return providers.DeleteResponse{Diagnostics: diags}
	}
	var cur object
	var ok bool
	var err error
	if req.ID != "" {
		cur, ok, err = p.store.get(req.ID, p.kinds)
	} else {
		cur, ok, err = p.store.byOwner(req.Owner.Token, p.kinds)
	}
	if err != nil {
		return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: %v", what, err)}
	}
	if !ok {
		return providers.DeleteResponse{Diagnostics: p.opts.after(OpDelete, req.Owner.Address)}
	}
	if cur.kind != k.name {
		return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: object %s is a %s, not a %s", what, cur.id, cur.kind, k.name)}
	}
	if req.Owner.Token != "" && cur.owner.Token != "" && cur.owner.Token != req.Owner.Token {
		return providers.DeleteResponse{Diagnostics: providers.Errorf(
			"delete %s: object %s now belongs to %s, not to %s; berth leaves it alone", what, cur.id, cur.owner.Address, req.Owner.Address)}
	}
	if failMode(cur.state) == failDelete {
		return providers.DeleteResponse{Diagnostics: providers.Diagnostics{{
			Severity: providers.Error,
			Summary:  fmt.Sprintf("injected failure: deleting %s fails", describe(req.Owner.Address, cur.state)),
			Detail:   `fail = "delete" makes every delete of this object fail; set fail to another value and apply, then delete.`,
		}}}
	}
	if err := p.store.remove(cur.id); err != nil {
		return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: %v", what, err)}
	}
	return providers.DeleteResponse{Diagnostics: p.opts.after(OpDelete, req.Owner.Address)}
}

// Import adopts an existing object by ID: it records Owner in it.
func (p *provider) Import(_ context.Context, req providers.ImportRequest) (resp providers.ImportResponse) {
	defer recovered(&resp.Diagnostics)
	k, diags := p.kind(req.Kind)
	if diags.HasErrors() {
		return providers.ImportResponse{Diagnostics: diags}
	}
	if req.ID == "" {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: give the ID of the object to adopt", k.name)}
	}
	cur, ok, err := p.store.get(req.ID, p.kinds)
	if err != nil {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %v", k.name, err)}
	}
	if !ok {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: there is no object %s in %s; check the ID", k.name, req.ID, p.store.where())}
	}
	if cur.kind != k.name {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: object %s is a %s, not a %s", k.name, cur.id, cur.kind, k.name)}
	}
	cur.owner = req.Owner
	if err := p.store.put(cur); err != nil {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %v", k.name, err)}
	}
	return providers.ImportResponse{ID: cur.id, State: cur.state, Private: p.privateData(cur)}
}
