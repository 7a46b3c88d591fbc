package reconciler

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/providertest"
	"github.com/berthhq/berth/reconciler/inventory"
	"github.com/berthhq/berth/spec"
)

// thousand returns a configuration of 1,000 resource instances: 400 single
// resources, 100 that refer to them, and a counted resource of 500.
func thousand() string {
	var b strings.Builder
	b.WriteString("variable \"prefix\" {\n  default = \"bench\"\n}\n")
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&b, "obj \"a%d\" {\n  name   = \"${var.prefix}-a%d\"\n  flavor = \"x\"\n}\n", i, i)
	}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "obj \"b%d\" {\n  name = \"b%d\"\n  ref  = obj.a%d.id\n}\n", i, i, i)
	}
	b.WriteString("obj \"c\" {\n  count = 500\n  name  = \"c${count.index}\"\n}\n")
	return b.String()
}

func benchEngine(b *testing.B, populated, overGRPC bool) (*Engine, PlanRequest) {
	b.Helper()
	st, err := inventory.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var prov providers.Provider = newFake()
	if overGRPC {
		prov = providertest.GRPC(b, prov)
	}
	eng, err := New(context.Background(), Options{Providers: map[string]providers.Provider{"fake": prov}, Inventory: st})
	if err != nil {
		b.Fatal(err)
	}
	src := thousand()
	cfg, diags := spec.Parse("c", []string{"c/main.hcl"}, map[string][]byte{"c/main.hcl": []byte(src)})
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	req := PlanRequest{Config: cfg, Inputs: spec.Inputs{Host: spec.Host{Name: "h"}}}
	if populated {
		p, diags := eng.Plan(context.Background(), req)
		if diags.HasErrors() {
			b.Fatal(diags.Error())
		}
		if res := eng.Apply(context.Background(), p, nil); res.Diagnostics.HasErrors() || res.Added != 1000 {
			b.Fatalf("setup apply: %d added: %s", res.Added, res.Diagnostics.Error())
		}
	}
	return eng, req
}

// BenchmarkPlan1000 plans 1,000 resource instances with a provider that
// answers at once: "converged" reads 1,000 owned objects and finds no
// change, "fresh" plans 1,000 creates; "-grpc" talks to the provider over
// real gRPC, as berth does with its plugins. Target: under 200 ms and 100 MB.
func BenchmarkPlan1000(b *testing.B) {
	for _, c := range []struct {
		name            string
		populated, grpc bool
	}{{"converged", true, false}, {"fresh", false, false}, {"converged-grpc", true, true}, {"fresh-grpc", false, true}} {
		b.Run(c.name, func(b *testing.B) {
			eng, req := benchEngine(b, c.populated, c.grpc)
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, diags := eng.Plan(context.Background(), req)
				if diags.HasErrors() {
					b.Fatal(diags.Error())
				}
				if len(p.Changes) != 1000 {
					b.Fatalf("got %d changes, want 1000", len(p.Changes))
				}
			}
			b.StopTimer()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MBalloc/op")
			b.ReportMetric(float64(after.Sys)/(1<<20), "MBsys")
		})
	}
}
