package linux

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/content"
	"github.com/berthhq/berth/providers/linux/registry"
	"github.com/berthhq/berth/providers/linux/rootfs"
	"github.com/berthhq/berth/providers/linux/runtime"
	"github.com/berthhq/berth/providers/linux/volume"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Name is the provider's name.
const Name = "linux"

// Options configure the provider.
type Options struct {
	// Root is the provider's directory: content store, layers, volumes,
	// containers and runtime state. berth passes
	// "$BERTH_STATE_DIR/providers/linux".
	Root string
	// Exe and ShimArgs run a container's shim: Exe ShimArgs(dir)... The
	// program must call shim.Serve for those arguments (cmd/berth-shim does).
	Exe      string
	ShimArgs func(dir string) []string
	// Rotate, when set, is the command a shim runs (with "in" or "out"
	// appended) when its container starts or stops serving, to take it in
	// or out of the rotation of its published ports; the program must
	// call Host.Rotate for it. berth gives `berth __rotate DIR`.
	Rotate func(dir string) []string
	// CgroupParent is the cgroup under which containers' cgroups are
	// made; "/berth" when empty.
	CgroupParent string
	// DockerConfig is the path of a docker config.json for registry
	// credentials; the default location when empty.
	DockerConfig string
	// Confined serves configurations that the host does not trust, such
	// as plans sent to the agent's API: Validate and Plan then neither
	// look at the host paths a configuration names (bind sources, image
	// archives, CA files) nor contact a registry, so that a plan tells
	// its sender nothing about the host's files or network; what they
	// would have learnt is planned as unknown, with a warning.
	Confined bool
}

// Provider is the linux provider.
type Provider struct {
	opts  Options
	kinds map[string]*providers.Kind
	types map[string]cty.Type
	objs  objects
	hosts *Host
	// endpoints caches the applied registry resources by address, read
	// once per process rather than at every image's plan; applying or
	// deleting a registry drops it.
	mu        sync.Mutex
	endpoints map[string]*registry.Endpoint
	regCli    *registry.Client
	netw      networking
	// planned are the networks planned by this process, by name.
	planned map[string]obj
	// netObjs are the applied networks by name, read once (networkObject).
	netObjs map[string]obj
	// plannedAddrs are the static addresses that the containers planned
	// by this process ask for: network, then address, then the address
	// of the container.
	plannedAddrs map[string]map[netip.Addr]string
}

// New returns the linux provider keeping its data under opts.Root.
func New(opts Options) (*Provider, error) {
	if opts.CgroupParent == "" {
		opts.CgroupParent = "/berth"
	}
	h, err := OpenHost(opts.Root)
	if err != nil {
		return nil, err
	}
	p := &Provider{
		opts:   opts,
		kinds:  kinds(),
		types:  map[string]cty.Type{},
		objs:   objects{dir: filepath.Join(opts.Root, "objects")},
		hosts:  h,
		regCli: registry.New(registry.Options{DockerConfig: opts.DockerConfig, UserAgent: "berth"}),
	}
	for name, k := range p.kinds {
		p.types[name] = k.Block.ImpliedType()
	}
	return p, nil
}

// Host is the provider's data on this host, shared with berth's day-2
// commands (ps, logs, exec, ...).
type Host struct {
	Root    string
	Content *content.Store
	Layers  *rootfs.Store
	Volumes *volume.Store
	Runtime *runtime.Runtime
}

// OpenHost opens the stores under root, creating them when needed.
func OpenHost(root string) (*Host, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("linux provider data: %w", err)
	}
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		return nil, err
	}
	ls, err := rootfs.Open(filepath.Join(root, "rootfs"))
	if err != nil {
		return nil, err
	}
	vs, err := volume.Open(filepath.Join(root, "volumes"))
	if err != nil {
		return nil, err
	}
	return &Host{Root: root, Content: cs, Layers: ls, Volumes: vs, Runtime: runtime.New(filepath.Join(root, "runtime"))}, nil
}

// ContainerDir is the directory of container id.
func (h *Host) ContainerDir(id string) string { return filepath.Join(h.Root, "containers", id) }

// Schema implements providers.Provider.
func (p *Provider) Schema(context.Context) providers.SchemaResponse {
	return providers.SchemaResponse{Name: Name, Kinds: p.kinds}
}

// conform returns v as a value of kind's type; extra attributes are
// dropped and missing ones are null.
func (p *Provider) conform(kind string, v cty.Value) (cty.Value, providers.Diagnostics) {
	ty, ok := p.types[kind]
	if !ok {
		return cty.NilVal, providers.Errorf("the linux provider has no kind %q; it manages registry, image, volume and container", kind)
	}
	if v == cty.NilVal {
		return cty.NullVal(ty), nil
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return cty.NullVal(ty), nil
	}
	c, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, providers.Errorf("the value of a %s does not fit its schema: %s", kind, err)
	}
	return c, nil
}

// conformPair conforms two values of one kind.
func (p *Provider) conformPair(kind string, a, b cty.Value) (cty.Value, cty.Value, providers.Diagnostics) {
	ca, diags := p.conform(kind, a)
	if diags.HasErrors() {
		return ca, cty.NilVal, diags
	}
	cb, diags := p.conform(kind, b)
	return ca, cb, diags
}

func recovered(diags *providers.Diagnostics) {
	if r := recover(); r != nil {
		buf := make([]byte, 4096)
		n := goruntime.Stack(buf, false)
		*diags = append(*diags, providers.Errorf("internal error in the linux provider: %v\n%s", r, buf[:n])...)
	}
}

// Validate implements providers.Provider.
func (p *Provider) Validate(_ context.Context, req providers.ValidateRequest) (resp providers.ValidateResponse) {
	defer recovered(&resp.Diagnostics)
	cfg, diags := p.conform(req.Kind, req.Config)
	if diags.HasErrors() {
		resp.Diagnostics = diags
		return resp
	}
	o := obj{cfg}
	switch req.Kind {
	case KindRegistry:
		resp.Diagnostics = validateRegistry(o, !p.opts.Confined)
	case KindImage:
		resp.Diagnostics = validateImage(o, !p.opts.Confined)
	case KindVolume:
		resp.Diagnostics = validateVolume(o)
	case KindContainer:
		resp.Diagnostics = validateContainer(o, !p.opts.Confined)
	case KindNetwork:
		resp.Diagnostics = validateNetwork(o)
	}
	return resp
}

// Read implements providers.Provider.
func (p *Provider) Read(ctx context.Context, req providers.ReadRequest) (resp providers.ReadResponse) {
	defer recovered(&resp.Diagnostics)
	ty, ok := p.types[req.Kind]
	if !ok {
		_, resp.Diagnostics = p.conform(req.Kind, cty.NilVal)
		return resp
	}
	resp.State = cty.NullVal(ty)
	st, err := p.objs.get(req.Owner.Token)
	if err != nil {
		resp.Diagnostics = providers.Errorf("read %s: %s", req.Owner.Address, err)
		return resp
	}
	if st == nil || st.Kind != req.Kind || (req.ID != "" && st.ID != "" && st.ID != req.ID) {
		return resp
	}
	applied, err := decodeValue(st.Value, ty)
	if err != nil {
		applied = cty.NullVal(ty)
	}
	id := st.ID
	if id == "" && req.Kind == KindVolume && !applied.IsNull() {
		// A create interrupted before the ID was recorded: the volume, if
		// it was made, carries this token as its owner.
		if n := applied.GetAttr("name"); n.IsKnown() && !n.IsNull() {
			id = n.AsString()
		}
	}
	if id == "" {
		// The create was interrupted before the object existed.
		return resp
	}
	switch req.Kind {
	case KindRegistry:
		return p.readRegistry(id, applied)
	case KindImage:
		return p.readImage(id, applied)
	case KindVolume:
		return p.readVolume(ctx, id, req.Owner.Token, applied)
	case KindContainer:
		return p.readContainer(ctx, id, applied)
	case KindNetwork:
		return p.readNetwork(ctx, id, applied)
	}
	return resp
}

// Plan implements providers.Provider.
func (p *Provider) Plan(ctx context.Context, req providers.PlanRequest) (resp providers.PlanResponse) {
	defer recovered(&resp.Diagnostics)
	cfg, prior, diags := p.conformPair(req.Kind, req.Config, req.Prior)
	if diags.HasErrors() {
		resp.Diagnostics = diags
		return resp
	}
	switch req.Kind {
	case KindRegistry:
		return planRegistry(prior, cfg)
	case KindImage:
		return p.planImage(ctx, prior, cfg)
	case KindVolume:
		return planVolume(prior, cfg)
	case KindContainer:
		return p.planContainer(ctx, req.Owner, prior, cfg)
	case KindNetwork:
		return p.planNetwork(ctx, req.Owner, prior, cfg)
	}
	return resp
}

// Apply implements providers.Provider.
func (p *Provider) Apply(ctx context.Context, req providers.ApplyRequest) (resp providers.ApplyResponse) {
	defer recovered(&resp.Diagnostics)
	planned, prior, diags := p.conformPair(req.Kind, req.Planned, req.Prior)
	if diags.HasErrors() {
		resp.Diagnostics = diags
		return resp
	}
	switch req.Kind {
	case KindRegistry:
		return p.applyRegistry(req.Owner, planned)
	case KindImage:
		return p.applyImage(ctx, req.Owner, prior, planned)
	case KindVolume:
		return p.applyVolume(ctx, req.Owner, req.ID, planned)
	case KindContainer:
		return p.applyContainer(ctx, req.Owner, req.ID, prior, planned)
	case KindNetwork:
		return p.applyNetwork(ctx, req.Owner, planned)
	}
	return resp
}

// Delete implements providers.Provider.
func (p *Provider) Delete(ctx context.Context, req providers.DeleteRequest) (resp providers.DeleteResponse) {
	defer recovered(&resp.Diagnostics)
	if _, diags := p.conform(req.Kind, cty.NilVal); diags.HasErrors() {
		resp.Diagnostics = diags
		return resp
	}
	var err error
	switch req.Kind {
	case KindRegistry:
		defer p.forgetEndpoints()
	case KindImage:
		err = p.deleteImage(ctx, req.ID, req.Prior)
	case KindVolume:
		err = p.deleteVolume(ctx, req.ID, req.Owner.Token)
	case KindContainer:
		err = p.deleteContainer(ctx, req.ID)
	case KindNetwork:
		err = p.deleteNetwork(ctx, req.ID)
	}
	if err != nil {
		resp.Diagnostics = providers.Errorf("delete %s: %s", req.Owner.Address, err)
		return resp
	}
	if err := p.objs.remove(req.Owner.Token); err != nil {
		resp.Diagnostics = providers.Errorf("delete %s: %s", req.Owner.Address, err)
	}
	return resp
}

// Import implements providers.Provider: a volume that berth did not create
// can be adopted. The volume then belongs to the importing object alone:
// an object that owned it before no longer deletes it.
func (p *Provider) Import(ctx context.Context, req providers.ImportRequest) (resp providers.ImportResponse) {
	defer recovered(&resp.Diagnostics)
	if req.Kind != KindVolume {
		resp.Diagnostics = providers.Errorf("the linux provider cannot import a %s; only volumes can be imported", req.Kind)
		return resp
	}
	r := p.readVolume(ctx, req.ID, "", cty.NullVal(p.types[KindVolume]))
	if r.Diagnostics.HasErrors() || r.State.IsNull() {
		resp.Diagnostics = append(r.Diagnostics, providers.Errorf("there is no volume %q", req.ID)...)
		return resp
	}
	if err := p.objs.put(req.Owner.Token, stored{Kind: KindVolume, ID: req.ID, Address: req.Owner.Address}); err != nil {
		resp.Diagnostics = providers.Errorf("import %s: %s", req.Owner.Address, err)
		return resp
	}
	if err := p.hosts.Volumes.SetOwner(req.ID, req.Owner.Token); err != nil {
		resp.Diagnostics = providers.Errorf("import %s: %s", req.Owner.Address, err)
		return resp
	}
	resp.ID, resp.State = req.ID, r.State
	return resp
}

// remember records the applied value of an object.
// Values not known yet are remembered as null.
func (p *Provider) remember(owner providers.Owner, kind, id string, v cty.Value) error {
	v, _ = cty.Transform(v, func(_ cty.Path, x cty.Value) (cty.Value, error) {
		if !x.IsKnown() {
			return cty.NullVal(x.Type()), nil
		}
		return x, nil
	})
	b, err := encodeValue(v)
	if err != nil {
		return err
	}
	return p.objs.put(owner.Token, stored{Kind: kind, ID: id, Address: owner.Address, Value: b})
}
