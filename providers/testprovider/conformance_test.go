package testprovider

import (
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/providertest"
	"github.com/zclconf/go-cty/cty"
)

// thingVal builds a thing configuration from the given attributes, every
// other attribute null and no blocks.
func thingVal(attrs map[string]cty.Value) cty.Value {
	ty := thingKind().ty
	vals := map[string]cty.Value{}
	for name, at := range ty.AttributeTypes() {
		vals[name] = cty.NullVal(at)
	}
	vals["port"] = cty.ListValEmpty(ty.AttributeType("port").ElementType())
	for k, v := range attrs {
		vals[k] = v
	}
	return cty.ObjectVal(vals)
}

func port(n int64, protocol cty.Value) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{"number": cty.NumberIntVal(n), "protocol": protocol})
}

func conformanceCases() []providertest.Case {
	base := map[string]cty.Value{
		"name":     cty.StringVal("conformance"),
		"value":    cty.StringVal("one"),
		"secret":   cty.StringVal("s3cret"),
		"flavor":   cty.StringVal("x"),
		"tags":     cty.MapVal(map[string]cty.Value{"env": cty.StringVal("test")}),
		"size":     cty.NumberIntVal(3),
		"settings": cty.ObjectVal(map[string]cty.Value{"level": cty.NumberIntVal(1)}),
		"port":     cty.ListVal([]cty.Value{port(80, cty.NullVal(cty.String)), port(53, cty.StringVal("udp"))}),
	}
	with := func(changes map[string]cty.Value) cty.Value {
		m := map[string]cty.Value{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = v
		}
		return thingVal(m)
	}
	widget := func(label, ref string) cty.Value {
		r := cty.NullVal(cty.String)
		if ref != "" {
			r = cty.StringVal(ref)
		}
		return cty.ObjectVal(map[string]cty.Value{"label": cty.StringVal(label), "ref": r, "id": cty.NullVal(cty.String)})
	}
	return []providertest.Case{
		{
			Kind:   "thing",
			Config: with(nil),
			Update: with(map[string]cty.Value{
				"value":    cty.StringVal("two"),
				"secret":   cty.StringVal("other"),
				"tags":     cty.NullVal(cty.Map(cty.String)),
				"settings": cty.NullVal(thingKind().ty.AttributeType("settings")),
				"port":     cty.ListVal([]cty.Value{port(8080, cty.NullVal(cty.String))}),
			}),
			Replace: with(map[string]cty.Value{"flavor": cty.StringVal("y")}),
		},
		{Kind: "thing", Config: thingVal(nil), Update: thingVal(map[string]cty.Value{"size": cty.NumberIntVal(2)}), Replace: thingVal(map[string]cty.Value{"flavor": cty.StringVal("z")})},
		{Kind: "widget", Config: widget("a", ""), Update: widget("a", "r"), Replace: widget("b", "r")},
	}
}

func TestConformance(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providers.Provider { return New(t.TempDir()) }, conformanceCases())
}

func TestConformanceMemory(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providers.Provider { return NewMemory() }, conformanceCases())
}
