package providers

import (
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
)

// Kind is the schema of one resource kind.
type Kind struct {
	Description string
	Block       *Block
	// Importable reports whether `berth import` can adopt objects of this kind.
	Importable bool
	// ReadsOutside tells that planning an object of this kind looks at
	// more than its configuration, state and private data (a registry tag
	// that may move, say), so the engine must ask the provider to plan it
	// every time, even when nothing it knows of changed.
	ReadsOutside bool
	// DestroyWarning is shown in plans that delete or replace an object of
	// the kind, e.g. "destroys data".
	DestroyWarning string
	// Highlights are top-level attributes worth showing when an apply of
	// an object of the kind completes (a container's published ports).
	Highlights []string
}

// Block describes the attributes and nested blocks of a resource body.
type Block struct {
	Attributes map[string]*Attribute
	Blocks     map[string]*NestedBlock
}

// Attribute describes one attribute.
type Attribute struct {
	Type        cty.Type
	Description string
	// Required attributes must be set; Optional ones may be; Computed ones are
	// filled in by the provider (Optional and Computed together: set or
	// filled in).
	Required bool
	Optional bool
	Computed bool
	// Sensitive values are never shown.
	Sensitive bool
	// ForceNew tells that a change of the attribute replaces the object. The
	// provider still reports it in PlanResponse.RequiresReplace; the flag is
	// for documentation and for providers that share the helper in this
	// package.
	ForceNew bool
}

// Nesting tells how many times a nested block may appear.
type Nesting int

const (
	// NestingSingle is a block that appears at most once; absent, its value
	// is null.
	NestingSingle Nesting = iota + 1
	// NestingList is a block that may appear many times, in order.
	NestingList
)

// NestedBlock describes a block type inside a resource body.
type NestedBlock struct {
	Nesting  Nesting
	Block    Block
	MinItems int
	MaxItems int
}

// ImpliedType returns the object type of values conforming to b.
func (b *Block) ImpliedType() cty.Type {
	return hcldec.ImpliedType(b.DecoderSpec())
}

// DecoderSpec returns the hcldec specification that decodes a body
// conforming to b.
func (b *Block) DecoderSpec() hcldec.Spec {
	spec := hcldec.ObjectSpec{}
	if b == nil {
		return spec
	}
	for name, a := range b.Attributes {
		spec[name] = &hcldec.AttrSpec{
			Name:     name,
			Type:     a.Type,
			Required: a.Required,
		}
	}
	for name, nb := range b.Blocks {
		child := nb.Block.DecoderSpec()
		switch nb.Nesting {
		case NestingList:
			spec[name] = &hcldec.BlockListSpec{
				TypeName: name,
				Nested:   child,
				MinItems: nb.MinItems,
				MaxItems: nb.MaxItems,
			}
		default:
			spec[name] = &hcldec.BlockSpec{
				TypeName: name,
				Nested:   child,
				Required: nb.MinItems > 0,
			}
		}
	}
	return spec
}

// SensitivePaths returns the paths of the sensitive attributes of b inside a
// value v conforming to b.
func (b *Block) SensitivePaths(v cty.Value) []cty.Path {
	var out []cty.Path
	b.sensitivePaths(nil, v, &out)
	return out
}

func (b *Block) sensitivePaths(prefix cty.Path, v cty.Value, out *[]cty.Path) {
	if b == nil || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() {
		return
	}
	for name, a := range b.Attributes {
		if a.Sensitive && v.Type().HasAttribute(name) {
			*out = append(*out, copyPath(prefix).GetAttr(name))
		}
	}
	for name, nb := range b.Blocks {
		if !v.Type().HasAttribute(name) {
			continue
		}
		cv := v.GetAttr(name)
		p := copyPath(prefix).GetAttr(name)
		switch nb.Nesting {
		case NestingList:
			if cv.IsNull() || !cv.IsKnown() {
				continue
			}
			for it := cv.ElementIterator(); it.Next(); {
				k, ev := it.Element()
				nb.Block.sensitivePaths(copyPath(p).Index(k), ev, out)
			}
		default:
			nb.Block.sensitivePaths(p, cv, out)
		}
	}
}

func copyPath(p cty.Path) cty.Path {
	return append(cty.Path(nil), p...)
}
