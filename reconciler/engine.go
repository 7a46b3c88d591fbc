package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/reconciler/inventory"
	"github.com/berthhq/berth/spec"
	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Options configure an Engine.
type Options struct {
	// Providers maps provider names to providers.
	Providers map[string]providers.Provider
	// Inventory is the store of owned objects.
	Inventory *inventory.Store
	// Parallelism bounds the provider calls in flight (default 10).
	Parallelism int
	// CallTimeout bounds each provider call; 0 means no bound.
	CallTimeout time.Duration
	// FingerprintKey keys the plan fingerprint (an HMAC), so that a
	// fingerprint reveals nothing about the sensitive values it covers.
	FingerprintKey []byte
	// Revision is recorded on the inventory entries that an apply writes.
	Revision string
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Engine plans and applies configurations. Create one with New.
type Engine struct {
	opts       Options
	schemaHash string // identifies the providers and their schemas
	schemas    spec.Schemas
	provider   map[string]string // kind → provider name
}

// New asks every provider for its schema and returns an engine. Two
// providers that manage the same kind are an error.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{opts: opts, schemas: spec.Schemas{}, provider: map[string]string{}}
	names := make([]string, 0, len(opts.Providers))
	for n := range opts.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		resp := opts.Providers[n].Schema(ctx)
		if err := resp.Diagnostics.Err(); err != nil {
			return nil, fmt.Errorf("provider %q: schema: %w", n, err)
		}
		for kind, k := range resp.Kinds {
			if prev, dup := e.provider[kind]; dup {
				return nil, fmt.Errorf("providers %q and %q both manage resources of kind %q; remove one of them from the plugin directory", prev, n, kind)
			}
			if k == nil || k.Block == nil {
				return nil, fmt.Errorf("provider %q: kind %q has no schema", n, kind)
			}
			e.provider[kind] = n
			e.schemas[kind] = k
		}
	}
	h := sha256.New()
	for _, kind := range slices.Sorted(maps.Keys(e.schemas)) {
		fmt.Fprintf(h, "%s=%s:%#v;", kind, e.provider[kind], e.schemas[kind].Block.ImpliedType())
	}
	e.schemaHash = hex.EncodeToString(h.Sum(nil))
	return e, nil
}

// Schemas returns the schemas of every kind the engine's providers manage.
func (e *Engine) Schemas() spec.Schemas { return e.schemas }

// PlanRequest is what to plan.
type PlanRequest struct {
	Config *spec.Config
	Inputs spec.Inputs
	// Targets limits the plan to these resources (and what they depend
	// on); empty means everything.
	Targets []addr.Instance
	// Destroy plans the deletion of every owned object.
	Destroy bool
}

// instanceState is what the engine knows of one owned object.
type instanceState struct {
	entry inventory.Entry
	id    string
	live  cty.Value // unmarked; null when gone
	priv  []byte
	gone  bool
}

// planned is the engine's private part of a planned change.
type planned struct {
	change   *Change
	res      *spec.Resource // nil for orphans
	inst     spec.Instance
	prior    *instanceState // nil for a create
	config   cty.Value      // unmarked config at plan time
	sensPath []cty.Path
}

// planState holds what Apply needs beyond the Plan's data.
type planState struct {
	req       PlanRequest
	scope     *spec.Scope
	graph     *spec.Graph
	items     []*planned
	stale     []inventory.Entry // entries whose object is gone: dropped on apply
	redact    *redactor
	outputs   map[string]*spec.Output
	targeted  map[addr.Resource]bool
	instances map[addr.Resource][]spec.Instance
	sem       chan struct{} // bounds provider calls in flight while planning
}

// Plan reads the live state of every owned and desired object and computes
// the changes that would make the host match the configuration.
func (e *Engine) Plan(ctx context.Context, req PlanRequest) (*Plan, hcl.Diagnostics) {
	cfg := req.Config
	diags := spec.Validate(cfg, req.Inputs, e.schemas)
	if diags.HasErrors() {
		return nil, diags
	}
	graph, ds := cfg.Graph(e.schemas)
	diags = append(diags, ds...)
	order, ds := graph.Order()
	diags = append(diags, ds...)
	if diags.HasErrors() {
		return nil, diags
	}
	in := req.Inputs
	in.Partial = false
	scope, ds := spec.NewScope(cfg, in)
	diags = append(diags, ds...)
	if diags.HasErrors() {
		return nil, diags
	}
	entries, err := e.opts.Inventory.Entries()
	if err != nil {
		return nil, append(diags, errDiag("Cannot read the inventory", err.Error()))
	}
	invFP := inventory.FingerprintOf(entries)

	st := &planState{req: req, scope: scope, graph: graph, redact: newRedactor(), outputs: cfg.Outputs, instances: map[addr.Resource][]spec.Instance{}, sem: make(chan struct{}, e.opts.Parallelism)}
	for _, v := range scope.Variables() {
		st.redact.addValue(v)
	}
	live, ds := e.readAll(ctx, entries, st.redact)
	diags = append(diags, ds...)
	if diags.HasErrors() {
		return nil, diags
	}

	// Group owned objects by address: the newest created one is current,
	// the others are deposed.
	byAddr := map[string][]*instanceState{}
	for _, is := range live {
		if is.gone {
			// The object no longer exists: its entry goes at the next
			// apply. A created one still tells the plan why the object is
			// created again.
			st.stale = append(st.stale, is.entry)
			if is.entry.Status != inventory.Created {
				continue
			}
		}
		// An object whose delete was interrupted is planned afresh like
		// any other: deleted when the configuration no longer wants it,
		// replaced or kept when it does.
		byAddr[is.entry.Address] = append(byAddr[is.entry.Address], is)
	}
	for _, list := range byAddr {
		sort.SliceStable(list, func(i, j int) bool { return list[i].entry.CreatedAt.After(list[j].entry.CreatedAt) })
	}

	st.targeted = e.targetSet(graph, req.Targets, req.Destroy)
	for _, t := range req.Targets {
		if _, ok := cfg.Resources[t.Resource]; ok {
			continue
		}
		owned := false
		for _, en := range entries {
			if en.Address == t.String() || strings.HasPrefix(en.Address, t.Resource.String()+"[") || en.Address == t.Resource.String() {
				owned = true
			}
		}
		if !owned {
			var names []string
			for a := range cfg.Resources {
				names = append(names, a.String())
			}
			detail := fmt.Sprintf("-target %s matches no resource in the configuration and nothing berth owns.", t)
			if s := spec.Suggest(t.Resource.String(), names); s != "" {
				detail += fmt.Sprintf(" Did you mean %s?", s)
			}
			diags = append(diags, errDiag("Invalid target", detail))
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	var mu sync.Mutex
	nodeDeps := map[string][]string{}
	for _, n := range order {
		nodeDeps[n] = graph.DependsOn(n)
	}
	w := &walker{deps: nodeDeps, parallelism: e.opts.Parallelism}
	claimed := map[string]bool{}
	w.run(ctx, func(ctx context.Context, node string) error {
		var nd hcl.Diagnostics
		var items []*planned
		switch {
		case strings.HasPrefix(node, "local."):
			nd = scope.EvalLocal(strings.TrimPrefix(node, "local."), false)
		case strings.HasPrefix(node, "output."):
			// Outputs are evaluated after the walk.
		default:
			ra, _ := addr.ParseResource(node)
			r := cfg.Resources[ra]
			mu.Lock()
			owned := map[string][]*instanceState{}
			prefix := ra.String()
			for a, list := range byAddr {
				if a == prefix || strings.HasPrefix(a, prefix+"[") {
					owned[a] = list
					claimed[a] = true
				}
			}
			mu.Unlock()
			items, nd = e.planResource(ctx, st, r, owned, req.Destroy || (len(st.targeted) > 0 && !st.targeted[ra]))
		}
		mu.Lock()
		diags = append(diags, nd...)
		st.items = append(st.items, items...)
		mu.Unlock()
		if nd.HasErrors() {
			return fmt.Errorf("failed")
		}
		return nil
	}, func(string, string) {})
	if diags.HasErrors() {
		return nil, st.redact.diags(spec.Dedupe(diags))
	}

	// Orphans: owned objects whose resource is no longer declared.
	var orphanAddrs []string
	for a := range byAddr {
		if !claimed[a] {
			orphanAddrs = append(orphanAddrs, a)
		}
	}
	sort.Strings(orphanAddrs)
	for _, a := range orphanAddrs {
		for _, is := range byAddr[a] {
			if is.gone {
				continue
			}
			ia, err := addr.Parse(is.entry.Address)
			if err != nil {
				diags = append(diags, errDiag("Invalid address in the inventory", fmt.Sprintf("entry %s has address %q: %s", is.entry.Token, is.entry.Address, err)))
				continue
			}
			if len(st.targeted) > 0 && !st.targeted[ia.Resource] && !(req.Destroy && dependsOnAny(is.entry.Dependencies, st.targeted)) {
				continue
			}
			reason := fmt.Sprintf("%s is not in the configuration", ia.Resource)
			st.items = append(st.items, &planned{
				change: &Change{
					Addr:     ia,
					Provider: is.entry.Provider,
					Action:   Delete,
					Reason:   reason,
					Before:   e.markState(ia.Kind, is.live),
					After:    cty.NullVal(is.live.Type()),
				},
				prior: is,
			})
		}
	}

	// A target with an instance key leaves the other instances of its
	// resource alone.
	if byKey := instanceTargets(req.Targets); len(byKey) > 0 {
		kept := st.items[:0]
		for _, it := range st.items {
			if keys, ok := byKey[it.change.Addr.Resource]; ok && !keys[it.change.Addr.Key] {
				continue
			}
			kept = append(kept, it)
		}
		st.items = kept
	}

	p := &Plan{CreatedAt: e.opts.Now(), state: st}
	for _, it := range st.items {
		if k, ok := e.schemas[it.change.Addr.Kind]; ok {
			it.change.Highlights = k.Highlights
		}
		if k, ok := e.schemas[it.change.Addr.Kind]; ok && k.DestroyWarning != "" {
			switch it.change.Action {
			case Delete, Replace, CreateThenDelete:
				it.change.Warning = k.DestroyWarning
			}
		}
		p.Changes = append(p.Changes, it.change)
	}
	sort.SliceStable(p.Changes, func(i, j int) bool { return p.Changes[i].Addr.Less(p.Changes[j].Addr) })

	// A targeted plan leaves outputs alone: they may refer to what is not
	// targeted.
	if !req.Destroy && len(req.Targets) == 0 {
		prev := map[string]inventory.Output{}
		if outs, err := e.opts.Inventory.Outputs(); err == nil {
			for _, o := range outs {
				prev[o.Name] = o
			}
		}
		for _, name := range slices.Sorted(maps.Keys(cfg.Outputs)) {
			o := cfg.Outputs[name]
			v, ds := scope.EvalOutput(o, false)
			diags = append(diags, ds...)
			oc := &OutputChange{Name: name, Value: v, Sensitive: o.Sensitive || marks.IsSensitive(v)}
			if rec, ok := prev[name]; ok {
				oc.Before, oc.Unchanged = compareOutput(rec, oc)
			}
			p.Outputs = append(p.Outputs, oc)
		}
	}
	p.Fingerprint = e.fingerprint(cfg, scope, req, invFP, live, st.items)
	return p, st.redact.diags(spec.Dedupe(diags))
}

// targetSet returns the resources a -target list selects: with what they
// depend on when planning changes, with what depends on them when planning
// their destruction. It is nil when there are no targets.
func (e *Engine) targetSet(g *spec.Graph, targets []addr.Instance, destroy bool) map[addr.Resource]bool {
	if len(targets) == 0 {
		return nil
	}
	next := g.DependsOn
	if destroy {
		dependents := g.Dependents()
		next = func(n string) []string { return dependents[n] }
	}
	out := map[addr.Resource]bool{}
	seen := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		if ra, err := addr.ParseResource(n); err == nil {
			out[ra] = true
		}
		for _, d := range next(n) {
			visit(d)
		}
	}
	for _, t := range targets {
		out[t.Resource] = true
		visit(t.Resource.String())
	}
	return out
}

// instanceTargets returns, for resources targeted by instance (-target
// 'container.web[0]'), the instance keys targeted. A resource targeted whole,
// or reached as a dependency, has no entry.
func instanceTargets(targets []addr.Instance) map[addr.Resource]map[addr.Key]bool {
	out := map[addr.Resource]map[addr.Key]bool{}
	whole := map[addr.Resource]bool{}
	for _, t := range targets {
		if t.Key == addr.NoKey {
			whole[t.Resource] = true
			continue
		}
		if out[t.Resource] == nil {
			out[t.Resource] = map[addr.Key]bool{}
		}
		out[t.Resource][t.Key] = true
	}
	for r := range whole {
		delete(out, r)
	}
	return out
}

// readAll reads every owned object, in parallel.
func (e *Engine) readAll(ctx context.Context, entries []inventory.Entry, red *redactor) ([]*instanceState, hcl.Diagnostics) {
	out := make([]*instanceState, len(entries))
	var diags hcl.Diagnostics
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, e.opts.Parallelism)
	// Reads go in batches per provider: one round trip for many objects
	// when the provider runs in another process.
	const batchSize = 64
	batches := map[string][]*instanceState{}
	for i, en := range entries {
		out[i] = &instanceState{entry: en, id: en.ID, priv: en.Private}
		if _, ok := e.opts.Providers[en.Provider]; !ok {
			diags = append(diags, errDiag("Missing provider", fmt.Sprintf("%s is owned through provider %q, which is not installed. Install it into the plugin directory, or the object cannot be managed.", en.Address, en.Provider)))
			continue
		}
		batches[en.Provider] = append(batches[en.Provider], out[i])
	}
	for name, list := range batches {
		p := e.opts.Providers[name]
		for start := 0; start < len(list); start += batchSize {
			batch := list[start:min(start+batchSize, len(list))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				reqs := make([]providers.ReadRequest, len(batch))
				for i, is := range batch {
					reqs[i] = providers.ReadRequest{
						Kind:    is.entry.Kind,
						ID:      is.entry.ID,
						Owner:   providers.Owner{Address: is.entry.Address, Token: is.entry.Token},
						Private: is.entry.Private,
					}
				}
				cctx, cancel := e.callCtx(ctx)
				defer cancel()
				resps := providers.ReadMany(cctx, p, reqs)
				for i, is := range batch {
					if d := e.takeRead(is, resps[i], red); d != nil {
						mu.Lock()
						diags = append(diags, d...)
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	return out, diags
}

// takeRead records what a read of is found.
func (e *Engine) takeRead(is *instanceState, resp providers.ReadResponse, red *redactor) hcl.Diagnostics {
	if resp.Diagnostics.HasErrors() {
		return providerDiags(is.entry.Address, "read", resp.Diagnostics, red)
	}
	if resp.State == cty.NilVal || resp.State.IsNull() {
		is.gone = true
		is.live = cty.NullVal(e.impliedType(is.entry.Kind))
		return nil
	}
	if err := e.conforms(is.entry.Kind, resp.State, "live state"); err != nil {
		return hcl.Diagnostics{errDiag(fmt.Sprintf("%s: cannot read", is.entry.Address), err.Error())}
	}
	is.live = resp.State
	red.addValue(e.markState(is.entry.Kind, resp.State))
	if resp.ID != "" {
		is.id = resp.ID
	}
	if resp.Private != nil {
		is.priv = resp.Private
	}
	return nil
}

func (e *Engine) impliedType(kind string) cty.Type {
	if k, ok := e.schemas[kind]; ok {
		return k.Block.ImpliedType()
	}
	return cty.DynamicPseudoType
}

func (e *Engine) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.opts.CallTimeout > 0 {
		return context.WithTimeout(ctx, e.opts.CallTimeout)
	}
	return context.WithCancel(ctx)
}

// MarkState marks the sensitive attributes of a state value of kind, as
// read from a provider, for display.
func (e *Engine) MarkState(kind string, v cty.Value) cty.Value { return e.markState(kind, v) }

// markState marks the sensitive attributes of a state value of kind.
func (e *Engine) markState(kind string, v cty.Value) cty.Value {
	k, ok := e.schemas[kind]
	if !ok || v == cty.NilVal || v.IsNull() {
		return v
	}
	paths := k.Block.SensitivePaths(v)
	if len(paths) == 0 {
		return v
	}
	pvm := make([]cty.PathValueMarks, len(paths))
	for i, p := range paths {
		pvm[i] = cty.PathValueMarks{Path: p, Marks: cty.NewValueMarks(marks.Sensitive)}
	}
	return v.MarkWithPaths(pvm)
}

// ValidateResource asks the provider of r's kind whether v, a decoded
// configuration of r that may hold unknown values, is acceptable. Problems
// point at the attributes of r that they concern.
func (e *Engine) ValidateResource(ctx context.Context, r *spec.Resource, v cty.Value) hcl.Diagnostics {
	prov, ok := e.opts.Providers[e.provider[r.Addr.Kind]]
	if !ok {
		return nil
	}
	raw, _ := v.UnmarkDeep()
	cctx, cancel := e.callCtx(ctx)
	defer cancel()
	resp := prov.Validate(cctx, providers.ValidateRequest{Kind: r.Addr.Kind, Config: raw})
	red := newRedactor()
	red.addValue(v)
	return attrDiags(r.Addr.Instance(addr.NoKey), "validate", resp.Diagnostics, r, red)
}

// planResource plans every instance of one resource. destroy plans the
// deletion of all of them (destroy mode), and untargeted keeps them as they
// are.
func (e *Engine) planResource(ctx context.Context, st *planState, r *spec.Resource, owned map[string][]*instanceState, destroy bool) ([]*planned, hcl.Diagnostics) {
	kind := e.schemas[r.Addr.Kind]
	provName := e.provider[r.Addr.Kind]
	prov := e.opts.Providers[provName]
	var diags hcl.Diagnostics
	var items []*planned
	vals := map[addr.Key]cty.Value{}

	var insts []spec.Instance
	if !destroy {
		var ds hcl.Diagnostics
		insts, _, ds = st.scope.Expand(r, false)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			return nil, diags
		}
	}
	want := map[string]bool{}
	spec_ := kind.Block.DecoderSpec()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range insts {
		inst := insts[i]
		ia := r.Addr.Instance(inst.Key)
		want[ia.String()] = true
		var cur *instanceState
		var deposed []*instanceState
		for _, is := range owned[ia.String()] {
			switch {
			case is.gone:
			case cur == nil:
				cur = is // the newest live object is current
			default:
				deposed = append(deposed, is)
			}
		}
		wasOwned := len(owned[ia.String()]) > 0
		mu.Lock()
		for _, d := range deposed {
			items = append(items, e.deleteItem(ia, provName, d, "an older object of this address left by an interrupted replace", true))
		}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case st.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-st.sem }()
			cfgVal, ds := st.scope.Decode(r, &inst, spec_, false)
			var it *planned
			if !ds.HasErrors() {
				st.redact.addValue(e.markState(r.Addr.Kind, cfgVal))
				var pds hcl.Diagnostics
				it, pds = e.planInstance(ctx, st, r, inst, kind, prov, provName, cfgVal, cur, wasOwned)
				ds = append(ds, pds...)
			}
			mu.Lock()
			defer mu.Unlock()
			diags = append(diags, ds...)
			if ds.HasErrors() || it == nil {
				return
			}
			items = append(items, it)
			vals[inst.Key] = it.change.After
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		diags = append(diags, errDiag("Planning was interrupted", ctx.Err().Error()))
	}
	st.scope.SetResource(r, vals)

	// Owned instances whose key is gone.
	var gone []string
	for a := range owned {
		if !want[a] {
			gone = append(gone, a)
		}
	}
	sort.Strings(gone)
	for _, a := range gone {
		ia, err := addr.Parse(a)
		if err != nil {
			continue
		}
		reason := fmt.Sprintf("%s is no longer in the configuration", ia)
		switch {
		case destroy && len(st.targeted) > 0 && !st.targeted[r.Addr]:
			continue
		case destroy:
			reason = "destroy was requested"
		case placedElsewhere(st, r) != "":
			reason = fmt.Sprintf("%s is %s", r.Addr, placedElsewhere(st, r))
		case r.Count != nil && ia.Key.Type() == addr.IntKeyType:
			reason = fmt.Sprintf("index %s is out of range for count", ia.Key)
		case r.ForEach != nil && ia.Key.Type() == addr.StringKeyType:
			reason = fmt.Sprintf("key %s is not in for_each", ia.Key)
		}
		for _, is := range owned[a] {
			if is.gone {
				continue
			}
			if r.Lifecycle.PreventDestroy && !destroy {
				diags = append(diags, preventDestroyDiag(r, ia))
				continue
			}
			if r.Lifecycle.PreventDestroy && destroy {
				diags = append(diags, preventDestroyDiag(r, ia))
				continue
			}
			items = append(items, e.deleteItem(ia, provName, is, reason, false))
		}
	}
	for _, it := range items {
		it.res = r
	}
	return items, diags
}

func preventDestroyDiag(r *spec.Resource, ia addr.Instance) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Instance cannot be destroyed",
		Detail:   fmt.Sprintf("%s has lifecycle.prevent_destroy set, but the plan would destroy it. Remove prevent_destroy first if you mean it, or change the configuration so that it is kept.", ia),
		Subject:  r.DeclRange.Ptr(),
	}
}

func (e *Engine) deleteItem(ia addr.Instance, provName string, is *instanceState, reason string, deposed bool) *planned {
	return &planned{
		change: &Change{
			Addr:     ia,
			Provider: provName,
			Action:   Delete,
			Reason:   reason,
			Before:   e.markState(ia.Kind, is.live),
			After:    cty.NullVal(is.live.Type()),
			Deposed:  deposed,
		},
		prior: is,
	}
}

// planInstance plans one instance against its current object (nil: none).
func (e *Engine) planInstance(ctx context.Context, st *planState, r *spec.Resource, inst spec.Instance, kind *providers.Kind, prov providers.Provider, provName string, cfgVal cty.Value, cur *instanceState, wasOwned bool) (*planned, hcl.Diagnostics) {
	ia := r.Addr.Instance(inst.Key)
	prior := cty.NullVal(kind.Block.ImpliedType())
	var priv []byte
	if cur != nil {
		prior = cur.live
		priv = cur.priv
	}
	cfgVal = applyIgnoreChanges(cfgVal, prior, r.Lifecycle)
	raw, pvm := cfgVal.UnmarkDeepWithPaths()
	var diags hcl.Diagnostics
	// The configuration the object was last applied with was validated
	// then: asking again would only slow down the steady state, where an
	// agent re-plans an unchanged configuration to find drift.
	cfgHash := hashValue(raw)
	sameConfig := cur != nil && raw.IsWhollyKnown() && cur.entry.ConfigHash != "" && cur.entry.ConfigHash == cfgHash
	if !sameConfig {
		cctx, cancel := e.callCtx(ctx)
		vresp := prov.Validate(cctx, providers.ValidateRequest{Kind: r.Addr.Kind, Config: raw})
		cancel()
		diags = append(diags, attrDiags(ia, "validate", vresp.Diagnostics, r, st.redact)...)
		if diags.HasErrors() {
			return nil, diags
		}
	}
	var presp providers.PlanResponse
	if sameConfig && !kind.ReadsOutside && cur.entry.StateHash != "" && cur.entry.StateHash == e.stateHash(prior, priv) {
		// The same configuration against the same state the provider last
		// found converged: providers plan deterministically (the
		// conformance suite checks it), so the answer is known.
		presp.Planned = prior
	} else {
		cctx, cancel := e.callCtx(ctx)
		owner := providers.Owner{Address: ia.String()}
		if cur != nil {
			owner.Token = cur.entry.Token
		}
		presp = prov.Plan(cctx, providers.PlanRequest{Kind: r.Addr.Kind, Owner: owner, Prior: prior, Config: raw, Private: priv})
		cancel()
		diags = append(diags, attrDiags(ia, "plan", presp.Diagnostics, r, st.redact)...)
		if diags.HasErrors() {
			return nil, diags
		}
	}
	plannedVal := presp.Planned
	if err := e.conforms(r.Addr.Kind, plannedVal, "planned state"); err != nil || plannedVal.IsNull() {
		if err == nil {
			err = fmt.Errorf("the provider returned a null planned state; this is a bug in the provider")
		}
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("%s: provider %q cannot plan it", ia, provName), Detail: err.Error(), Subject: r.DeclRange.Ptr()})
	}
	after := e.markState(r.Addr.Kind, plannedVal.MarkWithPaths(onlyExisting(plannedVal, pvm)))
	before := e.markState(r.Addr.Kind, prior)
	ch := &Change{Addr: ia, Provider: provName, Before: before, After: after}
	it := &planned{change: ch, inst: inst, prior: cur, config: raw, sensPath: pathsOf(pvm)}

	switch {
	case cur == nil:
		ch.Action = Create
		ch.Reason = ""
		if wasOwned {
			ch.Reason = "the object was deleted outside berth"
		}
	default:
		replace := changedPaths(prior, plannedVal, presp.RequiresReplace)
		switch {
		case len(replace) > 0:
			ch.Action = Replace
			if r.Lifecycle.CreateBeforeDestroy {
				ch.Action = CreateThenDelete
			}
			ch.RequiresReplace = replace
			names := make([]string, len(replace))
			for i, p := range replace {
				names[i] = pathString(p)
			}
			ch.Reason = fmt.Sprintf("%s changed, which forces replacement", strings.Join(names, ", "))
			if sameConfig {
				ch.Reason = fmt.Sprintf("%s changed outside berth (drift), which forces replacement", strings.Join(names, ", "))
			}
			if r.Lifecycle.PreventDestroy {
				diags = append(diags, preventDestroyDiag(r, ia))
			}
		case valuesEqual(plannedVal, prior):
			ch.Action = NoOp
		default:
			ch.Action = Update
			changed := changedAttrs(prior, plannedVal)
			ch.Reason = fmt.Sprintf("%s changed", strings.Join(changed, ", "))
			if sameConfig {
				ch.Reason = fmt.Sprintf("%s changed outside berth (drift)", strings.Join(changed, ", "))
			}
		}
	}
	return it, diags
}

// onlyExisting keeps the marks whose paths exist in v.
func onlyExisting(v cty.Value, pvm []cty.PathValueMarks) []cty.PathValueMarks {
	var out []cty.PathValueMarks
	for _, pm := range pvm {
		if _, err := pm.Path.Apply(v); err == nil {
			out = append(out, pm)
		}
	}
	return out
}

func pathsOf(pvm []cty.PathValueMarks) []cty.Path {
	out := make([]cty.Path, len(pvm))
	for i, pm := range pvm {
		out[i] = pm.Path
	}
	return out
}

// applyIgnoreChanges replaces ignored attributes of cfg by their prior value.
func applyIgnoreChanges(cfg, prior cty.Value, lc spec.Lifecycle) cty.Value {
	if prior.IsNull() || (!lc.IgnoreAll && len(lc.IgnoreChanges) == 0) || !cfg.Type().IsObjectType() || !prior.Type().IsObjectType() {
		return cfg
	}
	attrs := map[string]cty.Value{}
	for name := range cfg.Type().AttributeTypes() {
		attrs[name] = cfg.GetAttr(name)
	}
	ignore := map[string]bool{}
	for _, n := range lc.IgnoreChanges {
		ignore[n] = true
	}
	for name := range attrs {
		if (lc.IgnoreAll || ignore[name]) && prior.Type().HasAttribute(name) {
			attrs[name] = prior.GetAttr(name)
		}
	}
	return cty.ObjectVal(attrs)
}

// changedPaths returns the paths of req whose values differ between prior
// and planned.
func changedPaths(prior, planned cty.Value, req []cty.Path) []cty.Path {
	var out []cty.Path
	for _, p := range req {
		a, errA := p.Apply(prior)
		b, errB := p.Apply(planned)
		if errA != nil || errB != nil || !b.IsKnown() || !a.RawEquals(b) {
			out = append(out, p)
		}
	}
	return out
}

// changedAttrs names the top-level attributes that differ.
func changedAttrs(prior, planned cty.Value) []string {
	var known, unknown []string
	if !planned.Type().IsObjectType() || !prior.Type().IsObjectType() {
		return []string{"value"}
	}
	for name := range planned.Type().AttributeTypes() {
		if !prior.Type().HasAttribute(name) {
			known = append(known, name)
			continue
		}
		a, b := prior.GetAttr(name), planned.GetAttr(name)
		switch {
		case !b.IsWhollyKnown():
			unknown = append(unknown, name)
		case !valuesEqual(a, b):
			known = append(known, name)
		}
	}
	// Attributes known only after apply follow from the others; name them
	// only when nothing else changed.
	if len(known) == 0 {
		known = unknown
	}
	sort.Strings(known)
	return known
}

func pathString(p cty.Path) string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case cty.GetAttrStep:
			if b.Len() > 0 {
				b.WriteString(".")
			}
			b.WriteString(s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				fmt.Fprintf(&b, "[%q]", s.Key.AsString())
			} else if s.Key.Type() == cty.Number {
				fmt.Fprintf(&b, "[%s]", s.Key.AsBigFloat().Text('f', -1))
			}
		}
	}
	return b.String()
}

// ProviderOf returns the name of the provider that manages kind.
func (e *Engine) ProviderOf(kind string) string { return e.provider[kind] }

// valuesEqual reports whether two unmarked values are known to be equal.
func valuesEqual(a, b cty.Value) bool {
	if a.RawEquals(b) {
		return true
	}
	if !a.IsWhollyKnown() || !b.IsWhollyKnown() {
		return false
	}
	eq := a.Equals(b)
	return eq.IsKnown() && eq.True()
}

// compareOutput returns the recorded value of an output and whether the new
// value equals it. Sensitive outputs are not recorded: one that was
// sensitive before and still is counts as unchanged.
func compareOutput(rec inventory.Output, oc *OutputChange) (cty.Value, bool) {
	if rec.Sensitive || len(rec.Value) == 0 {
		return cty.NilVal, rec.Sensitive && oc.Sensitive
	}
	ty, err := ctyjson.ImpliedType(rec.Value)
	if err != nil {
		return cty.NilVal, false
	}
	before, err := ctyjson.Unmarshal(rec.Value, ty)
	if err != nil {
		return cty.NilVal, false
	}
	if oc.Sensitive {
		return before, false
	}
	v, _ := oc.Value.UnmarkDeep()
	if !v.IsWhollyKnown() {
		return before, false
	}
	b, err := ctyjson.Marshal(v, v.Type())
	return before, err == nil && string(b) == string(rec.Value)
}

// dependsOnAny reports whether any of deps (instance addresses) belongs to a
// resource in set.
func dependsOnAny(deps []string, set map[addr.Resource]bool) bool {
	for _, d := range deps {
		if ia, err := addr.Parse(d); err == nil && set[ia.Resource] {
			return true
		}
	}
	return false
}

// conforms checks that a value a provider returned has the type of its
// kind, so that a faulty provider gives an error, not a crash.
func (e *Engine) conforms(kind string, v cty.Value, what string) error {
	want := e.impliedType(kind)
	if v == cty.NilVal {
		return fmt.Errorf("the provider returned no %s", what)
	}
	if errs := v.Type().TestConformance(want); len(errs) > 0 {
		return fmt.Errorf("the provider returned a %s of the wrong type (%v); this is a bug in the provider", what, errs[0])
	}
	return nil
}

// placedElsewhere returns why r's placement excludes this host, or "".
func placedElsewhere(st *planState, r *spec.Resource) string {
	if st.scope == nil {
		return ""
	}
	why, ok := st.scope.Unplaced(r.Addr)
	if !ok {
		return ""
	}
	return why
}
