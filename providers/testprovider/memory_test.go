package testprovider

import (
	"fmt"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// populate creates n things in p, returning their IDs, states and configs.
func populate(t testing.TB, p providers.Provider, n int) (ids []string, states, configs []cty.Value) {
	for i := 0; i < n; i++ {
		src := fmt.Sprintf("name = \"n%d\"\nflavor = \"x\"\nport {\n  number = %d\n}", i, 1000+i)
		r := create(t, p, "thing", fmt.Sprintf("thing.t[%d]", i), src)
		ids = append(ids, r.ID)
		states = append(states, r.State)
		configs = append(configs, decode(t, p, "thing", src))
	}
	return ids, states, configs
}

// TestMemoryConvergedIsCheap checks that reading and planning a converged
// object does not allocate, so that a thousand of them cost next to nothing.
func TestMemoryConvergedIsCheap(t *testing.T) {
	p := NewMemory()
	ids, _, configs := populate(t, p, 1)
	var planned cty.Value
	allocs := testing.AllocsPerRun(100, func() {
		rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ids[0]})
		pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: configs[0]})
		planned = pr.Planned
	})
	// cty allocates when it compares numbers and iterates lists: a few
	// allocations are unavoidable, building a new planned value is not.
	if allocs > 10 {
		t.Errorf("read + plan of a converged object allocates %v times, want at most 10", allocs)
	}
	changed := configs[0].AsValueMap()
	changed["value"] = cty.StringVal("new")
	cfg := cty.ObjectVal(changed)
	if slow := testing.AllocsPerRun(100, func() {
		rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ids[0]})
		p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: cfg})
	}); slow <= 10 {
		t.Errorf("a plan that changes something allocates only %v times: the test cannot tell the fast path", slow)
	}
	if planned.GetAttr("serial").IsKnown() == false {
		t.Error("converged plan has an unknown serial")
	}

	// The speed itself is measured by BenchmarkMemoryReadPlan1000, never
	// asserted here.
	ids, _, configs = populate(t, p, 1000)
	for i := range ids {
		rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ids[i]})
		pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: configs[i]})
		if !pr.Planned.RawEquals(rr.State) {
			t.Fatalf("object %d is not converged", i)
		}
	}
}

// BenchmarkMemoryReadPlan1000 reads and plans 1,000 converged objects.
func BenchmarkMemoryReadPlan1000(b *testing.B) {
	p := NewMemory()
	ids, _, configs := populate(b, p, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range ids {
			rr := p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: ids[i]})
			p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: rr.State, Config: configs[i]})
		}
	}
}
