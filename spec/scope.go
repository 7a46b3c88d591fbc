package spec

import (
	"fmt"
	"math/big"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// Host describes the host a configuration is evaluated for; expressions see
// it as host.name and host.labels.
type Host struct {
	Name   string
	Labels map[string]string
}

// Value returns the host as the cty object that expressions see.
func (h Host) Value() cty.Value {
	labels := map[string]cty.Value{}
	for k, v := range h.Labels {
		labels[k] = cty.StringVal(v)
	}
	lv := cty.MapValEmpty(cty.String)
	if len(labels) > 0 {
		lv = cty.MapVal(labels)
	}
	return cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(h.Name), "labels": lv})
}

// VarInput is one value given for a variable from outside the configuration.
type VarInput struct {
	Name string
	// Raw is the text of a -var flag or environment variable: a string for
	// string variables, an HCL expression for others.
	Raw string
	// Expr is set instead of Raw for values from a -var-file.
	Expr hcl.Expression
	// Source names where the value came from, for messages.
	Source string
}

// Inputs are the values a configuration is evaluated with.
type Inputs struct {
	// Vars are applied in order, later entries winning: environment
	// (BERTH_VAR_name) first, then -var-file and -var in command-line order.
	Vars []VarInput
	Host Host
	// Partial evaluates with unknown values for variables that have no
	// value, as validate does.
	Partial bool
	// Untrusted is set for a configuration sent by someone who may plan
	// but not read the host (a plan asked of an agent through its API):
	// file functions read only inside the configuration's directory, and
	// every variable value given from outside it is sensitive, so that
	// the plan never shows it.
	Untrusted bool
}

// EnvVars returns the variable values set in environ as BERTH_VAR_name=value.
func EnvVars(environ []string) []VarInput {
	var out []VarInput
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "BERTH_VAR_") || len(k) == len("BERTH_VAR_") {
			continue
		}
		out = append(out, VarInput{Name: strings.TrimPrefix(k, "BERTH_VAR_"), Raw: v, Source: "environment variable " + k})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ParseVarFlag parses the argument of -var, NAME=VALUE.
func ParseVarFlag(s string) (VarInput, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return VarInput{}, fmt.Errorf("invalid -var %q: write -var NAME=VALUE", s)
	}
	return VarInput{Name: k, Raw: v, Source: "-var " + k}, nil
}

// LoadVarFile reads a -var-file: an HCL file of NAME = VALUE attributes.
func LoadVarFile(path string) ([]VarInput, *hcl.File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read variables file",
			Detail:   fmt.Sprintf("Reading %s: %s.", path, err),
		}}
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return nil, f, diags
	}
	attrs, ds := f.Body.JustAttributes()
	diags = append(diags, ds...)
	var out []VarInput
	for _, a := range attrs {
		out = append(out, VarInput{Name: a.Name, Expr: a.Expr, Source: path})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, f, diags
}

// Instance is one instance of an expanded resource.
type Instance struct {
	Key addr.Key
	// Each is each.value for for_each instances, cty.NilVal otherwise.
	Each cty.Value
}

// Scope evaluates expressions of one configuration for one host. It is safe
// for concurrent use.
type Scope struct {
	cfg      *Config
	host     cty.Value
	hostDesc Host
	funcs    map[string]function.Function

	mu        sync.RWMutex
	vars      map[string]cty.Value
	locals    map[string]cty.Value
	resources map[addr.Resource]cty.Value
	bodyRefs  map[addr.Resource][]Ref
	// unplaced holds the resources whose placement excludes this host.
	unplaced map[addr.Resource]unplaced
}

// NewScope resolves the variables of cfg from in and returns a scope for
// evaluating the rest.
func NewScope(cfg *Config, in Inputs) (*Scope, hcl.Diagnostics) {
	s := &Scope{
		cfg:       cfg,
		host:      in.Host.Value(),
		hostDesc:  in.Host,
		funcs:     Functions(cfg.Dir),
		vars:      map[string]cty.Value{},
		locals:    map[string]cty.Value{},
		resources: map[addr.Resource]cty.Value{},
		bodyRefs:  map[addr.Resource][]Ref{},
		unplaced:  map[addr.Resource]unplaced{},
	}
	if in.Untrusted {
		s.funcs = ConfinedFunctions(cfg.Dir)
	}
	var diags hcl.Diagnostics
	given := map[string]cty.Value{}
	for _, vi := range in.Vars {
		decl, ok := cfg.Variables[vi.Name]
		if !ok {
			if strings.HasPrefix(vi.Source, "environment") {
				continue // like Terraform: unused environment values are fine
			}
			detail := fmt.Sprintf("A value for %q was given by %s, but the configuration declares no such variable.", vi.Name, vi.Source)
			if sug := suggest(vi.Name, keys(cfg.Variables)); sug != "" {
				detail += fmt.Sprintf(" Did you mean %q?", sug)
			} else {
				detail += fmt.Sprintf(" Declare it with variable %q {} or remove the value.", vi.Name)
			}
			d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable", Detail: detail}
			if vi.Expr != nil {
				d.Subject = vi.Expr.Range().Ptr()
			}
			diags = append(diags, d)
			continue
		}
		v, ds := inputValue(decl, vi)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			given[vi.Name] = v
		}
	}
	for _, name := range keys(cfg.Variables) {
		decl := cfg.Variables[name]
		v, ok := given[name]
		if ok && in.Untrusted {
			v = v.Mark(marks.Sensitive)
		}
		if !ok {
			if decl.Default != cty.NilVal {
				v = decl.Default
			} else if in.Partial {
				v = cty.UnknownVal(decl.Type)
			} else {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "No value for required variable",
					Detail:   fmt.Sprintf("Variable %q has no default. Give it a value with -var %s=VALUE, a -var-file, or the environment variable BERTH_VAR_%s.", name, name, name),
					Subject:  decl.DeclRange.Ptr(),
				})
				continue
			}
		}
		if decl.Sensitive {
			v = v.Mark(marks.Sensitive)
		}
		s.vars[name] = v
		diags = append(diags, s.validateVar(decl, v)...)
	}
	return s, diags
}

func inputValue(decl *Variable, vi VarInput) (cty.Value, hcl.Diagnostics) {
	var v cty.Value
	if vi.Expr != nil {
		val, diags := vi.Expr.Value(nil)
		if diags.HasErrors() {
			return cty.NilVal, diags
		}
		v = val
	} else if decl.Type == cty.String || decl.Type == cty.DynamicPseudoType {
		v = cty.StringVal(vi.Raw)
	} else {
		expr, diags := hclsyntax.ParseExpression([]byte(vi.Raw), vi.Source, hcl.Pos{Line: 1, Column: 1})
		if diags.HasErrors() {
			return cty.NilVal, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for variable",
				Detail:   fmt.Sprintf("The value of %q from %s is not a valid %s expression: %s", decl.Name, vi.Source, typeexpr.TypeString(decl.Type), diags.Error()),
				Subject:  decl.DeclRange.Ptr(),
			}}
		}
		val, diags := expr.Value(nil)
		if diags.HasErrors() {
			return cty.NilVal, diags
		}
		v = val
	}
	cv, err := convert.Convert(v, decl.Type)
	if err != nil {
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value of %q from %s does not match its type %s: %s.", decl.Name, vi.Source, typeexpr.TypeString(decl.Type), err),
			Subject:  decl.DeclRange.Ptr(),
		}
		if vi.Expr != nil {
			d.Subject = vi.Expr.Range().Ptr()
		}
		return cty.NilVal, hcl.Diagnostics{d}
	}
	return cv, nil
}

func (s *Scope) validateVar(decl *Variable, v cty.Value) hcl.Diagnostics {
	var diags hcl.Diagnostics
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{decl.Name: v})},
		Functions: s.funcs,
	}
	for _, val := range decl.Validations {
		cond, ds := val.Condition.Value(ctx)
		if ds.HasErrors() {
			diags = append(diags, ds...)
			continue
		}
		cond, _ = cond.Unmark()
		if !cond.IsKnown() {
			continue
		}
		cond, err := convert.Convert(cond, cty.Bool)
		if err != nil || cond.IsNull() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid validation condition",
				Detail:   "The condition must be true or false.",
				Subject:  val.Condition.Range().Ptr(),
			})
			continue
		}
		if cond.True() {
			continue
		}
		msg := "The value is not valid."
		if mv, ds := val.ErrorMessage.Value(ctx); !ds.HasErrors() {
			if marks.IsSensitive(mv) {
				msg = "The value is not valid (the message would reveal a sensitive value)."
			} else if sv, err := convert.Convert(mv, cty.String); err == nil && sv.IsKnown() && !sv.IsNull() {
				msg = sv.AsString()
			}
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("%s\n\nThis was checked by the validation rule at %s.", msg, val.DeclRange),
			Subject:  decl.DeclRange.Ptr(),
		})
	}
	return diags
}

// Variables returns the resolved variable values, sensitive ones marked.
func (s *Scope) Variables() map[string]cty.Value {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]cty.Value, len(s.vars))
	for k, v := range s.vars {
		out[k] = v
	}
	return out
}

// evalContext builds an evaluation context holding just what refs need.
func (s *Scope) evalContext(refs []Ref, inst *Instance, partial bool) *hcl.EvalContext {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vars := map[string]cty.Value{}
	locals := map[string]cty.Value{}
	kinds := map[string]map[string]cty.Value{}
	root := map[string]cty.Value{}
	for _, r := range refs {
		switch r.Type {
		case RefVariable:
			if v, ok := s.vars[r.Name]; ok {
				vars[r.Name] = v
			}
		case RefLocal:
			if v, ok := s.locals[r.Name]; ok {
				locals[r.Name] = v
			} else if partial {
				locals[r.Name] = cty.DynamicVal
			}
		case RefResource:
			v, ok := s.resources[r.Resource]
			if u, out := s.unplaced[r.Resource]; out {
				v, ok = u.value(), true
			}
			if !ok {
				if !partial {
					continue
				}
				v = cty.DynamicVal
			}
			if kinds[r.Resource.Kind] == nil {
				kinds[r.Resource.Kind] = map[string]cty.Value{}
			}
			kinds[r.Resource.Kind][r.Resource.Name] = v
		case RefHost:
			root["host"] = s.host
		}
	}
	root["var"] = cty.ObjectVal(vars)
	root["local"] = cty.ObjectVal(locals)
	for k, m := range kinds {
		root[k] = cty.ObjectVal(m)
	}
	if inst != nil {
		switch inst.Key.Type() {
		case addr.IntKeyType:
			root["count"] = cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(inst.Key.Int()))})
		case addr.StringKeyType:
			root["each"] = cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(inst.Key.Str()), "value": inst.Each})
		}
	} else if partial {
		root["count"] = cty.ObjectVal(map[string]cty.Value{"index": cty.UnknownVal(cty.Number)})
		root["each"] = cty.ObjectVal(map[string]cty.Value{"key": cty.UnknownVal(cty.String), "value": cty.DynamicVal})
	}
	return &hcl.EvalContext{Variables: root, Functions: s.funcs}
}

// EvalLocal evaluates a local value; its dependencies must be set.
func (s *Scope) EvalLocal(name string, partial bool) hcl.Diagnostics {
	l, ok := s.cfg.Locals[name]
	if !ok {
		return nil
	}
	refs, diags := ExprRefs(l.Expr)
	if diags.HasErrors() {
		return diags
	}
	v, ds := l.Expr.Value(s.evalContext(refs, nil, partial))
	diags = append(diags, s.explainUnplaced("local."+name, refs, ds)...)
	if ds.HasErrors() {
		v = cty.DynamicVal
	}
	s.mu.Lock()
	s.locals[name] = v
	s.mu.Unlock()
	return diags
}

// EvalOutput evaluates an output; its dependencies must be set. The value
// is marked sensitive when the output is declared sensitive.
func (s *Scope) EvalOutput(o *Output, partial bool) (cty.Value, hcl.Diagnostics) {
	refs, diags := ExprRefs(o.Expr)
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	v, ds := o.Expr.Value(s.evalContext(refs, nil, partial))
	ds = s.explainUnplaced("output."+o.Name, refs, ds)
	diags = append(diags, ds...)
	if o.Sensitive {
		v = v.Mark(marks.Sensitive)
	} else if marks.IsSensitive(v) && !ds.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Output refers to sensitive values",
			Detail:   fmt.Sprintf("Output %q holds a sensitive value. Set sensitive = true in the output block to show it as (sensitive value), or wrap it in nonsensitive() if it is safe to show.", o.Name),
			Subject:  o.Expr.Range().Ptr(),
		})
	}
	return v, diags
}

// Expand evaluates the placement and then count or for_each of r and
// returns its instances, in key order: none when the placement excludes
// this host. When partial is set and a value is not known yet, it returns
// known=false and no error.
func (s *Scope) Expand(r *Resource, partial bool) (insts []Instance, known bool, diags hcl.Diagnostics) {
	placed, known, diags := s.place(r, partial)
	if diags.HasErrors() || !known || !placed {
		return nil, known, diags
	}
	switch {
	case r.Count != nil:
		refs, ds := ExprRefs(r.Count)
		if ds.HasErrors() {
			return nil, false, ds
		}
		v, ds := r.Count.Value(s.evalContext(refs, nil, partial))
		if ds.HasErrors() {
			return nil, false, s.explainUnplaced(r.Addr.String(), refs, ds)
		}
		v, _ = v.Unmark()
		if !v.IsKnown() {
			if partial {
				return nil, false, nil
			}
			return nil, false, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid count",
				Detail:   "The count depends on values that are known only after apply. Use values from variables, locals or host instead.",
				Subject:  r.Count.Range().Ptr(),
			}}
		}
		nv, err := convert.Convert(v, cty.Number)
		if err != nil || nv.IsNull() {
			return nil, false, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid count",
				Detail:   "count must be a whole number, 0 or more.",
				Subject:  r.Count.Range().Ptr(),
			}}
		}
		bf := nv.AsBigFloat()
		n, acc := bf.Int64()
		if acc != big.Exact || n < 0 || n > 10000 {
			return nil, false, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid count",
				Detail:   fmt.Sprintf("count must be a whole number from 0 to 10000; got %s.", bf.Text('g', 10)),
				Subject:  r.Count.Range().Ptr(),
			}}
		}
		for i := 0; i < int(n); i++ {
			insts = append(insts, Instance{Key: addr.IntKey(i)})
		}
		return insts, true, nil
	case r.ForEach != nil:
		refs, ds := ExprRefs(r.ForEach)
		if ds.HasErrors() {
			return nil, false, ds
		}
		v, ds := r.ForEach.Value(s.evalContext(refs, nil, partial))
		if ds.HasErrors() {
			return nil, false, s.explainUnplaced(r.Addr.String(), refs, ds)
		}
		if marks.IsSensitive(v) {
			return nil, false, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid for_each",
				Detail:   "for_each cannot use sensitive values: the keys become part of resource addresses, which are shown.",
				Subject:  r.ForEach.Range().Ptr(),
			}}
		}
		if !v.IsWhollyKnown() {
			if partial {
				return nil, false, nil
			}
			return nil, false, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid for_each",
				Detail:   "The for_each value depends on values that are known only after apply. Use values from variables, locals or host instead.",
				Subject:  r.ForEach.Range().Ptr(),
			}}
		}
		ty := v.Type()
		switch {
		case v.IsNull():
		case ty.IsMapType() || ty.IsObjectType():
			for it := v.ElementIterator(); it.Next(); {
				k, ev := it.Element()
				insts = append(insts, Instance{Key: addr.StringKey(k.AsString()), Each: ev})
			}
		case ty.IsSetType() && (ty.ElementType() == cty.String || ty.ElementType() == cty.DynamicPseudoType):
			for it := v.ElementIterator(); it.Next(); {
				_, ev := it.Element()
				sv, err := convert.Convert(ev, cty.String)
				if err != nil || sv.IsNull() {
					return nil, false, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid for_each", Detail: "A for_each set must hold strings.", Subject: r.ForEach.Range().Ptr()}}
				}
				insts = append(insts, Instance{Key: addr.StringKey(sv.AsString()), Each: sv})
			}
		default:
			return nil, false, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid for_each",
				Detail:   fmt.Sprintf("for_each must be a map or a set of strings; got %s. For a list, write toset(list).", ty.FriendlyName()),
				Subject:  r.ForEach.Range().Ptr(),
			}}
		}
		sort.Slice(insts, func(i, j int) bool { return insts[i].Key.Less(insts[j].Key) })
		return insts, true, nil
	}
	return []Instance{{Key: addr.NoKey}}, true, nil
}

// Decode evaluates the body of one instance of r with spec. inst is nil
// when the instance is not known yet (partial evaluation).
func (s *Scope) Decode(r *Resource, inst *Instance, spec hcldec.Spec, partial bool) (cty.Value, hcl.Diagnostics) {
	s.mu.RLock()
	refs, ok := s.bodyRefs[r.Addr]
	s.mu.RUnlock()
	var diags hcl.Diagnostics
	if !ok {
		refs, diags = r.BodyRefs(spec)
		if diags.HasErrors() {
			return cty.DynamicVal, diags
		}
		s.mu.Lock()
		s.bodyRefs[r.Addr] = refs
		s.mu.Unlock()
	}
	v, ds := hcldec.Decode(withRefs(r.Body, spec), spec, s.evalContext(refs, inst, partial))
	diags = append(diags, s.explainUnplaced(r.Addr.String(), refs, ds)...)
	return v, diags
}

// SetResource records the values of the instances of r, so that references
// to r evaluate to them. For a resource without count or for_each, vals
// holds one value under addr.NoKey.
func (s *Scope) SetResource(r *Resource, vals map[addr.Key]cty.Value) {
	var v cty.Value
	switch {
	case r.Count != nil:
		elems := make([]cty.Value, len(vals))
		for k, ev := range vals {
			if k.Int() < len(elems) {
				elems[k.Int()] = ev
			}
		}
		for i := range elems {
			if elems[i] == cty.NilVal {
				elems[i] = cty.DynamicVal
			}
		}
		v = cty.TupleVal(elems)
	case r.ForEach != nil:
		m := map[string]cty.Value{}
		for k, ev := range vals {
			m[k.Str()] = ev
		}
		v = cty.ObjectVal(m)
	default:
		v = vals[addr.NoKey]
		if v == cty.NilVal {
			v = cty.DynamicVal
		}
	}
	s.mu.Lock()
	s.resources[r.Addr] = v
	s.mu.Unlock()
}

// SetResourceValue records the value that references to r evaluate to.
func (s *Scope) SetResourceValue(r addr.Resource, v cty.Value) {
	s.mu.Lock()
	s.resources[r] = v
	s.mu.Unlock()
}

// Redact replaces, in the summary and detail of diags, every sensitive
// variable value with "(sensitive value)": a function's error may quote its
// arguments.
func (s *Scope) Redact(diags hcl.Diagnostics) hcl.Diagnostics {
	var secrets []string
	for _, v := range s.Variables() {
		if !marks.IsSensitive(v) {
			continue
		}
		uv, _ := v.UnmarkDeep()
		_ = cty.Walk(uv, func(_ cty.Path, x cty.Value) (bool, error) {
			if x.IsKnown() && !x.IsNull() && x.Type() == cty.String && len(x.AsString()) >= 3 {
				secrets = append(secrets, x.AsString())
			}
			return true, nil
		})
	}
	if len(secrets) == 0 {
		return diags
	}
	r := strings.NewReplacer(replacerPairs(secrets)...)
	for _, d := range diags {
		d.Summary = r.Replace(d.Summary)
		d.Detail = r.Replace(d.Detail)
	}
	return diags
}

func replacerPairs(secrets []string) []string {
	// Longer secrets first, so that one containing another is replaced
	// whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	out := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		out = append(out, s, marks.Redacted)
	}
	return out
}
