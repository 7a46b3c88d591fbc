package providertest

import (
	"fmt"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// maxRender bounds the length of a rendered value in a message.
const maxRender = 300

// show renders a value of the case's kind for a message, hiding its
// sensitive attributes.
func (ck *caseCheck) show(v cty.Value) string {
	return render(v, ck.hider(v))
}

// hider returns a function that reports whether a path inside the given
// values is sensitive in the kind's schema.
func (ck *caseCheck) hider(vs ...cty.Value) func(cty.Path) bool {
	var sensitive []cty.Path
	for _, v := range vs {
		if v.Type() != cty.NilType {
			sensitive = append(sensitive, ck.kind.Block.SensitivePaths(v)...)
		}
	}
	return func(p cty.Path) bool {
		for _, s := range sensitive {
			if len(s) <= len(p) && s.Equals(p[:len(s)]) {
				return true
			}
		}
		return false
	}
}

// diff lists, for a message, where planned differs from live.
func (ck *caseCheck) diff(path cty.Path, live, planned cty.Value, out *[]string) {
	if eq := live.Equals(planned); eq.IsKnown() && eq.True() {
		return
	}
	if descend(path, live, planned, func(p cty.Path, a, b cty.Value) { ck.diff(p, a, b, out) }) {
		return
	}
	hide := ck.hider(ck.obj.state)
	*out = append(*out, fmt.Sprintf("%s: live %s, planned %s", pathText(path), renderAt(live, path, hide), renderAt(planned, path, hide)))
}

// inconsistent lists where actual differs from the known parts of planned.
func (ck *caseCheck) inconsistent(path cty.Path, planned, actual cty.Value, out *[]string) {
	if !planned.IsKnown() {
		return
	}
	if !planned.IsWhollyKnown() && descend(path, planned, actual, func(p cty.Path, a, b cty.Value) { ck.inconsistent(p, a, b, out) }) {
		return
	}
	if eq := planned.Equals(actual); eq.IsKnown() && eq.True() {
		return
	}
	hide := ck.hider(actual)
	*out = append(*out, fmt.Sprintf("%s: planned %s, applied %s", pathText(path), renderAt(planned, path, hide), renderAt(actual, path, hide)))
}

// descend calls f for each pair of corresponding elements of a and b and
// reports whether it could: both known and not null, objects with the same
// attributes, lists or tuples of the same length, maps with the same keys.
func descend(path cty.Path, a, b cty.Value, f func(cty.Path, cty.Value, cty.Value)) bool {
	if !a.IsKnown() || !b.IsKnown() || a.IsNull() || b.IsNull() {
		return false
	}
	at, bt := a.Type(), b.Type()
	child := func(step cty.PathStep) cty.Path {
		return append(append(cty.Path(nil), path...), step)
	}
	switch {
	case at.IsObjectType() && bt.IsObjectType():
		names := sortedKeys(at.AttributeTypes())
		if len(names) != len(bt.AttributeTypes()) {
			return false
		}
		for _, n := range names {
			if !bt.HasAttribute(n) {
				return false
			}
		}
		for _, n := range names {
			f(child(cty.GetAttrStep{Name: n}), a.GetAttr(n), b.GetAttr(n))
		}
		return true
	case (at.IsListType() || at.IsTupleType()) && (bt.IsListType() || bt.IsTupleType()):
		if a.LengthInt() != b.LengthInt() {
			return false
		}
		for i := 0; i < a.LengthInt(); i++ {
			k := cty.NumberIntVal(int64(i))
			f(child(cty.IndexStep{Key: k}), a.Index(k), b.Index(k))
		}
		return true
	case at.IsMapType() && bt.IsMapType():
		am, bm := a.AsValueMap(), b.AsValueMap()
		if len(am) != len(bm) {
			return false
		}
		for k := range am {
			if _, ok := bm[k]; !ok {
				return false
			}
		}
		for _, k := range sortedKeys(am) {
			f(child(cty.IndexStep{Key: cty.StringVal(k)}), am[k], bm[k])
		}
		return true
	}
	return false
}

// render renders a value for a message; hide tells which paths to hide.
func render(v cty.Value, hide func(cty.Path) bool) string {
	return renderAt(v, nil, hide)
}

// renderAt renders a value found at path.
func renderAt(v cty.Value, path cty.Path, hide func(cty.Path) bool) string {
	var b strings.Builder
	renderTo(&b, v, path, hide)
	s := b.String()
	if len(s) > maxRender {
		s = s[:maxRender] + "..."
	}
	return s
}

func renderTo(b *strings.Builder, v cty.Value, path cty.Path, hide func(cty.Path) bool) {
	if b.Len() > maxRender {
		return
	}
	if hide != nil && hide(path) {
		b.WriteString("(sensitive)")
		return
	}
	v, _ = v.UnmarkDeep()
	ty := v.Type()
	child := func(step cty.PathStep) cty.Path {
		return append(append(cty.Path(nil), path...), step)
	}
	switch {
	case ty == cty.NilType:
		b.WriteString("(no value)")
	case !v.IsKnown():
		b.WriteString("(known after apply)")
	case v.IsNull():
		b.WriteString("null")
	case ty == cty.String:
		fmt.Fprintf(b, "%q", v.AsString())
	case ty == cty.Number:
		b.WriteString(v.AsBigFloat().Text('f', -1))
	case ty == cty.Bool:
		fmt.Fprint(b, v.True())
	case ty.IsObjectType():
		b.WriteString("{")
		for i, n := range sortedKeys(ty.AttributeTypes()) {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "%s = ", n)
			renderTo(b, v.GetAttr(n), child(cty.GetAttrStep{Name: n}), hide)
		}
		b.WriteString("}")
	case ty.IsMapType():
		b.WriteString("{")
		m := v.AsValueMap()
		for i, k := range sortedKeys(m) {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "%q = ", k)
			renderTo(b, m[k], child(cty.IndexStep{Key: cty.StringVal(k)}), hide)
		}
		b.WriteString("}")
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		b.WriteString("[")
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			k, ev := it.Element()
			if i > 0 {
				b.WriteString(", ")
			}
			renderTo(b, ev, child(cty.IndexStep{Key: k}), hide)
		}
		b.WriteString("]")
	default:
		b.WriteString(ty.FriendlyName())
	}
}

// pathText renders a path like .ports[0]["tcp"].
func pathText(p cty.Path) string {
	if len(p) == 0 {
		return "(the whole object)"
	}
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			b.WriteString("." + s.Name)
		case cty.IndexStep:
			k := s.Key
			switch {
			case k.Type() == cty.String && k.IsKnown() && !k.IsNull():
				fmt.Fprintf(&b, "[%q]", k.AsString())
			default:
				b.WriteString("[" + render(k, nil) + "]")
			}
		}
	}
	return b.String()
}

// pathsText renders a list of paths.
func pathsText(ps []cty.Path) string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, pathText(p))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
