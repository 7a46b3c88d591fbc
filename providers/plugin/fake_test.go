package plugin_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// boxKind is the schema of the fake provider's only kind.
func boxKind() *providers.Kind {
	return &providers.Kind{
		Description: "a box in memory",
		Importable:  true,
		Block: &providers.Block{
			Attributes: map[string]*providers.Attribute{
				"id":     {Type: cty.String, Computed: true},
				"name":   {Type: cty.String, Required: true, ForceNew: true},
				"size":   {Type: cty.Number, Optional: true, Computed: true},
				"labels": {Type: cty.Map(cty.String), Optional: true},
				"ports": {Type: cty.List(cty.Object(map[string]cty.Type{
					"port": cty.Number, "proto": cty.String,
				})), Optional: true},
				"secret": {Type: cty.String, Optional: true, Sensitive: true},
			},
			Blocks: map[string]*providers.NestedBlock{
				"limits": {Nesting: providers.NestingSingle, Block: providers.Block{
					Attributes: map[string]*providers.Attribute{"cpu": {Type: cty.Number, Optional: true}},
				}},
			},
		},
	}
}

// boxProvider is a correct provider that keeps boxes in memory.
type boxProvider struct {
	mu     sync.Mutex
	next   int
	boxes  map[string]cty.Value
	owners map[string]string // id → owner token
}

func newBoxProvider() *boxProvider {
	return &boxProvider{boxes: map[string]cty.Value{}, owners: map[string]string{}}
}

func (p *boxProvider) Schema(context.Context) providers.SchemaResponse {
	return providers.SchemaResponse{Name: "box", Kinds: map[string]*providers.Kind{"box": boxKind()}}
}

func (p *boxProvider) checkKind(kind string) providers.Diagnostics {
	if kind != "box" {
		return providers.Errorf("provider box has no kind %q", kind)
	}
	return nil
}

func (p *boxProvider) Validate(_ context.Context, req providers.ValidateRequest) providers.ValidateResponse {
	if d := p.checkKind(req.Kind); d != nil {
		return providers.ValidateResponse{Diagnostics: d}
	}
	if size := req.Config.GetAttr("size"); size.IsKnown() && !size.IsNull() && size.LessThan(cty.Zero).True() {
		return providers.ValidateResponse{Diagnostics: providers.AttributeErrorf(cty.GetAttrPath("size"), "size must not be negative")}
	}
	return providers.ValidateResponse{}
}

func (p *boxProvider) Read(_ context.Context, req providers.ReadRequest) providers.ReadResponse {
	if d := p.checkKind(req.Kind); d != nil {
		return providers.ReadResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := req.ID
	if id == "" {
		for bid, tok := range p.owners {
			if tok == req.Owner.Token {
				id = bid
			}
		}
	}
	st, ok := p.boxes[id]
	if !ok {
		return providers.ReadResponse{State: cty.NullVal(boxKind().Block.ImpliedType())}
	}
	return providers.ReadResponse{ID: id, State: st, Private: []byte("private-" + id)}
}

func (p *boxProvider) Plan(_ context.Context, req providers.PlanRequest) providers.PlanResponse {
	if d := p.checkKind(req.Kind); d != nil {
		return providers.PlanResponse{Diagnostics: d}
	}
	attrs := req.Config.AsValueMap()
	if req.Prior.IsNull() {
		attrs["id"] = cty.UnknownVal(cty.String)
	} else {
		attrs["id"] = req.Prior.GetAttr("id")
	}
	if attrs["size"].IsNull() {
		attrs["size"] = cty.NumberIntVal(1)
	}
	resp := providers.PlanResponse{Planned: cty.ObjectVal(attrs)}
	if !req.Prior.IsNull() {
		if eq := req.Prior.GetAttr("name").Equals(attrs["name"]); !eq.IsKnown() || eq.False() {
			resp.RequiresReplace = []cty.Path{cty.GetAttrPath("name")}
		}
	}
	return resp
}

func (p *boxProvider) Apply(_ context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	if d := p.checkKind(req.Kind); d != nil {
		return providers.ApplyResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := req.ID
	if id == "" {
		p.next++
		id = fmt.Sprintf("box-%d", p.next)
		p.owners[id] = req.Owner.Token
	}
	if _, ok := p.boxes[id]; !ok && req.ID != "" {
		return providers.ApplyResponse{Diagnostics: providers.Errorf("box %s does not exist", id)}
	}
	attrs := req.Planned.AsValueMap()
	attrs["id"] = cty.StringVal(id)
	st := cty.ObjectVal(attrs)
	p.boxes[id] = st
	return providers.ApplyResponse{ID: id, State: st, Private: []byte("private-" + id)}
}

func (p *boxProvider) Delete(_ context.Context, req providers.DeleteRequest) providers.DeleteResponse {
	if d := p.checkKind(req.Kind); d != nil {
		return providers.DeleteResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.boxes, req.ID)
	delete(p.owners, req.ID)
	return providers.DeleteResponse{}
}

func (p *boxProvider) Import(_ context.Context, req providers.ImportRequest) providers.ImportResponse {
	if d := p.checkKind(req.Kind); d != nil {
		return providers.ImportResponse{Diagnostics: d}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.boxes[req.ID]
	if !ok {
		return providers.ImportResponse{Diagnostics: providers.Errorf("box %s does not exist", req.ID)}
	}
	p.owners[req.ID] = req.Owner.Token
	return providers.ImportResponse{ID: req.ID, State: st}
}

// boxConfig returns a full configuration of a box.
func boxConfig(name string, size int64, labels map[string]string) cty.Value {
	lv := cty.NullVal(cty.Map(cty.String))
	if labels != nil {
		m := map[string]cty.Value{}
		for k, v := range labels {
			m[k] = cty.StringVal(v)
		}
		lv = cty.MapVal(m)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"id":     cty.NullVal(cty.String),
		"name":   cty.StringVal(name),
		"size":   cty.NumberIntVal(size),
		"labels": lv,
		"ports": cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{
			"port": cty.NumberIntVal(80), "proto": cty.StringVal("tcp"),
		})}),
		"secret": cty.StringVal("hunter2"),
		"limits": cty.ObjectVal(map[string]cty.Value{"cpu": cty.NumberFloatVal(0.5)}),
	})
}

// recorder is a provider that records the requests it gets and answers
// with the responses it is given.
type recorder struct {
	mu  sync.Mutex
	got []any

	schema   providers.SchemaResponse
	validate providers.ValidateResponse
	read     providers.ReadResponse
	plan     providers.PlanResponse
	apply    providers.ApplyResponse
	del      providers.DeleteResponse
	imp      providers.ImportResponse
}

func (r *recorder) record(req any) {
	r.mu.Lock()
	r.got = append(r.got, req)
	r.mu.Unlock()
}

func (r *recorder) last() any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return nil
	}
	return r.got[len(r.got)-1]
}

func (r *recorder) Schema(context.Context) providers.SchemaResponse { return r.schema }

func (r *recorder) Validate(_ context.Context, req providers.ValidateRequest) providers.ValidateResponse {
	r.record(req)
	return r.validate
}

func (r *recorder) Read(_ context.Context, req providers.ReadRequest) providers.ReadResponse {
	r.record(req)
	return r.read
}

func (r *recorder) Plan(_ context.Context, req providers.PlanRequest) providers.PlanResponse {
	r.record(req)
	return r.plan
}

func (r *recorder) Apply(_ context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	r.record(req)
	return r.apply
}

func (r *recorder) Delete(_ context.Context, req providers.DeleteRequest) providers.DeleteResponse {
	r.record(req)
	return r.del
}

func (r *recorder) Import(_ context.Context, req providers.ImportRequest) providers.ImportResponse {
	r.record(req)
	return r.imp
}

// panicker panics in every call but Schema, or in Schema too.
type panicker struct {
	inSchema bool
}

func (p panicker) Schema(context.Context) providers.SchemaResponse {
	if p.inSchema {
		panic("schema on fire")
	}
	return providers.SchemaResponse{Name: "panicky"}
}

func (panicker) Validate(context.Context, providers.ValidateRequest) providers.ValidateResponse {
	panic("validate on fire")
}

func (panicker) Read(context.Context, providers.ReadRequest) providers.ReadResponse {
	panic("read on fire")
}

func (panicker) Plan(context.Context, providers.PlanRequest) providers.PlanResponse {
	var m map[string]int
	m["x"] = 1 // a runtime error, not a panic with a string
	return providers.PlanResponse{}
}

func (panicker) Apply(context.Context, providers.ApplyRequest) providers.ApplyResponse {
	panic(fmt.Errorf("apply on fire"))
}

func (panicker) Delete(context.Context, providers.DeleteRequest) providers.DeleteResponse {
	panic("delete on fire")
}

func (panicker) Import(context.Context, providers.ImportRequest) providers.ImportResponse {
	panic("import on fire")
}
