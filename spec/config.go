// Package spec is berth's configuration language: it loads the *.hcl files of a
// directory into one Config, checks it, and evaluates it for one host into
// typed desired state, with hcl.Diagnostics that carry source ranges.
package spec

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/berthhq/berth/spec/addr"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Config is a whole configuration: every *.hcl file of one directory.
type Config struct {
	// Dir is the directory the configuration was loaded from, as given.
	Dir string
	// Files maps each file name (Dir joined with the base name) to its
	// parsed form, for rendering diagnostics with source lines.
	Files     map[string]*hcl.File
	Variables map[string]*Variable
	Locals    map[string]*Local
	Outputs   map[string]*Output
	Resources map[addr.Resource]*Resource
}

// Variable is a variable block.
type Variable struct {
	Name        string
	Description string
	// Type is the declared type, cty.DynamicPseudoType when not declared.
	Type        cty.Type
	Default     cty.Value // cty.NilVal when there is none: the variable is required
	Sensitive   bool
	Validations []*Validation
	DeclRange   hcl.Range
}

// Validation is a validation block of a variable.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage hcl.Expression
	DeclRange    hcl.Range
}

// Local is one attribute of a locals block.
type Local struct {
	Name      string
	Expr      hcl.Expression
	DeclRange hcl.Range
}

// Output is an output block.
type Output struct {
	Name        string
	Description string
	Expr        hcl.Expression
	Sensitive   bool
	DeclRange   hcl.Range
}

// Resource is a resource block, KIND "NAME" { ... }.
type Resource struct {
	Addr addr.Resource
	// Count and ForEach are nil when absent.
	Count   hcl.Expression
	ForEach hcl.Expression
	// DependsOn lists explicit dependencies.
	DependsOn []DependsOn
	Lifecycle Lifecycle
	// Placement is nil when the resource has no placement block: it is
	// placed on every host.
	Placement *Placement
	// Body is the rest of the block, decoded with the kind's schema.
	Body      hcl.Body
	DeclRange hcl.Range
	TypeRange hcl.Range
}

// DependsOn is one entry of depends_on.
type DependsOn struct {
	Addr  addr.Resource
	Range hcl.Range
}

// Lifecycle holds the settings of a lifecycle block.
type Lifecycle struct {
	PreventDestroy      bool
	CreateBeforeDestroy bool
	// IgnoreChanges lists top-level attribute names whose changes are
	// ignored after creation; IgnoreAll is ignore_changes = all.
	IgnoreChanges []string
	IgnoreAll     bool
}

// reserved names that cannot be resource kinds.
var reservedRoots = map[string]bool{
	"var": true, "local": true, "host": true, "count": true, "each": true,
	"self": true, "path": true, "terraform": true, "output": true,
}

// Load parses every *.hcl file at the top of fsys. dir is used only to name
// files in diagnostics and to resolve paths of file functions.
func Load(fsys fs.FS, dir string) (*Config, hcl.Diagnostics) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration directory",
			Detail:   fmt.Sprintf("Reading %s: %s.", dir, err),
		}}
	}
	srcs := map[string][]byte{}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".hcl") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Cannot read configuration file",
				Detail:   fmt.Sprintf("Reading %s: %s.", path.Join(dir, e.Name()), err),
			}}
		}
		name := joinName(dir, e.Name())
		srcs[name] = b
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail:   fmt.Sprintf("The directory %s has no *.hcl files. Run `berth init %s` to write an example.", dir, dir),
		}}
	}
	return Parse(dir, names, srcs)
}

func joinName(dir, name string) string {
	if dir == "" || dir == "." {
		return name
	}
	return path.Join(dir, name)
}

// Parse builds a Config from sources, keyed by file name, parsed in the order
// of names.
func Parse(dir string, names []string, srcs map[string][]byte) (*Config, hcl.Diagnostics) {
	cfg := &Config{
		Dir:       dir,
		Files:     map[string]*hcl.File{},
		Variables: map[string]*Variable{},
		Locals:    map[string]*Local{},
		Outputs:   map[string]*Output{},
		Resources: map[addr.Resource]*Resource{},
	}
	var diags hcl.Diagnostics
	localRanges := map[string]hcl.Range{}
	for _, name := range names {
		f, ds := hclsyntax.ParseConfig(srcs[name], name, hcl.Pos{Line: 1, Column: 1})
		cfg.Files[name] = f
		diags = append(diags, ds...)
		if ds.HasErrors() || f == nil {
			continue
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			continue
		}
		for _, a := range body.Attributes {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unexpected attribute",
				Detail:   fmt.Sprintf("An attribute %q cannot stand at the top level of a file. Put it inside a block, e.g. locals { %s = ... }.", a.Name, a.Name),
				Subject:  a.NameRange.Ptr(),
			})
		}
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				v, ds := decodeVariable(b)
				diags = append(diags, ds...)
				if v == nil {
					continue
				}
				if prev, dup := cfg.Variables[v.Name]; dup {
					diags = append(diags, duplicate("variable", v.Name, prev.DeclRange, v.DeclRange))
					continue
				}
				cfg.Variables[v.Name] = v
			case "locals":
				if len(b.Labels) > 0 {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Unexpected label",
						Detail:   "A locals block takes no labels: write locals { name = value }.",
						Subject:  b.LabelRanges[0].Ptr(),
					})
					continue
				}
				for _, a := range sortedAttrs(b.Body) {
					if prev, dup := localRanges[a.Name]; dup {
						diags = append(diags, duplicate("local value", a.Name, prev, a.NameRange))
						continue
					}
					localRanges[a.Name] = a.NameRange
					cfg.Locals[a.Name] = &Local{Name: a.Name, Expr: a.Expr, DeclRange: a.NameRange}
				}
				for _, nb := range b.Body.Blocks {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Unexpected block",
						Detail:   "A locals block holds attributes only.",
						Subject:  nb.TypeRange.Ptr(),
					})
				}
			case "output":
				o, ds := decodeOutput(b)
				diags = append(diags, ds...)
				if o == nil {
					continue
				}
				if prev, dup := cfg.Outputs[o.Name]; dup {
					diags = append(diags, duplicate("output", o.Name, prev.DeclRange, o.DeclRange))
					continue
				}
				cfg.Outputs[o.Name] = o
			default:
				r, ds := decodeResource(b)
				diags = append(diags, ds...)
				if r == nil {
					continue
				}
				if prev, dup := cfg.Resources[r.Addr]; dup {
					diags = append(diags, duplicate("resource", r.Addr.String(), prev.DeclRange, r.DeclRange))
					continue
				}
				cfg.Resources[r.Addr] = r
			}
		}
	}
	return cfg, diags
}

func duplicate(what, name string, first, second hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate %s %q", what, name),
		Detail:   fmt.Sprintf("A %s named %q was already declared at %s. Names must be unique: rename or remove one of them.", what, name, first),
		Subject:  second.Ptr(),
	}
}

func sortedAttrs(b *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

func oneLabel(b *hclsyntax.Block, what, example string) (string, hcl.Diagnostics) {
	if len(b.Labels) != 1 {
		rng := b.TypeRange
		if len(b.Labels) > 1 {
			rng = b.LabelRanges[1]
		}
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("A %s block needs exactly one label", what),
			Detail:   fmt.Sprintf("Write it as %s.", example),
			Subject:  rng.Ptr(),
		}}
	}
	name := b.Labels[0]
	if !addr.ValidName(name) {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s name", what),
			Detail:   fmt.Sprintf("%q is not a valid name: start with a letter or underscore, then use letters, digits, underscores and dashes.", name),
			Subject:  b.LabelRanges[0].Ptr(),
		}}
	}
	return name, nil
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}, {Name: "nullable"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true}, {Name: "error_message", Required: true},
	},
}

func decodeVariable(b *hclsyntax.Block) (*Variable, hcl.Diagnostics) {
	name, diags := oneLabel(b, "variable", `variable "name" { type = string }`)
	if diags.HasErrors() {
		return nil, diags
	}
	v := &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: b.DefRange()}
	content, ds := b.Body.Content(variableSchema)
	diags = append(diags, ds...)
	if a, ok := content.Attributes["type"]; ok {
		ty, ds := typeexpr.TypeConstraint(a.Expr)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			v.Type = ty
		}
	}
	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, decodeLiteral(a, cty.String, func(val cty.Value) { v.Description = val.AsString() })...)
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		diags = append(diags, decodeLiteral(a, cty.Bool, func(val cty.Value) { v.Sensitive = val.True() })...)
	}
	if a, ok := content.Attributes["default"]; ok {
		val, ds := a.Expr.Value(nil)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			if v.Type != cty.DynamicPseudoType && !val.IsNull() {
				cv, err := convert.Convert(val, v.Type)
				if err != nil {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Invalid default value for variable",
						Detail:   fmt.Sprintf("The default of variable %q does not match its type %s: %s.", name, typeexpr.TypeString(v.Type), err),
						Subject:  a.Expr.Range().Ptr(),
					})
				} else {
					val = cv
				}
			}
			v.Default = val
		}
	}
	for _, vb := range content.Blocks {
		c, ds := vb.Body.Content(validationSchema)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			continue
		}
		v.Validations = append(v.Validations, &Validation{
			Condition:    c.Attributes["condition"].Expr,
			ErrorMessage: c.Attributes["error_message"].Expr,
			DeclRange:    vb.DefRange,
		})
	}
	return v, diags
}

func decodeLiteral(a *hcl.Attribute, ty cty.Type, set func(cty.Value)) hcl.Diagnostics {
	val, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	cv, err := convert.Convert(val, ty)
	if err != nil || cv.IsNull() || !cv.IsKnown() {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid value for %q", a.Name),
			Detail:   fmt.Sprintf("%q must be a literal %s.", a.Name, ty.FriendlyName()),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	set(cv)
	return nil
}

var outputSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "value", Required: true}, {Name: "description"}, {Name: "sensitive"},
	},
}

func decodeOutput(b *hclsyntax.Block) (*Output, hcl.Diagnostics) {
	name, diags := oneLabel(b, "output", `output "name" { value = ... }`)
	if diags.HasErrors() {
		return nil, diags
	}
	o := &Output{Name: name, DeclRange: b.DefRange()}
	content, ds := b.Body.Content(outputSchema)
	diags = append(diags, ds...)
	if ds.HasErrors() {
		return nil, diags
	}
	o.Expr = content.Attributes["value"].Expr
	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, decodeLiteral(a, cty.String, func(v cty.Value) { o.Description = v.AsString() })...)
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		diags = append(diags, decodeLiteral(a, cty.Bool, func(v cty.Value) { o.Sensitive = v.True() })...)
	}
	return o, diags
}

var resourceMetaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "count"}, {Name: "for_each"}, {Name: "depends_on"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "lifecycle"}, {Type: "placement"}},
}

var lifecycleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "prevent_destroy"}, {Name: "create_before_destroy"}, {Name: "ignore_changes"}},
}

func decodeResource(b *hclsyntax.Block) (*Resource, hcl.Diagnostics) {
	if reservedRoots[b.Type] {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Reserved block type %q", b.Type),
			Detail:   fmt.Sprintf("%q is a reserved name and cannot be a resource kind.", b.Type),
			Subject:  b.TypeRange.Ptr(),
		}}
	}
	if !addr.ValidName(b.Type) {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid block type",
			Detail:   fmt.Sprintf("%q is not a valid resource kind.", b.Type),
			Subject:  b.TypeRange.Ptr(),
		}}
	}
	name, diags := oneLabel(b, b.Type, fmt.Sprintf(`%s "name" { ... }`, b.Type))
	if diags.HasErrors() {
		return nil, diags
	}
	r := &Resource{
		Addr:      addr.Resource{Kind: b.Type, Name: name},
		DeclRange: b.DefRange(),
		TypeRange: b.TypeRange,
	}
	content, remain, ds := b.Body.PartialContent(resourceMetaSchema)
	diags = append(diags, ds...)
	r.Body = remain
	if a, ok := content.Attributes["count"]; ok {
		r.Count = a.Expr
	}
	if a, ok := content.Attributes["for_each"]; ok {
		r.ForEach = a.Expr
	}
	if r.Count != nil && r.ForEach != nil {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Both count and for_each are set",
			Detail:   "A resource may use count or for_each, not both. Remove one of them.",
			Subject:  content.Attributes["for_each"].NameRange.Ptr(),
		})
	}
	if a, ok := content.Attributes["depends_on"]; ok {
		exprs, ds := hcl.ExprList(a.Expr)
		diags = append(diags, ds...)
		for _, e := range exprs {
			trav, ds := hcl.AbsTraversalForExpr(e)
			if ds.HasErrors() || len(trav) < 2 {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid depends_on entry",
					Detail:   "Each depends_on entry must be a resource reference such as container.db.",
					Subject:  e.Range().Ptr(),
				})
				continue
			}
			step, ok := trav[1].(hcl.TraverseAttr)
			if !ok {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid depends_on entry",
					Detail:   "Each depends_on entry must be a resource reference such as container.db.",
					Subject:  e.Range().Ptr(),
				})
				continue
			}
			r.DependsOn = append(r.DependsOn, DependsOn{
				Addr:  addr.Resource{Kind: trav.RootName(), Name: step.Name},
				Range: e.Range(),
			})
		}
	}
	seenLifecycle := false
	for _, lb := range content.Blocks {
		if lb.Type == "placement" {
			if r.Placement != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate placement block",
					Detail:   fmt.Sprintf("A resource may have one placement block only; merge them into the one at %s.", r.Placement.DeclRange),
					Subject:  lb.DefRange.Ptr(),
				})
				continue
			}
			p, ds := decodePlacement(lb)
			diags = append(diags, ds...)
			r.Placement = p
			continue
		}
		if seenLifecycle {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate lifecycle block",
				Detail:   "A resource may have one lifecycle block only; merge them.",
				Subject:  lb.DefRange.Ptr(),
			})
			continue
		}
		seenLifecycle = true
		diags = append(diags, decodeLifecycle(lb, &r.Lifecycle)...)
	}
	return r, diags
}

func decodeLifecycle(b *hcl.Block, lc *Lifecycle) hcl.Diagnostics {
	content, diags := b.Body.Content(lifecycleSchema)
	if a, ok := content.Attributes["prevent_destroy"]; ok {
		diags = append(diags, decodeLiteral(a, cty.Bool, func(v cty.Value) { lc.PreventDestroy = v.True() })...)
	}
	if a, ok := content.Attributes["create_before_destroy"]; ok {
		diags = append(diags, decodeLiteral(a, cty.Bool, func(v cty.Value) { lc.CreateBeforeDestroy = v.True() })...)
	}
	if a, ok := content.Attributes["ignore_changes"]; ok {
		if kw := hcl.ExprAsKeyword(a.Expr); kw == "all" {
			lc.IgnoreAll = true
			return diags
		}
		exprs, ds := hcl.ExprList(a.Expr)
		diags = append(diags, ds...)
		for _, e := range exprs {
			kw := hcl.ExprAsKeyword(e)
			if kw == "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid ignore_changes entry",
					Detail:   "Each ignore_changes entry must be an attribute name such as image, or the keyword all in place of the list.",
					Subject:  e.Range().Ptr(),
				})
				continue
			}
			lc.IgnoreChanges = append(lc.IgnoreChanges, kw)
		}
	}
	return diags
}

// SortedResources returns the resources in address order.
func (c *Config) SortedResources() []*Resource {
	out := make([]*Resource, 0, len(c.Resources))
	for _, r := range c.Resources {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Addr.String() < out[j].Addr.String()
	})
	return out
}
