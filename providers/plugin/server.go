package plugin

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"

	"github.com/berthhq/berth/providers"
	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// maxStack bounds the stack trace that a panic diagnostic carries.
const maxStack = 8 << 10

// Serve serves p over the provider protocol until berth closes the
// connection. It is meant for the main function of a provider binary (and
// for the berth binary serving a built-in provider). Run by hand instead of
// by berth, it explains that berth starts it and exits with status 1.
//
// Serve recovers from a panic in any call of p and answers with an error
// diagnostic naming the provider and the operation, so that one bad call
// does not take the provider down.
func Serve(p providers.Provider) {
	serve(p, providers.ProtocolVersion)
}

// serve is Serve speaking the given protocol version; tests use it to
// build providers of another version.
func serve(p providers.Provider, version int) {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake(version),
		Plugins:         goplugin.PluginSet{PluginName: &GRPCPlugin{Provider: p}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpcServerOptions()...)...)
		},
		// go-plugin's own chatter would drown the provider's output that
		// berth keeps for crash reports; keep only its errors.
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Level:      hclog.Error,
			Output:     os.Stderr,
			JSONFormat: true,
		}),
	})
}

// server is the server half of the protocol: it decodes each request,
// calls the provider and encodes its answer.
type server struct {
	providerpb.UnimplementedProviderServer
	p providers.Provider

	mu    sync.Mutex
	name  string // the provider's name, once known
	types *typeCache
}

func newServer(p providers.Provider, types *typeCache) *server {
	return &server{p: p, types: types}
}

// providerName returns the provider's name for messages. It asks the
// provider's schema when no GetSchema call told it yet.
func (s *server) providerName() string {
	s.mu.Lock()
	name := s.name
	s.mu.Unlock()
	if name != "" {
		return name
	}
	func() {
		defer func() { _ = recover() }()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		name = s.p.Schema(ctx).Name
	}()
	if name == "" {
		return "(unnamed)"
	}
	s.setName(name)
	return name
}

func (s *server) setName(name string) {
	if name == "" {
		return
	}
	s.mu.Lock()
	s.name = name
	s.mu.Unlock()
}

// panicked turns a recovered panic into an error diagnostic.
func (s *server) panicked(op string, r any) []*providerpb.Diagnostic {
	stack := debug.Stack()
	if len(stack) > maxStack {
		stack = append(stack[:maxStack:maxStack], "\n..."...)
	}
	return encodeDiags(providers.Diagnostics{{
		Severity: providers.Error,
		Summary:  fmt.Sprintf("provider %q panicked during %s: %v", s.providerName(), op, r),
		Detail:   "This is a bug in the provider; please report it to its authors with this stack trace:\n\n" + string(stack),
	}})
}

func (s *server) codec(op string) *codec {
	return &codec{name: s.providerName, op: op, server: true, types: s.types}
}

// GetSchema implements the GetSchema call.
func (s *server) GetSchema(ctx context.Context, _ *providerpb.GetSchemaRequest) (resp *providerpb.GetSchemaResponse, _ error) {
	defer func() {
		if r := recover(); r != nil {
			resp = &providerpb.GetSchemaResponse{Diagnostics: s.panicked("Schema", r)}
		}
	}()
	sr := s.p.Schema(ctx)
	s.setName(sr.Name)
	resp = &providerpb.GetSchemaResponse{Name: sr.Name}
	kinds, err := encodeSchema(sr.Kinds)
	diags := sr.Diagnostics
	if err != nil {
		diags = joinDiags(diags, providers.Diagnostics{{
			Severity: providers.Error,
			Summary:  fmt.Sprintf("provider %q has a schema that cannot be sent to berth", s.providerName()),
			Detail:   err.Error() + ". This is a bug in the provider; please report it to its authors.",
		}})
	} else {
		resp.Kinds = kinds
	}
	resp.Diagnostics = encodeDiags(diags)
	return resp, nil
}

// Validate implements the Validate call.
func (s *server) Validate(ctx context.Context, req *providerpb.ValidateRequest) (resp *providerpb.ValidateResponse, _ error) {
	defer func() {
		if r := recover(); r != nil {
			resp = &providerpb.ValidateResponse{Diagnostics: s.panicked("Validate", r)}
		}
	}()
	c := s.codec("Validate")
	in := providers.ValidateRequest{Kind: req.GetKind(), Config: c.decode("Config", req.GetConfig())}
	if c.diags.HasErrors() {
		return &providerpb.ValidateResponse{Diagnostics: encodeDiags(c.diags)}, nil
	}
	out := s.p.Validate(ctx, in)
	return &providerpb.ValidateResponse{Diagnostics: encodeDiags(out.Diagnostics)}, nil
}

// Read implements the Read call.
func (s *server) Read(ctx context.Context, req *providerpb.ReadRequest) (resp *providerpb.ReadResponse, _ error) {
	defer func() {
		if r := recover(); r != nil {
			resp = &providerpb.ReadResponse{Diagnostics: s.panicked("Read", r)}
		}
	}()
	c := s.codec("Read")
	out := s.p.Read(ctx, providers.ReadRequest{
		Kind:    req.GetKind(),
		ID:      req.GetId(),
		Owner:   decodeOwner(req.GetOwner()),
		Private: req.GetPrivate(),
	})
	resp = &providerpb.ReadResponse{Id: out.ID, State: c.encode("State", out.State), Private: out.Private}
	resp.Diagnostics = encodeDiags(joinDiags(out.Diagnostics, c.diags))
	return resp, nil
}

// Plan implements the Plan call.
func (s *server) Plan(ctx context.Context, req *providerpb.PlanRequest) (resp *providerpb.PlanResponse, _ error) {
	defer func() {
		if r := recover(); r != nil {
			resp = &providerpb.PlanResponse{Diagnostics: s.panicked("Plan", r)}
		}
	}()
	c := s.codec("Plan")
	in := providers.PlanRequest{
		Kind:    req.GetKind(),
		Owner:   decodeOwner(req.GetOwner()),
		Prior:   c.decode("Prior", req.GetPrior()),
		Config:  c.decode("Config", req.GetConfig()),
		Private: req.GetPrivate(),
	}
	if c.diags.HasErrors() {
		return &providerpb.PlanResponse{Diagnostics: encodeDiags(c.diags)}, nil
	}
	out := s.p.Plan(ctx, in)
	resp = &providerpb.PlanResponse{
		Planned:         c.encode("Planned", out.Planned),
		RequiresReplace: c.encodePaths("RequiresReplace", out.RequiresReplace),
	}
	resp.Diagnostics = encodeDiags(joinDiags(out.Diagnostics, c.diags))
	return resp, nil
}

// Apply implements the Apply call.
func (s *server) Apply(ctx context.Context, req *providerpb.ApplyRequest) (resp *providerpb.ApplyResponse, _ error) {
	defer func() {
		if r := recover(); r != nil {
			resp = &providerpb.ApplyResponse{Diagnostics: s.panicked("Apply", r)}
		}
	}()
	c := s.codec("Apply")
	in := providers.ApplyRequest{
		Kind:    req.GetKind(),
		ID:      req.GetId(),
		Owner:   decodeOwner(req.GetOwner()),
		Prior:   c.decode("Prior", req.GetPrior()),
		Planned: c.decode("Planned", req.GetPlanned()),
		Config:  c.decode("Config", req.GetConfig()),
		Private: req.GetPrivate(),
	}
	if c.diags.HasErrors() {
		return &providerpb.ApplyResponse{Diagnostics: encodeDiags(c.diags)}, nil
	}
	out := s.p.Apply(ctx, in)
	resp = &providerpb.ApplyResponse{Id: out.ID, State: c.encode("State", out.State), Private: out.Private}
	resp.Diagnostics = encodeDiags(joinDiags(out.Diagnostics, c.diags))
	return resp, nil
}

// Delete implements the Delete call.
func (s *server) Delete(ctx context.Context, req *providerpb.DeleteRequest) (resp *providerpb.DeleteResponse, _ error) {
	defer func() {
		if r := recover(); r != nil {
			resp = &providerpb.DeleteResponse{Diagnostics: s.panicked("Delete", r)}
		}
	}()
	c := s.codec("Delete")
	in := providers.DeleteRequest{
		Kind:    req.GetKind(),
		ID:      req.GetId(),
		Owner:   decodeOwner(req.GetOwner()),
		Prior:   c.decode("Prior", req.GetPrior()),
		Private: req.GetPrivate(),
	}
	if c.diags.HasErrors() {
		return &providerpb.DeleteResponse{Diagnostics: encodeDiags(c.diags)}, nil
	}
	out := s.p.Delete(ctx, in)
	return &providerpb.DeleteResponse{Diagnostics: encodeDiags(out.Diagnostics)}, nil
}

// Import implements the Import call.
func (s *server) Import(ctx context.Context, req *providerpb.ImportRequest) (resp *providerpb.ImportResponse, _ error) {
	defer func() {
		if r := recover(); r != nil {
			resp = &providerpb.ImportResponse{Diagnostics: s.panicked("Import", r)}
		}
	}()
	c := s.codec("Import")
	out := s.p.Import(ctx, providers.ImportRequest{
		Kind:  req.GetKind(),
		ID:    req.GetId(),
		Owner: decodeOwner(req.GetOwner()),
	})
	resp = &providerpb.ImportResponse{Id: out.ID, State: c.encode("State", out.State), Private: out.Private}
	resp.Diagnostics = encodeDiags(joinDiags(out.Diagnostics, c.diags))
	return resp, nil
}

// ReadMany implements the ReadMany call: each request is read as by Read,
// a few at once, so that one slow object does not hold up the others.
func (s *server) ReadMany(ctx context.Context, req *providerpb.ReadManyRequest) (*providerpb.ReadManyResponse, error) {
	reqs := req.GetRequests()
	resp := &providerpb.ReadManyResponse{Responses: make([]*providerpb.ReadResponse, len(reqs))}
	sem := make(chan struct{}, readManyParallelism)
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp.Responses[i], _ = s.Read(ctx, r)
		}()
	}
	wg.Wait()
	return resp, nil
}

// readManyParallelism bounds the reads a ReadMany call runs at once.
const readManyParallelism = 8
