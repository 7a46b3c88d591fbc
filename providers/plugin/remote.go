package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/berthhq/berth/providers"
	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// guard is what a Client adds around every call of its remote: a check
// before the call and the translation of a transport error after it.
type guard interface {
	// before returns error diagnostics when the call must not be made.
	before(ctx context.Context, op string) providers.Diagnostics
	// after turns the transport error of a call into diagnostics.
	after(ctx context.Context, op string, started time.Time, err error) providers.Diagnostics
}

// remote is the client half of the protocol: a providers.Provider that
// encodes each request, sends it over gRPC and decodes the answer.
type remote struct {
	name  string
	rpc   providerpb.ProviderClient
	guard guard      // nil when no process backs the connection
	types *typeCache // the types this side has met
}

var _ providers.Provider = (*remote)(nil)

func (r *remote) providerName() string { return r.name }

func (r *remote) codec(op string) *codec {
	return &codec{name: r.providerName, op: op, types: r.types}
}

// invoke makes one call through f and returns diagnostics when it failed
// in transport.
func (r *remote) invoke(ctx context.Context, op string, f func(context.Context) error) providers.Diagnostics {
	if r.guard != nil {
		if d := r.guard.before(ctx, op); d.HasErrors() {
			return d
		}
	}
	if err := ctx.Err(); err != nil {
		return providers.Errorf("berth did not call %s of provider %q: %v", op, r.name, err)
	}
	started := time.Now()
	err := f(ctx)
	if err == nil {
		return nil
	}
	if r.guard != nil {
		return r.guard.after(ctx, op, started, err)
	}
	if timedOut(ctx) {
		return providers.Errorf("provider %q did not answer %s in time (%v after %s)", r.name, op, ctxErr(ctx), since(started))
	}
	return providers.Errorf("provider %q failed during %s: %s", r.name, op, status.Convert(err).Message())
}

// rescue turns a panic of the client half into an error diagnostic; a
// Client never panics.
func (r *remote) rescue(op string, diags *providers.Diagnostics) {
	if x := recover(); x != nil {
		*diags = append(*diags, providers.Diagnostic{
			Severity: providers.Error,
			Summary:  fmt.Sprintf("berth failed while calling %s of provider %q: %v", op, r.name, x),
			Detail:   "This is a bug in berth; please report it.",
		})
	}
}

// Schema implements providers.Provider.
func (r *remote) Schema(ctx context.Context) (out providers.SchemaResponse) {
	const op = "Schema"
	defer r.rescue(op, &out.Diagnostics)
	var resp *providerpb.GetSchemaResponse
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.GetSchema(ctx, &providerpb.GetSchemaRequest{})
		return late(ctx, resp, err)
	}); d != nil {
		out.Diagnostics = d
		return out
	}
	out.Name = resp.GetName()
	out.Diagnostics = decodeDiags(resp.GetDiagnostics())
	kinds, err := decodeSchema(resp.GetKinds())
	if err != nil {
		out.Diagnostics = append(out.Diagnostics, providers.Diagnostic{
			Severity: providers.Error,
			Summary:  fmt.Sprintf("provider %q answered Schema with a schema that berth cannot read", r.name),
			Detail:   err.Error() + ". This is a bug in the provider; please report it to its authors.",
		})
		return out
	}
	out.Kinds = kinds
	return out
}

// Validate implements providers.Provider.
func (r *remote) Validate(ctx context.Context, req providers.ValidateRequest) (out providers.ValidateResponse) {
	const op = "Validate"
	defer r.rescue(op, &out.Diagnostics)
	c := r.codec(op)
	in := &providerpb.ValidateRequest{Kind: req.Kind, Config: c.encode("Config", req.Config)}
	if c.diags.HasErrors() {
		out.Diagnostics = c.diags
		return out
	}
	var resp *providerpb.ValidateResponse
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.Validate(ctx, in)
		return late(ctx, resp, err)
	}); d != nil {
		out.Diagnostics = d
		return out
	}
	out.Diagnostics = decodeDiags(resp.GetDiagnostics())
	return out
}

// Read implements providers.Provider.
func (r *remote) Read(ctx context.Context, req providers.ReadRequest) (out providers.ReadResponse) {
	const op = "Read"
	defer r.rescue(op, &out.Diagnostics)
	c := r.codec(op)
	in := &providerpb.ReadRequest{Kind: req.Kind, Id: req.ID, Owner: encodeOwner(req.Owner), Private: req.Private}
	var resp *providerpb.ReadResponse
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.Read(ctx, in)
		return late(ctx, resp, err)
	}); d != nil {
		out.Diagnostics = d
		return out
	}
	out.ID = resp.GetId()
	out.State = c.decode("State", resp.GetState())
	out.Private = resp.GetPrivate()
	out.Diagnostics = joinDiags(decodeDiags(resp.GetDiagnostics()), c.diags)
	return out
}

// Plan implements providers.Provider.
func (r *remote) Plan(ctx context.Context, req providers.PlanRequest) (out providers.PlanResponse) {
	const op = "Plan"
	defer r.rescue(op, &out.Diagnostics)
	c := r.codec(op)
	in := &providerpb.PlanRequest{
		Kind:    req.Kind,
		Prior:   c.encode("Prior", req.Prior),
		Config:  c.encode("Config", req.Config),
		Private: req.Private,
		Owner:   encodeOwner(req.Owner),
	}
	if c.diags.HasErrors() {
		out.Diagnostics = c.diags
		return out
	}
	var resp *providerpb.PlanResponse
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.Plan(ctx, in)
		return late(ctx, resp, err)
	}); d != nil {
		out.Diagnostics = d
		return out
	}
	out.Planned = c.decode("Planned", resp.GetPlanned())
	out.RequiresReplace = c.decodePaths("RequiresReplace", resp.GetRequiresReplace())
	out.Diagnostics = joinDiags(decodeDiags(resp.GetDiagnostics()), c.diags)
	return out
}

// Apply implements providers.Provider.
func (r *remote) Apply(ctx context.Context, req providers.ApplyRequest) (out providers.ApplyResponse) {
	const op = "Apply"
	defer r.rescue(op, &out.Diagnostics)
	c := r.codec(op)
	in := &providerpb.ApplyRequest{
		Kind:    req.Kind,
		Id:      req.ID,
		Owner:   encodeOwner(req.Owner),
		Prior:   c.encode("Prior", req.Prior),
		Planned: c.encode("Planned", req.Planned),
		Config:  c.encode("Config", req.Config),
		Private: req.Private,
	}
	if c.diags.HasErrors() {
		out.Diagnostics = c.diags
		return out
	}
	var resp *providerpb.ApplyResponse
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.Apply(ctx, in)
		return late(ctx, resp, err)
	}); d != nil {
		out.Diagnostics = d
		return out
	}
	out.ID = resp.GetId()
	out.State = c.decode("State", resp.GetState())
	out.Private = resp.GetPrivate()
	out.Diagnostics = joinDiags(decodeDiags(resp.GetDiagnostics()), c.diags)
	return out
}

// Delete implements providers.Provider.
func (r *remote) Delete(ctx context.Context, req providers.DeleteRequest) (out providers.DeleteResponse) {
	const op = "Delete"
	defer r.rescue(op, &out.Diagnostics)
	c := r.codec(op)
	in := &providerpb.DeleteRequest{
		Kind:    req.Kind,
		Id:      req.ID,
		Owner:   encodeOwner(req.Owner),
		Prior:   c.encode("Prior", req.Prior),
		Private: req.Private,
	}
	if c.diags.HasErrors() {
		out.Diagnostics = c.diags
		return out
	}
	var resp *providerpb.DeleteResponse
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.Delete(ctx, in)
		return late(ctx, resp, err)
	}); d != nil {
		out.Diagnostics = d
		return out
	}
	out.Diagnostics = decodeDiags(resp.GetDiagnostics())
	return out
}

// Import implements providers.Provider.
func (r *remote) Import(ctx context.Context, req providers.ImportRequest) (out providers.ImportResponse) {
	const op = "Import"
	defer r.rescue(op, &out.Diagnostics)
	c := r.codec(op)
	in := &providerpb.ImportRequest{Kind: req.Kind, Id: req.ID, Owner: encodeOwner(req.Owner)}
	var resp *providerpb.ImportResponse
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.Import(ctx, in)
		return late(ctx, resp, err)
	}); d != nil {
		out.Diagnostics = d
		return out
	}
	out.ID = resp.GetId()
	out.State = c.decode("State", resp.GetState())
	out.Private = resp.GetPrivate()
	out.Diagnostics = joinDiags(decodeDiags(resp.GetDiagnostics()), c.diags)
	return out
}

// since returns the time elapsed since t, rounded for messages.
func since(t time.Time) time.Duration {
	d := time.Since(t)
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// timedOut reports whether ctx is done or about to be. gRPC passes the
// deadline on to the provider, whose side may give up a moment before ours
// and reset the stream: that is a timeout too, not a provider failure.
func timedOut(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < 100*time.Millisecond
}

// diagnoser is a response that carries diagnostics.
type diagnoser interface {
	GetDiagnostics() []*providerpb.Diagnostic
}

// late turns an answer with errors that arrived as ctx ran out into a
// timeout. gRPC gives the provider the same deadline, so a hung provider
// may be cancelled on its side and answer with its own error a moment
// before berth's deadline passes; the cause is still that it took too long.
func late(ctx context.Context, resp diagnoser, err error) error {
	if err != nil || !timedOut(ctx) {
		return err
	}
	for _, d := range resp.GetDiagnostics() {
		if d.GetSeverity() == providerpb.Diagnostic_SEVERITY_ERROR {
			return context.DeadlineExceeded
		}
	}
	return nil
}

// ctxErr returns why ctx ended, or that its deadline passed.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// ReadMany implements providers.BatchReader. A provider built before the
// call existed answers Unimplemented; then the reads go one by one.
func (r *remote) ReadMany(ctx context.Context, reqs []providers.ReadRequest) (out []providers.ReadResponse) {
	const op = "Read"
	var diags providers.Diagnostics
	defer func() {
		if diags.HasErrors() {
			out = make([]providers.ReadResponse, len(reqs))
			for i := range out {
				out[i].Diagnostics = diags
			}
		}
	}()
	defer r.rescue(op, &diags) // runs first: a panic becomes diags
	in := &providerpb.ReadManyRequest{Requests: make([]*providerpb.ReadRequest, len(reqs))}
	for i, req := range reqs {
		in.Requests[i] = &providerpb.ReadRequest{Kind: req.Kind, Id: req.ID, Owner: encodeOwner(req.Owner), Private: req.Private}
	}
	var resp *providerpb.ReadManyResponse
	unimplemented := false
	if d := r.invoke(ctx, op, func(ctx context.Context) (err error) {
		resp, err = r.rpc.ReadMany(ctx, in)
		if status.Code(err) == codes.Unimplemented {
			unimplemented = true
			return nil
		}
		return err
	}); d != nil {
		diags = d
		return nil
	}
	if unimplemented || len(resp.GetResponses()) != len(reqs) {
		out = make([]providers.ReadResponse, len(reqs))
		for i, req := range reqs {
			out[i] = r.Read(ctx, req)
		}
		return out
	}
	out = make([]providers.ReadResponse, len(reqs))
	for i, pr := range resp.GetResponses() {
		c := r.codec(op)
		out[i].ID = pr.GetId()
		out[i].State = c.decode("State", pr.GetState())
		out[i].Private = pr.GetPrivate()
		out[i].Diagnostics = joinDiags(decodeDiags(pr.GetDiagnostics()), c.diags)
	}
	return out
}
