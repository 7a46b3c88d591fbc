package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Placement is the placement block of a resource: the hosts of a fleet on
// which the resource has instances. Every condition given must hold; a
// resource without a placement block is placed on every host.
type Placement struct {
	// Labels must evaluate to a map of strings, each of which host.labels
	// must hold with the same value; nil when not given.
	Labels hcl.Expression
	// Hosts must evaluate to a list or set of host names, one of which
	// must be host.name; nil when not given.
	Hosts hcl.Expression
	// When must evaluate to a bool; nil when not given.
	When hcl.Expression
	// DeclRange is the range of the block's header.
	DeclRange hcl.Range
}

// placementAttrs are the arguments of a placement block, in the order the
// messages list them.
var placementAttrs = []string{"labels", "hosts", "when"}

// Exprs returns the expressions given, in the order labels, hosts, when.
func (p *Placement) Exprs() []hcl.Expression {
	var out []hcl.Expression
	for _, e := range []hcl.Expression{p.Labels, p.Hosts, p.When} {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// decodePlacement decodes a placement block. Arguments other than labels,
// hosts and when, nested blocks, and references to anything but host, var
// and local are errors.
func decodePlacement(b *hcl.Block) (*Placement, hcl.Diagnostics) {
	p := &Placement{DeclRange: b.DefRange}
	var diags hcl.Diagnostics
	var attrs []*hcl.Attribute
	if body, ok := b.Body.(*hclsyntax.Body); ok {
		for _, a := range sortedAttrs(body) {
			attrs = append(attrs, a.AsHCLAttribute())
		}
		for _, nb := range body.Blocks {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unexpected block in placement",
				Detail:   fmt.Sprintf("A placement block holds arguments only (%s), not a %q block.", strings.Join(placementAttrs, ", "), nb.Type),
				Subject:  nb.TypeRange.Ptr(),
			})
		}
	} else {
		as, ds := b.Body.JustAttributes()
		diags = append(diags, ds...)
		for _, a := range as {
			attrs = append(attrs, a)
		}
		sort.Slice(attrs, func(i, j int) bool { return attrs[i].Range.Start.Byte < attrs[j].Range.Start.Byte })
	}
	for _, a := range attrs {
		switch a.Name {
		case "labels":
			p.Labels = a.Expr
		case "hosts":
			p.Hosts = a.Expr
		case "when":
			p.When = a.Expr
		default:
			detail := fmt.Sprintf("A placement block has no argument %q.", a.Name)
			if s := suggest(a.Name, placementAttrs); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			detail += fmt.Sprintf(" Its arguments are %s.", strings.Join(placementAttrs, ", "))
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument in placement",
				Detail:   detail,
				Subject:  a.NameRange.Ptr(),
			})
			continue
		}
		diags = append(diags, checkPlacementRefs(a)...)
	}
	return p, diags
}

// checkPlacementRefs reports references that a placement may not make:
// whether a resource has instances on a host is decided before anything is
// planned, from host, var and local alone.
func checkPlacementRefs(a *hcl.Attribute) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range a.Expr.Variables() {
		root := t.RootName()
		var what string
		switch root {
		case "host", "var", "local":
			continue
		case "count":
			what = "count.index, which exists only inside the instances that the placement decides on"
		case "each":
			what = "each, which exists only inside the instances that the placement decides on"
		case "self":
			what = "self, which the placement is deciding about"
		default:
			name := root
			if len(t) > 1 {
				if s, ok := t[1].(hcl.TraverseAttr); ok {
					name = root + "." + s.Name
				}
			}
			what = fmt.Sprintf("%s, a resource, whose values are known only once it is planned", name)
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference in placement",
			Detail:   fmt.Sprintf("%s of a placement refers to %s. A placement may refer only to host, var and local.", a.Name, what),
			Subject:  t.SourceRange().Ptr(),
		})
	}
	return diags
}

// unplaced records why a resource has no instances on this host.
type unplaced struct {
	res  *Resource
	why  string // the condition that failed
	host string
}

// sentence returns "not placed on host "h" (placement at f:12: why)".
func (u unplaced) sentence() string {
	rng := u.res.Placement.DeclRange
	return fmt.Sprintf("not placed on host %q (placement at %s:%d: %s)", u.host, rng.Filename, rng.Start.Line, u.why)
}

// value is what references to the resource evaluate to on this host: an
// empty tuple with count, an empty object with for_each or without either.
// An empty object rather than null makes every use of the resource an error
// (no attributes, not a string), which explainUnplaced then explains, while
// try(KIND.NAME.attr, fallback) and guarded conditionals still work.
func (u unplaced) value() cty.Value {
	if u.res.Count != nil {
		return cty.EmptyTupleVal
	}
	return cty.EmptyObjectVal
}

// Unplaced reports whether r has no instances on this host because of its
// placement, and then why, as in `not placed on host "web-1" (placement at
// main.hcl:12: "web-1" is not in hosts)`. It knows only resources that
// Expand has seen.
func (s *Scope) Unplaced(r addr.Resource) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.unplaced[r]
	if !ok {
		return "", false
	}
	return u.sentence(), true
}

// placementCond is the outcome of one condition of a placement.
type placementCond struct {
	known bool
	holds bool
	why   string // why it does not hold
	expr  hcl.Expression
}

// place evaluates the placement of r for this host. known is false when it
// depends on values not known yet; with partial unset that is an error.
// When the host is excluded, place records it for references to r.
func (s *Scope) place(r *Resource, partial bool) (placed, known bool, diags hcl.Diagnostics) {
	p := r.Placement
	if p == nil {
		return true, true, nil
	}
	var conds []placementCond
	if p.Labels != nil {
		c, ds := s.placementLabels(p.Labels, partial)
		diags = append(diags, ds...)
		conds = append(conds, c)
	}
	if p.Hosts != nil {
		c, ds := s.placementHosts(p.Hosts, partial)
		diags = append(diags, ds...)
		conds = append(conds, c)
	}
	if p.When != nil {
		c, ds := s.placementWhen(p.When, partial)
		diags = append(diags, ds...)
		conds = append(conds, c)
	}
	if diags.HasErrors() {
		return false, false, diags
	}
	// A condition known to fail excludes the host whatever the others are.
	for _, c := range conds {
		if c.known && !c.holds {
			s.mu.Lock()
			s.unplaced[r.Addr] = unplaced{res: r, why: c.why, host: s.hostDesc.Name}
			s.mu.Unlock()
			return false, true, nil
		}
	}
	for _, c := range conds {
		if c.known {
			continue
		}
		if partial {
			return false, false, nil
		}
		return false, false, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid placement",
			Detail:   "The placement depends on values that are known only after apply. Use values from variables, locals or host instead.",
			Subject:  c.expr.Range().Ptr(),
		}}
	}
	s.mu.Lock()
	delete(s.unplaced, r.Addr)
	s.mu.Unlock()
	return true, true, nil
}

// placementValue evaluates one argument of a placement and converts it to
// ty. A null value comes back as cty.NilVal: the argument counts as not
// given.
func (s *Scope) placementValue(e hcl.Expression, name string, ty cty.Type, expect string, partial bool) (cty.Value, hcl.Diagnostics) {
	refs, diags := ExprRefs(e)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	v, diags := e.Value(s.evalContext(refs, nil, partial))
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if marks.IsSensitive(v) {
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid placement",
			Detail:   fmt.Sprintf("%s of a placement cannot use sensitive values: whether a resource has instances on a host shows in every plan, which would reveal them.", name),
			Subject:  e.Range().Ptr(),
		}}
	}
	if v.IsNull() {
		return cty.NilVal, nil
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		rng := e.Range()
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid placement",
			Detail:   fmt.Sprintf("%s of the placement at %s:%d must be %s; got %s.", name, rng.Filename, rng.Start.Line, expect, v.Type().FriendlyName()),
			Subject:  rng.Ptr(),
		}}
	}
	return cv, nil
}

func (s *Scope) placementLabels(e hcl.Expression, partial bool) (placementCond, hcl.Diagnostics) {
	c := placementCond{expr: e, known: true, holds: true}
	v, diags := s.placementValue(e, "labels", cty.Map(cty.String), `a map of strings, such as { role = "web" }`, partial)
	if diags.HasErrors() || v == cty.NilVal {
		return c, diags
	}
	if !v.IsWhollyKnown() {
		c.known = false
		return c, nil
	}
	keys := make([]string, 0, v.LengthInt())
	want := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ev.IsNull() {
			return c, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid placement",
				Detail:   fmt.Sprintf("labels of a placement must be a map of strings; the value of label %q is null.", k.AsString()),
				Subject:  e.Range().Ptr(),
			}}
		}
		keys = append(keys, k.AsString())
		want[k.AsString()] = ev.AsString()
	}
	sort.Strings(keys)
	for _, k := range keys {
		have, ok := s.hostDesc.Labels[k]
		if !ok {
			c.holds = false
			c.why = fmt.Sprintf("the host has no label %s, wanted %s = %q", k, k, want[k])
			return c, nil
		}
		if have != want[k] {
			c.holds = false
			c.why = fmt.Sprintf("label %s is %q, wanted %q", k, have, want[k])
			return c, nil
		}
	}
	return c, nil
}

func (s *Scope) placementHosts(e hcl.Expression, partial bool) (placementCond, hcl.Diagnostics) {
	c := placementCond{expr: e, known: true, holds: true}
	v, diags := s.placementValue(e, "hosts", cty.List(cty.String), `a list of host names, such as ["web-1", "web-2"]`, partial)
	if diags.HasErrors() || v == cty.NilVal {
		return c, diags
	}
	if !v.IsWhollyKnown() {
		c.known = false
		return c, nil
	}
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() {
			return c, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid placement",
				Detail:   "hosts of a placement must be a list of host names; it holds null.",
				Subject:  e.Range().Ptr(),
			}}
		}
	}
	for it := v.ElementIterator(); it.Next(); {
		if _, ev := it.Element(); ev.AsString() == s.hostDesc.Name {
			return c, nil
		}
	}
	c.holds = false
	c.why = fmt.Sprintf("%q is not in hosts", s.hostDesc.Name)
	return c, nil
}

func (s *Scope) placementWhen(e hcl.Expression, partial bool) (placementCond, hcl.Diagnostics) {
	c := placementCond{expr: e, known: true, holds: true}
	v, diags := s.placementValue(e, "when", cty.Bool, "true or false", partial)
	if diags.HasErrors() || v == cty.NilVal {
		return c, diags
	}
	if !v.IsKnown() {
		c.known = false
		return c, nil
	}
	if v.False() {
		c.holds = false
		c.why = "when is false"
	}
	return c, nil
}

// explainUnplaced replaces the errors that come from using a resource not
// placed on this host (an attribute it lacks, an index out of range, an
// object where a string is wanted) with one error per such reference that
// says so. who names the referrer, e.g. container.web or local.x.
func (s *Scope) explainUnplaced(who string, refs []Ref, diags hcl.Diagnostics) hcl.Diagnostics {
	if !diags.HasErrors() {
		return diags
	}
	s.mu.RLock()
	var culprits []Ref
	var infos []unplaced
	for _, ref := range refs {
		if ref.Type != RefResource {
			continue
		}
		if u, ok := s.unplaced[ref.Resource]; ok {
			culprits = append(culprits, ref)
			infos = append(infos, u)
		}
	}
	s.mu.RUnlock()
	if len(culprits) == 0 {
		return diags
	}
	var out hcl.Diagnostics
	explained := map[int]bool{}
	for _, d := range diags {
		i := causedBy(d, culprits)
		if i < 0 {
			out = append(out, d)
			continue
		}
		if explained[i] {
			continue
		}
		explained[i] = true
		ref := culprits[i]
		out = append(out, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Reference to a resource not placed on this host",
			Detail: fmt.Sprintf("%s refers to %s, which is %s. Give %s a placement that excludes this host too, or guard the reference, e.g. try(%s.id, null).",
				who, ref.Resource, infos[i].sentence(), who, ref.Resource),
			Subject: ref.Range.Ptr(),
		})
	}
	return out
}

// causedBy returns the index of the reference in refs whose value caused
// the error d, or -1.
func causedBy(d *hcl.Diagnostic, refs []Ref) int {
	if d.Severity != hcl.DiagError || d.Subject == nil {
		return -1
	}
	for i, ref := range refs {
		// An attribute or a literal index of the reference, or the
		// reference as a whole where it does not fit.
		if within(*d.Subject, ref.Range) {
			return i
		}
		// A computed index: KIND.NAME[expr].
		if ix, ok := d.Expression.(*hclsyntax.IndexExpr); ok {
			cr := ix.Collection.Range()
			if within(cr, ref.Range) && within(ref.Range, cr) {
				return i
			}
		}
	}
	return -1
}

// within reports whether inner lies inside outer.
func within(inner, outer hcl.Range) bool {
	return inner.Filename == outer.Filename && inner.Start.Byte >= outer.Start.Byte && inner.End.Byte <= outer.End.Byte
}
