// Package providertest is the conformance suite of berth providers. Every
// provider, built in or third party, runs it from its tests:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, func(t *testing.T) providers.Provider {
//			return myprovider.New(t.TempDir())
//		}, []providertest.Case{{
//			Kind:    "thing",
//			Config:  cty.ObjectVal(...),
//			Update:  cty.ObjectVal(...), // changes only in-place attributes
//			Replace: cty.ObjectVal(...), // changes a force-new attribute
//		}})
//	}
//
// Run serves the provider over real gRPC in process, exactly as berth talks
// to it, and drives every case through the life of an object: validate,
// create, read, plan again (no endless diff), find by ownership token,
// update, plan a replacement, import, delete twice and read the absence.
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/plugin"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc"
)

// unknownKind is a resource kind that no provider manages.
const unknownKind = "providertest_no_such_kind"

// Case is one configuration that the suite drives through the life of an
// object.
type Case struct {
	// Kind is the resource kind.
	Kind string
	// Config is a valid configuration of Kind: an object of the kind's
	// implied type.
	Config cty.Value
	// Update differs from Config only in attributes that change in place.
	// It may be cty.NilVal to skip the update checks.
	Update cty.Value
	// Replace differs from Config (or from Update) in an attribute whose
	// change replaces the object. It may be cty.NilVal to skip the
	// replacement check.
	Replace cty.Value
}

// Run runs the conformance suite: a subtest checks the schema, one checks
// that an unknown kind is refused, and one per case checks the life of an
// object. newProvider is called once per subtest; Run serves what it
// returns over real gRPC in process.
func Run(t *testing.T, newProvider func(t *testing.T) providers.Provider, cases []Case) {
	t.Helper()
	if len(cases) == 0 {
		t.Fatal("providertest.Run needs at least one case")
	}
	t.Run("schema", func(t *testing.T) {
		p := GRPC(t, newProvider(t))
		for _, err := range CheckSchema(p.Schema(t.Context()), cases) {
			t.Error(err)
		}
	})
	t.Run("unknown_kind", func(t *testing.T) {
		w := &watch{p: newProvider(t)}
		for _, err := range checkUnknownKind(t.Context(), GRPC(t, w), cases[0].Config) {
			t.Error(err)
		}
		for _, err := range w.panicErrors() {
			t.Error(err)
		}
	})
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d_%s", i, c.Kind), func(t *testing.T) {
			w := &watch{p: newProvider(t)}
			for _, err := range CheckCase(t.Context(), GRPC(t, w), c) {
				t.Error(err)
			}
			for _, err := range w.panicErrors() {
				t.Error(err)
			}
		})
	}
}

// GRPC returns a provider that forwards every call to p over real gRPC in
// process, through the same protocol code as a provider binary. The
// connection is closed when the test ends.
func GRPC(t testing.TB, p providers.Provider) providers.Provider {
	t.Helper()
	gp := &plugin.GRPCPlugin{Provider: p, Name: providerName(t.Context(), p)}
	var regErr error
	conn, server := goplugin.TestGRPCConn(t, func(s *grpc.Server) {
		regErr = gp.GRPCServer(nil, s)
	})
	t.Cleanup(func() {
		_ = conn.Close()
		server.Stop()
	})
	if regErr != nil {
		t.Fatalf("serve the provider over gRPC: %v", regErr)
	}
	raw, err := gp.GRPCClient(t.Context(), nil, conn)
	if err != nil {
		t.Fatalf("connect to the provider over gRPC: %v", err)
	}
	rp, ok := raw.(providers.Provider)
	if !ok {
		t.Fatalf("the gRPC client is a %T, not a providers.Provider", raw)
	}
	return rp
}

// providerName returns the name p gives itself, for messages.
func providerName(ctx context.Context, p providers.Provider) (name string) {
	defer func() {
		if recover() != nil || name == "" {
			name = "provider under test"
		}
	}()
	return p.Schema(ctx).Name
}

// CheckSchema checks that a schema is well formed and has the kinds of
// cases, and returns the problems it finds.
func CheckSchema(sr providers.SchemaResponse, cases []Case) []error {
	var r report
	if sr.Diagnostics.HasErrors() {
		r.addf("Schema failed: %s", diagText(sr.Diagnostics))
		return r.errs
	}
	if sr.Name == "" {
		r.addf("the schema has no provider name")
	}
	if len(sr.Kinds) == 0 {
		r.addf("the schema has no resource kinds")
	}
	for _, name := range sortedKeys(sr.Kinds) {
		k := sr.Kinds[name]
		switch {
		case name == "":
			r.addf("the schema has a kind with an empty name")
		case k == nil:
			r.addf("kind %q has no schema", name)
		case k.Block == nil:
			r.addf("kind %q has no block", name)
		default:
			checkBlock(&r, "kind "+name, k.Block)
		}
	}
	for _, c := range cases {
		if k := sr.Kinds[c.Kind]; k == nil {
			r.addf("a case has kind %q, which is not in the schema", c.Kind)
		}
	}
	return r.errs
}

func checkBlock(r *report, where string, b *providers.Block) {
	for _, name := range sortedKeys(b.Attributes) {
		a := b.Attributes[name]
		at := fmt.Sprintf("%s: attribute %q", where, name)
		switch {
		case name == "":
			r.addf("%s: an attribute has an empty name", where)
			continue
		case a == nil:
			r.addf("%s has no schema", at)
			continue
		}
		if a.Type == cty.NilType {
			r.addf("%s has no type", at)
		}
		if a.Required && a.Computed {
			r.addf("%s is both Required and Computed; make it Optional and Computed", at)
		}
		if a.Required && a.Optional {
			r.addf("%s is both Required and Optional", at)
		}
		if !a.Required && !a.Optional && !a.Computed {
			r.addf("%s is neither Required, Optional nor Computed", at)
		}
		if a.ForceNew && a.Computed && !a.Optional {
			r.addf("%s is ForceNew but only Computed: configuration can never change it", at)
		}
		if _, dup := b.Blocks[name]; dup {
			r.addf("%s: %q is both an attribute and a nested block", where, name)
		}
	}
	for _, name := range sortedKeys(b.Blocks) {
		nb := b.Blocks[name]
		at := fmt.Sprintf("%s: block %q", where, name)
		switch {
		case name == "":
			r.addf("%s: a nested block has an empty name", where)
			continue
		case nb == nil:
			r.addf("%s has no schema", at)
			continue
		}
		if nb.Nesting != providers.NestingSingle && nb.Nesting != providers.NestingList {
			r.addf("%s has no valid nesting (%d)", at, nb.Nesting)
		}
		if nb.MinItems < 0 || nb.MaxItems < 0 || (nb.MaxItems > 0 && nb.MinItems > nb.MaxItems) {
			r.addf("%s has invalid MinItems %d and MaxItems %d", at, nb.MinItems, nb.MaxItems)
		}
		checkBlock(r, at, &nb.Block)
	}
}

// checkUnknownKind checks that every call about an unknown kind fails with
// an error diagnostic. config is any object to send as configuration.
func checkUnknownKind(ctx context.Context, p providers.Provider, config cty.Value) []error {
	var r report
	owner := providers.Owner{Address: unknownKind + ".test", Token: newToken()}
	null := cty.NullVal(cty.DynamicPseudoType)
	expectError := func(op string, ds providers.Diagnostics) {
		if !ds.HasErrors() {
			r.addf("%s of unknown kind %q gave no error diagnostic", op, unknownKind)
		}
	}
	expectError("Validate", p.Validate(ctx, providers.ValidateRequest{Kind: unknownKind, Config: config}).Diagnostics)
	expectError("Read", p.Read(ctx, providers.ReadRequest{Kind: unknownKind, ID: "providertest-id", Owner: owner}).Diagnostics)
	expectError("Plan", p.Plan(ctx, providers.PlanRequest{Kind: unknownKind, Prior: null, Config: config}).Diagnostics)
	expectError("Apply", p.Apply(ctx, providers.ApplyRequest{Kind: unknownKind, Owner: owner, Prior: null, Planned: config, Config: config}).Diagnostics)
	expectError("Delete", p.Delete(ctx, providers.DeleteRequest{Kind: unknownKind, ID: "providertest-id", Owner: owner, Prior: config}).Diagnostics)
	expectError("Import", p.Import(ctx, providers.ImportRequest{Kind: unknownKind, ID: "providertest-id", Owner: owner}).Diagnostics)
	return r.errs
}

// object is what the suite knows of the object it manages.
type object struct {
	id      string
	owner   providers.Owner
	state   cty.Value
	private []byte
	config  cty.Value
	deleted bool
}

// CheckCase drives one case through the life of an object on p and
// returns the problems it finds. It stops at the first problem that makes
// the next steps meaningless, and deletes what it created.
func CheckCase(ctx context.Context, p providers.Provider, c Case) []error {
	var r report
	sr := p.Schema(ctx)
	if sr.Diagnostics.HasErrors() {
		r.addf("Schema failed: %s", diagText(sr.Diagnostics))
		return r.errs
	}
	kind := sr.Kinds[c.Kind]
	if kind == nil || kind.Block == nil {
		r.addf("kind %q is not in the schema", c.Kind)
		return r.errs
	}
	ck := &caseCheck{ctx: ctx, p: p, c: c, kind: kind, r: &r}
	if !ck.checkCaseValues() {
		return r.errs
	}
	ck.run()
	return r.errs
}

// caseCheck is the state of one CheckCase.
type caseCheck struct {
	ctx  context.Context
	p    providers.Provider
	c    Case
	kind *providers.Kind
	r    *report
	obj  object
}

func (ck *caseCheck) null() cty.Value {
	return cty.NullVal(ck.kind.Block.ImpliedType())
}

// checkCaseValues checks that the case itself is usable.
func (ck *caseCheck) checkCaseValues() bool {
	ty := ck.kind.Block.ImpliedType()
	ok := true
	for _, v := range []struct {
		name     string
		val      cty.Value
		optional bool
	}{{"Config", ck.c.Config, false}, {"Update", ck.c.Update, true}, {"Replace", ck.c.Replace, true}} {
		if absent(v.val) {
			if !v.optional {
				ck.r.addf("the case has no Config")
				ok = false
			}
			continue
		}
		if errs := v.val.Type().TestConformance(ty); len(errs) > 0 {
			ck.r.addf("the case's %s does not conform to the schema of kind %q: %v", v.name, ck.c.Kind, errs[0])
			ok = false
		}
	}
	return ok
}

// absent reports whether a case value is left out.
func absent(v cty.Value) bool {
	return v.Type() == cty.NilType || v.IsNull()
}

func (ck *caseCheck) run() {
	ctx, p, kind := ck.ctx, ck.p, ck.c.Kind
	if !ck.validate("Config", ck.c.Config) {
		return
	}

	// Read of an object that does not exist.
	missing := p.Read(ctx, providers.ReadRequest{
		Kind:  kind,
		ID:    "missing-" + newToken(),
		Owner: providers.Owner{Address: kind + ".missing", Token: newToken()},
	})
	switch {
	case missing.Diagnostics.HasErrors():
		ck.r.addf("Read of an unknown ID failed (it must give a null state and no error): %s", diagText(missing.Diagnostics))
	case !missing.State.IsNull():
		ck.r.addf("Read of an unknown ID gave a state (it must give a null state): %s", ck.show(missing.State))
	}

	// Create.
	ck.obj.owner = providers.Owner{Address: kind + ".conformance", Token: newToken()}
	plan := p.Plan(ctx, providers.PlanRequest{Kind: kind, Prior: ck.null(), Config: ck.c.Config})
	if plan.Diagnostics.HasErrors() {
		ck.r.addf("Plan of a create failed: %s", diagText(plan.Diagnostics))
		return
	}
	if !ck.checkPlanned("Plan of a create", plan.Planned) {
		return
	}
	defer ck.cleanup()
	applied := p.Apply(ctx, providers.ApplyRequest{
		Kind: kind, Owner: ck.obj.owner, Prior: ck.null(), Planned: plan.Planned, Config: ck.c.Config,
	})
	ck.obj.id = applied.ID
	if applied.Diagnostics.HasErrors() {
		ck.r.addf("Apply of a create failed: %s", diagText(applied.Diagnostics))
		return
	}
	if applied.ID == "" {
		ck.r.addf("Apply of a create returned no ID")
		return
	}
	if !ck.checkState("Apply of a create", applied.State) {
		return
	}
	ck.checkConsistent("Apply of a create", plan.Planned, applied.State)
	ck.obj.state, ck.obj.private, ck.obj.config = applied.State, applied.Private, ck.c.Config

	if !ck.readBack("after the create") || !ck.checkNoDiff("after the create") {
		return
	}
	ck.readMany()
	ck.findByOwner()

	if !absent(ck.c.Update) && !ck.update() {
		return
	}
	if !absent(ck.c.Replace) {
		ck.planReplace()
	}
	if ck.kind.Importable {
		ck.importObject()
	}
	ck.delete()
}

// validate checks that Validate accepts a configuration.
func (ck *caseCheck) validate(name string, config cty.Value) bool {
	resp := ck.p.Validate(ck.ctx, providers.ValidateRequest{Kind: ck.c.Kind, Config: config})
	if resp.Diagnostics.HasErrors() {
		ck.r.addf("Validate rejected the case's %s: %s", name, diagText(resp.Diagnostics))
		return false
	}
	return true
}

// checkPlanned checks a planned value.
func (ck *caseCheck) checkPlanned(step string, planned cty.Value) bool {
	if planned.Type() == cty.NilType || planned.IsNull() {
		ck.r.addf("%s gave no planned value", step)
		return false
	}
	if errs := planned.Type().TestConformance(ck.kind.Block.ImpliedType()); len(errs) > 0 {
		ck.r.addf("%s gave a planned value that does not conform to the schema: %v", step, errs[0])
		return false
	}
	return true
}

// checkState checks a state returned for an existing object.
func (ck *caseCheck) checkState(step string, state cty.Value) bool {
	if state.Type() == cty.NilType || state.IsNull() {
		ck.r.addf("%s gave a null state for an object that exists", step)
		return false
	}
	if errs := state.Type().TestConformance(ck.kind.Block.ImpliedType()); len(errs) > 0 {
		ck.r.addf("%s gave a state that does not conform to the schema: %v", step, errs[0])
		return false
	}
	if !state.IsWhollyKnown() {
		ck.r.addf("%s gave a state with unknown values: %s", step, ck.show(state))
		return false
	}
	return true
}

// checkConsistent checks that every known planned value was applied as
// planned.
func (ck *caseCheck) checkConsistent(step string, planned, state cty.Value) {
	var diffs []string
	ck.inconsistent(nil, planned, state, &diffs)
	if len(diffs) > 0 {
		ck.r.addf("%s produced a state that differs from the plan where the plan was known: %s", step, strings.Join(diffs, "; "))
	}
}

// readBack reads the object by ID and checks that it exists.
func (ck *caseCheck) readBack(when string) bool {
	resp := ck.p.Read(ck.ctx, providers.ReadRequest{Kind: ck.c.Kind, ID: ck.obj.id, Owner: ck.obj.owner, Private: ck.obj.private})
	step := "Read " + when
	if resp.Diagnostics.HasErrors() {
		ck.r.addf("%s failed: %s", step, diagText(resp.Diagnostics))
		return false
	}
	if resp.ID != "" && resp.ID != ck.obj.id {
		ck.r.addf("%s returned ID %q for object %q", step, resp.ID, ck.obj.id)
	}
	if !ck.checkState(step, resp.State) {
		return false
	}
	ck.obj.state = resp.State
	if resp.Private != nil {
		ck.obj.private = resp.Private
	}
	return true
}

// checkNoDiff plans the current configuration against the live state and
// checks that nothing would change.
func (ck *caseCheck) checkNoDiff(when string) bool {
	resp := ck.p.Plan(ck.ctx, providers.PlanRequest{
		Kind: ck.c.Kind, Prior: ck.obj.state, Config: ck.obj.config, Private: ck.obj.private,
	})
	step := "Plan of the same configuration " + when
	if resp.Diagnostics.HasErrors() {
		ck.r.addf("%s failed: %s", step, diagText(resp.Diagnostics))
		return false
	}
	ok := true
	if len(resp.RequiresReplace) > 0 {
		ck.r.addf("%s requires a replacement (endless diff) because of %s", step, pathsText(resp.RequiresReplace))
		ok = false
	}
	if eq := resp.Planned.Equals(ck.obj.state); !eq.IsKnown() || eq.False() {
		var diffs []string
		ck.diff(nil, ck.obj.state, resp.Planned, &diffs)
		if len(diffs) == 0 {
			diffs = []string{"live " + ck.show(ck.obj.state) + ", planned " + ck.show(resp.Planned)}
		}
		ck.r.addf("%s is not a no-op (endless diff): %s", step, strings.Join(diffs, "; "))
		ok = false
	}
	return ok
}

// findByOwner checks that Read finds the object by its ownership token.
func (ck *caseCheck) findByOwner() {
	resp := ck.p.Read(ck.ctx, providers.ReadRequest{Kind: ck.c.Kind, Owner: ck.obj.owner})
	const step = "Read with an empty ID and the object's Owner"
	switch {
	case resp.Diagnostics.HasErrors():
		ck.r.addf("%s failed: %s", step, diagText(resp.Diagnostics))
	case resp.State.IsNull():
		ck.r.addf("%s did not find the object", step)
	case resp.ID != ck.obj.id:
		ck.r.addf("%s returned ID %q, want %q", step, resp.ID, ck.obj.id)
	}
}

// update applies the case's Update in place.
func (ck *caseCheck) update() bool {
	if !ck.validate("Update", ck.c.Update) {
		return false
	}
	plan := ck.p.Plan(ck.ctx, providers.PlanRequest{
		Kind: ck.c.Kind, Prior: ck.obj.state, Config: ck.c.Update, Private: ck.obj.private,
	})
	if plan.Diagnostics.HasErrors() {
		ck.r.addf("Plan of the Update failed: %s", diagText(plan.Diagnostics))
		return false
	}
	if len(plan.RequiresReplace) > 0 {
		ck.r.addf("Plan of the Update requires a replacement because of %s; Update must change only attributes that change in place", pathsText(plan.RequiresReplace))
		return false
	}
	if !ck.checkPlanned("Plan of the Update", plan.Planned) {
		return false
	}
	if eq := plan.Planned.Equals(ck.obj.state); eq.IsKnown() && eq.True() {
		ck.r.addf("Plan of the Update shows no change: the provider ignores the change, or the case's Update changes nothing")
		return false
	}
	applied := ck.p.Apply(ck.ctx, providers.ApplyRequest{
		Kind: ck.c.Kind, ID: ck.obj.id, Owner: ck.obj.owner, Prior: ck.obj.state,
		Planned: plan.Planned, Config: ck.c.Update, Private: ck.obj.private,
	})
	if applied.Diagnostics.HasErrors() {
		ck.r.addf("Apply of the Update failed: %s", diagText(applied.Diagnostics))
		return false
	}
	if applied.ID != "" && applied.ID != ck.obj.id {
		ck.r.addf("Apply of an in-place Update changed the ID from %q to %q", ck.obj.id, applied.ID)
		ck.obj.id = applied.ID
	}
	if !ck.checkState("Apply of the Update", applied.State) {
		return false
	}
	ck.checkConsistent("Apply of the Update", plan.Planned, applied.State)
	ck.obj.state, ck.obj.config = applied.State, ck.c.Update
	if applied.Private != nil {
		ck.obj.private = applied.Private
	}
	return ck.readBack("after the Update") && ck.checkNoDiff("after the Update")
}

// planReplace checks that the case's Replace plans a replacement.
func (ck *caseCheck) planReplace() {
	if !ck.validate("Replace", ck.c.Replace) {
		return
	}
	plan := ck.p.Plan(ck.ctx, providers.PlanRequest{
		Kind: ck.c.Kind, Prior: ck.obj.state, Config: ck.c.Replace, Private: ck.obj.private,
	})
	switch {
	case plan.Diagnostics.HasErrors():
		ck.r.addf("Plan of the Replace failed: %s", diagText(plan.Diagnostics))
	case len(plan.RequiresReplace) == 0:
		ck.r.addf("Plan of the Replace gave no RequiresReplace; Replace must change an attribute whose change replaces the object")
	default:
		ck.checkPlanned("Plan of the Replace", plan.Planned)
	}
}

// importObject checks that Import adopts the object for a new owner.
func (ck *caseCheck) importObject() {
	owner := providers.Owner{Address: ck.c.Kind + ".imported", Token: newToken()}
	resp := ck.p.Import(ck.ctx, providers.ImportRequest{Kind: ck.c.Kind, ID: ck.obj.id, Owner: owner})
	if resp.Diagnostics.HasErrors() {
		ck.r.addf("Import of an existing object failed: %s", diagText(resp.Diagnostics))
		return
	}
	if resp.ID != "" && resp.ID != ck.obj.id {
		ck.r.addf("Import returned ID %q for object %q", resp.ID, ck.obj.id)
		return
	}
	if !ck.checkState("Import", resp.State) {
		return
	}
	ck.obj.owner, ck.obj.state = owner, resp.State
	if resp.Private != nil {
		ck.obj.private = resp.Private
	}
	found := ck.p.Read(ck.ctx, providers.ReadRequest{Kind: ck.c.Kind, Owner: owner})
	switch {
	case found.Diagnostics.HasErrors():
		ck.r.addf("Read by the importing Owner failed: %s", diagText(found.Diagnostics))
	case found.State.IsNull() || found.ID != ck.obj.id:
		ck.r.addf("Read by the importing Owner did not find the imported object (got ID %q): Import must mark the object with the new Owner", found.ID)
	}
}

// delete deletes the object twice and checks that it is gone.
func (ck *caseCheck) delete() {
	req := providers.DeleteRequest{Kind: ck.c.Kind, ID: ck.obj.id, Owner: ck.obj.owner, Prior: ck.obj.state, Private: ck.obj.private}
	if resp := ck.p.Delete(ck.ctx, req); resp.Diagnostics.HasErrors() {
		ck.r.addf("Delete failed: %s", diagText(resp.Diagnostics))
		return
	}
	ck.obj.deleted = true
	if resp := ck.p.Delete(ck.ctx, req); resp.Diagnostics.HasErrors() {
		ck.r.addf("Delete of an object already deleted failed (Delete must be idempotent): %s", diagText(resp.Diagnostics))
	}
	byID := ck.p.Read(ck.ctx, providers.ReadRequest{Kind: ck.c.Kind, ID: ck.obj.id, Owner: ck.obj.owner, Private: ck.obj.private})
	switch {
	case byID.Diagnostics.HasErrors():
		ck.r.addf("Read after Delete failed (it must give a null state): %s", diagText(byID.Diagnostics))
	case !byID.State.IsNull():
		ck.r.addf("Read after Delete still found the object: %s", ck.show(byID.State))
	}
	byOwner := ck.p.Read(ck.ctx, providers.ReadRequest{Kind: ck.c.Kind, Owner: ck.obj.owner})
	switch {
	case byOwner.Diagnostics.HasErrors():
		ck.r.addf("Read by Owner after Delete failed (it must give a null state): %s", diagText(byOwner.Diagnostics))
	case !byOwner.State.IsNull():
		ck.r.addf("Read by Owner after Delete still found an object (ID %q)", byOwner.ID)
	}
}

// cleanup deletes the object when a failed check left it behind.
func (ck *caseCheck) cleanup() {
	if ck.obj.deleted || ck.obj.id == "" {
		return
	}
	prior := ck.obj.state
	if prior.Type() == cty.NilType {
		prior = ck.null()
	}
	resp := ck.p.Delete(ck.ctx, providers.DeleteRequest{Kind: ck.c.Kind, ID: ck.obj.id, Owner: ck.obj.owner, Prior: prior, Private: ck.obj.private})
	if resp.Diagnostics.HasErrors() {
		ck.r.addf("cleaning up object %q failed: %s", ck.obj.id, diagText(resp.Diagnostics))
	}
}

// report collects the problems found by a check.
type report struct {
	errs []error
}

func (r *report) addf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

// newToken returns a random ownership token.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "providertest-" + hex.EncodeToString(b[:])
}

// diagText renders diagnostics for a failure message.
func diagText(ds providers.Diagnostics) string {
	parts := make([]string, 0, len(ds))
	for _, d := range ds {
		sev := "error"
		if d.Severity == providers.Warning {
			sev = "warning"
		}
		s := sev + ": " + d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if len(d.Path) > 0 {
			s += " (at " + pathText(d.Path) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readMany checks that reading in a batch answers as reading one by one, in
// the order of the requests.
func (ck *caseCheck) readMany() {
	reqs := []providers.ReadRequest{
		{Kind: ck.c.Kind, ID: ck.obj.id, Owner: ck.obj.owner, Private: ck.obj.private},
		{Kind: ck.c.Kind, ID: "missing-" + newToken(), Owner: providers.Owner{Address: ck.c.Kind + ".missing", Token: newToken()}},
	}
	got := providers.ReadMany(ck.ctx, ck.p, reqs)
	if len(got) != len(reqs) {
		ck.r.addf("ReadMany gave %d answers for %d requests", len(got), len(reqs))
		return
	}
	one := ck.p.Read(ck.ctx, reqs[0])
	switch {
	case got[0].Diagnostics.HasErrors():
		ck.r.addf("ReadMany of the object failed: %s", diagText(got[0].Diagnostics))
	case !got[0].State.RawEquals(one.State):
		ck.r.addf("ReadMany and Read disagree: %s vs %s", ck.show(got[0].State), ck.show(one.State))
	}
	if got[1].Diagnostics.HasErrors() || !got[1].State.IsNull() {
		ck.r.addf("ReadMany of an unknown ID must give a null state and no error, got %s %s", ck.show(got[1].State), diagText(got[1].Diagnostics))
	}
}
