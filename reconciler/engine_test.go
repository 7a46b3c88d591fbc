package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/reconciler/inventory"
	"github.com/berthhq/berth/spec"
	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/zclconf/go-cty/cty"
)

// fakeProvider is an in-memory provider for unit tests of the engine. Kind
// "obj": name (in place), flavor (forces replacement), secret (sensitive),
// ref (in place), id (computed).
type fakeProvider struct {
	mu                    sync.Mutex
	objects               map[string]cty.Value // id → state
	owners                map[string]string    // token → id
	next                  int
	failOn                map[string]string // name attribute → operation that fails
	log                   []string          // "create name", "update name", "delete name"
	delay                 time.Duration
	inFlight, maxInFlight int
	planCalls             int
}

func newFake() *fakeProvider {
	return &fakeProvider{objects: map[string]cty.Value{}, owners: map[string]string{}, failOn: map[string]string{}}
}

var objBlock = &providers.Block{Attributes: map[string]*providers.Attribute{
	"name":   {Type: cty.String, Optional: true},
	"flavor": {Type: cty.String, Optional: true, ForceNew: true},
	"secret": {Type: cty.String, Optional: true, Sensitive: true},
	"ref":    {Type: cty.String, Optional: true},
	"id":     {Type: cty.String, Computed: true},
}}

func (f *fakeProvider) Schema(context.Context) providers.SchemaResponse {
	return providers.SchemaResponse{Name: "fake", Kinds: map[string]*providers.Kind{"obj": {Block: objBlock, Importable: true}}}
}

func (f *fakeProvider) Validate(context.Context, providers.ValidateRequest) providers.ValidateResponse {
	return providers.ValidateResponse{}
}

func (f *fakeProvider) Read(_ context.Context, req providers.ReadRequest) providers.ReadResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.ID
	if id == "" {
		id = f.owners[req.Owner.Token]
	}
	v, ok := f.objects[id]
	if !ok {
		return providers.ReadResponse{State: cty.NullVal(objBlock.ImpliedType())}
	}
	return providers.ReadResponse{ID: id, State: v}
}

func (f *fakeProvider) Plan(_ context.Context, req providers.PlanRequest) providers.PlanResponse {
	f.mu.Lock()
	f.planCalls++
	f.mu.Unlock()
	attrs := req.Config.AsValueMap()
	if req.Prior.IsNull() {
		attrs["id"] = cty.UnknownVal(cty.String)
		return providers.PlanResponse{Planned: cty.ObjectVal(attrs)}
	}
	attrs["id"] = req.Prior.GetAttr("id")
	var rr []cty.Path
	if !req.Prior.GetAttr("flavor").RawEquals(req.Config.GetAttr("flavor")) {
		rr = append(rr, cty.GetAttrPath("flavor"))
		attrs["id"] = cty.UnknownVal(cty.String)
	}
	return providers.PlanResponse{Planned: cty.ObjectVal(attrs), RequiresReplace: rr}
}

func (f *fakeProvider) name(v cty.Value) string {
	n := v.GetAttr("name")
	if n.IsNull() || !n.IsKnown() {
		return ""
	}
	return n.AsString()
}

func (f *fakeProvider) enter() {
	f.mu.Lock()
	f.inFlight++
	if f.inFlight > f.maxInFlight {
		f.maxInFlight = f.inFlight
	}
	f.mu.Unlock()
	time.Sleep(f.delay)
}

func (f *fakeProvider) leave() {
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
}

func (f *fakeProvider) Apply(_ context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	defer f.mu.Unlock()
	name := f.name(req.Planned)
	if f.failOn[name] == "apply" {
		return providers.ApplyResponse{Diagnostics: providers.Errorf("cannot apply %s: injected failure (secret is %s)", name, strOr(req.Config.GetAttr("secret")))}
	}
	attrs := req.Planned.AsValueMap()
	id := req.ID
	if id == "" {
		f.next++
		id = fmt.Sprintf("o%d", f.next)
		f.owners[req.Owner.Token] = id
		f.log = append(f.log, "create "+name)
	} else {
		f.log = append(f.log, "update "+name)
	}
	attrs["id"] = cty.StringVal(id)
	st := cty.ObjectVal(attrs)
	f.objects[id] = st
	return providers.ApplyResponse{ID: id, State: st}
}

func strOr(v cty.Value) string {
	if v.IsNull() || !v.IsKnown() {
		return ""
	}
	return v.AsString()
}

func (f *fakeProvider) Delete(_ context.Context, req providers.DeleteRequest) providers.DeleteResponse {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.objects[req.ID]
	if ok && f.failOn[f.name(v)] == "delete" {
		return providers.DeleteResponse{Diagnostics: providers.Errorf("cannot delete: injected failure")}
	}
	if ok {
		f.log = append(f.log, "delete "+f.name(v))
	}
	delete(f.objects, req.ID)
	return providers.DeleteResponse{}
}

func (f *fakeProvider) Import(_ context.Context, req providers.ImportRequest) providers.ImportResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.objects[req.ID]
	if !ok {
		return providers.ImportResponse{Diagnostics: providers.Errorf("no object %s", req.ID)}
	}
	return providers.ImportResponse{ID: req.ID, State: v}
}

func (f *fakeProvider) takeLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

type harness struct {
	t     *testing.T
	fake  *fakeProvider
	store *inventory.Store
	eng   *Engine
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, err := inventory.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fake := newFake()
	eng, err := New(context.Background(), Options{Providers: map[string]providers.Provider{"fake": fake}, Inventory: st, FingerprintKey: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, fake: fake, store: st, eng: eng}
}

func (h *harness) plan(src string, vars ...spec.VarInput) *Plan {
	h.t.Helper()
	p, diags := h.planErr(src, vars...)
	if diags != "" {
		h.t.Fatalf("plan: %s", diags)
	}
	return p
}

func (h *harness) planErr(src string, vars ...spec.VarInput) (*Plan, string) {
	cfg, diags := spec.Parse("c", []string{"c/main.hcl"}, map[string][]byte{"c/main.hcl": []byte(src)})
	if diags.HasErrors() {
		return nil, diags.Error()
	}
	p, diags := h.eng.Plan(context.Background(), PlanRequest{Config: cfg, Inputs: spec.Inputs{Vars: vars, Host: spec.Host{Name: "h"}}})
	if diags.HasErrors() {
		return nil, diags.Error()
	}
	return p, ""
}

func (h *harness) apply(src string) *ApplyResult {
	h.t.Helper()
	res := h.eng.Apply(context.Background(), h.plan(src), nil)
	return res
}

// actions summarises a plan as "addr:action" strings, no-ops left out.
func actions(p *Plan) string {
	var out []string
	for _, c := range p.Changes {
		if c.Action != NoOp {
			out = append(out, c.Addr.String()+":"+c.Action.String())
		}
	}
	return strings.Join(out, " ")
}

func TestPlanActions(t *testing.T) {
	h := newHarness(t)
	v1 := `
obj "a" {
  name   = "a"
  flavor = "x"
}
obj "b" {
  name = "b"
  ref  = obj.a.id
}
obj "gone" {
  name = "gone"
}`
	if got := actions(h.plan(v1)); got != "obj.a:create obj.b:create obj.gone:create" {
		t.Fatalf("first plan: %s", got)
	}
	if res := h.apply(v1); res.Diagnostics.HasErrors() || res.Added != 3 {
		t.Fatalf("apply: %d added, %s", res.Added, res.Diagnostics.Error())
	}
	if p := h.plan(v1); p.HasChanges() {
		t.Fatalf("second plan must be empty, got %s", actions(p))
	}
	v2 := `
obj "a" {
  name   = "a"
  flavor = "y"
}
obj "b" {
  name = "b2"
  ref  = obj.a.id
}`
	p := h.plan(v2)
	if got := actions(p); got != "obj.a:replace obj.b:update obj.gone:delete" {
		t.Fatalf("plan v2: %s", got)
	}
	for _, c := range p.Changes {
		switch c.Addr.String() {
		case "obj.a":
			if len(c.RequiresReplace) != 1 || !strings.Contains(c.Reason, "flavor") {
				t.Errorf("replace of obj.a: reason %q, paths %v", c.Reason, c.RequiresReplace)
			}
		case "obj.gone":
			if !strings.Contains(c.Reason, "not in the configuration") {
				t.Errorf("delete reason %q", c.Reason)
			}
		case "obj.b":
			if c.After.GetAttr("ref").IsKnown() {
				t.Errorf("obj.b.ref should be unknown until obj.a is replaced")
			}
		}
	}
	h.fake.takeLog()
	res := h.eng.Apply(context.Background(), p, nil)
	if res.Diagnostics.HasErrors() {
		t.Fatal(res.Diagnostics.Error())
	}
	log := h.fake.takeLog()
	// Deletes come first, then creates and updates in dependency order.
	if idx(log, "delete a") > idx(log, "create a") || idx(log, "create a") > idx(log, "update b2") || idx(log, "delete gone") < 0 {
		t.Errorf("wrong order: %v", log)
	}
	// obj.b got the new id of obj.a.
	p = h.plan(v2)
	if p.HasChanges() {
		t.Errorf("after apply, plan shows %s", actions(p))
	}
}

func idx(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestCountChangesOnlyAffectedInstances(t *testing.T) {
	h := newHarness(t)
	cfg := func(n int) string {
		return fmt.Sprintf(`obj "w" {
  count = %d
  name  = "w${count.index}"
}`, n)
	}
	h.apply(cfg(3))
	if got := actions(h.plan(cfg(5))); got != "obj.w[3]:create obj.w[4]:create" {
		t.Errorf("3→5: %s", got)
	}
	p := h.plan(cfg(2))
	if got := actions(p); got != "obj.w[2]:delete" {
		t.Errorf("3→2: %s", got)
	}
	if !strings.Contains(p.Changes[2].Reason, "out of range") {
		t.Errorf("reason %q", p.Changes[2].Reason)
	}
}

func TestFailureSkipsOnlyDependents(t *testing.T) {
	h := newHarness(t)
	h.fake.failOn["bad"] = "apply"
	res := h.apply(`
obj "bad" { name = "bad" }
obj "dep" {
  name = "dep"
  ref  = obj.bad.id
}
obj "free" { name = "free" }`)
	if !res.Diagnostics.HasErrors() {
		t.Fatal("want an error")
	}
	if len(res.Failed) != 1 || res.Failed[0].String() != "obj.bad" {
		t.Errorf("failed = %v", res.Failed)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].String() != "obj.dep" {
		t.Errorf("skipped = %v", res.Skipped)
	}
	if res.Added != 1 {
		t.Errorf("added = %d, want 1 (obj.free)", res.Added)
	}
	// Next apply converges once the fault is gone.
	delete(h.fake.failOn, "bad")
	res = h.apply(`
obj "bad" { name = "bad" }
obj "dep" {
  name = "dep"
  ref  = obj.bad.id
}
obj "free" { name = "free" }`)
	if res.Diagnostics.HasErrors() || res.Added != 2 {
		t.Errorf("retry: added %d: %s", res.Added, res.Diagnostics.Error())
	}
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	base := `obj "p" {
  name   = "p"
  flavor = "%s"
  lifecycle {
    prevent_destroy = true
  }
}`
	h.apply(fmt.Sprintf(base, "x"))
	if _, diags := h.planErr(fmt.Sprintf(base, "y")); !strings.Contains(diags, "prevent_destroy") {
		t.Errorf("replacing a prevent_destroy resource must fail, got %q", diags)
	}
	// Removing the block orphans the object: prevent_destroy is gone with
	// the block, like Terraform, and the plan deletes it.
	if got := actions(h.plan(``)); got != "obj.p:delete" {
		t.Errorf("removing a prevent_destroy block: %s, want obj.p:delete", got)
	}

	h2 := newHarness(t)
	cbd := `obj "c" {
  name   = "c"
  flavor = "%s"
  lifecycle {
    create_before_destroy = true
  }
}`
	h2.apply(fmt.Sprintf(cbd, "x"))
	h2.fake.takeLog()
	p := h2.plan(fmt.Sprintf(cbd, "y"))
	if got := actions(p); got != "obj.c:create-then-delete" {
		t.Fatalf("got %s", got)
	}
	h2.eng.Apply(context.Background(), p, nil)
	if log := h2.fake.takeLog(); strings.Join(log, ",") != "create c,delete c" {
		t.Errorf("create_before_destroy order: %v", log)
	}

	h3 := newHarness(t)
	ign := `obj "i" {
  name = "%s"
  ref  = "%s"
  lifecycle {
    ignore_changes = [ref]
  }
}`
	h3.apply(fmt.Sprintf(ign, "i", "one"))
	if p := h3.plan(fmt.Sprintf(ign, "i", "two")); p.HasChanges() {
		t.Errorf("ignored attribute change planned: %s", actions(p))
	}
	if got := actions(h3.plan(fmt.Sprintf(ign, "i2", "two"))); got != "obj.i:update" {
		t.Errorf("non-ignored change: %s", got)
	}
}

func TestDriftIsDetectedAndNamed(t *testing.T) {
	h := newHarness(t)
	cfg := `obj "d" { name = "d" }`
	h.apply(cfg)
	h.fake.mu.Lock()
	for id, v := range h.fake.objects {
		m := v.AsValueMap()
		m["name"] = cty.StringVal("changed by hand")
		h.fake.objects[id] = cty.ObjectVal(m)
	}
	h.fake.mu.Unlock()
	p := h.plan(cfg)
	if got := actions(p); got != "obj.d:update" || !strings.Contains(p.Changes[0].Reason, "outside berth") {
		t.Errorf("drift: %s, reason %q", got, p.Changes[0].Reason)
	}
	// An object deleted by hand is created again.
	h.fake.mu.Lock()
	h.fake.objects = map[string]cty.Value{}
	h.fake.mu.Unlock()
	p = h.plan(cfg)
	if got := actions(p); got != "obj.d:create" || !strings.Contains(p.Changes[0].Reason, "deleted outside berth") {
		t.Errorf("deleted by hand: %s, reason %q", got, p.Changes[0].Reason)
	}
}

func TestSensitiveValuesAreMarkedAndRedacted(t *testing.T) {
	h := newHarness(t)
	h.fake.failOn["s"] = "apply"
	cfg := `
variable "pw" {
  sensitive = true
}
obj "s" {
  name   = "s"
  secret = var.pw
}`
	pw := spec.VarInput{Name: "pw", Raw: "hunter2-secret", Source: "-var pw"}
	p := h.plan(cfg, pw)
	if !p.Changes[0].After.GetAttr("secret").HasMark(marks.Sensitive) {
		t.Errorf("planned secret not marked")
	}
	res := h.eng.Apply(context.Background(), p, nil)
	if !res.Diagnostics.HasErrors() {
		t.Fatal("want the injected failure")
	}
	if strings.Contains(res.Diagnostics.Error(), "hunter2-secret") {
		t.Errorf("secret leaked into an error: %s", res.Diagnostics.Error())
	}
	delete(h.fake.failOn, "s")
	h.eng.Apply(context.Background(), h.plan(cfg, pw), nil)
	// A change of the secret is detected.
	p = h.plan(cfg, spec.VarInput{Name: "pw", Raw: "other-secret", Source: "-var pw"})
	if got := actions(p); got != "obj.s:update" {
		t.Errorf("secret change: %s", got)
	}
}

func TestParallelismIsBounded(t *testing.T) {
	h := newHarness(t)
	h.fake.delay = 20 * time.Millisecond
	eng, _ := New(context.Background(), Options{Providers: map[string]providers.Provider{"fake": h.fake}, Inventory: h.store, Parallelism: 3})
	h.eng = eng
	h.apply(`obj "many" {
  count = 12
  name  = "m${count.index}"
}`)
	if h.fake.maxInFlight > 3 || h.fake.maxInFlight < 2 {
		t.Errorf("max in flight = %d, want 2..3", h.fake.maxInFlight)
	}
}

func TestInterruptedCreateIsFoundByToken(t *testing.T) {
	h := newHarness(t)
	// Simulate a crash after the provider created the object but before
	// the inventory recorded its ID.
	tok := inventory.NewToken()
	now := time.Now()
	if err := h.store.Put(inventory.Entry{Token: tok, Address: "obj.x", Kind: "obj", Provider: "fake", Status: inventory.Creating, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	h.fake.objects["o99"] = cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("x"), "flavor": cty.NullVal(cty.String), "secret": cty.NullVal(cty.String), "ref": cty.NullVal(cty.String), "id": cty.StringVal("o99")})
	h.fake.owners[tok] = "o99"
	// Still declared: adopted, nothing to do.
	if p := h.plan(`obj "x" { name = "x" }`); p.HasChanges() {
		t.Errorf("interrupted create should be adopted, got %s", actions(p))
	}
	// No longer declared: deleted, not orphaned.
	if got := actions(h.plan(``)); got != "obj.x:delete" {
		t.Errorf("interrupted create of an undeclared resource: %s", got)
	}
}

func TestEmptyConfigDeletesInReverseOrder(t *testing.T) {
	h := newHarness(t)
	h.apply(`
obj "base" { name = "base" }
obj "mid" {
  name = "mid"
  ref  = obj.base.id
}
obj "top" {
  name = "top"
  ref  = obj.mid.id
}`)
	h.fake.takeLog()
	res := h.eng.Apply(context.Background(), h.plan(`obj "other" { name = "other" }`), nil)
	if res.Diagnostics.HasErrors() {
		t.Fatal(res.Diagnostics.Error())
	}
	log := h.fake.takeLog()
	if !(idx(log, "delete top") < idx(log, "delete mid") && idx(log, "delete mid") < idx(log, "delete base")) {
		t.Errorf("deletes not in reverse dependency order: %v", log)
	}
	entries, _ := h.store.Entries()
	var left []string
	for _, e := range entries {
		left = append(left, e.Address)
	}
	sort.Strings(left)
	if strings.Join(left, ",") != "obj.other" {
		t.Errorf("inventory holds %v", left)
	}
}

func (h *harness) planReq(src string, targets []string, destroy bool) *Plan {
	h.t.Helper()
	cfg, diags := spec.Parse("c", []string{"c/main.hcl"}, map[string][]byte{"c/main.hcl": []byte(src)})
	if diags.HasErrors() {
		h.t.Fatal(diags.Error())
	}
	var ts []addr.Instance
	for _, t := range targets {
		a, err := addr.Parse(t)
		if err != nil {
			h.t.Fatal(err)
		}
		ts = append(ts, a)
	}
	p, diags := h.eng.Plan(context.Background(), PlanRequest{Config: cfg, Inputs: spec.Inputs{Host: spec.Host{Name: "h"}}, Targets: ts, Destroy: destroy})
	if diags.HasErrors() {
		h.t.Fatal(diags.Error())
	}
	return p
}

func TestCreateBeforeDestroyKeepsOldObjectWhenCreateFails(t *testing.T) {
	h := newHarness(t)
	cbd := `obj "c" {
  name   = "c"
  flavor = "%s"
  lifecycle {
    create_before_destroy = true
  }
}`
	h.apply(fmt.Sprintf(cbd, "x"))
	h.fake.failOn["c"] = "apply"
	h.fake.takeLog()
	res := h.apply(fmt.Sprintf(cbd, "y"))
	if !res.Diagnostics.HasErrors() {
		t.Fatal("want the create to fail")
	}
	if log := h.fake.takeLog(); idx(log, "delete c") >= 0 {
		t.Errorf("the old object was deleted although its replacement failed: %v", log)
	}
	if len(h.fake.objects) != 1 {
		t.Errorf("%d objects, want the old one", len(h.fake.objects))
	}
}

func TestDestroyTargetFollowsDependents(t *testing.T) {
	h := newHarness(t)
	cfg := `
obj "net" { name = "net" }
obj "app" {
  name = "app"
  ref  = obj.net.id
}
obj "other" { name = "other" }`
	h.apply(cfg)
	if got := actions(h.planReq(cfg, []string{"obj.net"}, true)); got != "obj.app:delete obj.net:delete" {
		t.Errorf("destroy -target obj.net: %s", got)
	}
	if got := actions(h.planReq(cfg, []string{"obj.app"}, true)); got != "obj.app:delete" {
		t.Errorf("destroy -target obj.app: %s", got)
	}
}

func TestInstanceTarget(t *testing.T) {
	h := newHarness(t)
	cfg := `obj "w" {
  count = 3
  name  = "w${count.index}"
}`
	if got := actions(h.planReq(cfg, []string{"obj.w[1]"}, false)); got != "obj.w[1]:create" {
		t.Errorf("-target obj.w[1]: %s", got)
	}
}

func TestOrphanDeletedAfterTheUpdateThatLetGoOfIt(t *testing.T) {
	h := newHarness(t)
	h.apply(`
obj "net" { name = "net" }
obj "app" {
  name = "app"
  ref  = obj.net.id
}`)
	h.fake.takeLog()
	res := h.apply(`
obj "app" {
  name = "app"
  ref  = "none"
}`)
	if res.Diagnostics.HasErrors() {
		t.Fatal(res.Diagnostics.Error())
	}
	log := h.fake.takeLog()
	if !(idx(log, "update app") >= 0 && idx(log, "update app") < idx(log, "delete net")) {
		t.Errorf("want the update of app before the delete of net: %v", log)
	}
}

func TestInterruptedApplyIsAnError(t *testing.T) {
	h := newHarness(t)
	p := h.plan(`obj "a" { name = "a" }`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := h.eng.Apply(ctx, p, nil)
	if !res.Diagnostics.HasErrors() || !strings.Contains(res.Diagnostics.Error(), "interrupted") {
		t.Errorf("want an interruption error, got %q", res.Diagnostics.Error())
	}
}

func TestEntriesOfObjectsDeletedByHandAreDropped(t *testing.T) {
	h := newHarness(t)
	cfg := `obj "a" { name = "a" }`
	h.apply(cfg)
	h.fake.mu.Lock()
	h.fake.objects = map[string]cty.Value{}
	h.fake.mu.Unlock()
	if res := h.apply(cfg); res.Diagnostics.HasErrors() {
		t.Fatal(res.Diagnostics.Error())
	}
	entries, _ := h.store.Entries()
	if len(entries) != 1 {
		t.Errorf("%d entries after re-creating a deleted object, want 1", len(entries))
	}
	h.fake.mu.Lock()
	h.fake.objects = map[string]cty.Value{}
	h.fake.mu.Unlock()
	h.apply(``)
	if entries, _ := h.store.Entries(); len(entries) != 0 {
		t.Errorf("%d entries left for an object gone and undeclared", len(entries))
	}
}

// wrongTypeProvider returns a state of the wrong type from Read.
type wrongTypeProvider struct{ *fakeProvider }

func (w wrongTypeProvider) Read(context.Context, providers.ReadRequest) providers.ReadResponse {
	return providers.ReadResponse{State: cty.StringVal("not an object")}
}

func TestProviderReturningWrongTypeIsAnError(t *testing.T) {
	h := newHarness(t)
	h.apply(`obj "a" { name = "a" }`)
	eng, err := New(context.Background(), Options{Providers: map[string]providers.Provider{"fake": wrongTypeProvider{h.fake}}, Inventory: h.store})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	if _, diags := h.planErr(`obj "a" { name = "a" }`); !strings.Contains(diags, "wrong type") {
		t.Errorf("want a wrong-type error, got %q", diags)
	}
}

func TestFailedDeleteKeepsTheObjectManaged(t *testing.T) {
	h := newHarness(t)
	cfg := `obj "b" { name = "b" }`
	h.apply(cfg)
	h.fake.failOn["b"] = "delete"
	if res := h.eng.Apply(context.Background(), h.planReq(cfg, nil, true), nil); !res.Diagnostics.HasErrors() {
		t.Fatal("want the delete to fail")
	}
	delete(h.fake.failOn, "b")
	// Still declared: nothing to do, no replacement.
	if p := h.plan(cfg); p.HasChanges() {
		t.Errorf("after a failed delete, plan shows %s", actions(p))
	}
}

func TestTargetedPlanIgnoresOutputsOfOtherResources(t *testing.T) {
	h := newHarness(t)
	cfg := `
obj "a" { name = "a" }
obj "c" {
  count = 3
  name  = "c${count.index}"
}
output "o" {
  value = obj.c[2].id
}`
	p := h.planReq(cfg, []string{"obj.a"}, false)
	if got := actions(p); got != "obj.a:create" {
		t.Errorf("targeted plan: %s", got)
	}
	if len(p.Outputs) != 0 {
		t.Errorf("a targeted plan must leave outputs alone, got %d", len(p.Outputs))
	}
}

func TestConvergedPlanAsksNoProviderPlan(t *testing.T) {
	h := newHarness(t)
	cfg := `obj "a" {
  count = 3
  name  = "a${count.index}"
}`
	h.apply(cfg)
	h.fake.planCalls = 0
	if p := h.plan(cfg); p.HasChanges() {
		t.Fatalf("not converged: %s", actions(p))
	}
	if h.fake.planCalls != 0 {
		t.Errorf("a converged plan asked the provider to plan %d times", h.fake.planCalls)
	}
	// Drift: the changed object is planned by the provider, and found.
	h.fake.mu.Lock()
	for id, v := range h.fake.objects {
		if v.GetAttr("name").AsString() == "a1" {
			m := v.AsValueMap()
			m["ref"] = cty.StringVal("by hand")
			h.fake.objects[id] = cty.ObjectVal(m)
		}
	}
	h.fake.mu.Unlock()
	if got := actions(h.plan(cfg)); got != "obj.a[1]:update" {
		t.Errorf("drift: %s", got)
	}
	if h.fake.planCalls != 1 {
		t.Errorf("drift of one object: %d provider plans, want 1", h.fake.planCalls)
	}
	// A changed configuration is planned by the provider too.
	h.fake.planCalls = 0
	h.plan(strings.Replace(cfg, `"a${count.index}"`, `"b${count.index}"`, 1))
	if h.fake.planCalls != 3 {
		t.Errorf("changed configuration: %d provider plans, want 3", h.fake.planCalls)
	}
}

// kindProvider is the fake provider with its kind "obj" changed by edit.
type kindProvider struct {
	*fakeProvider
	edit func(*providers.Kind)
}

func (o kindProvider) Schema(ctx context.Context) providers.SchemaResponse {
	resp := o.fakeProvider.Schema(ctx)
	k := *resp.Kinds["obj"]
	o.edit(&k)
	resp.Kinds["obj"] = &k
	return resp
}

// withKind makes h's engine see the fake kind as edit changes it.
func (h *harness) withKind(t *testing.T, edit func(*providers.Kind)) {
	t.Helper()
	eng, err := New(context.Background(), Options{Providers: map[string]providers.Provider{"fake": kindProvider{h.fake, edit}}, Inventory: h.store})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
}

func TestKindThatReadsOutsideIsAlwaysPlanned(t *testing.T) {
	h := newHarness(t)
	h.withKind(t, func(k *providers.Kind) { k.ReadsOutside = true })
	cfg := `obj "a" { name = "a" }`
	h.apply(cfg)
	h.fake.planCalls = 0
	h.plan(cfg)
	if h.fake.planCalls != 1 {
		t.Errorf("a kind that reads outside state was planned %d times, want 1", h.fake.planCalls)
	}
}

func TestDestroyWarningOnDeletesAndReplacements(t *testing.T) {
	h := newHarness(t)
	h.withKind(t, func(k *providers.Kind) { k.DestroyWarning = "destroys data" })
	h.apply(`
obj "a" { name = "a" }
obj "b" { name = "b" }
obj "c" { name = "c" }`)
	p := h.plan(`
obj "a" {
  name   = "a"
  flavor = "new"
}
obj "b" { name = "b2" }
obj "d" { name = "d" }`)
	got := map[string]string{}
	for _, c := range p.Changes {
		got[c.Addr.String()+" "+c.Action.String()] = c.Warning
	}
	want := map[string]string{"obj.a replace": "destroys data", "obj.b update": "", "obj.c delete": "destroys data", "obj.d create": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestRedactorHidesOverlappingSecretsWhole(t *testing.T) {
	r := newRedactor()
	r.addValue(cty.StringVal("abc").Mark(marks.Sensitive))
	r.addValue(cty.StringVal("abcdef123").Mark(marks.Sensitive))
	for i := 0; i < 20; i++ {
		if got := r.redact("x abcdef123 y abc"); got != "x (sensitive value) y (sensitive value)" {
			t.Fatalf("redact = %q", got)
		}
	}
}

func TestOrphansThatDependOnEachOtherAreDeleted(t *testing.T) {
	h := newHarness(t)
	h.apply(`
obj "x" {
  name = "x"
  ref  = obj.y.name
}
obj "y" { name = "y" }`)
	h.apply(`
obj "x" {
  name = "x"
  ref  = "y"
}
obj "y" {
  name = "y"
  ref  = obj.x.name
}`)
	res := h.apply(``)
	if res.Diagnostics.HasErrors() || res.Destroyed != 2 {
		t.Errorf("destroyed %d, diags %q", res.Destroyed, res.Diagnostics.Error())
	}
	if entries, _ := h.store.Entries(); len(entries) != 0 {
		t.Errorf("%d entries left", len(entries))
	}
}

func TestDelayedOrphanKeepsItsDependenciesUntilAfter(t *testing.T) {
	h := newHarness(t)
	h.apply(`
obj "v" { name = "v" }
obj "b" {
  name = "b"
  ref  = obj.v.id
}
obj "a" {
  name = "a"
  ref  = obj.b.id
}`)
	h.fake.takeLog()
	res := h.apply(`
obj "a" {
  name = "a"
  ref  = "none"
}`)
	if res.Diagnostics.HasErrors() {
		t.Fatal(res.Diagnostics.Error())
	}
	log := h.fake.takeLog()
	ua, db, dv := idx(log, "update a"), idx(log, "delete b"), idx(log, "delete v")
	if !(ua >= 0 && ua < db && db < dv) {
		t.Errorf("want update a, delete b, delete v in that order: %v", log)
	}
}
