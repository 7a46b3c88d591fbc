package plugin_test

import (
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/providertest"
	"github.com/zclconf/go-cty/cty"
)

// TestConformance runs the conformance suite on the fake provider, which
// proves the suite passes for a correct provider carried by this package.
func TestConformance(t *testing.T) {
	providertest.Run(t, func(*testing.T) providers.Provider { return newBoxProvider() }, []providertest.Case{
		{
			Kind:    "box",
			Config:  boxConfig("one", 2, nil),
			Update:  boxConfig("one", 3, map[string]string{"tier": "web"}),
			Replace: boxConfig("two", 3, nil),
		},
		{
			Kind: "box",
			Config: cty.ObjectVal(map[string]cty.Value{
				"id":     cty.NullVal(cty.String),
				"name":   cty.StringVal("minimal"),
				"size":   cty.NullVal(cty.Number),
				"labels": cty.NullVal(cty.Map(cty.String)),
				"ports":  cty.NullVal(cty.List(cty.Object(map[string]cty.Type{"port": cty.Number, "proto": cty.String}))),
				"secret": cty.NullVal(cty.String),
				"limits": cty.NullVal(cty.Object(map[string]cty.Type{"cpu": cty.Number})),
			}),
		},
	})
}
