package plugin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/plugin"
	"github.com/berthhq/berth/providers/providertest"
	"github.com/zclconf/go-cty/cty"
)

// connector serves a provider through one of the protocol's transports
// and returns berth's side of it.
type connector func(t testing.TB, p providers.Provider) providers.Provider

// eachTransport runs test once per transport that carries the protocol:
// gRPC, as between processes, and in process. Both must encode the same
// way, so that a built-in provider behaves alike in berth's commands (in
// process) and in the agent (in a process of its own).
func eachTransport(t *testing.T, test func(t *testing.T, connect connector)) {
	t.Run("grpc", func(t *testing.T) { test(t, providertest.GRPC) })
	t.Run("in-process", func(t *testing.T) {
		test(t, func(t testing.TB, p providers.Provider) providers.Provider {
			c := plugin.InProcess(nameOf(t.Context(), p), p)
			t.Cleanup(c.Close)
			return c
		})
	})
}

// nameOf returns the name that p gives in its schema, or "" when its
// Schema panics.
func nameOf(ctx context.Context, p providers.Provider) (name string) {
	defer func() { _ = recover() }()
	return p.Schema(ctx).Name
}

// TestInProcessConformance runs the conformance suite on the fake
// provider served in process.
func TestInProcessConformance(t *testing.T) {
	providertest.Run(t, func(*testing.T) providers.Provider { return plugin.InProcess("box", newBoxProvider()) }, []providertest.Case{
		{
			Kind:    "box",
			Config:  boxConfig("one", 2, nil),
			Update:  boxConfig("one", 3, map[string]string{"tier": "web"}),
			Replace: boxConfig("two", 3, nil),
		},
	})
}

// hanger is a provider whose Apply blocks until its context ends, and
// then some more: it ignores cancellation as a buggy provider would.
type hanger struct {
	recorder
	entered chan struct{} // closed when Apply is entered
	release chan struct{}
}

func newHanger() *hanger {
	return &hanger{entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *hanger) Apply(ctx context.Context, _ providers.ApplyRequest) providers.ApplyResponse {
	close(h.entered)
	<-h.release
	return providers.ApplyResponse{ID: "late"}
}

// TestInProcessCallEndsAtDeadline checks that a call into a provider that
// does not return ends at the caller's deadline with an error that names
// the provider and the call, as it does for a provider process, and that
// the provider, which may still be running that call, gets no other.
func TestInProcessCallEndsAtDeadline(t *testing.T) {
	h := newHanger()
	defer close(h.release)
	p := plugin.InProcess("stuck", h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan providers.ApplyResponse, 1)
	go func() { done <- p.Apply(ctx, providers.ApplyRequest{Kind: "k", Planned: cty.EmptyObjectVal}) }()
	select {
	case resp := <-done:
		if !resp.Diagnostics.HasErrors() {
			t.Fatalf("Apply past its deadline answered %+v without an error", resp)
		}
		if s := resp.Diagnostics[0].Summary; !strings.Contains(s, `provider "stuck" did not answer Apply in time`) {
			t.Errorf("summary %q does not say that provider stuck did not answer Apply in time", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Apply into a provider that never answers did not end at the caller's deadline")
	}
	select {
	case <-h.entered:
	default:
		t.Fatal("the provider's Apply was never called: the test proves nothing")
	}
	ds := p.Validate(context.Background(), providers.ValidateRequest{Kind: "k", Config: cty.EmptyObjectVal}).Diagnostics
	if !ds.HasErrors() || !strings.Contains(ds[0].Summary, "may still be running it") {
		t.Errorf("a call after one that did not end in time got %v, want a refusal that says why", ds)
	}
	h.mu.Lock()
	n := len(h.got)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("the provider got %d more calls after one that did not end in time", n)
	}
}

// TestInProcessCancelledCall checks that a cancelled call returns without
// waiting for the provider.
func TestInProcessCancelledCall(t *testing.T) {
	h := newHanger()
	defer close(h.release)
	p := plugin.InProcess("stuck", h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan providers.ApplyResponse, 1)
	go func() { done <- p.Apply(ctx, providers.ApplyRequest{Kind: "k", Planned: cty.EmptyObjectVal}) }()
	select {
	case <-h.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the provider's Apply was never called")
	}
	cancel()
	select {
	case resp := <-done:
		if !resp.Diagnostics.HasErrors() || resp.ID != "" {
			t.Fatalf("cancelled Apply answered %+v, want an error and no object", resp)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a cancelled Apply did not return")
	}
}
