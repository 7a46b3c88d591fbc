// Package providers defines the interface through which the engine manages real
// objects, the requests and responses that cross it, and the schemas that
// providers publish.
//
// A provider manages one or more resource kinds (container, image, ...). The
// engine never changes an object itself: it reads live state, asks the provider
// to plan a change, and asks it to apply or delete. Every call takes one request
// struct and returns one response struct that carries diagnostics, so that
// fields can be added without breaking the protocol.
//
// Values are cty values without marks. Unknown values ("known after apply")
// appear only in the Config and Planned values of a plan.
package providers

import (
	"context"

	"github.com/zclconf/go-cty/cty"
)

// ProtocolVersion is the version of the provider protocol. The engine refuses
// providers that speak another version.
const ProtocolVersion = 1

// Provider is implemented by every provider, built in or third party.
type Provider interface {
	// Schema describes the resource kinds that the provider manages.
	Schema(ctx context.Context) SchemaResponse
	// Validate checks a resource's configuration without touching any object.
	// Config may hold unknown values.
	Validate(ctx context.Context, req ValidateRequest) ValidateResponse
	// Read observes the live state of one object. A missing object is not an
	// error: the response's State is then null.
	Read(ctx context.Context, req ReadRequest) ReadResponse
	// Plan computes the state an object would have after applying Config to
	// Prior (null Prior: create). It fills computed attributes it knows and
	// leaves the others unknown, and lists the paths that force a replacement.
	Plan(ctx context.Context, req PlanRequest) PlanResponse
	// Apply creates (ID empty) or updates an object so that it matches Planned.
	Apply(ctx context.Context, req ApplyRequest) ApplyResponse
	// Delete removes an object. Deleting an object that is already gone
	// succeeds.
	Delete(ctx context.Context, req DeleteRequest) DeleteResponse
	// Import adopts an existing object that berth did not create: it marks the
	// object as owned by Owner and returns its state.
	Import(ctx context.Context, req ImportRequest) ImportResponse
}

// Owner is the ownership mark that berth gives every object it creates.
// Providers store it on the object (a label, an attribute, a file) so that an
// object whose creation was interrupted before its ID was recorded can still be
// found (ReadRequest with an empty ID) and so that objects berth does not own
// are never touched.
type Owner struct {
	// Address is the resource instance address, e.g. container.web[0].
	Address string
	// Token is unique to this object among all objects berth ever created.
	Token string
}

// SchemaResponse is the answer to Schema.
type SchemaResponse struct {
	// Name is the provider's name, e.g. "linux".
	Name string
	// Kinds maps each resource kind to its schema.
	Kinds       map[string]*Kind
	Diagnostics Diagnostics
}

// ValidateRequest asks whether a configuration is acceptable.
type ValidateRequest struct {
	Kind   string
	Config cty.Value
}

// ValidateResponse is the answer to Validate.
type ValidateResponse struct {
	Diagnostics Diagnostics
}

// ReadRequest asks for the live state of one object.
type ReadRequest struct {
	Kind string
	// ID is the object's ID. When empty, the provider looks for an object
	// marked with Owner.Token and returns its ID in the response, or a null
	// state when there is none.
	ID      string
	Owner   Owner
	Private []byte
}

// ReadResponse is the answer to Read.
type ReadResponse struct {
	// ID is the object's ID (useful when the request had none).
	ID string
	// State is the live state, or null when the object does not exist.
	State       cty.Value
	Private     []byte
	Diagnostics Diagnostics
}

// PlanRequest asks what applying Config to Prior would produce.
type PlanRequest struct {
	Kind string
	// Owner is the object's address and ownership token.
	Owner Owner
	// Prior is the live state, null when the object is to be created.
	Prior   cty.Value
	Config  cty.Value
	Private []byte
}

// PlanResponse is the answer to Plan.
type PlanResponse struct {
	Planned cty.Value
	// RequiresReplace lists the attributes whose change cannot be applied in
	// place.
	RequiresReplace []cty.Path
	Diagnostics     Diagnostics
}

// ApplyRequest asks the provider to make an object match Planned.
type ApplyRequest struct {
	Kind string
	// ID is empty for a create.
	ID      string
	Owner   Owner
	Prior   cty.Value
	Planned cty.Value
	Config  cty.Value
	Private []byte
}

// ApplyResponse is the answer to Apply. On failure after a partial create,
// the provider returns the ID of what it left behind so that it can be cleaned
// up.
type ApplyResponse struct {
	ID          string
	State       cty.Value
	Private     []byte
	Diagnostics Diagnostics
}

// DeleteRequest asks the provider to remove an object.
type DeleteRequest struct {
	Kind    string
	ID      string
	Owner   Owner
	Prior   cty.Value
	Private []byte
}

// DeleteResponse is the answer to Delete.
type DeleteResponse struct {
	Diagnostics Diagnostics
}

// ImportRequest asks the provider to adopt an existing object.
type ImportRequest struct {
	Kind  string
	ID    string
	Owner Owner
}

// ImportResponse is the answer to Import.
type ImportResponse struct {
	ID          string
	State       cty.Value
	Private     []byte
	Diagnostics Diagnostics
}

// BatchReader is implemented by providers that can read many objects in one
// call, which saves a round trip per object when the provider runs in
// another process. Responses come in the order of the requests.
type BatchReader interface {
	ReadMany(ctx context.Context, reqs []ReadRequest) []ReadResponse
}

// ReadMany reads every request through p: in one call when p is a
// BatchReader, else one by one.
func ReadMany(ctx context.Context, p Provider, reqs []ReadRequest) []ReadResponse {
	if br, ok := p.(BatchReader); ok {
		if out := br.ReadMany(ctx, reqs); len(out) == len(reqs) {
			return out
		}
	}
	out := make([]ReadResponse, len(reqs))
	for i, r := range reqs {
		out[i] = p.Read(ctx, r)
	}
	return out
}
