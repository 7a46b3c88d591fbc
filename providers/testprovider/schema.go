package testprovider

import (
	"sort"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// Kind names.
const (
	kindThing  = "thing"
	kindWidget = "widget"
)

// Values that the fail attribute accepts.
const (
	failPlan   = "plan"
	failApply  = "apply"
	failDelete = "delete"
)

// defaultProtocol is what Plan fills in for a port block without protocol.
const defaultProtocol = "tcp"

// kindSpec describes one resource kind and how to plan it.
type kindSpec struct {
	name   string
	schema *providers.Kind
	ty     cty.Type
	// tyAttrs are the attribute types of ty.
	tyAttrs map[string]cty.Type
	// attrs lists the configurable attributes and blocks, sorted.
	attrs []string
	// forceNew lists the attributes whose change replaces the object.
	forceNew []string
	// serial tells whether the kind has the computed serial attribute.
	serial bool
	// ports tells whether the kind has port blocks whose protocol defaults.
	ports bool
}

func thingKind() *kindSpec {
	block := &providers.Block{
		Attributes: map[string]*providers.Attribute{
			"name":   {Type: cty.String, Optional: true, Description: "A name."},
			"value":  {Type: cty.String, Optional: true, Description: "A value, updated in place."},
			"secret": {Type: cty.String, Optional: true, Sensitive: true, Description: "A sensitive value, updated in place."},
			"flavor": {Type: cty.String, Optional: true, ForceNew: true, Description: "A change of flavor replaces the object."},
			"tags":   {Type: cty.Map(cty.String), Optional: true, Description: "Tags."},
			"size":   {Type: cty.Number, Optional: true, Description: "A size."},
			"fail":   {Type: cty.String, Optional: true, Description: `Makes an operation on this object fail: "plan", "apply" or "delete".`},
			"id":     {Type: cty.String, Computed: true, Description: "The object's ID."},
			"serial": {Type: cty.Number, Computed: true, Description: "1 after the create, one more after each update."},
		},
		Blocks: map[string]*providers.NestedBlock{
			"settings": {
				Nesting: providers.NestingSingle,
				Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"level": {Type: cty.Number, Optional: true, Description: "A level."},
				}},
			},
			"port": {
				Nesting: providers.NestingList,
				Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"number":   {Type: cty.Number, Required: true, Description: "A port number, 1 to 65535."},
					"protocol": {Type: cty.String, Optional: true, Computed: true, Description: `"tcp" (the default) or "udp".`},
				}},
			},
		},
	}
	return newKindSpec(kindThing, &providers.Kind{
		Description: "A test object stored as a JSON file.",
		Block:       block,
		Importable:  true,
	}, []string{"flavor"}, true, true)
}

func widgetKind() *kindSpec {
	block := &providers.Block{
		Attributes: map[string]*providers.Attribute{
			"label": {Type: cty.String, Required: true, ForceNew: true, Description: "A label; a change replaces the widget."},
			"ref":   {Type: cty.String, Optional: true, Description: "A reference to another object, updated in place."},
			"id":    {Type: cty.String, Computed: true, Description: "The widget's ID."},
		},
	}
	return newKindSpec(kindWidget, &providers.Kind{
		Description: "A small test object for dependency tests.",
		Block:       block,
		Importable:  true,
	}, []string{"label"}, false, false)
}

func newKindSpec(name string, k *providers.Kind, forceNew []string, serial, ports bool) *kindSpec {
	ks := &kindSpec{name: name, schema: k, ty: k.Block.ImpliedType(), forceNew: forceNew, serial: serial, ports: ports}
	ks.tyAttrs = ks.ty.AttributeTypes()
	for n, a := range k.Block.Attributes {
		if a.Required || a.Optional {
			ks.attrs = append(ks.attrs, n)
		}
	}
	for n := range k.Block.Blocks {
		ks.attrs = append(ks.attrs, n)
	}
	sort.Strings(ks.attrs)
	return ks
}

// kinds returns the kinds of the test provider by name.
func kinds() map[string]*kindSpec {
	return map[string]*kindSpec{kindThing: thingKind(), kindWidget: widgetKind()}
}
