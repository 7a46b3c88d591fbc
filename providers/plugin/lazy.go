package plugin

import (
	"context"
	"fmt"
	"sync"

	"github.com/berthhq/berth/providers"
)

// Lazy is a built-in provider whose process starts at its first call other
// than Schema. berth knows the schemas of its built-in providers itself, so
// a run that manages none of a provider's kinds never starts its process,
// and one that does starts it once, as before.
type Lazy struct {
	name   string
	schema providers.SchemaResponse
	start  func(ctx context.Context) (Closer, error)

	mu     sync.Mutex
	cur    Closer
	err    error
	tries  int
	closed bool
}

// lazyTries is how many times a run tries to start a built-in provider
// that fails to start (each call gets the next try).
const lazyTries = 3

var _ providers.Provider = (*Lazy)(nil)

// Closer is a provider whose process can be stopped, such as a
// *Restarting.
type Closer interface {
	providers.Provider
	Close()
}

// NewLazy returns the provider name, whose schema is given and whose
// process start starts on first use. The schema goes through the same
// encoding as a schema that crosses the wire, so that berth sees exactly
// what the process would have answered.
func NewLazy(name string, schema providers.SchemaResponse, start func(ctx context.Context) (Closer, error)) (*Lazy, error) {
	enc, err := encodeSchema(schema.Kinds)
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", name, err)
	}
	kinds, err := decodeSchema(enc)
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", name, err)
	}
	schema.Kinds = kinds
	return &Lazy{name: name, schema: schema, start: start}, nil
}

// Started reports whether the provider's process was started.
func (l *Lazy) Started() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur != nil
}

// provider returns the running provider, starting it on first use.
func (l *Lazy) provider(ctx context.Context) (providers.Provider, providers.Diagnostics) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, providers.Errorf("provider %q is closed", l.name)
	}
	if l.cur == nil && l.tries < lazyTries {
		l.tries++
		c, err := l.start(ctx)
		if err != nil {
			l.err = err
		} else {
			l.cur, l.err = c, nil
		}
	}
	if l.err != nil {
		return nil, providers.Errorf("start built-in provider %q: %v", l.name, l.err)
	}
	return l.cur, nil
}

// Close stops the provider's process if it was started.
func (l *Lazy) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.cur != nil {
		l.cur.Close()
	}
}

// Schema implements providers.Provider without starting the process.
func (l *Lazy) Schema(context.Context) providers.SchemaResponse { return l.schema }

// Validate implements providers.Provider.
func (l *Lazy) Validate(ctx context.Context, req providers.ValidateRequest) providers.ValidateResponse {
	p, d := l.provider(ctx)
	if d != nil {
		return providers.ValidateResponse{Diagnostics: d}
	}
	return p.Validate(ctx, req)
}

// ReadMany implements providers.BatchReader: a batch goes to the
// provider in one call when it reads batches.
func (l *Lazy) ReadMany(ctx context.Context, reqs []providers.ReadRequest) []providers.ReadResponse {
	p, d := l.provider(ctx)
	if d != nil {
		out := make([]providers.ReadResponse, len(reqs))
		for i := range out {
			out[i].Diagnostics = d
		}
		return out
	}
	return providers.ReadMany(ctx, p, reqs)
}

// Read implements providers.Provider.
func (l *Lazy) Read(ctx context.Context, req providers.ReadRequest) providers.ReadResponse {
	p, d := l.provider(ctx)
	if d != nil {
		return providers.ReadResponse{Diagnostics: d}
	}
	return p.Read(ctx, req)
}

// Plan implements providers.Provider.
func (l *Lazy) Plan(ctx context.Context, req providers.PlanRequest) providers.PlanResponse {
	p, d := l.provider(ctx)
	if d != nil {
		return providers.PlanResponse{Diagnostics: d}
	}
	return p.Plan(ctx, req)
}

// Apply implements providers.Provider.
func (l *Lazy) Apply(ctx context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	p, d := l.provider(ctx)
	if d != nil {
		return providers.ApplyResponse{Diagnostics: d}
	}
	return p.Apply(ctx, req)
}

// Delete implements providers.Provider.
func (l *Lazy) Delete(ctx context.Context, req providers.DeleteRequest) providers.DeleteResponse {
	p, d := l.provider(ctx)
	if d != nil {
		return providers.DeleteResponse{Diagnostics: d}
	}
	return p.Delete(ctx, req)
}

// Import implements providers.Provider.
func (l *Lazy) Import(ctx context.Context, req providers.ImportRequest) providers.ImportResponse {
	p, d := l.provider(ctx)
	if d != nil {
		return providers.ImportResponse{Diagnostics: d}
	}
	return p.Import(ctx, req)
}
