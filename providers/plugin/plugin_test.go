package plugin_test

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/spec/marks"
	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"
)

// values are the values that must survive the wire unchanged.
func values() map[string]cty.Value {
	obj := cty.Object(map[string]cty.Type{"a": cty.String, "n": cty.Number})
	return map[string]cty.Value{
		"string":          cty.StringVal("héllo\x00world"),
		"empty string":    cty.StringVal(""),
		"integer":         cty.NumberIntVal(-42),
		"big integer":     cty.MustParseNumberVal("123456789012345678901234567890"),
		"fraction":        cty.NumberFloatVal(0.1),
		"bool":            cty.True,
		"null string":     cty.NullVal(cty.String),
		"null object":     cty.NullVal(obj),
		"null dynamic":    cty.NullVal(cty.DynamicPseudoType),
		"unknown string":  cty.UnknownVal(cty.String),
		"unknown refined": cty.UnknownVal(cty.String).Refine().NotNull().StringPrefix("sha256:").NewValue(),
		"unknown number":  cty.UnknownVal(cty.Number).Refine().NumberRangeLowerBound(cty.Zero, true).NewValue(),
		"unknown dynamic": cty.DynamicVal,
		"unknown object":  cty.UnknownVal(obj),
		"list":            cty.ListVal([]cty.Value{cty.StringVal("a"), cty.UnknownVal(cty.String)}),
		"empty list":      cty.ListValEmpty(cty.String),
		"set":             cty.SetVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)}),
		"map":             cty.MapVal(map[string]cty.Value{"k": cty.StringVal("v"), "u": cty.UnknownVal(cty.String)}),
		"empty map":       cty.MapValEmpty(cty.Number),
		"tuple":           cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(1), cty.NullVal(cty.Bool)}),
		"list of dynamic": cty.ListVal([]cty.Value{cty.NullVal(cty.DynamicPseudoType)}),
		"nested objects": cty.ObjectVal(map[string]cty.Value{
			"name": cty.StringVal("web"),
			"id":   cty.UnknownVal(cty.String),
			"ports": cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{
				"port": cty.NumberIntVal(80), "tags": cty.SetVal([]cty.Value{cty.StringVal("x")}),
			})}),
			"env":    cty.MapVal(map[string]cty.Value{"A": cty.StringVal("1")}),
			"limits": cty.NullVal(cty.Object(map[string]cty.Type{"cpu": cty.Number})),
			"deep":   cty.ObjectVal(map[string]cty.Value{"deeper": cty.ObjectVal(map[string]cty.Value{"x": cty.UnknownVal(cty.List(cty.String))})}),
		}),
	}
}

// paths are the paths that must survive the wire unchanged.
func paths() []cty.Path {
	return []cty.Path{
		cty.GetAttrPath("name"),
		cty.GetAttrPath("ports").IndexInt(3).GetAttr("port"),
		cty.GetAttrPath("env").IndexString("PATH"),
		cty.GetAttrPath("big").Index(cty.NumberIntVal(1 << 40)),
		cty.GetAttrPath("negative").IndexInt(-1),
		cty.GetAttrPath("fraction").Index(cty.NumberFloatVal(1.5)),
		cty.GetAttrPath("set").Index(cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("b")})),
		cty.GetAttrPath("unknown").Index(cty.UnknownVal(cty.String)),
		{},
	}
}

func samePath(a, b cty.Path) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		switch s := a[i].(type) {
		case cty.GetAttrStep:
			o, ok := b[i].(cty.GetAttrStep)
			if !ok || o.Name != s.Name {
				return false
			}
		case cty.IndexStep:
			o, ok := b[i].(cty.IndexStep)
			if !ok || !o.Key.RawEquals(s.Key) {
				return false
			}
		}
	}
	return true
}

func samePaths(a, b []cty.Path) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !samePath(a[i], b[i]) {
			return false
		}
	}
	return true
}

func diags() providers.Diagnostics {
	return providers.Diagnostics{
		{Severity: providers.Warning, Summary: "careful", Detail: "this is a warning"},
		{Severity: providers.Error, Summary: "bad port", Detail: "port 0 is not allowed", Path: cty.GetAttrPath("ports").IndexInt(0).GetAttr("port")},
		{Severity: providers.Error, Summary: "bad env", Path: cty.GetAttrPath("env").IndexString("A B")},
	}
}

var cmpOpts = []cmp.Option{
	cmp.Comparer(func(a, b cty.Value) bool { return a.RawEquals(b) }),
	cmp.Comparer(func(a, b cty.Type) bool { return a.Equals(b) }),
	cmp.Comparer(samePath),
	cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) }),
}

func TestValuesRoundTrip(t *testing.T) {
	eachTransport(t, func(t *testing.T, connect connector) {
		ctx := context.Background()
		for name, v := range values() {
			t.Run(name, func(t *testing.T) {
				rec := &recorder{plan: providers.PlanResponse{Planned: v}}
				p := connect(t, rec)
				resp := p.Plan(ctx, providers.PlanRequest{Kind: "k", Prior: v, Config: v})
				if resp.Diagnostics.HasErrors() {
					t.Fatalf("Plan: %v", resp.Diagnostics.Err())
				}
				got, ok := rec.last().(providers.PlanRequest)
				if !ok {
					t.Fatalf("provider got %T", rec.last())
				}
				for field, pair := range map[string][2]cty.Value{
					"request Prior":    {got.Prior, v},
					"request Config":   {got.Config, v},
					"response Planned": {resp.Planned, v},
				} {
					if !pair[0].RawEquals(pair[1]) {
						t.Errorf("%s = %#v, want %#v", field, pair[0], pair[1])
					}
				}
			})
		}
	})
}

func TestMarksAreStripped(t *testing.T) {
	eachTransport(t, func(t *testing.T, connect connector) {
		ctx := context.Background()
		secret := cty.ObjectVal(map[string]cty.Value{
			"password": cty.StringVal("hunter2").Mark(marks.Sensitive),
			"user":     cty.StringVal("bob"),
		})
		rec := &recorder{}
		p := connect(t, rec)
		if d := p.Validate(ctx, providers.ValidateRequest{Kind: "k", Config: secret}).Diagnostics; d.HasErrors() {
			t.Fatalf("Validate: %v", d.Err())
		}
		got := rec.last().(providers.ValidateRequest).Config
		want, _ := secret.UnmarkDeep()
		if got.ContainsMarked() || !got.RawEquals(want) {
			t.Errorf("provider got %#v, want %#v without marks", got, want)
		}
	})
}

func TestCallsRoundTrip(t *testing.T) {
	eachTransport(t, func(t *testing.T, connect connector) {
		ctx := context.Background()
		v := values()["nested objects"]
		state := cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal("x1"), "n": cty.NumberIntVal(3)})
		owner := providers.Owner{Address: "container.web[2]", Token: "tok-123"}
		priv := []byte{0, 1, 2, 255}
		rec := &recorder{
			schema: providers.SchemaResponse{
				Name:        "rt",
				Kinds:       map[string]*providers.Kind{"box": boxKind(), "bare": {Description: "no block"}},
				Diagnostics: diags()[:1],
			},
			validate: providers.ValidateResponse{Diagnostics: diags()},
			read:     providers.ReadResponse{ID: "x1", State: state, Private: priv, Diagnostics: diags()},
			plan:     providers.PlanResponse{Planned: v, RequiresReplace: paths(), Diagnostics: diags()},
			apply:    providers.ApplyResponse{ID: "x1", State: state, Private: priv, Diagnostics: diags()},
			del:      providers.DeleteResponse{Diagnostics: diags()},
			imp:      providers.ImportResponse{ID: "x1", State: state, Private: priv, Diagnostics: diags()},
		}
		p := connect(t, rec)

		tests := []struct {
			name     string
			call     func() any
			wantReq  any
			wantResp any
		}{
			{"Schema", func() any { return p.Schema(ctx) }, nil, rec.schema},
			{"Validate", func() any { return p.Validate(ctx, providers.ValidateRequest{Kind: "box", Config: v}) },
				providers.ValidateRequest{Kind: "box", Config: v}, rec.validate},
			{"Read", func() any {
				return p.Read(ctx, providers.ReadRequest{Kind: "box", ID: "x1", Owner: owner, Private: priv})
			}, providers.ReadRequest{Kind: "box", ID: "x1", Owner: owner, Private: priv}, rec.read},
			{"Read without ID", func() any { return p.Read(ctx, providers.ReadRequest{Kind: "box", Owner: owner}) },
				providers.ReadRequest{Kind: "box", Owner: owner}, rec.read},
			{"Plan", func() any {
				return p.Plan(ctx, providers.PlanRequest{Kind: "box", Prior: state, Config: v, Private: priv})
			}, providers.PlanRequest{Kind: "box", Prior: state, Config: v, Private: priv}, rec.plan},
			{"Plan without prior", func() any { return p.Plan(ctx, providers.PlanRequest{Kind: "box", Config: v}) },
				providers.PlanRequest{Kind: "box", Config: v}, rec.plan},
			{"Apply", func() any {
				return p.Apply(ctx, providers.ApplyRequest{Kind: "box", ID: "x1", Owner: owner, Prior: state, Planned: v, Config: v, Private: priv})
			}, providers.ApplyRequest{Kind: "box", ID: "x1", Owner: owner, Prior: state, Planned: v, Config: v, Private: priv}, rec.apply},
			{"Delete", func() any {
				return p.Delete(ctx, providers.DeleteRequest{Kind: "box", ID: "x1", Owner: owner, Prior: state, Private: priv})
			}, providers.DeleteRequest{Kind: "box", ID: "x1", Owner: owner, Prior: state, Private: priv}, rec.del},
			{"Import", func() any { return p.Import(ctx, providers.ImportRequest{Kind: "box", ID: "x1", Owner: owner}) },
				providers.ImportRequest{Kind: "box", ID: "x1", Owner: owner}, rec.imp},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := len(rec.got)
				resp := tt.call()
				if diff := cmp.Diff(tt.wantResp, resp, cmpOpts...); diff != "" {
					t.Errorf("response differs (-want +got):\n%s", diff)
				}
				if tt.wantReq == nil {
					return
				}
				if len(rec.got) != before+1 {
					t.Fatalf("provider got %d requests, want 1", len(rec.got)-before)
				}
				if diff := cmp.Diff(tt.wantReq, rec.last(), cmpOpts...); diff != "" {
					t.Errorf("request differs (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func TestPanicBecomesDiagnostic(t *testing.T) {
	eachTransport(t, func(t *testing.T, connect connector) {
		ctx := context.Background()
		for _, tt := range []struct {
			name     string
			p        panicker
			provider string
		}{
			{"named", panicker{}, `provider "panicky"`},
			{"schema panics too", panicker{inSchema: true}, `provider "(unnamed)"`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p := connect(t, tt.p)
				calls := map[string]providers.Diagnostics{
					"Validate": p.Validate(ctx, providers.ValidateRequest{Kind: "k", Config: cty.EmptyObjectVal}).Diagnostics,
					"Read":     p.Read(ctx, providers.ReadRequest{Kind: "k", ID: "1"}).Diagnostics,
					"Plan":     p.Plan(ctx, providers.PlanRequest{Kind: "k", Config: cty.EmptyObjectVal}).Diagnostics,
					"Apply":    p.Apply(ctx, providers.ApplyRequest{Kind: "k"}).Diagnostics,
					"Delete":   p.Delete(ctx, providers.DeleteRequest{Kind: "k", ID: "1"}).Diagnostics,
					"Import":   p.Import(ctx, providers.ImportRequest{Kind: "k", ID: "1"}).Diagnostics,
				}
				if tt.p.inSchema {
					calls["Schema"] = p.Schema(ctx).Diagnostics
				}
				for op, ds := range calls {
					if !ds.HasErrors() {
						t.Errorf("%s: no error diagnostic", op)
						continue
					}
					want := tt.provider + " panicked during " + op + ": "
					if !strings.HasPrefix(ds[0].Summary, want) {
						t.Errorf("%s: summary %q, want it to start with %q", op, ds[0].Summary, want)
					}
					if !strings.Contains(ds[0].Detail, "goroutine") {
						t.Errorf("%s: detail has no stack trace: %q", op, ds[0].Detail)
					}
				}
				// The provider keeps serving after a panic.
				if tt.p.inSchema {
					return
				}
				if name := p.Schema(ctx).Name; name != "panicky" {
					t.Errorf("Schema after panics: name %q, want panicky", name)
				}
			})
		}
	})
}

// TestValueThatCannotCross checks that a value the wire cannot carry turns
// into an error diagnostic on either side.
func TestValueThatCannotCross(t *testing.T) {
	eachTransport(t, func(t *testing.T, connect connector) {
		ctx := context.Background()
		capsule := cty.CapsuleVal(cty.Capsule("thing", reflect.TypeOf(struct{}{})), &struct{}{})
		t.Run("request", func(t *testing.T) {
			p := connect(t, &recorder{})
			ds := p.Plan(ctx, providers.PlanRequest{Kind: "k", Config: capsule}).Diagnostics
			if !ds.HasErrors() || !strings.Contains(ds[0].Summary, "berth cannot send the Config of the Plan request") {
				t.Errorf("diagnostics %v, want an error about the Config", ds)
			}
		})
		t.Run("response", func(t *testing.T) {
			p := connect(t, &recorder{schema: providers.SchemaResponse{Name: "rec"}, apply: providers.ApplyResponse{ID: "1", State: capsule}})
			ds := p.Apply(ctx, providers.ApplyRequest{Kind: "k"}).Diagnostics
			if !ds.HasErrors() || !strings.Contains(ds[0].Summary, `provider "rec" answered Apply with a State that cannot be sent`) {
				t.Errorf("diagnostics %v, want an error about the State", ds)
			}
		})
	})
}
