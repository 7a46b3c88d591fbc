package plugin

import (
	"fmt"

	"github.com/berthhq/berth/providers"
	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	"github.com/zclconf/go-cty/cty"
)

// codec encodes and decodes the values of one call and collects the
// problems it meets as error diagnostics, so that a value that cannot cross
// the wire turns into a diagnostic instead of an error or a panic.
type codec struct {
	// name returns the provider's name and op is the operation, for
	// messages.
	name func() string
	op   string
	// server tells which side of the wire the codec is on.
	server bool
	// types are the types known to this side of the connection; nil
	// when none are kept.
	types *typeCache
	diags providers.Diagnostics
}

// decode decodes the field of an incoming message.
func (c *codec) decode(field string, dv *providerpb.DynamicValue) cty.Value {
	var v cty.Value
	var err error
	if c.types != nil {
		v, err = c.types.decodeValue(dv)
	} else {
		v, err = decodeValue(dv)
	}
	if err != nil {
		c.fail(field, "read", err)
		return cty.NilVal
	}
	return v
}

// encode encodes the field of an outgoing message.
func (c *codec) encode(field string, v cty.Value) *providerpb.DynamicValue {
	var dv *providerpb.DynamicValue
	var err error
	if c.types != nil {
		dv, err = c.types.encodeValue(v)
	} else {
		dv, err = encodeValue(v)
	}
	if err != nil {
		c.fail(field, "send", err)
		return nil
	}
	return dv
}

// decodePaths decodes the paths field of an incoming message.
func (c *codec) decodePaths(field string, aps []*providerpb.AttributePath) []cty.Path {
	ps, err := decodePaths(aps)
	if err != nil {
		c.fail(field, "read", err)
	}
	return ps
}

// encodePaths encodes the paths field of an outgoing message.
func (c *codec) encodePaths(field string, ps []cty.Path) []*providerpb.AttributePath {
	aps, err := encodePaths(ps)
	if err != nil {
		c.fail(field, "send", err)
	}
	return aps
}

func (c *codec) fail(field, verb string, err error) {
	name := c.name()
	var msg string
	switch {
	case c.server && verb == "read":
		msg = fmt.Sprintf("provider %q cannot read the %s of the %s request from berth", name, field, c.op)
	case c.server:
		msg = fmt.Sprintf("provider %q answered %s with a %s that cannot be sent to berth", name, c.op, field)
	case verb == "read":
		msg = fmt.Sprintf("provider %q answered %s with a %s that berth cannot read", name, c.op, field)
	default:
		msg = fmt.Sprintf("berth cannot send the %s of the %s request to provider %q", field, c.op, name)
	}
	c.diags = append(c.diags, providers.Diagnostic{
		Severity: providers.Error,
		Summary:  msg,
		Detail:   err.Error() + ". This is a bug in the provider or in berth; please report it.",
	})
}

// joinDiags returns a new list holding a then b, leaving both untouched.
func joinDiags(a, b providers.Diagnostics) providers.Diagnostics {
	if len(b) == 0 {
		return a
	}
	out := make(providers.Diagnostics, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}
