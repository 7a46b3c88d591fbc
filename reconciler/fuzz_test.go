package reconciler

import (
	"context"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/reconciler/inventory"
	"github.com/berthhq/berth/spec"
)

// FuzzPlan plans and applies arbitrary configurations against the fake
// provider: no input may make the engine panic.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{
		`obj "a" { name = "a" }`,
		`obj "a" {
  count = 2
  name  = "a${count.index}"
  ref   = obj.b.id
}
obj "b" {
  for_each = { x = 1 }
  name     = each.key
}`,
		`variable "v" {
  default = "x"
}
obj "a" {
  name   = var.v
  secret = sensitive("s")
  lifecycle {
    create_before_destroy = true
    ignore_changes        = [ref]
  }
}
output "o" {
  value = obj.a.id
}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, diags := spec.Parse("c", []string{"c/main.hcl"}, map[string][]byte{"c/main.hcl": []byte(src)})
		if diags.HasErrors() {
			return
		}
		st, err := inventory.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		eng, err := New(context.Background(), Options{Providers: map[string]providers.Provider{"fake": newFake()}, Inventory: st})
		if err != nil {
			t.Fatal(err)
		}
		req := PlanRequest{Config: cfg, Inputs: spec.Inputs{Host: spec.Host{Name: "h"}}}
		p, diags := eng.Plan(context.Background(), req)
		if diags.HasErrors() {
			return
		}
		eng.Apply(context.Background(), p, nil)
		if p, diags := eng.Plan(context.Background(), req); !diags.HasErrors() {
			eng.Apply(context.Background(), p, nil)
		}
	})
}
