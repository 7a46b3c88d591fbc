package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// countingProvider answers Validate and counts its calls and closes.
type countingProvider struct {
	validates, closes int
}

func (p *countingProvider) Schema(context.Context) providers.SchemaResponse {
	return providers.SchemaResponse{}
}
func (p *countingProvider) Validate(context.Context, providers.ValidateRequest) providers.ValidateResponse {
	p.validates++
	return providers.ValidateResponse{}
}
func (p *countingProvider) Read(context.Context, providers.ReadRequest) providers.ReadResponse {
	return providers.ReadResponse{}
}
func (p *countingProvider) Plan(context.Context, providers.PlanRequest) providers.PlanResponse {
	return providers.PlanResponse{}
}
func (p *countingProvider) Apply(context.Context, providers.ApplyRequest) providers.ApplyResponse {
	return providers.ApplyResponse{}
}
func (p *countingProvider) Delete(context.Context, providers.DeleteRequest) providers.DeleteResponse {
	return providers.DeleteResponse{}
}
func (p *countingProvider) Import(context.Context, providers.ImportRequest) providers.ImportResponse {
	return providers.ImportResponse{}
}
func (p *countingProvider) Close() { p.closes++ }

func lazySchema() providers.SchemaResponse {
	return providers.SchemaResponse{Name: "x", Kinds: map[string]*providers.Kind{
		"thing": {Description: "A thing.", DestroyWarning: "destroys data", Block: &providers.Block{Attributes: map[string]*providers.Attribute{
			"name": {Type: cty.String, Required: true},
			"id":   {Type: cty.String, Computed: true},
		}}},
	}}
}

func TestLazyStartsOnFirstCallOnly(t *testing.T) {
	ctx := context.Background()
	starts := 0
	inner := &countingProvider{}
	l, err := NewLazy("x", lazySchema(), func(context.Context) (Closer, error) {
		starts++
		return inner, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := l.Schema(ctx)
	if starts != 0 || l.Started() {
		t.Fatalf("Schema started the provider (%d starts)", starts)
	}
	k := s.Kinds["thing"]
	if k == nil || k.Description != "A thing." || k.DestroyWarning != "destroys data" || k.Block.Attributes["name"] == nil || !k.Block.Attributes["name"].Required {
		t.Fatalf("the schema did not survive its encoding: %+v", k)
	}
	for i := 0; i < 3; i++ {
		if d := l.Validate(ctx, providers.ValidateRequest{Kind: "thing"}).Diagnostics; d.HasErrors() {
			t.Fatal(d)
		}
	}
	if starts != 1 || inner.validates != 3 || !l.Started() {
		t.Fatalf("starts = %d, validates = %d; want 1 start for 3 calls", starts, inner.validates)
	}
	l.Close()
	if inner.closes != 1 {
		t.Fatalf("Close closed the provider %d times, want 1", inner.closes)
	}
	if d := l.Read(ctx, providers.ReadRequest{Kind: "thing"}).Diagnostics; !d.HasErrors() || starts != 1 {
		t.Fatalf("a call after Close started the provider again or succeeded: %v, %d starts", d, starts)
	}
}

func TestLazyNeverStartedClosesNothing(t *testing.T) {
	l, err := NewLazy("x", lazySchema(), func(context.Context) (Closer, error) {
		t.Fatal("started")
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Schema(context.Background())
	l.Close()
}

func TestLazyStartErrorIsADiagnostic(t *testing.T) {
	starts := 0
	l, err := NewLazy("x", lazySchema(), func(context.Context) (Closer, error) {
		starts++
		return nil, errors.New("no such binary")
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < lazyTries+2; i++ {
		d := l.Plan(context.Background(), providers.PlanRequest{Kind: "thing"}).Diagnostics
		if !d.HasErrors() || !strings.Contains(d[0].Summary+d[0].Detail, `start built-in provider "x": no such binary`) {
			t.Fatalf("diagnostics = %v", d)
		}
	}
	if starts != lazyTries {
		t.Fatalf("a failed start was tried %d times, want %d per run", starts, lazyTries)
	}
}

func TestLazyStartsAgainAfterAFailedStart(t *testing.T) {
	starts := 0
	inner := &countingProvider{}
	l, err := NewLazy("x", lazySchema(), func(context.Context) (Closer, error) {
		starts++
		if starts == 1 {
			return nil, errors.New("timed out")
		}
		return inner, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Validate(context.Background(), providers.ValidateRequest{Kind: "thing"}).Diagnostics; !d.HasErrors() {
		t.Fatal("the failed start gave no diagnostic")
	}
	if d := l.Validate(context.Background(), providers.ValidateRequest{Kind: "thing"}).Diagnostics; d.HasErrors() || inner.validates != 1 {
		t.Fatalf("the second call did not start the provider: %v", d)
	}
}

func TestLazyReadManyBatches(t *testing.T) {
	inner := &batchProvider{}
	l, err := NewLazy("x", lazySchema(), func(context.Context) (Closer, error) { return inner, nil })
	if err != nil {
		t.Fatal(err)
	}
	out := providers.ReadMany(context.Background(), l, make([]providers.ReadRequest, 5))
	if len(out) != 5 || inner.batches != 1 || inner.reads != 0 {
		t.Fatalf("5 reads went as %d batches and %d single reads, want 1 batch", inner.batches, inner.reads)
	}
}

// batchProvider reads in batches and counts how it was called.
type batchProvider struct {
	countingProvider
	batches, reads int
}

func (p *batchProvider) Read(context.Context, providers.ReadRequest) providers.ReadResponse {
	p.reads++
	return providers.ReadResponse{}
}

func (p *batchProvider) ReadMany(_ context.Context, reqs []providers.ReadRequest) []providers.ReadResponse {
	p.batches++
	return make([]providers.ReadResponse, len(reqs))
}
