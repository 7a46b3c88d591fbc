package providertest

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/berthhq/berth/providers"
)

// watch wraps a provider under test and records its panics, so that a
// panic fails the suite even where an error diagnostic is expected.
type watch struct {
	p providers.Provider

	mu     sync.Mutex
	panics []error
}

var _ providers.Provider = (*watch)(nil)

// guard recovers a panic of op and turns it into an error diagnostic.
func (w *watch) guard(op string, diags *providers.Diagnostics) {
	x := recover()
	if x == nil {
		return
	}
	w.mu.Lock()
	w.panics = append(w.panics, fmt.Errorf("the provider panicked during %s (it must return error diagnostics instead): %v\n%s", op, x, debug.Stack()))
	w.mu.Unlock()
	*diags = append(*diags, providers.Diagnostic{
		Severity: providers.Error,
		Summary:  fmt.Sprintf("provider panicked during %s: %v", op, x),
	})
}

// panicErrors returns the panics recorded so far.
func (w *watch) panicErrors() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.panics...)
}

func (w *watch) Schema(ctx context.Context) (out providers.SchemaResponse) {
	defer w.guard("Schema", &out.Diagnostics)
	return w.p.Schema(ctx)
}

func (w *watch) Validate(ctx context.Context, req providers.ValidateRequest) (out providers.ValidateResponse) {
	defer w.guard("Validate", &out.Diagnostics)
	return w.p.Validate(ctx, req)
}

func (w *watch) Read(ctx context.Context, req providers.ReadRequest) (out providers.ReadResponse) {
	defer w.guard("Read", &out.Diagnostics)
	return w.p.Read(ctx, req)
}

func (w *watch) Plan(ctx context.Context, req providers.PlanRequest) (out providers.PlanResponse) {
	defer w.guard("Plan", &out.Diagnostics)
	return w.p.Plan(ctx, req)
}

func (w *watch) Apply(ctx context.Context, req providers.ApplyRequest) (out providers.ApplyResponse) {
	defer w.guard("Apply", &out.Diagnostics)
	return w.p.Apply(ctx, req)
}

func (w *watch) Delete(ctx context.Context, req providers.DeleteRequest) (out providers.DeleteResponse) {
	defer w.guard("Delete", &out.Diagnostics)
	return w.p.Delete(ctx, req)
}

func (w *watch) Import(ctx context.Context, req providers.ImportRequest) (out providers.ImportResponse) {
	defer w.guard("Import", &out.Diagnostics)
	return w.p.Import(ctx, req)
}
