package providertest

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// flaws are the bugs that itemProvider can be given.
type flaws struct {
	endlessDiff        bool // Read adds a label that the configuration never has
	forgetsOwner       bool // Read with an empty ID never finds anything
	deleteNotIdem      bool // Delete of a missing object fails
	keepsDeleted       bool // Delete does nothing
	missingIsError     bool // Read of an unknown ID fails
	neverReplaces      bool // Plan never reports RequiresReplace
	panicsUnknownKind  bool // every call of an unknown kind panics
	ignoresUpdate      bool // Plan keeps the prior labels
	importIgnoresOwner bool // Import does not mark the object
	normalisesName     bool // Apply lowercases the name that Plan kept
}

// itemProvider keeps items in memory; with no flaws it is correct.
type itemProvider struct {
	flaws
	mu     sync.Mutex
	next   int
	items  map[string]cty.Value
	owners map[string]string
}

func newItemProvider(f flaws) *itemProvider {
	return &itemProvider{flaws: f, items: map[string]cty.Value{}, owners: map[string]string{}}
}

func itemKind() *providers.Kind {
	return &providers.Kind{
		Importable: true,
		Block: &providers.Block{Attributes: map[string]*providers.Attribute{
			"id":     {Type: cty.String, Computed: true},
			"name":   {Type: cty.String, Required: true, ForceNew: true},
			"size":   {Type: cty.Number, Optional: true, Computed: true},
			"labels": {Type: cty.Map(cty.String), Optional: true},
			"secret": {Type: cty.String, Optional: true, Sensitive: true},
		}},
	}
}

func item(name string, size int64, labels map[string]string) cty.Value {
	lv := cty.NullVal(cty.Map(cty.String))
	if labels != nil {
		m := map[string]cty.Value{}
		for k, v := range labels {
			m[k] = cty.StringVal(v)
		}
		lv = cty.MapVal(m)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"id":     cty.NullVal(cty.String),
		"name":   cty.StringVal(name),
		"size":   cty.NumberIntVal(size),
		"labels": lv,
		"secret": cty.StringVal("hunter2"),
	})
}

func (p *itemProvider) kind(kind, op string) providers.Diagnostics {
	if kind == "item" {
		return nil
	}
	if p.panicsUnknownKind {
		panic("no such kind " + kind)
	}
	return providers.Errorf("%s: no kind %q", op, kind)
}

func (p *itemProvider) Schema(context.Context) providers.SchemaResponse {
	return providers.SchemaResponse{Name: "item", Kinds: map[string]*providers.Kind{"item": itemKind()}}
}

func (p *itemProvider) Validate(_ context.Context, req providers.ValidateRequest) providers.ValidateResponse {
	return providers.ValidateResponse{Diagnostics: p.kind(req.Kind, "Validate")}
}

func (p *itemProvider) Read(_ context.Context, req providers.ReadRequest) providers.ReadResponse {
	if d := p.kind(req.Kind, "Read"); d != nil {
		return providers.ReadResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := req.ID
	if id == "" && !p.forgetsOwner {
		for i, tok := range p.owners {
			if tok == req.Owner.Token {
				id = i
			}
		}
	}
	st, ok := p.items[id]
	if !ok {
		if p.missingIsError {
			return providers.ReadResponse{Diagnostics: providers.Errorf("no item %q", id)}
		}
		return providers.ReadResponse{State: cty.NullVal(itemKind().Block.ImpliedType())}
	}
	if p.endlessDiff {
		attrs := st.AsValueMap()
		labels := map[string]cty.Value{"managed-by": cty.StringVal("berth")}
		if l := attrs["labels"]; !l.IsNull() {
			maps.Copy(labels, l.AsValueMap())
		}
		attrs["labels"] = cty.MapVal(labels)
		st = cty.ObjectVal(attrs)
	}
	return providers.ReadResponse{ID: id, State: st}
}

func (p *itemProvider) Plan(_ context.Context, req providers.PlanRequest) providers.PlanResponse {
	if d := p.kind(req.Kind, "Plan"); d != nil {
		return providers.PlanResponse{Diagnostics: d}
	}
	attrs := req.Config.AsValueMap()
	attrs["id"] = cty.UnknownVal(cty.String)
	if attrs["size"].IsNull() {
		attrs["size"] = cty.NumberIntVal(1)
	}
	var replace []cty.Path
	if !req.Prior.IsNull() {
		attrs["id"] = req.Prior.GetAttr("id")
		if p.ignoresUpdate {
			attrs["labels"] = req.Prior.GetAttr("labels")
		}
		if !req.Prior.GetAttr("name").RawEquals(attrs["name"]) && !p.neverReplaces {
			replace = append(replace, cty.GetAttrPath("name"))
		}
	}
	return providers.PlanResponse{Planned: cty.ObjectVal(attrs), RequiresReplace: replace}
}

func (p *itemProvider) Apply(_ context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	if d := p.kind(req.Kind, "Apply"); d != nil {
		return providers.ApplyResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := req.ID
	if id == "" {
		p.next++
		id = fmt.Sprintf("item-%d", p.next)
		p.owners[id] = req.Owner.Token
	}
	attrs := req.Planned.AsValueMap()
	attrs["id"] = cty.StringVal(id)
	if p.normalisesName {
		attrs["name"] = cty.StringVal(strings.ToLower(attrs["name"].AsString()))
	}
	p.items[id] = cty.ObjectVal(attrs)
	return providers.ApplyResponse{ID: id, State: p.items[id]}
}

func (p *itemProvider) Delete(_ context.Context, req providers.DeleteRequest) providers.DeleteResponse {
	if d := p.kind(req.Kind, "Delete"); d != nil {
		return providers.DeleteResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.items[req.ID]; !ok && p.deleteNotIdem {
		return providers.DeleteResponse{Diagnostics: providers.Errorf("no item %q", req.ID)}
	}
	if !p.keepsDeleted {
		delete(p.items, req.ID)
		delete(p.owners, req.ID)
	}
	return providers.DeleteResponse{}
}

func (p *itemProvider) Import(_ context.Context, req providers.ImportRequest) providers.ImportResponse {
	if d := p.kind(req.Kind, "Import"); d != nil {
		return providers.ImportResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.items[req.ID]
	if !ok {
		return providers.ImportResponse{Diagnostics: providers.Errorf("no item %q", req.ID)}
	}
	if !p.importIgnoresOwner {
		p.owners[req.ID] = req.Owner.Token
	}
	return providers.ImportResponse{ID: req.ID, State: st}
}

func itemCase() Case {
	return Case{
		Kind:    "item",
		Config:  item("Web", 2, nil),
		Update:  item("Web", 2, map[string]string{"tier": "front"}),
		Replace: item("api", 2, nil),
	}
}

// TestRunPassesForCorrectProvider runs the whole suite on a correct
// provider.
func TestRunPassesForCorrectProvider(t *testing.T) {
	Run(t, func(*testing.T) providers.Provider { return newItemProvider(flaws{}) }, []Case{itemCase()})
}

// TestCheckCaseFindsFlaws checks that each flaw of a provider makes the
// suite fail with a message that names it.
func TestCheckCaseFindsFlaws(t *testing.T) {
	tests := []struct {
		name  string
		flaws flaws
		c     Case
		want  string // empty: no problem expected
	}{
		{"correct", flaws{}, itemCase(), ""},
		{"endless diff", flaws{endlessDiff: true}, itemCase(),
			`Plan of the same configuration after the create is not a no-op (endless diff): .labels: live {"managed-by" = "berth"}, planned null`},
		{"forgets owner", flaws{forgetsOwner: true}, itemCase(), "Read with an empty ID and the object's Owner did not find the object"},
		{"delete not idempotent", flaws{deleteNotIdem: true}, itemCase(), "Delete of an object already deleted failed"},
		{"keeps deleted", flaws{keepsDeleted: true}, itemCase(), "Read after Delete still found the object"},
		{"missing is an error", flaws{missingIsError: true}, itemCase(), "Read of an unknown ID failed"},
		{"never replaces", flaws{neverReplaces: true}, itemCase(), "Plan of the Replace gave no RequiresReplace"},
		{"ignores update", flaws{ignoresUpdate: true}, itemCase(), "Plan of the Update shows no change"},
		{"import ignores owner", flaws{importIgnoresOwner: true}, itemCase(), "Read by the importing Owner did not find the imported object"},
		{"normalises name", flaws{normalisesName: true}, itemCase(),
			`Apply of a create produced a state that differs from the plan where the plan was known: .name: planned "Web", applied "web"`},
		{"case of unknown kind", flaws{}, Case{Kind: "nope", Config: item("a", 1, nil)}, `kind "nope" is not in the schema`},
		{"case without config", flaws{}, Case{Kind: "item"}, "the case has no Config"},
		{"config of the wrong shape", flaws{}, Case{Kind: "item", Config: cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("x")})},
			"the case's Config does not conform to the schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newItemProvider(tt.flaws)
			errs := CheckCase(t.Context(), GRPC(t, p), tt.c)
			for _, err := range errs {
				t.Log(err)
			}
			if tt.want == "" {
				for _, err := range errs {
					t.Errorf("unexpected problem: %v", err)
				}
				return
			}
			found := false
			for _, err := range errs {
				if strings.Contains(err.Error(), tt.want) {
					found = true
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("a problem shows the sensitive value: %v", err)
				}
			}
			if !found {
				t.Errorf("no problem contains %q; got %v", tt.want, errs)
			}
			// Whatever failed, nothing is left behind.
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.items) > 0 && !tt.flaws.keepsDeleted {
				t.Errorf("the check left %d objects behind", len(p.items))
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	for _, tt := range []struct {
		name       string
		flaws      flaws
		wantPanics bool
	}{
		{"errors", flaws{}, false},
		{"panics", flaws{panicsUnknownKind: true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &watch{p: newItemProvider(tt.flaws)}
			if errs := checkUnknownKind(t.Context(), GRPC(t, w), item("a", 1, nil)); len(errs) > 0 {
				t.Errorf("unexpected problems: %v", errs)
			}
			panics := w.panicErrors()
			if got := len(panics) > 0; got != tt.wantPanics {
				t.Errorf("panics recorded: %v, want %v", panics, tt.wantPanics)
			}
			if tt.wantPanics && !strings.Contains(panics[0].Error(), "the provider panicked during Validate") {
				t.Errorf("panic problem: %v", panics[0])
			}
		})
	}
}

func TestCheckSchema(t *testing.T) {
	with := func(edit func(k *providers.Kind)) providers.SchemaResponse {
		k := itemKind()
		edit(k)
		return providers.SchemaResponse{Name: "item", Kinds: map[string]*providers.Kind{"item": k}}
	}
	cases := []Case{{Kind: "item"}}
	tests := []struct {
		name string
		sr   providers.SchemaResponse
		want string
	}{
		{"good", with(func(*providers.Kind) {}), ""},
		{"required and computed", with(func(k *providers.Kind) { k.Block.Attributes["name"].Computed = true }),
			`kind item: attribute "name" is both Required and Computed`},
		{"no type", with(func(k *providers.Kind) { k.Block.Attributes["size"].Type = cty.NilType }),
			`kind item: attribute "size" has no type`},
		{"nil attribute", with(func(k *providers.Kind) { k.Block.Attributes["x"] = nil }), `attribute "x" has no schema`},
		{"no role", with(func(k *providers.Kind) { k.Block.Attributes["x"] = &providers.Attribute{Type: cty.String} }),
			`attribute "x" is neither Required, Optional nor Computed`},
		{"no block", with(func(k *providers.Kind) { k.Block = nil }), `kind "item" has no block`},
		{"bad nesting", with(func(k *providers.Kind) {
			k.Block.Blocks = map[string]*providers.NestedBlock{"b": {Block: providers.Block{}}}
		}), `block "b" has no valid nesting`},
		{"nested attribute problem", with(func(k *providers.Kind) {
			k.Block.Blocks = map[string]*providers.NestedBlock{"b": {Nesting: providers.NestingList, Block: providers.Block{
				Attributes: map[string]*providers.Attribute{"y": {Type: cty.String, Required: true, Computed: true}},
			}}}
		}), `kind item: block "b": attribute "y" is both Required and Computed`},
		{"kind of a case missing", providers.SchemaResponse{Name: "item", Kinds: map[string]*providers.Kind{"other": itemKind()}},
			`a case has kind "item", which is not in the schema`},
		{"no name", providers.SchemaResponse{Kinds: map[string]*providers.Kind{"item": itemKind()}}, "the schema has no provider name"},
		{"diagnostics", providers.SchemaResponse{Diagnostics: providers.Errorf("schema broken")}, "Schema failed: error: schema broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := CheckSchema(tt.sr, cases)
			if tt.want == "" {
				if len(errs) > 0 {
					t.Errorf("unexpected problems: %v", errs)
				}
				return
			}
			for _, err := range errs {
				if strings.Contains(err.Error(), tt.want) {
					return
				}
			}
			t.Errorf("no problem contains %q; got %v", tt.want, errs)
		})
	}
}
