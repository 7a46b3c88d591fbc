package plugin_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/plugin"
	"github.com/zclconf/go-cty/cty"
)

// TestRestartingStartsACrashedProviderAgain crashes the provider and checks
// that the next call is served by a new process, and that after max
// restarts the provider stays down with a clear error.
func TestRestartingStartsACrashedProviderAgain(t *testing.T) {
	ctx := context.Background()
	starts := 0
	r, err := plugin.NewRestarting(ctx, "helper", 1, func(ctx context.Context) (*plugin.Client, error) {
		starts++
		return plugin.Start(ctx, "helper", exec.Command(os.Args[0]), plugin.Options{Env: []string{helperEnv + "=provider"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	plan := func() providers.Diagnostics {
		return r.Plan(ctx, providers.PlanRequest{Kind: "echo", Config: cty.EmptyObjectVal}).Diagnostics
	}
	if ds := r.Apply(ctx, providers.ApplyRequest{Kind: "crash"}).Diagnostics; !ds.HasErrors() || !strings.Contains(ds[0].Summary, "crashed") {
		t.Fatalf("want a crash, got %v", ds)
	}
	if ds := plan(); ds.HasErrors() {
		t.Fatalf("the call after the crash should be served by a new process: %v", ds)
	}
	if starts != 2 {
		t.Errorf("%d starts, want 2", starts)
	}
	// The one restart is used up: the next crash leaves it down.
	r.Apply(ctx, providers.ApplyRequest{Kind: "crash"})
	if ds := plan(); !ds.HasErrors() || !strings.Contains(ds[0].Summary, "is not running") {
		t.Errorf("after the restarts are used up, want 'is not running', got %v", ds)
	}
	if starts != 2 {
		t.Errorf("%d starts, want 2", starts)
	}
}
