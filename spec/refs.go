package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/berthhq/berth/spec/addr"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
)

// RefType tells what a reference in an expression points at.
type RefType int

const (
	// RefVariable is var.NAME.
	RefVariable RefType = iota + 1
	// RefLocal is local.NAME.
	RefLocal
	// RefResource is KIND.NAME.
	RefResource
	// RefHost is host.
	RefHost
	// RefCount is count.index.
	RefCount
	// RefEach is each.key or each.value.
	RefEach
)

// Ref is one reference found in an expression.
type Ref struct {
	Type     RefType
	Name     string        // variable or local name
	Resource addr.Resource // for RefResource
	Range    hcl.Range
}

// Node returns the name of the graph node the reference depends on, or ""
// for references that need no node (host, count, each, variables).
func (r Ref) Node() string {
	switch r.Type {
	case RefLocal:
		return "local." + r.Name
	case RefResource:
		return r.Resource.String()
	}
	return ""
}

// refsOf classifies traversals. Unknown roots yield error diagnostics.
func refsOf(travs []hcl.Traversal) ([]Ref, hcl.Diagnostics) {
	var refs []Ref
	var diags hcl.Diagnostics
	for _, t := range travs {
		root := t.RootName()
		rng := t.SourceRange()
		next := ""
		if len(t) > 1 {
			if a, ok := t[1].(hcl.TraverseAttr); ok {
				next = a.Name
			}
		}
		switch root {
		case "var", "local":
			if next == "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid reference",
					Detail:   fmt.Sprintf("A reference to %q must name one, e.g. %s.name.", root, root),
					Subject:  rng.Ptr(),
				})
				continue
			}
			typ := RefVariable
			if root == "local" {
				typ = RefLocal
			}
			refs = append(refs, Ref{Type: typ, Name: next, Range: rng})
		case "host":
			refs = append(refs, Ref{Type: RefHost, Range: rng})
		case "count":
			refs = append(refs, Ref{Type: RefCount, Range: rng})
		case "each":
			refs = append(refs, Ref{Type: RefEach, Range: rng})
		default:
			if next == "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid reference",
					Detail:   fmt.Sprintf("A reference to a resource must name it, e.g. %s.NAME; %q alone is not a value.", root, root),
					Subject:  rng.Ptr(),
				})
				continue
			}
			refs = append(refs, Ref{Type: RefResource, Resource: addr.Resource{Kind: root, Name: next}, Range: rng})
		}
	}
	return refs, diags
}

// ExprRefs returns the references of an expression.
func ExprRefs(e hcl.Expression) ([]Ref, hcl.Diagnostics) {
	if e == nil {
		return nil, nil
	}
	return refsOf(e.Variables())
}

// BodyRefs returns the references of a resource body decoded with spec,
// including those of count, for_each, placement and depends_on.
func (r *Resource) BodyRefs(spec hcldec.Spec) ([]Ref, hcl.Diagnostics) {
	travs := hcldec.Variables(r.Body, spec)
	if r.Count != nil {
		travs = append(travs, r.Count.Variables()...)
	}
	if r.ForEach != nil {
		travs = append(travs, r.ForEach.Variables()...)
	}
	if r.Placement != nil {
		for _, e := range r.Placement.Exprs() {
			travs = append(travs, e.Variables()...)
		}
	}
	refs, diags := refsOf(travs)
	for _, d := range r.DependsOn {
		refs = append(refs, Ref{Type: RefResource, Resource: d.Addr, Range: d.Range})
	}
	return refs, diags
}

// checkRefs reports references to undeclared variables, locals and
// resources, and misuse of count and each.
func (c *Config) checkRefs(refs []Ref, res *Resource) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, ref := range refs {
		switch ref.Type {
		case RefVariable:
			if _, ok := c.Variables[ref.Name]; !ok {
				diags = append(diags, undeclared("variable", "var."+ref.Name, ref.Range, suggest(ref.Name, keys(c.Variables)), "var."))
			}
		case RefLocal:
			if _, ok := c.Locals[ref.Name]; !ok {
				diags = append(diags, undeclared("local value", "local."+ref.Name, ref.Range, suggest(ref.Name, keys(c.Locals)), "local."))
			}
		case RefResource:
			if _, ok := c.Resources[ref.Resource]; !ok {
				var names []string
				for a := range c.Resources {
					names = append(names, a.String())
				}
				diags = append(diags, undeclared("resource", ref.Resource.String(), ref.Range, suggest(ref.Resource.String(), names), ""))
			}
		case RefCount:
			if res == nil || res.Count == nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Reference to count in a non-counted context",
					Detail:   "count.index can only be used in a resource that sets count.",
					Subject:  ref.Range.Ptr(),
				})
			}
		case RefEach:
			if res == nil || res.ForEach == nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Reference to each in a context without for_each",
					Detail:   "each.key and each.value can only be used in a resource that sets for_each.",
					Subject:  ref.Range.Ptr(),
				})
			}
		}
	}
	return diags
}

func undeclared(what, name string, rng hcl.Range, suggestion, prefix string) *hcl.Diagnostic {
	detail := fmt.Sprintf("There is no %s named %s in the configuration.", what, name)
	if suggestion != "" {
		detail += fmt.Sprintf(" Did you mean %s%s?", prefix, suggestion)
	} else {
		detail += fmt.Sprintf(" Declare it, or fix the reference.")
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Reference to undeclared %s", what),
		Detail:   detail,
		Subject:  rng.Ptr(),
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest returns the candidate closest to given, or "" when none is close.
func suggest(given string, candidates []string) string {
	best, bestDist := "", 4
	for _, c := range candidates {
		d := levenshtein.Distance(given, c, nil)
		if d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	if best != "" && bestDist > len(given)/2+1 && !strings.HasPrefix(best, given) {
		return ""
	}
	return best
}

// Suggest returns the candidate closest to given, or "" when none is close.
func Suggest(given string, candidates []string) string { return suggest(given, candidates) }
