package plugin

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/berthhq/berth/providers"
	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InProcess returns the provider p served in this process, under the
// given name, through the same two halves of the protocol as a provider
// that runs in a process of its own: every value of a request and an
// answer is encoded as it would be on the wire, so marks never reach p
// and unknown values survive, and a panic of p during a call becomes an
// error diagnostic. Only the transport is left out: no process to start,
// no handshake and no gRPC connection, which saves a program start on
// every berth command that uses a built-in provider. The messages
// themselves are handed over, not copied: neither side may change one
// after the call.
//
// A call that p does not end by the caller's deadline returns an error at
// the deadline. Unlike a provider process, which is then killed, p may go
// on with that call, so every later call is refused with an error that
// says so: the caller should end and run again. What is not isolated
// either: a panic in a goroutine that p starts itself ends this process,
// and p shares the process's memory and limits. Close releases nothing
// and exists to satisfy Closer.
func InProcess(name string, p providers.Provider) Closer {
	// Both halves share what they learn of types: a type that one half
	// describes is one that the other half need not parse.
	types := new(typeCache)
	return &inProcess{remote: remote{name: name, rpc: direct{s: newServer(p, types)}, types: types, guard: &stall{name: name}}}
}

// stall is the guard of an in-process provider: after a call that did not
// end in time, which the provider may still be running, it refuses every
// other call.
type stall struct {
	name string
	mu   sync.Mutex
	op   string // the call that did not end in time, once one did not
}

// before implements guard.
func (s *stall) before(_ context.Context, _ string) providers.Diagnostics {
	s.mu.Lock()
	op := s.op
	s.mu.Unlock()
	if op == "" {
		return nil
	}
	return providers.Errorf("provider %q did not answer %s in time and may still be running it, so berth makes no further calls to it; run berth again", s.name, op)
}

// after implements guard.
func (s *stall) after(ctx context.Context, op string, started time.Time, err error) providers.Diagnostics {
	if timedOut(ctx) {
		s.mu.Lock()
		if s.op == "" {
			s.op = op
		}
		s.mu.Unlock()
		return providers.Errorf("provider %q did not answer %s in time (%v after %s); it may still be running it, so berth makes no further calls to it; run berth again", s.name, op, ctxErr(ctx), since(started))
	}
	return providers.Errorf("provider %q failed during %s: %s", s.name, op, status.Convert(err).Message())
}

// inProcess is the Closer that InProcess returns.
type inProcess struct {
	remote
}

// Close implements Closer.
func (*inProcess) Close() {}

// direct is a providerpb.ProviderClient that calls a server half in this
// process instead of sending the request over a connection.
type direct struct {
	s *server
}

var _ providerpb.ProviderClient = direct{}

// call runs f on its own goroutine and returns its answer, or an error
// with the gRPC code of an expired or cancelled call when ctx ends first.
func call[Resp any](ctx context.Context, f func(context.Context) (*Resp, error)) (*Resp, error) {
	type result struct {
		resp *Resp
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := f(ctx)
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-ctx.Done():
		code := codes.Canceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = codes.DeadlineExceeded
		}
		return nil, status.Error(code, ctx.Err().Error())
	}
}

// GetSchema implements providerpb.ProviderClient.
func (d direct) GetSchema(ctx context.Context, in *providerpb.GetSchemaRequest, _ ...grpc.CallOption) (*providerpb.GetSchemaResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.GetSchemaResponse, error) { return d.s.GetSchema(ctx, in) })
}

// Validate implements providerpb.ProviderClient.
func (d direct) Validate(ctx context.Context, in *providerpb.ValidateRequest, _ ...grpc.CallOption) (*providerpb.ValidateResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.ValidateResponse, error) { return d.s.Validate(ctx, in) })
}

// Read implements providerpb.ProviderClient.
func (d direct) Read(ctx context.Context, in *providerpb.ReadRequest, _ ...grpc.CallOption) (*providerpb.ReadResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.ReadResponse, error) { return d.s.Read(ctx, in) })
}

// ReadMany implements providerpb.ProviderClient.
func (d direct) ReadMany(ctx context.Context, in *providerpb.ReadManyRequest, _ ...grpc.CallOption) (*providerpb.ReadManyResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.ReadManyResponse, error) { return d.s.ReadMany(ctx, in) })
}

// Plan implements providerpb.ProviderClient.
func (d direct) Plan(ctx context.Context, in *providerpb.PlanRequest, _ ...grpc.CallOption) (*providerpb.PlanResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.PlanResponse, error) { return d.s.Plan(ctx, in) })
}

// Apply implements providerpb.ProviderClient.
func (d direct) Apply(ctx context.Context, in *providerpb.ApplyRequest, _ ...grpc.CallOption) (*providerpb.ApplyResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.ApplyResponse, error) { return d.s.Apply(ctx, in) })
}

// Delete implements providerpb.ProviderClient.
func (d direct) Delete(ctx context.Context, in *providerpb.DeleteRequest, _ ...grpc.CallOption) (*providerpb.DeleteResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.DeleteResponse, error) { return d.s.Delete(ctx, in) })
}

// Import implements providerpb.ProviderClient.
func (d direct) Import(ctx context.Context, in *providerpb.ImportRequest, _ ...grpc.CallOption) (*providerpb.ImportResponse, error) {
	return call(ctx, func(ctx context.Context) (*providerpb.ImportResponse, error) { return d.s.Import(ctx, in) })
}
