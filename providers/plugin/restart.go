package plugin

import (
	"context"
	"fmt"
	"sync"

	"github.com/berthhq/berth/providers"
)

// Stopped reports whether the provider process no longer runs: it crashed,
// hung and was killed, or was closed.
func (c *Client) Stopped() bool { return c.stoppedReason() != "" }

// Restarting is a provider that starts its process again when it stopped
// after a crash or a hang, so that one failing object does not stop berth
// from managing the independent ones. It restarts at most a few times per
// run, so that a provider that cannot run is reported, not looped on.
type Restarting struct {
	name  string
	start func(ctx context.Context) (*Client, error)
	max   int

	mu       sync.Mutex
	cur      *Client
	restarts int
	closed   bool
}

var _ providers.Provider = (*Restarting)(nil)

// NewRestarting returns a provider that serves calls through the client
// that start returns, starting it again (up to max times) when it stopped.
func NewRestarting(ctx context.Context, name string, max int, start func(ctx context.Context) (*Client, error)) (*Restarting, error) {
	c, err := start(ctx)
	if err != nil {
		return nil, err
	}
	return &Restarting{name: name, start: start, max: max, cur: c}, nil
}

// client returns a running client, restarting the provider when needed.
func (r *Restarting) client(ctx context.Context) (*Client, providers.Diagnostics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.cur.Stopped() || r.restarts >= r.max {
		return r.cur, nil
	}
	r.cur.Close()
	c, err := r.start(ctx)
	r.restarts++
	if err != nil {
		return nil, providers.Errorf("provider %q stopped and could not be started again: %v", r.name, err)
	}
	r.cur = c
	return c, nil
}

// Close stops the provider process.
func (r *Restarting) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.cur.Close()
}

// Schema implements providers.Provider.
func (r *Restarting) Schema(ctx context.Context) providers.SchemaResponse {
	c, d := r.client(ctx)
	if d != nil {
		return providers.SchemaResponse{Diagnostics: d}
	}
	return c.Schema(ctx)
}

// Validate implements providers.Provider.
func (r *Restarting) Validate(ctx context.Context, req providers.ValidateRequest) providers.ValidateResponse {
	c, d := r.client(ctx)
	if d != nil {
		return providers.ValidateResponse{Diagnostics: d}
	}
	return c.Validate(ctx, req)
}

// Read implements providers.Provider.
func (r *Restarting) Read(ctx context.Context, req providers.ReadRequest) providers.ReadResponse {
	c, d := r.client(ctx)
	if d != nil {
		return providers.ReadResponse{Diagnostics: d}
	}
	return c.Read(ctx, req)
}

// Plan implements providers.Provider.
func (r *Restarting) Plan(ctx context.Context, req providers.PlanRequest) providers.PlanResponse {
	c, d := r.client(ctx)
	if d != nil {
		return providers.PlanResponse{Diagnostics: d}
	}
	return c.Plan(ctx, req)
}

// Apply implements providers.Provider.
func (r *Restarting) Apply(ctx context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	c, d := r.client(ctx)
	if d != nil {
		return providers.ApplyResponse{Diagnostics: d}
	}
	return c.Apply(ctx, req)
}

// Delete implements providers.Provider.
func (r *Restarting) Delete(ctx context.Context, req providers.DeleteRequest) providers.DeleteResponse {
	c, d := r.client(ctx)
	if d != nil {
		return providers.DeleteResponse{Diagnostics: d}
	}
	return c.Delete(ctx, req)
}

// Import implements providers.Provider.
func (r *Restarting) Import(ctx context.Context, req providers.ImportRequest) providers.ImportResponse {
	c, d := r.client(ctx)
	if d != nil {
		return providers.ImportResponse{Diagnostics: d}
	}
	return c.Import(ctx, req)
}

// String names the provider.
func (r *Restarting) String() string { return fmt.Sprintf("provider %q", r.name) }

// ReadMany implements providers.BatchReader.
func (r *Restarting) ReadMany(ctx context.Context, reqs []providers.ReadRequest) []providers.ReadResponse {
	c, d := r.client(ctx)
	if d != nil {
		out := make([]providers.ReadResponse, len(reqs))
		for i := range out {
			out[i].Diagnostics = d
		}
		return out
	}
	return c.ReadMany(ctx, reqs)
}
