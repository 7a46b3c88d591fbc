package view

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/reconciler"
	"github.com/zclconf/go-cty/cty"
)

// TestOddValues feeds the renderers values that the engine should not
// produce but a provider might: they must neither panic nor leak.
func TestOddValues(t *testing.T) {
	big := func(n int, prefix string) cty.Value {
		vals := make([]cty.Value, n)
		for i := range vals {
			vals[i] = str(fmt.Sprintf("%s%d", prefix, i))
		}
		return list(vals)
	}
	block := cty.Object(map[string]cty.Type{"a": cty.String})
	values := []struct {
		name string
		b, a cty.Value
	}{
		{"nil", cty.NilVal, cty.NilVal},
		{"nil before", cty.NilVal, obj(map[string]cty.Value{"x": str("1")})},
		{"not objects", str("a"), num(1)},
		{"dynamic nulls", cty.NullVal(cty.DynamicPseudoType), unk(cty.DynamicPseudoType)},
		{"type change", obj(map[string]cty.Value{"x": str("a")}), obj(map[string]cty.Value{"x": list([]cty.Value{str("a")})})},
		{"object to map", obj(map[string]cty.Value{"x": obj(map[string]cty.Value{"k": str("v")})}), obj(map[string]cty.Value{"x": cty.MapVal(map[string]cty.Value{"k": str("v")})})},
		{"tuples", obj(map[string]cty.Value{"x": cty.TupleVal([]cty.Value{str("a"), num(1)})}), obj(map[string]cty.Value{"x": cty.TupleVal([]cty.Value{num(1), cty.True, cty.EmptyObjectVal})})},
		{"nested lists", obj(map[string]cty.Value{"x": list([]cty.Value{list([]cty.Value{str("a")})})}), obj(map[string]cty.Value{"x": list([]cty.Value{list([]cty.Value{str("b")}), cty.ListValEmpty(cty.String)})})},
		{"map of objects", obj(map[string]cty.Value{"x": cty.MapVal(map[string]cty.Value{"k": obj(map[string]cty.Value{"a": str("1"), "s": sens(str(secretOne))})})}),
			obj(map[string]cty.Value{"x": cty.MapVal(map[string]cty.Value{"k": obj(map[string]cty.Value{"a": str("2"), "s": sens(str(secretTwo))})})})},
		{"sets of strings", obj(map[string]cty.Value{"x": cty.SetVal([]cty.Value{str("a"), str("b")})}), obj(map[string]cty.Value{"x": cty.SetVal([]cty.Value{str("b"), str("c")})})},
		{"blocks with unknown element", obj(map[string]cty.Value{"p": list([]cty.Value{obj(map[string]cty.Value{"a": str("1")})})}),
			obj(map[string]cty.Value{"p": list([]cty.Value{unk(block), sens(obj(map[string]cty.Value{"a": str(secretOne)}))})})},
		{"sensitive block list", obj(map[string]cty.Value{"p": sens(list([]cty.Value{obj(map[string]cty.Value{"a": str(secretOne)})}))}),
			obj(map[string]cty.Value{"p": cty.ListValEmpty(block)})},
		{"list vs set of blocks", obj(map[string]cty.Value{"p": list([]cty.Value{obj(map[string]cty.Value{"a": str("1")})})}),
			obj(map[string]cty.Value{"p": cty.SetVal([]cty.Value{obj(map[string]cty.Value{"a": str("1")})})})},
		{"unknown set", obj(map[string]cty.Value{"x": cty.SetVal([]cty.Value{str("a")})}), obj(map[string]cty.Value{"x": cty.SetVal([]cty.Value{unk(cty.String)})})},
		{"huge lists", obj(map[string]cty.Value{"x": big(1100, "a")}), obj(map[string]cty.Value{"x": big(1100, "b")})},
		{"marked key map", obj(map[string]cty.Value{"x": sens(cty.MapVal(map[string]cty.Value{secretOne: str("v")}))}), obj(map[string]cty.Value{"x": cty.MapValEmpty(cty.String)})},
		{"null object with sensitive mark", sens(cty.NullVal(block)), sens(obj(map[string]cty.Value{"a": str(secretOne)}))},
		{"infinity", obj(map[string]cty.Value{"n": cty.PositiveInfinity}), obj(map[string]cty.Value{"n": cty.NegativeInfinity})},
	}
	actions := []reconciler.Action{reconciler.NoOp, reconciler.Create, reconciler.Update, reconciler.Replace, reconciler.CreateThenDelete, reconciler.Delete, reconciler.Action(42)}
	for _, v := range values {
		for _, act := range actions {
			name := v.name + "/" + act.String()
			c := &reconciler.Change{Addr: at("thing", "odd"), Action: act, Before: v.b, After: v.a,
				RequiresReplace: []cty.Path{attrPath("x"), nil, cty.Path{}.Index(sens(str(secretOne)))}}
			p := &reconciler.Plan{Changes: []*reconciler.Change{c, nil}, Outputs: []*reconciler.OutputChange{{Name: "o", Value: v.a}, nil}}
			var buf bytes.Buffer
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s: panic: %v", name, r)
					}
				}()
				if err := RenderPlan(&buf, p, Options{}); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if err := WritePlanJSON(&buf, p); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				for _, h := range []reconciler.Hook{NewApplyHook(&buf, Options{}), NewJSONHook(&buf)} {
					h.PreApply(c)
					h.PostApply(c, time.Second, nil)
					h.Skipped(c, c.Addr)
					h.PreApply(nil)
					h.PostApply(nil, 0, nil)
					h.Skipped(nil, c.Addr)
					if cl, ok := h.(io.Closer); ok {
						cl.Close()
					}
				}
			}()
			if strings.Contains(buf.String(), "TOPSECRET") {
				t.Errorf("%s: a sensitive value leaked:\n%s", name, buf.String())
			}
		}
	}
}
