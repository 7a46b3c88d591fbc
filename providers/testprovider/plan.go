package testprovider

import (
	"fmt"
	"math/big"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// conform returns v converted to the kind's type, or an error diagnostic
// naming what (a "config", a "prior state") does not fit.
func (k *kindSpec) conform(v cty.Value, what string) (cty.Value, providers.Diagnostics) {
	if v == cty.NilVal {
		return cty.NullVal(k.ty), nil
	}
	if v.IsMarked() {
		v, _ = v.UnmarkDeep()
	}
	if k.fits(v.Type()) {
		return v, nil
	}
	if v.ContainsMarked() {
		v, _ = v.UnmarkDeep()
	}
	c, err := fill(v, k.ty)
	if err != nil {
		return cty.NilVal, providers.Errorf("the %s of a %s does not fit its schema: %s", what, k.name, err)
	}
	return c, nil
}

// fits reports whether values of type t can be used as they are. It
// compares only the shape of the top level, because a full comparison of
// object types costs more than planning a converged object: a value of the
// right shape with wrong attribute types (which the plugin protocol cannot
// produce) fails where it is used, and the provider's methods recover that
// failure as an error diagnostic.
func (k *kindSpec) fits(t cty.Type) bool {
	return t.IsObjectType() && len(t.AttributeTypes()) == len(k.tyAttrs)
}

// fill converts v to the object type ty, taking attributes that v lacks as
// null.
func fill(v cty.Value, ty cty.Type) (cty.Value, error) {
	if !v.Type().IsObjectType() || v.IsNull() || !v.IsKnown() {
		return convert.Convert(v, ty)
	}
	for name := range v.Type().AttributeTypes() {
		if !ty.HasAttribute(name) {
			return cty.NilVal, fmt.Errorf("unsupported attribute %q", name)
		}
	}
	vals := make(map[string]cty.Value, len(ty.AttributeTypes()))
	for name, aty := range ty.AttributeTypes() {
		if !v.Type().HasAttribute(name) {
			vals[name] = cty.NullVal(aty)
			continue
		}
		av, err := convert.Convert(v.GetAttr(name), aty)
		if err != nil {
			return cty.NilVal, fmt.Errorf("attribute %q: %w", name, err)
		}
		vals[name] = av
	}
	return cty.ObjectVal(vals), nil
}

// validate checks a configuration that may hold unknown values.
func (k *kindSpec) validate(config cty.Value) providers.Diagnostics {
	config, diags := k.conform(config, "configuration")
	if diags.HasErrors() {
		return diags
	}
	if config.IsNull() || !config.IsKnown() {
		return providers.Errorf("the configuration of a %s is missing", k.name)
	}
	switch k.name {
	case kindThing:
		if f := config.GetAttr("fail"); f.IsKnown() && !f.IsNull() {
			switch f.AsString() {
			case failPlan, failApply, failDelete:
			default:
				diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("fail"),
					`fail must be "plan", "apply" or "delete", not %q; remove it to let every operation succeed`, f.AsString())...)
			}
		}
		diags = append(diags, validatePorts(config.GetAttr("port"))...)
	case kindWidget:
		if l := config.GetAttr("label"); l.IsKnown() && !l.IsNull() && l.AsString() == "" {
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("label"), "label must not be empty; give the widget a label")...)
		}
	}
	return diags
}

func validatePorts(ports cty.Value) providers.Diagnostics {
	if ports.IsNull() || !ports.IsKnown() {
		return nil
	}
	var diags providers.Diagnostics
	i := 0
	for it := ports.ElementIterator(); it.Next(); i++ {
		_, p := it.Element()
		if p.IsNull() || !p.IsKnown() {
			continue
		}
		path := cty.GetAttrPath("port").IndexInt(i)
		if n := p.GetAttr("number"); n.IsKnown() && !n.IsNull() {
			if v, ok := wholeNumber(n); !ok || v < 1 || v > 65535 {
				diags = append(diags, providers.AttributeErrorf(path.GetAttr("number"),
					"port number %s is out of range; use a whole number from 1 to 65535", n.AsBigFloat().Text('g', -1))...)
			}
		}
		if pr := p.GetAttr("protocol"); pr.IsKnown() && !pr.IsNull() {
			if s := pr.AsString(); s != "tcp" && s != "udp" {
				diags = append(diags, providers.AttributeErrorf(path.GetAttr("protocol"),
					`protocol must be "tcp" or "udp", not %q`, s)...)
			}
		}
	}
	return diags
}

// wholeNumber returns the integer value of a known, non-null number, and
// whether it is a whole number that fits an int64.
func wholeNumber(n cty.Value) (int64, bool) {
	if n.IsNull() || !n.IsKnown() || n.Type() != cty.Number {
		return 0, false
	}
	bf := n.AsBigFloat()
	if !bf.IsInt() {
		return 0, false
	}
	v, acc := bf.Int64()
	return v, acc == big.Exact
}

// plan computes the planned state of applying config to prior.
func (k *kindSpec) plan(prior, config cty.Value) (cty.Value, []cty.Path, providers.Diagnostics) {
	config, diags := k.conform(config, "configuration")
	if diags.HasErrors() {
		return cty.NilVal, nil, diags
	}
	prior, diags = k.conform(prior, "prior state")
	if diags.HasErrors() {
		return cty.NilVal, nil, diags
	}
	if config.IsNull() {
		// Nothing is wanted: the object is to be deleted.
		return cty.NullVal(k.ty), nil, nil
	}
	if !config.IsKnown() || !prior.IsKnown() {
		return cty.NilVal, nil, providers.Errorf("cannot plan a %s whose whole configuration or prior state is unknown", k.name)
	}
	if k.name == kindThing {
		if f := config.GetAttr("fail"); f.IsKnown() && !f.IsNull() && f.AsString() == failPlan {
			return cty.NilVal, nil, providers.Diagnostics{{
				Severity: providers.Error,
				Summary:  "injected failure: planning this thing fails",
				Detail:   `fail = "plan" makes every plan of this object fail; remove it to plan normally.`,
				Path:     cty.GetAttrPath("fail"),
			}}
		}
	}
	create := prior.IsNull()
	if !create && k.sameAsPrior(prior, config) {
		// The common case of a converged object: answer without
		// allocating.
		return prior, nil, nil
	}
	vals := make(map[string]cty.Value, len(k.attrs)+2)
	for _, a := range k.attrs {
		vals[a] = config.GetAttr(a)
	}
	if k.ports {
		vals["port"] = defaultPorts(vals["port"])
	}
	var replace []cty.Path
	if !create {
		for _, a := range k.forceNew {
			if !prior.GetAttr(a).RawEquals(config.GetAttr(a)) {
				replace = append(replace, cty.GetAttrPath(a))
			}
		}
	}
	vals["id"] = cty.UnknownVal(cty.String)
	if !create && len(replace) == 0 {
		vals["id"] = prior.GetAttr("id")
	}
	if k.serial {
		// Something changes (sameAsPrior said so): the serial moves.
		vals["serial"] = cty.UnknownVal(cty.Number)
	}
	return cty.ObjectVal(vals), replace, nil
}

// sameAsPrior reports whether planning config against prior changes
// nothing. It does not allocate.
func (k *kindSpec) sameAsPrior(prior, config cty.Value) bool {
	for _, a := range k.attrs {
		pv, cv := prior.GetAttr(a), config.GetAttr(a)
		if k.ports && a == "port" {
			if !portsEqual(pv, cv) {
				return false
			}
			continue
		}
		if !pv.RawEquals(cv) {
			return false
		}
	}
	return true
}

// portsEqual reports whether the configured port list cfg plans to the
// live list prior, counting an unset protocol as the default.
func portsEqual(prior, cfg cty.Value) bool {
	if !cfg.IsKnown() || !prior.IsKnown() || prior.IsNull() != cfg.IsNull() {
		return false
	}
	if cfg.IsNull() {
		return true
	}
	if prior.LengthInt() != cfg.LengthInt() {
		return false
	}
	for pi, ci := prior.ElementIterator(), cfg.ElementIterator(); pi.Next() && ci.Next(); {
		_, p := pi.Element()
		_, c := ci.Element()
		if !p.IsKnown() || !c.IsKnown() || p.IsNull() != c.IsNull() {
			return false
		}
		if c.IsNull() {
			continue
		}
		if !p.GetAttr("number").RawEquals(c.GetAttr("number")) {
			return false
		}
		pp, cp := p.GetAttr("protocol"), c.GetAttr("protocol")
		if cp.IsKnown() && cp.IsNull() {
			if !pp.IsKnown() || pp.IsNull() || pp.AsString() != defaultProtocol {
				return false
			}
			continue
		}
		if !pp.RawEquals(cp) {
			return false
		}
	}
	return true
}

// defaultPorts fills in the default protocol of every port without one.
func defaultPorts(ports cty.Value) cty.Value {
	if ports.IsNull() || !ports.IsKnown() || ports.LengthInt() == 0 {
		return ports
	}
	needs := false
	for it := ports.ElementIterator(); it.Next(); {
		_, p := it.Element()
		if p.IsKnown() && !p.IsNull() {
			if pr := p.GetAttr("protocol"); pr.IsKnown() && pr.IsNull() {
				needs = true
				break
			}
		}
	}
	if !needs {
		return ports
	}
	out := make([]cty.Value, 0, ports.LengthInt())
	for it := ports.ElementIterator(); it.Next(); {
		_, p := it.Element()
		if p.IsKnown() && !p.IsNull() {
			if pr := p.GetAttr("protocol"); pr.IsKnown() && pr.IsNull() {
				p = cty.ObjectVal(map[string]cty.Value{
					"number":   p.GetAttr("number"),
					"protocol": cty.StringVal(defaultProtocol),
				})
			}
		}
		out = append(out, p)
	}
	return cty.ListVal(out)
}

// finish turns a planned value into the state of the object id: it fills in
// the computed attributes and checks that nothing is left unknown.
func (k *kindSpec) finish(planned cty.Value, id string, serial int64) (cty.Value, providers.Diagnostics) {
	vals := planned.AsValueMap()
	if vals == nil {
		vals = map[string]cty.Value{}
	}
	vals["id"] = cty.StringVal(id)
	if k.serial {
		vals["serial"] = cty.NumberIntVal(serial)
	}
	if k.ports {
		vals["port"] = defaultPorts(vals["port"])
	}
	state, diags := k.conform(cty.ObjectVal(vals), "planned state")
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if !state.IsWhollyKnown() {
		return cty.NilVal, providers.Errorf("the planned state of %s still holds values known only after apply; plan again with every value known", id)
	}
	return state, nil
}

// serialOf returns the serial of a state, or 0 when it has none.
func serialOf(state cty.Value) int64 {
	if state.IsNull() || !state.IsKnown() || !state.Type().HasAttribute("serial") {
		return 0
	}
	n, ok := wholeNumber(state.GetAttr("serial"))
	if !ok || n < 0 {
		return 0
	}
	return n
}

// failMode returns the value of the fail attribute of a state or
// configuration, or "" when it has none.
func failMode(v cty.Value) string {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() || !v.Type().HasAttribute("fail") {
		return ""
	}
	f := v.GetAttr("fail")
	if f.IsNull() || !f.IsKnown() || f.Type() != cty.String {
		return ""
	}
	return f.AsString()
}

// describe names an object for an error message: its address and its name
// attribute when it has one.
func describe(address string, v cty.Value) string {
	s := address
	if s == "" {
		s = "this object"
	}
	if v != cty.NilVal && !v.IsNull() && v.IsKnown() && v.Type().IsObjectType() && v.Type().HasAttribute("name") {
		if n := v.GetAttr("name"); n.IsKnown() && !n.IsNull() && n.Type() == cty.String {
			s += fmt.Sprintf(" (name %q)", n.AsString())
		}
	}
	return s
}
