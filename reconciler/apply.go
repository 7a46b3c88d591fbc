package reconciler

import (
	"context"
	"encoding/json"
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

// ApplyResult is the outcome of an apply.
type ApplyResult struct {
	Added, Changed, Destroyed int
	// Failed and Skipped list the instances that failed and those not
	// attempted because something they depend on failed.
	Failed  []addr.Instance
	Skipped []addr.Instance
	// Outputs are the outputs after the apply, sensitive ones marked.
	Outputs     []*OutputChange
	Diagnostics hcl.Diagnostics
}

// applier holds the state of one apply.
type applier struct {
	e     *Engine
	st    *planState
	hook  Hook
	sem   chan struct{}
	mu    sync.Mutex
	res   ApplyResult
	store *inventory.Store
}

// Apply carries out a plan made by Plan: deletes first, in reverse
// dependency order, then creates and updates in dependency order, then the
// deletes of create-before-destroy replacements. A failure stops only what
// depends on the failed instance. Every step is recorded in the inventory
// before and after the provider is called, so that an apply killed at any
// point leaves a state the next plan converges from.
func (e *Engine) Apply(ctx context.Context, p *Plan, hook Hook) *ApplyResult {
	if hook == nil {
		hook = NopHook{}
	}
	a := &applier{e: e, st: p.state, hook: hook, sem: make(chan struct{}, e.opts.Parallelism), store: e.opts.Inventory}
	if a.st == nil {
		a.res.Diagnostics = append(a.res.Diagnostics, errDiag("Plan cannot be applied", "This plan was not made by this engine; plan again."))
		return &a.res
	}
	for _, en := range a.st.stale {
		if err := a.store.Remove(en.Token); err != nil {
			a.fail(nil, errDiag("Cannot update the inventory", err.Error()))
		}
	}

	// An object that an updated object referred to at its last apply is
	// deleted after that update, so that the update can let go of it first.
	usedBy := map[string][]addr.Instance{}
	for _, it := range a.st.items {
		if it.prior != nil && (it.change.Action == Update || it.change.Action.IsReplace()) {
			for _, d := range it.prior.entry.Dependencies {
				if ia, err := addr.Parse(d); err == nil {
					usedBy[ia.Resource.String()] = append(usedBy[ia.Resource.String()], it.change.Addr)
				}
			}
		}
	}
	// What a delayed orphan depended on is delayed too, so that it still
	// goes after the orphan.
	delayed := map[string]bool{}
	var queue []string
	for res := range usedBy {
		queue = append(queue, res)
	}
	for len(queue) > 0 {
		res := queue[0]
		queue = queue[1:]
		if delayed[res] {
			continue
		}
		delayed[res] = true
		for _, it := range a.st.items {
			if it.change.Action == Delete && it.res == nil && it.change.Addr.Resource.String() == res {
				for _, d := range it.prior.entry.Dependencies {
					if ia, err := addr.Parse(d); err == nil {
						queue = append(queue, ia.Resource.String())
					}
				}
			}
		}
	}
	var firstDeletes, lastDeletes, upserts []*planned
	for _, it := range a.st.items {
		switch it.change.Action {
		case Delete:
			if delayed[it.change.Addr.Resource.String()] && it.res == nil {
				lastDeletes = append(lastDeletes, it)
			} else {
				firstDeletes = append(firstDeletes, it)
			}
		case Replace:
			firstDeletes = append(firstDeletes, it)
		case CreateThenDelete:
			lastDeletes = append(lastDeletes, it)
		}
		if it.change.Action != Delete {
			upserts = append(upserts, it)
		}
	}
	failedRes := a.deletes(ctx, firstDeletes)
	a.upserts(ctx, upserts, failedRes)

	// The deletes of the last phase wait for what they make room for: the
	// new object of a create-before-destroy replacement, the update that let
	// go of an orphan. When that failed, the old object stays.
	notDone := map[addr.Instance]bool{}
	a.mu.Lock()
	for _, f := range a.res.Failed {
		notDone[f] = true
	}
	for _, f := range a.res.Skipped {
		notDone[f] = true
	}
	a.mu.Unlock()
	var last []*planned
	for _, it := range lastDeletes {
		var blocker *addr.Instance
		if it.change.Action == CreateThenDelete && notDone[it.change.Addr] {
			blocker = &it.change.Addr
		}
		if it.change.Action == Delete {
			for _, u := range usedBy[it.change.Addr.Resource.String()] {
				if notDone[u] {
					u := u
					blocker = &u
					break
				}
			}
		}
		if blocker != nil {
			a.skip(it, blocker.String())
			continue
		}
		last = append(last, it)
	}
	a.deletes(ctx, last)
	a.outputs()
	a.res.Diagnostics = a.st.redact.diags(a.res.Diagnostics)
	if err := ctx.Err(); err != nil {
		a.res.Diagnostics = append(a.res.Diagnostics, errDiag("Apply interrupted",
			fmt.Sprintf("The apply was stopped (%v) before every planned change was made. What was done is recorded; run berth apply again to finish.", err)))
	}
	sort.Slice(a.res.Failed, func(i, j int) bool { return a.res.Failed[i].Less(a.res.Failed[j]) })
	sort.Slice(a.res.Skipped, func(i, j int) bool { return a.res.Skipped[i].Less(a.res.Skipped[j]) })
	if len(a.res.Skipped) > 0 {
		names := make([]string, len(a.res.Skipped))
		for i, s := range a.res.Skipped {
			names[i] = s.String()
		}
		a.res.Diagnostics = append(a.res.Diagnostics, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  fmt.Sprintf("%d skipped because a dependency failed", len(names)),
			Detail:   fmt.Sprintf("Not attempted: %s. Fix the errors above and apply again.", strings.Join(names, ", ")),
		})
	}
	return &a.res
}

func (a *applier) fail(ia *addr.Instance, ds ...*hcl.Diagnostic) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ia != nil {
		a.res.Failed = append(a.res.Failed, *ia)
	}
	a.res.Diagnostics = append(a.res.Diagnostics, ds...)
}

func (a *applier) acquire(ctx context.Context) bool {
	select {
	case a.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (a *applier) release() { <-a.sem }

// depsOf returns the resources that resource node n depends on, looking
// through locals.
func (a *applier) depsOf(n string) []string {
	seen := map[string]bool{}
	var out []string
	var visit func(string)
	visit = func(x string) {
		for _, d := range a.st.graph.DependsOn(x) {
			if seen[d] {
				continue
			}
			seen[d] = true
			if strings.HasPrefix(d, "local.") {
				visit(d)
				continue
			}
			if strings.HasPrefix(d, "output.") {
				continue
			}
			out = append(out, d)
		}
	}
	visit(n)
	sort.Strings(out)
	return out
}

// deletes deletes the objects of items, each after the deletes of what
// depends on it. It returns the resources whose delete failed.
func (a *applier) deletes(ctx context.Context, items []*planned) map[string]bool {
	failed := map[string]bool{}
	if len(items) == 0 {
		return failed
	}
	byRes := map[string][]*planned{}
	for _, it := range items {
		byRes[it.change.Addr.Resource.String()] = append(byRes[it.change.Addr.Resource.String()], it)
	}
	deps := map[string][]string{}
	for r := range byRes {
		deps[r] = nil
	}
	// X depends on Y ⇒ delete X before Y: Y's node waits for X's.
	for r, its := range byRes {
		// What the objects depended on when they were applied, and, for
		// declared resources, what the configuration says now.
		var ys []string
		if its[0].res != nil {
			ys = a.depsOf(r)
		}
		for _, it := range its {
			if it.prior == nil {
				continue
			}
			for _, d := range it.prior.entry.Dependencies {
				if ia, err := addr.Parse(d); err == nil {
					ys = append(ys, ia.Resource.String())
				}
			}
		}
		for _, y := range ys {
			if _, ok := byRes[y]; ok && y != r {
				deps[y] = append(deps[y], r)
			}
		}
	}
	var fmu sync.Mutex
	w := &walker{deps: deps, parallelism: len(deps) + 1}
	w.run(ctx, func(ctx context.Context, node string) error {
		var wg sync.WaitGroup
		var nodeErr error
		var emu sync.Mutex
		for _, it := range byRes[node] {
			wg.Add(1)
			go func(it *planned) {
				defer wg.Done()
				if err := a.deleteOne(ctx, it); err != nil {
					emu.Lock()
					nodeErr = err
					emu.Unlock()
				}
			}(it)
		}
		wg.Wait()
		if nodeErr != nil {
			fmu.Lock()
			failed[node] = true
			fmu.Unlock()
		}
		// A failed delete does not stop the deletes of what this
		// resource depends on from being attempted only when those do not
		// need it gone; to stay safe, report failure to the walker.
		return nodeErr
	}, func(node, cause string) {
		if cause == "" {
			// Recorded dependencies from different generations of the
			// configuration can form a cycle: delete those in any order
			// rather than never.
			for _, it := range byRes[node] {
				if err := a.deleteOne(ctx, it); err != nil {
					fmu.Lock()
					failed[node] = true
					fmu.Unlock()
				}
			}
			return
		}
		fmu.Lock()
		failed[node] = true
		fmu.Unlock()
		for _, it := range byRes[node] {
			a.skip(it, cause)
		}
	})
	return failed
}

// done reports whether ia was already reported as failed or skipped.
func (a *applier) done(ia addr.Instance) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range a.res.Failed {
		if x == ia {
			return true
		}
	}
	for _, x := range a.res.Skipped {
		if x == ia {
			return true
		}
	}
	return false
}

func (a *applier) skip(it *planned, cause string) {
	ca, _ := addr.Parse(cause)
	a.hook.Skipped(it.change, ca)
	a.mu.Lock()
	a.res.Skipped = append(a.res.Skipped, it.change.Addr)
	a.mu.Unlock()
}

func (a *applier) deleteOne(ctx context.Context, it *planned) error {
	if !a.acquire(ctx) {
		return ctx.Err()
	}
	defer a.release()
	ch := *it.change
	ch.Action = Delete
	ch.After = cty.NullVal(ch.Before.Type())
	is := it.prior
	prov := a.e.opts.Providers[is.entry.Provider]
	start := time.Now()
	a.hook.PreApply(&ch)
	en := is.entry
	en.Status = inventory.Deleting
	en.ID = is.id
	en.UpdatedAt = a.e.opts.Now()
	if err := a.store.Put(en); err != nil {
		d := errDiag(fmt.Sprintf("%s: cannot update the inventory", ch.Addr), err.Error())
		a.hook.PostApply(&ch, time.Since(start), fmt.Errorf("%s", d.Detail))
		a.fail(&ch.Addr, d)
		return err
	}
	cctx, cancel := a.e.callCtx(ctx)
	resp := prov.Delete(cctx, providers.DeleteRequest{
		Kind:    en.Kind,
		ID:      is.id,
		Owner:   providers.Owner{Address: en.Address, Token: en.Token},
		Prior:   is.live,
		Private: is.priv,
	})
	cancel()
	if resp.Diagnostics.HasErrors() {
		// The provider answered: the object is still there, as it was.
		if is.entry.Status != inventory.Deleting {
			_ = a.store.Put(is.entry)
		}
		ds := providerDiags(ch.Addr.String(), "delete", resp.Diagnostics, a.st.redact)
		a.hook.PostApply(&ch, time.Since(start), fmt.Errorf("%s", a.st.redact.redact(resp.Diagnostics.Err().Error())))
		a.fail(&ch.Addr, ds...)
		return fmt.Errorf("delete failed")
	}
	if err := a.store.Remove(en.Token); err != nil {
		d := errDiag(fmt.Sprintf("%s: cannot update the inventory", ch.Addr), err.Error())
		a.hook.PostApply(&ch, time.Since(start), err)
		a.fail(&ch.Addr, d)
		return err
	}
	a.hook.PostApply(&ch, time.Since(start), nil)
	a.mu.Lock()
	a.res.Destroyed++
	a.mu.Unlock()
	return nil
}

// upserts creates and updates, resource by resource in dependency order,
// refreshing the scope as values become known.
func (a *applier) upserts(ctx context.Context, items []*planned, failedRes map[string]bool) {
	byRes := map[string][]*planned{}
	for _, it := range items {
		k := it.change.Addr.Resource.String()
		byRes[k] = append(byRes[k], it)
	}
	deps := map[string][]string{}
	for _, n := range a.st.graph.Nodes() {
		if strings.HasPrefix(n, "output.") {
			continue
		}
		deps[n] = nil
		for _, d := range a.st.graph.DependsOn(n) {
			if !strings.HasPrefix(d, "output.") {
				deps[n] = append(deps[n], d)
			}
		}
	}
	w := &walker{deps: deps, parallelism: len(deps) + 1}
	w.run(ctx, func(ctx context.Context, node string) error {
		if strings.HasPrefix(node, "local.") {
			ds := a.st.scope.EvalLocal(strings.TrimPrefix(node, "local."), false)
			if ds.HasErrors() {
				a.fail(nil, ds...)
				return fmt.Errorf("local failed")
			}
			return nil
		}
		if failedRes[node] {
			for _, it := range byRes[node] {
				if it.change.Action != NoOp && !a.done(it.change.Addr) {
					a.skip(it, node)
				}
			}
			return fmt.Errorf("delete failed")
		}
		its := byRes[node]
		if len(its) == 0 {
			return nil
		}
		r := its[0].res
		vals := map[addr.Key]cty.Value{}
		var vmu sync.Mutex
		var wg sync.WaitGroup
		var nodeErr error
		for _, it := range its {
			if it.change.Action == NoOp {
				vals[it.inst.Key] = it.change.After
				a.adopt(it)
				continue
			}
			wg.Add(1)
			go func(it *planned) {
				defer wg.Done()
				v, err := a.upsertOne(ctx, r, it)
				vmu.Lock()
				defer vmu.Unlock()
				if err != nil {
					nodeErr = err
					v = it.change.After
				}
				vals[it.inst.Key] = v
			}(it)
		}
		wg.Wait()
		if r != nil {
			a.st.scope.SetResource(r, vals)
		}
		return nodeErr
	}, func(node, cause string) {
		if cause == "" {
			a.fail(nil, errDiag("Dependency cycle", fmt.Sprintf("%s is part of a dependency cycle and was not applied; break the cycle in the configuration.", node)))
			return
		}
		for _, it := range byRes[node] {
			if it.change.Action != NoOp && !a.done(it.change.Addr) {
				a.skip(it, cause)
			}
		}
	})
}

// adopt records an object that needs no change as it is: created (when its
// create was interrupted after the provider made it and the plan found it
// by its token), with the configuration and state it was found converged
// with, so that later plans of the same need not ask the provider.
func (a *applier) adopt(it *planned) {
	is := it.prior
	if is == nil {
		return
	}
	sh := a.e.stateHash(is.live, is.priv)
	cfgHash := hashValue(it.config)
	deps := a.depsOf(it.change.Addr.Resource.String())
	if is.entry.Status == inventory.Created && is.entry.ID == is.id && is.entry.StateHash == sh && is.entry.ConfigHash == cfgHash && slices.Equal(is.entry.Dependencies, deps) {
		return
	}
	en := is.entry
	en.Status = inventory.Created
	en.ID = is.id
	en.Private = is.priv
	en.ConfigHash = cfgHash
	en.StateHash = sh
	en.Dependencies = deps
	en.UpdatedAt = a.e.opts.Now()
	if err := a.store.Put(en); err != nil {
		a.fail(&it.change.Addr, errDiag(fmt.Sprintf("%s: cannot update the inventory", it.change.Addr), err.Error()))
	}
}

// upsertOne creates or updates one instance and returns its new state.
func (a *applier) upsertOne(ctx context.Context, r *spec.Resource, it *planned) (cty.Value, error) {
	if !a.acquire(ctx) {
		return cty.NilVal, ctx.Err()
	}
	defer a.release()
	e := a.e
	ch := *it.change
	create := ch.Action != Update
	if create {
		ch.Action = Create
		ch.Before = cty.NullVal(ch.After.Type())
	}
	start := time.Now()
	a.hook.PreApply(&ch)
	failWith := func(ds hcl.Diagnostics) (cty.Value, error) {
		ds = a.st.redact.diags(ds)
		msg := errorText(ch.Addr, ds)
		a.hook.PostApply(&ch, time.Since(start), fmt.Errorf("%s", msg))
		a.fail(&ch.Addr, ds...)
		return cty.NilVal, fmt.Errorf("%s", msg)
	}

	kind := e.schemas[ch.Addr.Kind]
	prov := e.opts.Providers[ch.Provider]
	// Evaluate again: what was unknown at plan time is known now.
	cfgVal, ds := a.st.scope.Decode(r, &it.inst, kind.Block.DecoderSpec(), false)
	if ds.HasErrors() {
		return failWith(ds)
	}
	a.st.redact.addValue(e.markState(ch.Addr.Kind, cfgVal))
	prior := cty.NullVal(kind.Block.ImpliedType())
	var priv []byte
	id := ""
	if !create {
		prior = it.prior.live
		priv = it.prior.priv
		id = it.prior.id
	}
	cfgVal = applyIgnoreChanges(cfgVal, it.change.Before, r.Lifecycle)
	raw, pvm := cfgVal.UnmarkDeepWithPaths()
	cctx, cancel := e.callCtx(ctx)
	owner := providers.Owner{Address: ch.Addr.String()}
	if it.prior != nil {
		owner.Token = it.prior.entry.Token
	}
	presp := prov.Plan(cctx, providers.PlanRequest{Kind: ch.Addr.Kind, Owner: owner, Prior: prior, Config: raw, Private: priv})
	cancel()
	if presp.Diagnostics.HasErrors() {
		return failWith(attrDiags(ch.Addr, "plan", presp.Diagnostics, r, a.st.redact))
	}

	// What apply does must be what the plan showed: values known then
	// stay, and an update does not turn into a replacement.
	planned, _ := it.change.After.UnmarkDeep()
	if !knownPartsEqual(planned, presp.Planned) || (!create && len(changedPaths(prior, presp.Planned, presp.RequiresReplace)) > 0) {
		return failWith(hcl.Diagnostics{errDiag(fmt.Sprintf("%s: provider %q produced an inconsistent plan", ch.Addr, ch.Provider),
			"Planned again at apply time, the change differs from the one shown in the plan, so berth did not apply it. This is a bug in the provider, or the object changed during the apply; plan again.")})
	}

	now := e.opts.Now()
	var en inventory.Entry
	if create {
		en = inventory.Entry{
			Token:        inventory.NewToken(),
			Address:      ch.Addr.String(),
			Kind:         ch.Addr.Kind,
			Provider:     ch.Provider,
			Status:       inventory.Creating,
			Dependencies: a.depsOf(r.Addr.String()),
			Revision:     e.opts.Revision,
			CreatedAt:    now,
			UpdatedAt:    now,
		}
		if err := a.store.Put(en); err != nil {
			return failWith(hcl.Diagnostics{errDiag(fmt.Sprintf("%s: cannot update the inventory", ch.Addr), err.Error())})
		}
	} else {
		en = it.prior.entry
	}
	cctx, cancel = e.callCtx(ctx)
	resp := prov.Apply(cctx, providers.ApplyRequest{
		Kind:    ch.Addr.Kind,
		ID:      id,
		Owner:   providers.Owner{Address: en.Address, Token: en.Token},
		Prior:   prior,
		Planned: presp.Planned,
		Config:  raw,
		Private: priv,
	})
	cancel()
	if resp.Diagnostics.HasErrors() {
		if create && resp.ID != "" {
			// Something was left behind: keep track of it so the next
			// plan can converge.
			en.ID = resp.ID
			en.Status = inventory.Created
			en.UpdatedAt = e.opts.Now()
			_ = a.store.Put(en)
		}
		return failWith(attrDiags(ch.Addr, "apply", resp.Diagnostics, r, a.st.redact))
	}
	en.Status = inventory.Created
	if resp.ID != "" {
		en.ID = resp.ID
	} else if !create {
		en.ID = id
	}
	en.Private = resp.Private
	en.ConfigHash = hashValue(raw)
	en.Revision = e.opts.Revision
	en.Dependencies = a.depsOf(r.Addr.String())
	en.UpdatedAt = e.opts.Now()
	state := resp.State
	if state == cty.NilVal || state.IsNull() {
		state = presp.Planned
	}
	stateErr := e.conforms(ch.Addr.Kind, state, "new state")
	en.StateHash = ""
	if stateErr == nil && state.IsWhollyKnown() {
		en.StateHash = e.stateHash(state, resp.Private)
	}
	if err := a.store.Put(en); err != nil {
		return failWith(hcl.Diagnostics{errDiag(fmt.Sprintf("%s: cannot update the inventory", ch.Addr), err.Error())})
	}
	if stateErr != nil {
		return failWith(hcl.Diagnostics{errDiag(fmt.Sprintf("%s: provider %q", ch.Addr, ch.Provider), stateErr.Error())})
	}
	state = e.markState(ch.Addr.Kind, state.MarkWithPaths(onlyExisting(state, pvm)))
	a.st.redact.addValue(state)
	done := ch
	done.After = state
	a.hook.PostApply(&done, time.Since(start), nil)
	a.mu.Lock()
	if create {
		a.res.Added++
	} else {
		a.res.Changed++
	}
	a.mu.Unlock()
	return state, nil
}

// outputs evaluates the outputs with the applied values and records them.
func (a *applier) outputs() {
	if a.st.req.Destroy && len(a.st.req.Targets) == 0 {
		_ = a.store.PutOutputs(nil)
		return
	}
	if len(a.st.req.Targets) > 0 {
		return // a targeted apply leaves the recorded outputs as they were
	}
	var recs []inventory.Output
	for _, name := range slices.Sorted(maps.Keys(a.st.outputs)) {
		o := a.st.outputs[name]
		v, ds := a.st.scope.EvalOutput(o, false)
		if ds.HasErrors() {
			a.fail(nil, ds...)
			continue
		}
		sens := o.Sensitive || marks.IsSensitive(v)
		a.res.Outputs = append(a.res.Outputs, &OutputChange{Name: name, Value: v, Sensitive: sens})
		rec := inventory.Output{Name: name, Sensitive: sens}
		if !sens {
			if uv, _ := v.UnmarkDeep(); uv.IsWhollyKnown() {
				if b, err := ctyjson.Marshal(uv, uv.Type()); err == nil {
					rec.Value = json.RawMessage(b)
				}
			}
		}
		recs = append(recs, rec)
	}
	if err := a.store.PutOutputs(recs); err != nil {
		a.fail(nil, errDiag("Cannot record outputs", err.Error()))
	}
}

// knownPartsEqual reports whether every value known in old is the same in
// new: planning again may only fill in what was unknown.
func knownPartsEqual(old, new cty.Value) bool {
	if !old.IsKnown() {
		return true
	}
	if !new.IsKnown() {
		return false
	}
	if old.IsNull() || new.IsNull() {
		return old.IsNull() == new.IsNull()
	}
	ot := old.Type()
	switch {
	case ot.IsObjectType():
		if !new.Type().IsObjectType() {
			return false
		}
		for name := range ot.AttributeTypes() {
			if !new.Type().HasAttribute(name) || !knownPartsEqual(old.GetAttr(name), new.GetAttr(name)) {
				return false
			}
		}
		return true
	case ot.IsListType() || ot.IsTupleType():
		if old.LengthInt() != new.LengthInt() {
			return false
		}
		ni := new.ElementIterator()
		for oi := old.ElementIterator(); oi.Next(); {
			ni.Next()
			_, ov := oi.Element()
			_, nv := ni.Element()
			if !knownPartsEqual(ov, nv) {
				return false
			}
		}
		return true
	case ot.IsMapType():
		if !new.Type().IsMapType() && !new.Type().IsObjectType() {
			return false
		}
		for it := old.ElementIterator(); it.Next(); {
			k, ov := it.Element()
			if !new.Type().IsMapType() || !new.HasIndex(k).True() || !knownPartsEqual(ov, new.Index(k)) {
				return false
			}
		}
		return old.LengthInt() == new.LengthInt()
	}
	if !old.IsWhollyKnown() {
		return true // a set holding unknowns: nothing to compare reliably
	}
	return valuesEqual(old, new)
}

// errorText is the message of the errors in ds for a progress line that
// already names the instance.
func errorText(ia addr.Instance, ds hcl.Diagnostics) string {
	var parts []string
	for _, d := range ds {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := strings.TrimPrefix(d.Summary, ia.String()+": ")
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		parts = append(parts, m)
	}
	return strings.Join(parts, "; ")
}
