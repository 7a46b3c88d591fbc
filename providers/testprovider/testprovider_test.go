package testprovider

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

var ctx = context.Background()

// decode decodes an HCL body of kind as the engine would.
func decode(t testing.TB, p providers.Provider, kind, src string) cty.Value {
	t.Helper()
	k := p.Schema(ctx).Kinds[kind]
	if k == nil {
		t.Fatalf("no kind %q", kind)
	}
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := hcldec.Decode(f.Body, k.Block.DecoderSpec(), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return v
}

func mustOK(t testing.TB, what string, diags providers.Diagnostics) {
	t.Helper()
	if diags.HasErrors() {
		t.Fatalf("%s: %v", what, diags.Err())
	}
}

// create plans and applies src as a new object owned by address.
func create(t testing.TB, p providers.Provider, kind, address, src string) providers.ApplyResponse {
	t.Helper()
	cfg := decode(t, p, kind, src)
	ty := p.Schema(ctx).Kinds[kind].Block.ImpliedType()
	pr := p.Plan(ctx, providers.PlanRequest{Kind: kind, Prior: cty.NullVal(ty), Config: cfg})
	mustOK(t, "plan", pr.Diagnostics)
	ar := p.Apply(ctx, providers.ApplyRequest{Kind: kind, Owner: owner(address), Prior: cty.NullVal(ty), Planned: pr.Planned, Config: cfg})
	mustOK(t, "apply", ar.Diagnostics)
	return ar
}

func owner(address string) providers.Owner {
	return providers.Owner{Address: address, Token: "token-" + address}
}

// stateConfig turns a state into the configuration that produced it: the
// computed-only attributes null.
func stateConfig(v cty.Value) cty.Value {
	m := v.AsValueMap()
	for _, a := range []string{"id", "serial"} {
		if _, ok := m[a]; ok {
			m[a] = cty.NullVal(m[a].Type())
		}
	}
	return cty.ObjectVal(m)
}

func TestSchema(t *testing.T) {
	for _, p := range []providers.Provider{New(t.TempDir()), NewMemory()} {
		resp := p.Schema(ctx)
		if resp.Name != "test" {
			t.Errorf("name %q, want test", resp.Name)
		}
		thing, widget := resp.Kinds["thing"], resp.Kinds["widget"]
		if thing == nil || widget == nil {
			t.Fatalf("kinds %v, want thing and widget", resp.Kinds)
		}
		a := thing.Block.Attributes
		checks := []struct {
			name string
			ok   bool
		}{
			{"secret sensitive", a["secret"].Sensitive && a["secret"].Optional},
			{"flavor force new", a["flavor"].ForceNew},
			{"value in place", !a["value"].ForceNew && a["value"].Optional},
			{"tags map", a["tags"].Type.Equals(cty.Map(cty.String))},
			{"size number", a["size"].Type == cty.Number},
			{"id computed", a["id"].Computed && !a["id"].Optional},
			{"serial computed", a["serial"].Computed && a["serial"].Type == cty.Number},
			{"settings single", thing.Block.Blocks["settings"].Nesting == providers.NestingSingle},
			{"port list", thing.Block.Blocks["port"].Nesting == providers.NestingList},
			{"port number required", thing.Block.Blocks["port"].Block.Attributes["number"].Required},
			{"protocol optional computed", thing.Block.Blocks["port"].Block.Attributes["protocol"].Optional && thing.Block.Blocks["port"].Block.Attributes["protocol"].Computed},
			{"label required force new", widget.Block.Attributes["label"].Required && widget.Block.Attributes["label"].ForceNew},
			{"ref in place", widget.Block.Attributes["ref"].Optional && !widget.Block.Attributes["ref"].ForceNew},
			{"widget id computed", widget.Block.Attributes["id"].Computed},
			{"importable", thing.Importable && widget.Importable},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("schema: %s does not hold", c.name)
			}
		}
		if paths := thing.Block.SensitivePaths(decode(t, p, "thing", `secret = "x"`)); len(paths) != 1 {
			t.Errorf("sensitive paths %v, want secret", paths)
		}
	}
}

func TestValidate(t *testing.T) {
	p := NewMemory()
	cases := []struct {
		kind, src string
		wantErr   string // "" for none
		wantPath  string
	}{
		{"thing", `name = "a"`, "", ""},
		{"thing", `fail = "apply"`, "", ""},
		{"thing", `fail = "sometimes"`, `fail must be "plan", "apply" or "delete"`, "fail"},
		{"thing", "port {\n number = 80\n}\nport {\n number = 70000\n}", "out of range", "port[1].number"},
		{"thing", "port {\n number = 1.5\n}", "out of range", "port[0].number"},
		{"thing", "port {\n number = 53\n protocol = \"icmp\"\n}", `protocol must be "tcp" or "udp"`, "port[0].protocol"},
		{"thing", "port {\n number = 53\n protocol = \"udp\"\n}", "", ""},
		{"widget", `label = ""`, "label must not be empty", "label"},
		{"widget", `label = "x"`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			resp := p.Validate(ctx, providers.ValidateRequest{Kind: c.kind, Config: decode(t, p, c.kind, c.src)})
			if c.wantErr == "" {
				mustOK(t, "validate", resp.Diagnostics)
				return
			}
			if len(resp.Diagnostics) != 1 || !strings.Contains(resp.Diagnostics[0].Summary, c.wantErr) {
				t.Fatalf("diagnostics %v, want one about %q", resp.Diagnostics, c.wantErr)
			}
			if got := pathString(resp.Diagnostics[0].Path); got != c.wantPath {
				t.Errorf("path %s, want %s", got, c.wantPath)
			}
		})
	}
	// Unknown values are accepted.
	cfg := decode(t, p, "thing", `name = "a"`).AsValueMap()
	cfg["fail"] = cty.UnknownVal(cty.String)
	mustOK(t, "validate unknown", p.Validate(ctx, providers.ValidateRequest{Kind: "thing", Config: cty.ObjectVal(cfg)}).Diagnostics)
	// A wrong kind or a config that does not fit is an error, not a panic.
	for _, req := range []providers.ValidateRequest{
		{Kind: "gadget", Config: cty.EmptyObjectVal},
		{Kind: "thing", Config: cty.StringVal("x")},
		{Kind: "thing", Config: cty.ObjectVal(map[string]cty.Value{"bogus": cty.True})},
		{Kind: "thing", Config: cty.NullVal(cty.DynamicPseudoType)},
	} {
		if !p.Validate(ctx, req).Diagnostics.HasErrors() {
			t.Errorf("validate %#v: no error", req)
		}
	}
}

func pathString(p cty.Path) string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case cty.GetAttrStep:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.Name)
		case cty.IndexStep:
			b.WriteString("[" + s.Key.AsBigFloat().Text('f', -1) + "]")
		}
	}
	return b.String()
}

func TestPlan(t *testing.T) {
	p := NewMemory()
	const base = `
name   = "a"
value  = "one"
flavor = "x"
tags   = { env = "prod" }
size   = 3
settings {
  level = 2
}
port {
  number = 80
}
port {
  number   = 53
  protocol = "udp"
}
`
	prior := create(t, p, "thing", "thing.a", base).State
	cases := []struct {
		name        string
		src         string // "" plans a create of base
		replace     []string
		same        bool // planned must equal prior
		idKnown     bool
		serialKnown bool
	}{
		{name: "create", src: "", idKnown: false},
		{name: "no change", src: base, same: true, idKnown: true, serialKnown: true},
		{name: "explicit default protocol is no change", src: strings.Replace(base, "number = 80", "number = 80\nprotocol = \"tcp\"", 1), same: true, idKnown: true, serialKnown: true},
		{name: "value in place", src: strings.Replace(base, `"one"`, `"two"`, 1), idKnown: true},
		{name: "tags in place", src: strings.Replace(base, `"prod"`, `"dev"`, 1), idKnown: true},
		{name: "settings in place", src: strings.Replace(base, "level = 2", "level = 3", 1), idKnown: true},
		{name: "port protocol in place", src: strings.Replace(base, `"udp"`, `"tcp"`, 1), idKnown: true},
		{name: "size in place", src: strings.Replace(base, "size   = 3", "size = 4", 1), idKnown: true},
		{name: "flavor replaces", src: strings.Replace(base, `"x"`, `"y"`, 1), replace: []string{"flavor"}},
		{name: "flavor removed replaces", src: strings.Replace(base, `flavor = "x"`, "", 1), replace: []string{"flavor"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := providers.PlanRequest{Kind: "thing", Prior: prior, Config: decode(t, p, "thing", c.src)}
			if c.src == "" {
				req.Prior = cty.NullVal(prior.Type())
				req.Config = decode(t, p, "thing", base)
			}
			resp := p.Plan(ctx, req)
			mustOK(t, "plan", resp.Diagnostics)
			var got []string
			for _, rp := range resp.RequiresReplace {
				got = append(got, pathString(rp))
			}
			if strings.Join(got, ",") != strings.Join(c.replace, ",") {
				t.Errorf("requires replace %v, want %v", got, c.replace)
			}
			if c.same != resp.Planned.RawEquals(prior) {
				t.Errorf("planned == prior is %v, want %v:\nplanned %#v\nprior   %#v", !c.same, c.same, resp.Planned, prior)
			}
			if id := resp.Planned.GetAttr("id"); id.IsKnown() != c.idKnown {
				t.Errorf("id known %v, want %v", id.IsKnown(), c.idKnown)
			} else if c.idKnown && !id.RawEquals(prior.GetAttr("id")) {
				t.Errorf("id %#v, want the prior's %#v", id, prior.GetAttr("id"))
			}
			if s := resp.Planned.GetAttr("serial"); s.IsKnown() != c.serialKnown {
				t.Errorf("serial known %v, want %v", s.IsKnown(), c.serialKnown)
			}
			// The default protocol is filled in, whatever the action.
			ports := resp.Planned.GetAttr("port").AsValueSlice()
			if len(ports) == 0 || !ports[0].GetAttr("protocol").RawEquals(cty.StringVal("tcp")) {
				t.Errorf("port[0] %#v, want protocol tcp filled in", ports)
			}
		})
	}
}

func TestPlanUnknownAndWidget(t *testing.T) {
	p := NewMemory()
	// Unknown configuration values stay unknown and count as a change.
	prior := create(t, p, "thing", "thing.u", `value = "v"`).State
	cfg := stateConfig(prior).AsValueMap()
	cfg["value"] = cty.UnknownVal(cty.String)
	resp := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: prior, Config: cty.ObjectVal(cfg)})
	mustOK(t, "plan", resp.Diagnostics)
	if resp.Planned.GetAttr("value").IsKnown() || resp.Planned.GetAttr("serial").IsKnown() || !resp.Planned.GetAttr("id").IsKnown() {
		t.Errorf("planned %#v: want value and serial unknown, id known", resp.Planned)
	}
	// An unknown flavor may change: it forces replacement.
	cfg["flavor"] = cty.UnknownVal(cty.String)
	resp = p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: prior, Config: cty.ObjectVal(cfg)})
	if len(resp.RequiresReplace) != 1 {
		t.Errorf("requires replace %v, want flavor", resp.RequiresReplace)
	}

	w := create(t, p, "widget", "widget.w", `label = "a"`).State
	for _, c := range []struct {
		src     string
		replace int
		same    bool
	}{
		{`label = "a"`, 0, true},
		{"label = \"a\"\nref = \"r\"", 0, false},
		{`label = "b"`, 1, false},
	} {
		resp := p.Plan(ctx, providers.PlanRequest{Kind: "widget", Prior: w, Config: decode(t, p, "widget", c.src)})
		mustOK(t, "plan widget", resp.Diagnostics)
		if len(resp.RequiresReplace) != c.replace || resp.Planned.RawEquals(w) != c.same {
			t.Errorf("%s: replace %v same %v, want %d %v", c.src, resp.RequiresReplace, resp.Planned.RawEquals(w), c.replace, c.same)
		}
	}
}

func TestPlanFailAttribute(t *testing.T) {
	p := NewMemory()
	resp := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: cty.NullVal(thingKind().ty), Config: decode(t, p, "thing", `fail = "plan"`)})
	if !resp.Diagnostics.HasErrors() || pathString(resp.Diagnostics[0].Path) != "fail" {
		t.Errorf("diagnostics %v, want an error at fail", resp.Diagnostics)
	}
}

// TestLifecycle runs create, read, update, replace-free update, delete on
// the file store and checks what the files say.
func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	p := New(dir)
	ar := create(t, p, "thing", "thing.a", "name = \"a\"\nvalue = \"one\"\nsecret = \"s\"\nport {\n  number = 8080\n}")
	if !strings.HasPrefix(ar.ID, "thing-") || ar.State.GetAttr("id").AsString() != ar.ID {
		t.Fatalf("id %q, state id %#v", ar.ID, ar.State.GetAttr("id"))
	}
	if got := ar.State.GetAttr("serial"); !got.RawEquals(cty.NumberIntVal(1)) {
		t.Errorf("serial after create %#v, want 1", got)
	}
	// The file is there, and records the owner.
	b, err := os.ReadFile(filepath.Join(dir, ar.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.Owner == nil || rec.Owner.Token != "token-thing.a" || rec.Owner.Address != "thing.a" {
		t.Fatalf("record %s: owner %+v, %v", b, rec.Owner, err)
	}
	// No temporary file is left behind.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}

	rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ar.ID, Owner: owner("thing.a")})
	mustOK(t, "read", rr.Diagnostics)
	if !rr.State.RawEquals(ar.State) || rr.ID != ar.ID {
		t.Fatalf("read %#v, want %#v", rr.State, ar.State)
	}
	// Planning the state's own configuration changes nothing.
	pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: stateConfig(rr.State), Private: rr.Private})
	mustOK(t, "plan", pr.Diagnostics)
	if !pr.Planned.RawEquals(rr.State) || len(pr.RequiresReplace) != 0 {
		t.Fatalf("idempotent plan: planned %#v, want prior", pr.Planned)
	}

	// Update in place twice: the serial counts.
	for i, v := range []string{"two", "three"} {
		cfg := stateConfig(rr.State).AsValueMap()
		cfg["value"] = cty.StringVal(v)
		pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: cty.ObjectVal(cfg)})
		mustOK(t, "plan update", pr.Diagnostics)
		ur := p.Apply(ctx, providers.ApplyRequest{Kind: "thing", ID: ar.ID, Owner: owner("thing.a"), Prior: rr.State, Planned: pr.Planned, Config: cty.ObjectVal(cfg)})
		mustOK(t, "apply update", ur.Diagnostics)
		if ur.ID != ar.ID || !ur.State.GetAttr("serial").RawEquals(cty.NumberIntVal(int64(i+2))) || ur.State.GetAttr("value").AsString() != v {
			t.Fatalf("update %d: id %s state %#v", i, ur.ID, ur.State)
		}
		rr = p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ar.ID})
		if !rr.State.RawEquals(ur.State) {
			t.Fatalf("read after update %#v, want %#v", rr.State, ur.State)
		}
	}
	// Updating in place what forces replacement is refused.
	cfg := stateConfig(rr.State).AsValueMap()
	cfg["flavor"] = cty.StringVal("new")
	planned := rr.State.AsValueMap()
	planned["flavor"] = cty.StringVal("new")
	if resp := p.Apply(ctx, providers.ApplyRequest{Kind: "thing", ID: ar.ID, Owner: owner("thing.a"), Prior: rr.State, Planned: cty.ObjectVal(planned), Config: cty.ObjectVal(cfg)}); !resp.Diagnostics.HasErrors() {
		t.Error("in-place change of flavor: no error")
	}

	dr := p.Delete(ctx, providers.DeleteRequest{Kind: "thing", ID: ar.ID, Owner: owner("thing.a"), Prior: rr.State})
	mustOK(t, "delete", dr.Diagnostics)
	if _, err := os.Stat(filepath.Join(dir, ar.ID+".json")); !os.IsNotExist(err) {
		t.Errorf("file still there after delete: %v", err)
	}
	mustOK(t, "delete again", p.Delete(ctx, providers.DeleteRequest{Kind: "thing", ID: ar.ID, Owner: owner("thing.a")}).Diagnostics)
	rr = p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ar.ID})
	mustOK(t, "read gone", rr.Diagnostics)
	if !rr.State.IsNull() {
		t.Errorf("read after delete %#v, want null", rr.State)
	}
	// Updating an object that is gone is an error that says what to do.
	if resp := p.Apply(ctx, providers.ApplyRequest{Kind: "thing", ID: ar.ID, Planned: ar.State}); !resp.Diagnostics.HasErrors() || !strings.Contains(resp.Diagnostics.Err().Error(), "plan again") {
		t.Errorf("update of a deleted object: %v", resp.Diagnostics)
	}
}

func TestPlanIsPure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "objects")
	p := New(dir)
	resp := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: cty.NullVal(thingKind().ty), Config: decode(t, p, "thing", `name = "a"`)})
	mustOK(t, "plan", resp.Diagnostics)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("plan created the directory: %v", err)
	}
}

// editFile applies edit to the JSON record of object id, by hand.
func editFile(t *testing.T, dir, id string, edit func(m map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, id+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDrift(t *testing.T) {
	dir := t.TempDir()
	p := New(dir)
	src := "name = \"a\"\nvalue = \"one\"\nflavor = \"x\""
	ar := create(t, p, "thing", "thing.a", src)
	cases := []struct {
		name    string
		edit    func(m map[string]any)
		check   func(st cty.Value) bool
		replace bool
	}{
		{"value edited", func(m map[string]any) { m["attributes"].(map[string]any)["value"] = "hand" },
			func(st cty.Value) bool { return st.GetAttr("value").AsString() == "hand" }, false},
		{"tags added", func(m map[string]any) { m["attributes"].(map[string]any)["tags"] = map[string]any{"k": "v"} },
			func(st cty.Value) bool { return st.GetAttr("tags").LengthInt() == 1 }, false},
		{"flavor edited", func(m map[string]any) { m["attributes"].(map[string]any)["flavor"] = "z" },
			func(st cty.Value) bool { return st.GetAttr("flavor").AsString() == "z" }, true},
		{"port list dropped", func(m map[string]any) {
			delete(m["attributes"].(map[string]any), "port")
			m["attributes"].(map[string]any)["value"] = "hand"
		}, func(st cty.Value) bool { return st.GetAttr("port").LengthInt() == 0 }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Start from the applied state each time.
			editFile(t, dir, ar.ID, func(m map[string]any) {
				var attrs map[string]any
				b, _ := json.Marshal(mustJSON(t, ar.State))
				json.Unmarshal(b, &attrs)
				m["attributes"] = attrs
			})
			editFile(t, dir, ar.ID, c.edit)
			rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ar.ID})
			mustOK(t, "read", rr.Diagnostics)
			if !c.check(rr.State) {
				t.Fatalf("read %#v does not show the edit", rr.State)
			}
			pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: decode(t, p, "thing", src)})
			mustOK(t, "plan", pr.Diagnostics)
			if pr.Planned.RawEquals(rr.State) {
				t.Error("the plan shows no change after a hand edit")
			}
			if (len(pr.RequiresReplace) > 0) != c.replace {
				t.Errorf("requires replace %v, want replace=%v", pr.RequiresReplace, c.replace)
			}
		})
	}
	// A corrupt file is an error that names it.
	if err := os.WriteFile(filepath.Join(dir, ar.ID+".json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ar.ID}); !rr.Diagnostics.HasErrors() || !strings.Contains(rr.Diagnostics.Err().Error(), ar.ID) {
		t.Errorf("read of a corrupt file: %v", rr.Diagnostics)
	}
	// A removed file is an object that is gone.
	os.Remove(filepath.Join(dir, ar.ID+".json"))
	if rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ar.ID}); rr.Diagnostics.HasErrors() || !rr.State.IsNull() {
		t.Errorf("read of a removed file: %#v %v", rr.State, rr.Diagnostics)
	}
}

func mustJSON(t *testing.T, v cty.Value) json.RawMessage {
	t.Helper()
	o := object{id: "x", kind: "thing", state: v}
	dir := t.TempDir()
	if err := (&fileStore{dir: dir}).put(o); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "x.json"))
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Attributes
}

func TestReadByOwner(t *testing.T) {
	for name, p := range map[string]providers.Provider{"file": New(t.TempDir()), "memory": NewMemory()} {
		t.Run(name, func(t *testing.T) {
			a := create(t, p, "thing", "thing.a", `name = "a"`)
			create(t, p, "widget", "widget.b", `label = "b"`)
			cases := []struct {
				token  string
				wantID string
			}{
				{"token-thing.a", a.ID},
				{"token-nobody", ""},
				{"", ""},
			}
			for _, c := range cases {
				rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", Owner: providers.Owner{Address: "thing.a", Token: c.token}})
				mustOK(t, "read", rr.Diagnostics)
				if rr.ID != c.wantID || rr.State.IsNull() != (c.wantID == "") {
					t.Errorf("token %q: id %q state %#v, want id %q", c.token, rr.ID, rr.State, c.wantID)
				}
			}
		})
	}
}

func TestImport(t *testing.T) {
	dir := t.TempDir()
	p := New(dir)
	// An object made outside berth: no owner.
	o := object{id: "thing-handmade", kind: "thing", state: cty.ObjectVal(map[string]cty.Value{
		"name": cty.StringVal("h"), "value": cty.NullVal(cty.String), "secret": cty.NullVal(cty.String),
		"flavor": cty.NullVal(cty.String), "tags": cty.NullVal(cty.Map(cty.String)), "size": cty.NullVal(cty.Number),
		"fail": cty.NullVal(cty.String), "id": cty.StringVal("thing-handmade"), "serial": cty.NumberIntVal(7),
		"settings": cty.NullVal(thingKind().ty.AttributeType("settings")),
		"port":     cty.ListValEmpty(thingKind().ty.AttributeType("port").ElementType()),
	})}
	if err := (&fileStore{dir: dir}).put(o); err != nil {
		t.Fatal(err)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", Owner: owner("thing.h")}); !rr.State.IsNull() {
		t.Fatal("an object without owner was found by token")
	}
	cases := []struct {
		kind, id string
		wantErr  string
	}{
		{"thing", "thing-missing", "no object thing-missing"},
		{"thing", "", "give the ID"},
		{"thing", "../escape", "no object ../escape"},
		{"widget", "thing-handmade", "not a widget"},
		{"thing", "thing-handmade", ""},
	}
	for _, c := range cases {
		ir := p.Import(ctx, providers.ImportRequest{Kind: c.kind, ID: c.id, Owner: owner("thing.h")})
		if c.wantErr != "" {
			if !ir.Diagnostics.HasErrors() || !strings.Contains(ir.Diagnostics.Err().Error(), c.wantErr) {
				t.Errorf("import %s %q: %v, want %q", c.kind, c.id, ir.Diagnostics, c.wantErr)
			}
			continue
		}
		mustOK(t, "import", ir.Diagnostics)
		if ir.ID != "thing-handmade" || !ir.State.RawEquals(o.state) {
			t.Errorf("import: id %q state %#v", ir.ID, ir.State)
		}
	}
	rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", Owner: owner("thing.h")})
	if rr.ID != "thing-handmade" {
		t.Errorf("after import, read by owner found %q", rr.ID)
	}
}

func TestDeleteRefusesOtherOwner(t *testing.T) {
	p := New(t.TempDir())
	a := create(t, p, "thing", "thing.a", `name = "a"`)
	dr := p.Delete(ctx, providers.DeleteRequest{Kind: "thing", ID: a.ID, Owner: owner("thing.other")})
	if !dr.Diagnostics.HasErrors() || !strings.Contains(dr.Diagnostics.Err().Error(), "belongs to thing.a") {
		t.Errorf("delete by another owner: %v", dr.Diagnostics)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: a.ID}); rr.State.IsNull() {
		t.Error("the object was deleted anyway")
	}
	// Delete by owner token alone finds it.
	mustOK(t, "delete by owner", p.Delete(ctx, providers.DeleteRequest{Kind: "thing", Owner: owner("thing.a")}).Diagnostics)
	if rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: a.ID}); !rr.State.IsNull() {
		t.Error("delete by owner token left the object")
	}
}

func TestFailAttribute(t *testing.T) {
	p := New(t.TempDir())
	ty := thingKind().ty
	cfg := decode(t, p, "thing", "name = \"n\"\nfail = \"apply\"")
	pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: cty.NullVal(ty), Config: cfg})
	mustOK(t, "plan", pr.Diagnostics)
	ar := p.Apply(ctx, providers.ApplyRequest{Kind: "thing", Owner: owner("thing.f"), Prior: cty.NullVal(ty), Planned: pr.Planned, Config: cfg})
	if !ar.Diagnostics.HasErrors() || ar.ID != "" || pathString(ar.Diagnostics[0].Path) != "fail" {
		t.Fatalf("apply with fail = apply: id %q %v", ar.ID, ar.Diagnostics)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", Owner: owner("thing.f")}); !rr.State.IsNull() {
		t.Error("a failed create left an object")
	}

	d := create(t, p, "thing", "thing.d", "name = \"d\"\nfail = \"delete\"")
	dr := p.Delete(ctx, providers.DeleteRequest{Kind: "thing", ID: d.ID, Owner: owner("thing.d"), Prior: d.State})
	if !dr.Diagnostics.HasErrors() || !strings.Contains(dr.Diagnostics.Err().Error(), "thing.d") {
		t.Errorf("delete with fail = delete: %v", dr.Diagnostics)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: d.ID}); rr.State.IsNull() {
		t.Error("a failed delete removed the object")
	}
}

// TestConcurrentCalls runs creates, reads by owner, updates and deletes in
// parallel, as the engine does; run it with -race.
func TestConcurrentCalls(t *testing.T) {
	for name, p := range map[string]providers.Provider{"file": New(t.TempDir()), "memory": NewMemory()} {
		t.Run(name, func(t *testing.T) {
			const n = 16
			errs := make(chan string, n)
			for i := 0; i < n; i++ {
				go func(i int) {
					address := "thing.c[" + string(rune('a'+i)) + "]"
					cfg0 := thingVal(map[string]cty.Value{"name": cty.StringVal(address)})
					pr0 := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: cty.NullVal(cfg0.Type()), Config: cfg0})
					ar := p.Apply(ctx, providers.ApplyRequest{Kind: "thing", Owner: owner(address), Prior: cty.NullVal(cfg0.Type()), Planned: pr0.Planned, Config: cfg0})
					if d := append(pr0.Diagnostics, ar.Diagnostics...); d.HasErrors() {
						errs <- address + ": " + d.Err().Error()
						return
					}
					rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", Owner: owner(address)})
					if rr.ID != ar.ID {
						errs <- address + ": read by owner found " + rr.ID
						return
					}
					cfg := stateConfig(rr.State).AsValueMap()
					cfg["value"] = cty.StringVal("v")
					pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: cty.ObjectVal(cfg)})
					if d := p.Apply(ctx, providers.ApplyRequest{Kind: "thing", ID: ar.ID, Owner: owner(address), Prior: rr.State, Planned: pr.Planned}).Diagnostics; d.HasErrors() {
						errs <- address + ": " + d.Err().Error()
						return
					}
					if i%2 == 0 {
						if d := p.Delete(ctx, providers.DeleteRequest{Kind: "thing", ID: ar.ID, Owner: owner(address)}).Diagnostics; d.HasErrors() {
							errs <- address + ": " + d.Err().Error()
							return
						}
					}
					errs <- ""
				}(i)
			}
			for i := 0; i < n; i++ {
				if e := <-errs; e != "" {
					t.Error(e)
				}
			}
		})
	}
}
