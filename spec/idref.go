package spec

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
)

// A resource given whole to an attribute of type string stands for its id:
// `image = image.app` sets the image attribute to image.app.id, and the
// reference still orders image.app first. refBody does it for every string
// attribute of a body decoded with an object spec.
type refBody struct {
	hcl.Body
	spec hcldec.ObjectSpec
}

// withRefs wraps b for decoding with spec; other specs are left alone.
func withRefs(b hcl.Body, spec hcldec.Spec) hcl.Body {
	obj, ok := spec.(hcldec.ObjectSpec)
	if !ok {
		return b
	}
	return &refBody{Body: b, spec: obj}
}

func (b *refBody) Content(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, diags := b.Body.Content(schema)
	return b.wrap(c), diags
}

func (b *refBody) PartialContent(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c, rest, diags := b.Body.PartialContent(schema)
	return b.wrap(c), rest, diags
}

func (b *refBody) wrap(c *hcl.BodyContent) *hcl.BodyContent {
	if c == nil {
		return c
	}
	out := *c
	out.Attributes = make(hcl.Attributes, len(c.Attributes))
	for name, a := range c.Attributes {
		if as, ok := b.spec[name].(*hcldec.AttrSpec); ok && as.Type == cty.String {
			wa := *a
			wa.Expr = idExpr{a.Expr}
			a = &wa
		}
		out.Attributes[name] = a
	}
	out.Blocks = make(hcl.Blocks, len(c.Blocks))
	for i, blk := range c.Blocks {
		var nested hcldec.Spec
		for _, s := range b.spec {
			switch bs := s.(type) {
			case *hcldec.BlockListSpec:
				if bs.TypeName == blk.Type {
					nested = bs.Nested
				}
			case *hcldec.BlockSpec:
				if bs.TypeName == blk.Type {
					nested = bs.Nested
				}
			}
		}
		wb := *blk
		if nested != nil {
			wb.Body = withRefs(blk.Body, nested)
		}
		out.Blocks[i] = &wb
	}
	return &out
}

// idExpr evaluates to the id of the resource object its expression gives,
// or to that value unchanged when it is not one.
type idExpr struct {
	hcl.Expression
}

func (e idExpr) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	v, diags := e.Expression.Value(ctx)
	return idOf(v), diags
}

// UnwrapExpression lets hcl's helpers see the original expression.
func (e idExpr) UnwrapExpression() hcl.Expression { return e.Expression }

func idOf(v cty.Value) cty.Value {
	uv, m := v.Unmark()
	ty := uv.Type()
	if !ty.IsObjectType() || !ty.HasAttribute("id") || uv.IsNull() {
		return v
	}
	if !uv.IsKnown() {
		return cty.UnknownVal(cty.String).WithMarks(m)
	}
	id := uv.GetAttr("id")
	if id.Type() != cty.String && id.Type() != cty.DynamicPseudoType {
		return v
	}
	return id.WithMarks(m)
}
