package plugin_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/providertest"
	"github.com/berthhq/berth/providers/testprovider"
	"github.com/zclconf/go-cty/cty"
)

// TestReadManyOverGRPC reads several objects in one call over real gRPC and
// checks that every answer comes back in the order of the requests.
func TestReadManyOverGRPC(t *testing.T) {
	ctx := context.Background()
	p := providertest.GRPC(t, testprovider.New(t.TempDir()))
	if _, ok := p.(providers.BatchReader); !ok {
		t.Fatal("the gRPC client is not a BatchReader")
	}
	var reqs []providers.ReadRequest
	var want []string
	for i := 0; i < 5; i++ {
		owner := providers.Owner{Address: fmt.Sprintf("thing.t[%d]", i), Token: fmt.Sprintf("%032x", i+1)}
		tcfg := thingConfig(t, p, fmt.Sprintf("n%d", i))
		plan := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: cty.NullVal(tcfg.Type()), Config: tcfg})
		if plan.Diagnostics.HasErrors() {
			t.Fatal(plan.Diagnostics.Err())
		}
		ar := p.Apply(ctx, providers.ApplyRequest{Kind: "thing", Owner: owner, Prior: cty.NullVal(tcfg.Type()), Planned: plan.Planned, Config: tcfg})
		if ar.Diagnostics.HasErrors() {
			t.Fatal(ar.Diagnostics.Err())
		}
		reqs = append(reqs, providers.ReadRequest{Kind: "thing", ID: ar.ID})
		want = append(want, fmt.Sprintf("n%d", i))
	}
	reqs = append(reqs, providers.ReadRequest{Kind: "thing", ID: "thing-0000000000000000"})
	resps := providers.ReadMany(ctx, p, reqs)
	if len(resps) != len(reqs) {
		t.Fatalf("%d responses for %d requests", len(resps), len(reqs))
	}
	for i, w := range want {
		if resps[i].Diagnostics.HasErrors() || resps[i].State.IsNull() || resps[i].State.GetAttr("name").AsString() != w {
			t.Errorf("response %d: %v %v, want name %s", i, resps[i].State, resps[i].Diagnostics, w)
		}
	}
	if last := resps[len(resps)-1]; !last.State.IsNull() || last.Diagnostics.HasErrors() {
		t.Errorf("a missing object should read as null without error: %v %v", last.State, last.Diagnostics)
	}
}

// thingConfig returns a full configuration value of kind thing with name.
func thingConfig(t *testing.T, p providers.Provider, name string) cty.Value {
	t.Helper()
	ty := p.Schema(context.Background()).Kinds["thing"].Block.ImpliedType()
	attrs := map[string]cty.Value{}
	for n, at := range ty.AttributeTypes() {
		attrs[n] = cty.NullVal(at)
	}
	attrs["name"] = cty.StringVal(name)
	return cty.ObjectVal(attrs)
}
