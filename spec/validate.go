package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/spec/addr"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Schemas maps each resource kind to its schema, as providers publish them.
type Schemas map[string]*providers.Kind

// CheckKinds reports resource blocks whose kind no provider manages.
func (c *Config) CheckKinds(schemas Schemas) hcl.Diagnostics {
	var diags hcl.Diagnostics
	kinds := make([]string, 0, len(schemas))
	for k := range schemas {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, r := range c.SortedResources() {
		if _, ok := schemas[r.Addr.Kind]; ok {
			continue
		}
		detail := fmt.Sprintf("No provider manages resources of kind %q.", r.Addr.Kind)
		if s := suggest(r.Addr.Kind, kinds); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		} else if len(kinds) > 0 {
			detail += fmt.Sprintf(" Known kinds: %s.", strings.Join(kinds, ", "))
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown resource kind",
			Detail:   detail,
			Subject:  r.TypeRange.Ptr(),
		})
	}
	return diags
}

// Graph builds the dependency graph of c and checks every reference. Kinds
// must have been checked with CheckKinds; resources of unknown kinds are
// left out.
func (c *Config) Graph(schemas Schemas) (*Graph, hcl.Diagnostics) {
	g := NewGraph()
	var diags hcl.Diagnostics
	for _, r := range c.SortedResources() {
		k, ok := schemas[r.Addr.Kind]
		if !ok {
			continue
		}
		node := r.Addr.String()
		g.Add(node)
		refs, ds := r.BodyRefs(k.Block.DecoderSpec())
		diags = append(diags, ds...)
		diags = append(diags, c.checkRefs(refs, r)...)
		for _, ref := range refs {
			if n := ref.Node(); n != "" && n != node {
				g.Connect(node, n, ref.Range)
			} else if n == node {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Self-referential resource",
					Detail:   fmt.Sprintf("%s refers to itself. A resource cannot depend on its own attributes.", node),
					Subject:  ref.Range.Ptr(),
				})
			}
		}
	}
	for _, name := range keys(c.Locals) {
		l := c.Locals[name]
		node := "local." + name
		g.Add(node)
		refs, ds := ExprRefs(l.Expr)
		diags = append(diags, ds...)
		diags = append(diags, c.checkRefs(refs, nil)...)
		for _, ref := range refs {
			if n := ref.Node(); n != "" {
				g.Connect(node, n, ref.Range)
			}
		}
	}
	for _, name := range keys(c.Outputs) {
		o := c.Outputs[name]
		node := "output." + name
		g.Add(node)
		refs, ds := ExprRefs(o.Expr)
		diags = append(diags, ds...)
		diags = append(diags, c.checkRefs(refs, nil)...)
		for _, ref := range refs {
			if n := ref.Node(); n != "" {
				g.Connect(node, n, ref.Range)
			}
		}
	}
	for _, name := range keys(c.Variables) {
		v := c.Variables[name]
		for _, val := range v.Validations {
			for _, e := range []hcl.Expression{val.Condition, val.ErrorMessage} {
				refs, ds := ExprRefs(e)
				diags = append(diags, ds...)
				for _, ref := range refs {
					if ref.Type != RefVariable || ref.Name != name {
						diags = append(diags, &hcl.Diagnostic{
							Severity: hcl.DiagError,
							Summary:  "Invalid reference in variable validation",
							Detail:   fmt.Sprintf("A validation rule of variable %q may refer only to var.%s.", name, name),
							Subject:  ref.Range.Ptr(),
						})
					}
				}
			}
		}
	}
	if diags.HasErrors() {
		return g, diags
	}
	_, ds := g.Order()
	diags = append(diags, ds...)
	return g, diags
}

// CheckBody reports attributes of r that the schema marks as computed only,
// and lifecycle ignore_changes entries that name no attribute.
func (c *Config) CheckBody(r *Resource, k *providers.Kind) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if body, ok := r.Body.(*hclsyntax.Body); ok {
		for name, a := range body.Attributes {
			sa, ok := k.Block.Attributes[name]
			if ok && sa.Computed && !sa.Optional && !sa.Required {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Attribute cannot be set",
					Detail:   fmt.Sprintf("%q of %s is computed by the provider and cannot be set; remove it. Read it elsewhere as %s.%s.", name, r.Addr.Kind, r.Addr, name),
					Subject:  a.NameRange.Ptr(),
				})
			}
		}
	}
	for _, name := range r.Lifecycle.IgnoreChanges {
		_, isAttr := k.Block.Attributes[name]
		_, isBlock := k.Block.Blocks[name]
		if !isAttr && !isBlock {
			var names []string
			for n := range k.Block.Attributes {
				names = append(names, n)
			}
			for n := range k.Block.Blocks {
				names = append(names, n)
			}
			detail := fmt.Sprintf("%s has no attribute %q.", r.Addr.Kind, name)
			if s := suggest(name, names); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid ignore_changes entry",
				Detail:   detail,
				Subject:  r.DeclRange.Ptr(),
			})
		}
	}
	return diags
}

// Validate checks cfg against the provider schemas without asking any
// provider to change anything: kinds, references, cycles, types, required
// and unknown attributes, variable values and validations. Values known only
// after apply are treated as unknown.
func Validate(cfg *Config, in Inputs, schemas Schemas) (diags hcl.Diagnostics) {
	return ValidateWith(cfg, in, schemas, nil)
}

// CheckFunc checks the decoded configuration of a resource's first
// instance, with unknown values where they depend on what is not known
// before a plan; providers validate through it.
type CheckFunc func(r *Resource, v cty.Value) hcl.Diagnostics

// ValidateWith is Validate, and also calls check (when not nil) with each
// resource's decoded configuration once its body has no errors.
func ValidateWith(cfg *Config, in Inputs, schemas Schemas, check CheckFunc) (diags hcl.Diagnostics) {
	in.Partial = true
	diags = cfg.CheckKinds(schemas)
	g, ds := cfg.Graph(schemas)
	diags = append(diags, ds...)
	if ds.HasErrors() {
		return diags
	}
	scope, ds := NewScope(cfg, in)
	diags = append(diags, ds...)
	defer func() { diags = scope.Redact(diags) }()
	order, ds := g.Order()
	diags = append(diags, ds...)
	if ds.HasErrors() {
		return diags
	}
	for _, node := range order {
		switch {
		case strings.HasPrefix(node, "local."):
			diags = append(diags, scope.EvalLocal(strings.TrimPrefix(node, "local."), true)...)
		case strings.HasPrefix(node, "output."):
			_, ds := scope.EvalOutput(cfg.Outputs[strings.TrimPrefix(node, "output.")], true)
			diags = append(diags, ds...)
		default:
			r := resourceByNode(cfg, node)
			if r == nil {
				continue
			}
			k, ok := schemas[r.Addr.Kind]
			if !ok {
				continue // an unknown kind, reported by CheckKinds
			}
			diags = append(diags, cfg.CheckBody(r, k)...)
			spec := k.Block.DecoderSpec()
			insts, known, ds := scope.Expand(r, true)
			diags = append(diags, ds...)
			ty := k.Block.ImpliedType()
			if !known || ds.HasErrors() {
				_, ds := scope.Decode(r, nil, spec, true)
				diags = append(diags, ds...)
				scope.SetResourceValue(r.Addr, cty.DynamicVal)
				continue
			}
			// Decoding the first instance finds the errors of the body;
			// plan decodes every instance with its own key anyway.
			if len(insts) > 0 {
				v, ds := scope.Decode(r, &insts[0], spec, true)
				diags = append(diags, ds...)
				if check != nil && !ds.HasErrors() {
					diags = append(diags, check(r, v)...)
				}
			}
			unknown := cty.UnknownVal(ty)
			switch {
			case r.Count != nil:
				elems := make([]cty.Value, len(insts))
				for i := range elems {
					elems[i] = unknown
				}
				scope.SetResourceValue(r.Addr, cty.TupleVal(elems))
			case r.ForEach != nil:
				m := map[string]cty.Value{}
				for _, in := range insts {
					m[in.Key.Str()] = unknown
				}
				scope.SetResourceValue(r.Addr, cty.ObjectVal(m))
			default:
				scope.SetResourceValue(r.Addr, unknown)
			}
		}
	}
	return Dedupe(diags)
}

func resourceByNode(cfg *Config, node string) *Resource {
	a, err := addr.ParseResource(node)
	if err != nil {
		return nil
	}
	return cfg.Resources[a]
}

// Dedupe drops diagnostics repeated with the same summary, detail and
// range, as happens when several instances of one resource share a mistake.
func Dedupe(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, d := range diags {
		key := d.Summary + "|" + d.Detail
		if d.Subject != nil {
			key += "|" + d.Subject.String()
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, d)
	}
	return out
}
