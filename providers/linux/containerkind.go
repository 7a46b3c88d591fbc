package linux

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/content"
	"github.com/berthhq/berth/providers/linux/registry"
	"github.com/berthhq/berth/providers/linux/rootfs"
	"github.com/berthhq/berth/providers/linux/runtime"
	"github.com/berthhq/berth/providers/linux/shim"
	"github.com/zclconf/go-cty/cty"
)

// inPlace are the container attributes that change without a new
// container: limits are set on the live cgroup, state starts or stops it.
var inPlace = map[string]bool{"id": true, "state": true, "resources": true}

// netInPlace are the attributes of a container on berth's networks that
// change without a new container: its namespace stays, and attachments,
// addresses, published ports and /etc/hosts are changed around it.
var netInPlace = map[string]bool{"network": true, "ports": true, "publish": true, "publish_all": true, "extra_hosts": true, "dns": true, "ip_address": true, "published_ports": true}

// validateContainer checks a container's configuration; hostPaths tells
// whether it may look at the host's files (bind sources).
func validateContainer(o obj, hostPaths bool) providers.Diagnostics {
	var diags providers.Diagnostics
	bad := func(path cty.Path, format string, args ...any) {
		diags = append(diags, providers.AttributeErrorf(path, format, args...)...)
	}
	diags = append(diags, validateName(o, "container")...)
	oneOf := func(name string, allowed ...string) {
		if v := o.str(name); v != "" && !contains(allowed, v) {
			bad(cty.GetAttrPath(name), "unknown %s %q: use %s", strings.ReplaceAll(name, "_", " "), v, quoteList(allowed))
		}
	}
	if nm := o.str("network_mode"); strings.HasPrefix(nm, "container:") {
		if strings.TrimPrefix(nm, "container:") == "" {
			bad(cty.GetAttrPath("network_mode"), "network mode %q names no container: use \"container:NAME\", e.g. \"container:${container.db.name}\"", nm)
		}
	} else {
		oneOf("network_mode", "bridge", "none", "host")
	}
	diags = append(diags, validateContainerNet(o)...)
	oneOf("restart", "no", "always", "unless-stopped", "on-failure")
	oneOf("state", "running", "stopped")
	if n, ok := o.integer("max_retries"); ok && n < 0 {
		bad(cty.GetAttrPath("max_retries"), "max_retries must not be negative")
	}
	if s := o.str("stop_signal"); s != "" {
		if err := shim.ParseSignal(s); err != nil {
			bad(cty.GetAttrPath("stop_signal"), "%s: use a name such as \"SIGTERM\" or \"SIGQUIT\"", err)
		}
	}
	if n, ok := o.float("stop_timeout"); ok && (n < 0 || n > 86400) {
		bad(cty.GetAttrPath("stop_timeout"), "stop_timeout = %g is out of range: give the seconds between the stop signal and SIGKILL, 0 to 86400", n)
	}
	for k := range o.stringMap("env") {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			bad(cty.GetAttrPath("env"), "invalid environment variable name %q", k)
		}
	}
	if w := o.str("working_dir"); w != "" && !filepath.IsAbs(w) {
		bad(cty.GetAttrPath("working_dir"), "working_dir %q must be an absolute path", w)
	}
	if r := o.str("image"); r != "" && !strings.Contains(r, "@") {
		if _, err := registry.ParseReference(r); err != nil {
			bad(cty.GetAttrPath("image"), "%s", err)
		}
	}
	targets := map[string]bool{}
	for i, m := range o.blocks("mount") {
		path := cty.GetAttrPath("mount").IndexInt(i)
		t := m.str("target")
		if t != "" && !filepath.IsAbs(t) {
			bad(path.GetAttr("target"), "mount target %q must be an absolute path", t)
		}
		if t != "" {
			if targets[filepath.Clean(t)] {
				bad(path.GetAttr("target"), "two mounts have the target %q", t)
			}
			targets[filepath.Clean(t)] = true
		}
		src := m.str("source")
		switch ty := m.str("type"); ty {
		case "volume":
			if src == "" && !m.unknown("source") {
				bad(path.GetAttr("source"), "a volume mount needs a source: a volume resource (volume.data) or a volume name")
			} else if src != "" && !validVolumeName(src) {
				bad(path.GetAttr("source"), "invalid volume name %q", src)
			}
		case "bind":
			switch {
			case src == "" && !m.unknown("source"):
				bad(path.GetAttr("source"), "a bind mount needs a source: an absolute host path")
			case src != "" && !filepath.IsAbs(src):
				bad(path.GetAttr("source"), "bind source %q must be an absolute host path", src)
			case src != "" && !m.boolean("create_host_path", false) && hostPaths:
				if _, err := os.Stat(src); err != nil {
					bad(path.GetAttr("source"), "bind source %q does not exist on this host: create it, or set create_host_path = true", src)
				}
			}
		case "tmpfs":
			if src != "" {
				bad(path.GetAttr("source"), "a tmpfs mount has no source")
			}
		case "":
		default:
			bad(path.GetAttr("type"), "unknown mount type %q: use \"volume\", \"bind\" or \"tmpfs\"", ty)
		}
		if s := m.str("size"); s != "" {
			if m.str("type") != "tmpfs" {
				bad(path.GetAttr("size"), "size applies to tmpfs mounts only")
			} else if _, err := parseSize(s); err != nil {
				bad(path.GetAttr("size"), "%s", err)
			}
		}
	}
	res := o.block("resources")
	rpath := cty.GetAttrPath("resources")
	if c, ok := res.float("cpus"); ok {
		if n := goruntime.NumCPU(); c <= 0 || c > float64(n) {
			bad(rpath.GetAttr("cpus"), "cpus = %g is not possible on this host, which has %d cores: use a number above 0 and at most %d", c, n, n)
		}
	}
	var mem int64
	if s := res.str("memory"); s != "" {
		n, err := parseSize(s)
		switch {
		case err != nil:
			bad(rpath.GetAttr("memory"), "%s", err)
		case n < 6<<20:
			bad(rpath.GetAttr("memory"), "memory = %q is below the minimum of 6M", s)
		}
		mem = n
	}
	if s := res.str("memory_swap"); s != "" && s != "-1" {
		n, err := parseSize(s)
		switch {
		case err != nil:
			bad(rpath.GetAttr("memory_swap"), "%s", err)
		case mem == 0 && !res.unknown("memory"):
			bad(rpath.GetAttr("memory_swap"), "memory_swap needs memory: set memory too")
		case n < mem:
			bad(rpath.GetAttr("memory_swap"), "memory_swap (%s) counts memory plus swap, so it cannot be below memory (%s)", s, res.str("memory"))
		}
	}
	if n, ok := res.integer("pids_limit"); ok && n <= 0 {
		bad(rpath.GetAttr("pids_limit"), "pids_limit must be above 0")
	}
	hc := o.block("healthcheck")
	for _, d := range []string{"interval", "timeout", "start_period"} {
		if s := hc.str(d); s != "" {
			if _, err := parseDuration(s); err != nil {
				bad(cty.GetAttrPath("healthcheck").GetAttr(d), "%s", err)
			}
		}
	}
	if n, ok := hc.integer("retries"); ok && n <= 0 {
		bad(cty.GetAttrPath("healthcheck").GetAttr("retries"), "retries must be above 0")
	}
	if !hc.isNull() && len(hc.strings("command")) == 0 && !hc.unknown("command") {
		bad(cty.GetAttrPath("healthcheck").GetAttr("command"), "the healthcheck command is empty")
	}
	return diags
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func (p *Provider) planContainer(ctx context.Context, owner providers.Owner, prior, cfg cty.Value) (resp providers.PlanResponse) {
	o := obj{cfg}
	planned := cfg
	def := func(name, value string) {
		if !o.set(name) && !o.unknown(name) {
			planned = with(planned, name, cty.StringVal(value))
		}
	}
	def("network_mode", "bridge")
	def("restart", "no")
	bridged := obj{planned}.str("network_mode") == "bridge"
	if bridged {
		if d := p.staticAddrClash(ctx, owner, o, prior); d != nil {
			resp.Diagnostics = d
			return resp
		}
	}
	if bridged && (len(o.strings("ports")) > 0 || len(o.blocks("publish")) > 0 || o.boolean("publish_all", false)) {
		// Published ports go to the address on the first network.
		if bs := o.blocks("network"); len(bs) > 0 {
			if n := bs[0].str("name"); n != "" && p.internalNetwork(n) {
				resp.Diagnostics = providers.AttributeErrorf(cty.GetAttrPath("network").IndexInt(0).GetAttr("name"),
					"network %q is internal: it has no published ports; remove ports or attach the container first to a network that is not internal", n)
				return resp
			}
		}
	}
	def("state", "running")
	nameSet := o.set("name") || o.unknown("name")
	// A new container: its name (from its address unless set) and ID are
	// known once it is made. A replacement is planned the same way, as
	// the engine plans its create again at apply time.
	create := func() providers.PlanResponse {
		if !nameSet {
			planned = with(planned, "name", cty.UnknownVal(cty.String))
		}
		planned = with(planned, "ip_address", cty.UnknownVal(cty.String))
		planned = with(planned, "published_ports", cty.UnknownVal(cty.List(cty.String)))
		if !bridged {
			planned = with(planned, "ip_address", cty.NullVal(cty.String))
			planned = with(planned, "published_ports", cty.NullVal(cty.List(cty.String)))
		}
		resp.Planned = with(planned, "id", cty.UnknownVal(cty.String))
		return resp
	}
	if prior.IsNull() {
		return create()
	}
	if !nameSet {
		planned = with(planned, "name", prior.GetAttr("name"))
	}
	var forces []string
	for name := range p.types[KindContainer].AttributeTypes() {
		if inPlace[name] || bridged && netInPlace[name] || name == "ip_address" || name == "published_ports" {
			continue
		}
		a, b := prior.GetAttr(name), planned.GetAttr(name)
		if !b.IsWhollyKnown() || !a.Equals(b).True() {
			forces = append(forces, name)
		}
	}
	sort.Strings(forces)
	for _, f := range forces {
		resp.RequiresReplace = append(resp.RequiresReplace, cty.GetAttrPath(f))
	}
	if len(forces) > 0 {
		return create()
	}
	// The addresses and host ports stay unless the networking changes or
	// drifted (a lost attachment reads as an empty address).
	netChanged := false
	for name := range netInPlace {
		if name == "ip_address" || name == "published_ports" {
			continue
		}
		if a, b := prior.GetAttr(name), planned.GetAttr(name); !b.IsWhollyKnown() || !a.Equals(b).True() {
			netChanged = true
		}
	}
	if ip := prior.GetAttr("ip_address"); bridged && (netChanged || ip.IsNull() || ip.AsString() == "") {
		planned = with(planned, "ip_address", cty.UnknownVal(cty.String))
		planned = with(planned, "published_ports", cty.UnknownVal(cty.List(cty.String)))
	} else {
		planned = with(planned, "ip_address", prior.GetAttr("ip_address"))
		planned = with(planned, "published_ports", prior.GetAttr("published_ports"))
	}
	resp.Planned = with(planned, "id", prior.GetAttr("id"))
	return resp
}

// lookupImage finds the image a container names: an image resource's id
// (name@digest) or a reference in the store.
func (p *Provider) lookupImage(s string) (content.Image, error) {
	if strings.Contains(s, "@sha256:") {
		img, err := p.hosts.Content.Image(digestOf(s))
		if err != nil {
			return img, fmt.Errorf("image %s is not in berth's store (was it removed by hand?); the next apply pulls it again: %w", s, err)
		}
		return img, nil
	}
	name := s
	if ref, err := registry.ParseReference(s); err == nil {
		name = ref.String()
	}
	img, err := p.hosts.Content.Image(name)
	if err != nil {
		return img, fmt.Errorf("image %q is not in berth's store: declare it with an image resource (image \"x\" { ref = %q }) and use image.x, or load it with berth image load: %w", s, s, err)
	}
	return img, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (p *Provider) applyContainer(ctx context.Context, owner providers.Owner, id string, prior, planned cty.Value) (resp providers.ApplyResponse) {
	if id == "" {
		return p.createContainer(ctx, owner, planned)
	}
	o := obj{planned}
	dir := shim.Dir(p.hosts.ContainerDir(id))
	rec, err := dir.Record()
	if err != nil {
		resp.Diagnostics = providers.Errorf("container %s: %s", id, err)
		return resp
	}
	res, _ := resourcesOf(o.block("resources"))
	if rec.Spec.Resources != res {
		rec.Spec.Resources = res
		if err := dir.WriteRecord(rec); err != nil {
			resp.Diagnostics = providers.Errorf("container %s: %s", id, err)
			return resp
		}
	}
	st, _ := p.hosts.Runtime.Status(id)
	if st.Running {
		if err := p.hosts.Runtime.Update(id, res); err != nil {
			resp.Diagnostics = providers.AttributeErrorf(cty.GetAttrPath("resources"), "%s", err)
			return resp
		}
	}
	if o.str("network_mode") == "bridge" {
		var exposed []string
		if img, err := p.lookupImage(o.str("image")); err == nil {
			exposed = img.Config.ExposedPorts
		}
		nr, err := p.setupNetwork(ctx, id, owner.Address, owner.Token, rec.Spec.Hostname, o, exposed, rec.Spec.EtcDir)
		if err != nil {
			resp.Diagnostics = providers.Errorf("container %s: %s", rec.Address, err)
			resp.ID = id
			return resp
		}
		planned = withNet(planned, nr)
		if st, _ := dir.State(); userStopped(st, prior) {
			// Stopped by `berth stop` and kept so: out of the rotation.
			if err := p.hosts.Rotate(ctx, id, false); err != nil {
				resp.Diagnostics = providers.Errorf("container %s: %s", rec.Address, err)
				resp.ID = id
				return resp
			}
		}
	}
	if err := p.setRunning(ctx, dir, rec, o.str("state") != "stopped", prior); err != nil {
		resp.Diagnostics = providers.Errorf("container %s: %s", rec.Address, err)
		resp.ID = id
		return resp
	}
	if err := p.remember(owner, KindContainer, id, planned); err != nil {
		resp.Diagnostics = providers.Errorf("container %s: %s", id, err)
		return resp
	}
	resp.ID, resp.State = id, planned
	return resp
}

// setRunning starts or stops the container of dir. A container still
// running without its shim (the shim was killed) is adopted by a new one,
// without a restart.
func (p *Provider) setRunning(ctx context.Context, dir shim.Dir, rec *shim.Record, run bool, prior cty.Value) error {
	if !run {
		return p.hosts.Stop(ctx, rec, false)
	}
	if st, _ := dir.State(); userStopped(st, prior) {
		return nil
	}
	return p.hosts.Start(ctx, rec, p.opts.Exe, p.opts.ShimArgs(string(dir)))
}

func (p *Provider) createContainer(ctx context.Context, owner providers.Owner, planned cty.Value) (resp providers.ApplyResponse) {
	o := obj{planned}
	id := newID()
	name := o.str("name")
	if name == "" {
		name = defaultName(owner.Address)
	}
	planned = with(planned, "name", cty.StringVal(name))
	planned = with(planned, "id", cty.StringVal(id))
	var vols []string
	// A failed create leaves nothing: no mount, no volume marked in use,
	// no anonymous volume, no record.
	fail := func(path cty.Path, err error) providers.ApplyResponse {
		p.undoCreate(ctx, id, vols)
		if ferr := p.objs.remove(owner.Token); ferr != nil {
			resp.ID = id
		}
		resp.Diagnostics = providers.AttributeErrorf(path, "container %s: %s", owner.Address, err)
		return resp
	}
	// Remember first: an interrupted create is found again by its token.
	if err := p.remember(owner, KindContainer, id, planned); err != nil {
		resp.Diagnostics = providers.Errorf("container %s: %s", owner.Address, err)
		return resp
	}
	img, err := p.lookupImage(o.str("image"))
	if err != nil {
		return fail(cty.GetAttrPath("image"), err)
	}
	layers := make([]rootfs.Layer, len(img.Layers))
	for i, l := range img.Layers {
		layers[i] = rootfs.Layer{DiffID: l.DiffID, Open: func(ctx context.Context) (io.ReadCloser, error) {
			return p.hosts.Content.OpenLayer(ctx, l)
		}}
	}
	lowers, err := p.hosts.Layers.Prepare(ctx, layers)
	if err != nil {
		return fail(cty.GetAttrPath("image"), err)
	}
	merged, err := p.hosts.Layers.Mount(ctx, id, lowers)
	if err != nil {
		return fail(nil, err)
	}
	dir := shim.Dir(p.hosts.ContainerDir(id))
	rec := &shim.Record{
		ID:          id,
		Address:     owner.Address,
		Owner:       owner.Token,
		Image:       o.str("image"),
		ImageDigest: img.Digest,
		Lowers:      lowers,
		RuntimeRoot: filepath.Join(p.hosts.Root, "runtime"),
		Created:     time.Now().UTC(),
		Log:         shim.LogConfig{},
	}
	spec, used, err := p.containerSpec(ctx, o, img.Config, id, name, merged, string(dir))
	vols = used
	if err != nil {
		return fail(nil, err)
	}
	bridged := o.str("network_mode") == "bridge"
	if bridged {
		// The namespace's path is in the record before anything of the
		// network is made, so that a create killed halfway is found and
		// deleted whole.
		spec.NetNS = p.netnsPath(id)
	}
	if target, ok := strings.CutPrefix(o.str("network_mode"), "container:"); ok {
		ns, err := p.joinNetwork(target, spec.EtcDir)
		if err != nil {
			return fail(cty.GetAttrPath("network_mode"), err)
		}
		spec.NetNS = ns
	}
	rec.Spec, rec.Volumes = spec, used
	rec.Entrypoint, rec.Cmd = splitCommand(img.Config.Entrypoint, img.Config.Cmd, o.strings("entrypoint"), o.strings("command"), o.set("entrypoint"), o.set("command"))
	rec.Restart = shim.Restart{Policy: o.str("restart")}
	if n, ok := o.integer("max_retries"); ok {
		rec.Restart.MaxRetries = int(n)
	}
	rec.StopSignal = o.str("stop_signal")
	if rec.StopSignal == "" {
		rec.StopSignal = img.Config.StopSignal
	}
	rec.StopTimeout = 10 * time.Second
	if n, ok := o.float("stop_timeout"); ok {
		rec.StopTimeout = time.Duration(n * float64(time.Second))
	}
	if hc := o.block("healthcheck"); !hc.isNull() {
		h := &shim.Health{Command: hc.strings("command")}
		h.Interval, _ = durationOr(hc.str("interval"))
		h.Timeout, _ = durationOr(hc.str("timeout"))
		h.StartPeriod, _ = durationOr(hc.str("start_period"))
		if n, ok := hc.integer("retries"); ok {
			h.Retries = int(n)
		}
		rec.Health = h
	}
	if bridged && p.opts.Rotate != nil {
		// A replica that dies or turns unhealthy leaves the rotation of
		// its published ports, and comes back when it serves again.
		rec.Notify = p.opts.Rotate(string(dir))
	}
	if err := dir.WriteRecord(rec); err != nil {
		return fail(nil, err)
	}
	if bridged {
		nr, err := p.setupNetwork(ctx, id, owner.Address, owner.Token, spec.Hostname, o, img.Config.ExposedPorts, spec.EtcDir)
		if err != nil {
			return fail(errPath(err, cty.GetAttrPath("network")), err)
		}
		planned = withNet(planned, nr)
	}
	if err := p.remember(owner, KindContainer, id, planned); err != nil {
		return fail(nil, err)
	}
	if o.str("state") != "stopped" {
		if err := p.hosts.Start(ctx, rec, p.opts.Exe, p.opts.ShimArgs(string(dir))); err != nil {
			return fail(cty.GetAttrPath("command"), err)
		}
	}
	resp.ID, resp.State = id, planned
	return resp
}

func durationOr(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return parseDuration(s)
}

// containerSpec builds the runtime spec of a container from its
// configuration and its image's defaults, as Docker combines them. It
// prepares the container's volumes (copy-up, use count) and bind sources,
// and returns the names of the volumes it uses.
func (p *Provider) containerSpec(ctx context.Context, o obj, ic content.Config, id, name, rootfsPath, dir string) (runtime.Spec, []string, error) {
	s := runtime.Spec{
		ID:           id,
		Rootfs:       rootfsPath,
		Args:         commandLine(ic.Entrypoint, ic.Cmd, o.strings("entrypoint"), o.strings("command"), o.set("entrypoint"), o.set("command")),
		Env:          mergeEnv(ic.Env, o.stringMap("env")),
		Cwd:          firstOf(o.str("working_dir"), ic.WorkingDir),
		User:         firstOf(o.str("user"), ic.User),
		Hostname:     firstOf(o.str("hostname"), name),
		ReadOnly:     o.boolean("read_only", false),
		HostNetwork:  o.str("network_mode") == "host",
		CgroupParent: p.opts.CgroupParent,
		EtcDir:       filepath.Join(dir, "etc"),
	}
	s.Env = append(s.Env, "HOSTNAME="+s.Hostname)
	res, err := resourcesOf(o.block("resources"))
	if err != nil {
		return s, nil, err
	}
	s.Resources = res
	var vols []string
	targets := map[string]bool{}
	for _, m := range o.blocks("mount") {
		target := filepath.Clean(m.str("target"))
		targets[target] = true
		switch m.str("type") {
		case "volume":
			vname := m.str("source")
			v, err := p.hosts.Volumes.Get(vname)
			if err != nil {
				return s, vols, fmt.Errorf("volume %q: %w; declare it: volume %q {}", vname, err, vname)
			}
			if m.boolean("copy_up", true) {
				if _, err := p.hosts.Volumes.CopyUp(ctx, vname, rootfsPath, target); err != nil {
					return s, vols, fmt.Errorf("fill volume %q from the image at %s: %w", vname, target, err)
				}
			}
			if err := p.hosts.Volumes.Use(vname, id); err != nil {
				return s, vols, err
			}
			vols = append(vols, vname)
			s.Mounts = append(s.Mounts, runtime.Mount{Type: "bind", Source: v.Path, Target: target, ReadOnly: m.boolean("read_only", false)})
		case "bind":
			src := m.str("source")
			if _, err := os.Stat(src); err != nil {
				if !m.boolean("create_host_path", false) {
					return s, vols, fmt.Errorf("bind source %q does not exist: create it, or set create_host_path = true", src)
				}
				if err := os.MkdirAll(src, 0o755); err != nil {
					return s, vols, fmt.Errorf("create bind source: %w", err)
				}
			}
			s.Mounts = append(s.Mounts, runtime.Mount{Type: "bind", Source: src, Target: target, ReadOnly: m.boolean("read_only", false)})
		case "tmpfs":
			size, _ := parseSize(m.str("size"))
			if m.str("size") == "" {
				size = 0
			}
			s.Mounts = append(s.Mounts, runtime.Mount{Type: "tmpfs", Target: target, Size: size, ReadOnly: m.boolean("read_only", false)})
		}
	}
	// The image's VOLUMEs that no mount covers get a volume of their own,
	// filled from the image, as Docker's anonymous volumes.
	for _, vp := range ic.Volumes {
		target := filepath.Clean(vp)
		if targets[target] {
			continue
		}
		vname := id + "-" + strings.Trim(strings.ReplaceAll(target, "/", "-"), "-")
		v, err := p.hosts.Volumes.Create(ctx, sanitize(vname), "container:"+id, map[string]string{"berth.anonymous": "true"})
		if err != nil {
			return s, vols, err
		}
		if _, err := p.hosts.Volumes.CopyUp(ctx, v.Name, rootfsPath, target); err != nil {
			return s, vols, err
		}
		if err := p.hosts.Volumes.Use(v.Name, id); err != nil {
			return s, vols, err
		}
		vols = append(vols, v.Name)
		s.Mounts = append(s.Mounts, runtime.Mount{Type: "bind", Source: v.Path, Target: target})
	}
	return s, vols, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// resourcesOf converts a resources block into cgroup limits.
func resourcesOf(r obj) (runtime.Resources, error) {
	var out runtime.Resources
	if r.isNull() {
		return out, nil
	}
	if c, ok := r.float("cpus"); ok && c > 0 {
		out.CPUPeriod = 100000
		out.CPUQuota = int64(math.Round(c * 100000))
	}
	if s := r.str("memory"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			return out, err
		}
		out.Memory = n
	}
	if s := r.str("memory_swap"); s != "" {
		if s == "-1" {
			out.MemorySwap = -1
		} else {
			n, err := parseSize(s)
			if err != nil {
				return out, err
			}
			out.MemorySwap = n
		}
	}
	if n, ok := r.integer("pids_limit"); ok {
		out.PidsLimit = n
	}
	return out, nil
}

func (p *Provider) readContainer(ctx context.Context, id string, applied cty.Value) (resp providers.ReadResponse) {
	dir := shim.Dir(p.hosts.ContainerDir(id))
	rec, err := dir.Record()
	if err != nil {
		resp.State = cty.NullVal(p.types[KindContainer])
		if !errors.Is(err, os.ErrNotExist) {
			resp.Diagnostics = providers.Errorf("container %s: %s", id, err)
		}
		return resp
	}
	if applied.IsNull() {
		resp.State = applied
		return resp
	}
	st, _ := dir.State()
	// The kernel's view, read from the cgroup files: cheap enough for
	// every container at every plan.
	probe := runtime.ProbeCgroup(rec.Spec.CgroupParent, id, st.Pid)
	alive := shim.ShimAlive(st)
	running := probe.Running || alive && (st.Status == shim.StatusRunning || st.Status == shim.StatusStarting || st.Status == shim.StatusRestarting)
	// "unless-stopped" respects `berth stop`: such a stop is not drift.
	if userStopped(st, applied) {
		running = true
	}
	state := "stopped"
	switch {
	case probe.Running && !alive:
		// Its shim died: nothing records its exit or restarts it. Apply
		// gives it a new shim, which adopts it without a restart.
		state = "unsupervised"
	case running:
		state = "running"
	}
	v := with(applied, "state", cty.StringVal(state))
	if probe.Running {
		v = with(v, "resources", liveResources(obj{applied}.block("resources"), probe.Limits, p.types[KindContainer].AttributeType("resources")))
	}
	if target, ok := strings.CutPrefix(obj{applied}.str("network_mode"), "container:"); ok && rec.Spec.NetNS != "" {
		// A replaced target has a new namespace: the joined one is stale
		// and the container must join again.
		if ns, err := p.targetNetNS(target); err != nil || ns != rec.Spec.NetNS {
			v = with(v, "network_mode", cty.StringVal("container:"+target+" (namespace gone)"))
		}
	}
	if nr, err := p.loadNetRecord(id); err != nil {
		resp.Diagnostics = providers.Errorf("container %s: %s", id, err)
	} else if nr != nil {
		lv, err := p.liveNetValue(ctx, nr, v)
		if err != nil {
			resp.Diagnostics = providers.Errorf("container %s: %s", id, err)
		} else {
			v = lv
		}
	}
	resp.ID, resp.State = id, v
	return resp
}

// userStopped reports whether `berth stop` stopped a container declared
// running whose policy is "unless-stopped": such a stop is respected, not
// drift, until `berth start`.
func userStopped(st shim.State, applied cty.Value) bool {
	o := obj{applied}
	return st.Status == shim.StatusStopped && st.StoppedByUser &&
		o.str("restart") == "unless-stopped" && o.str("state") != "stopped"
}

// liveResources returns the resources block as the kernel has it, written
// as the applied configuration wrote it where the values agree.
func liveResources(applied obj, live runtime.Resources, ty cty.Type) cty.Value {
	m := map[string]cty.Value{}
	for name, aty := range ty.AttributeTypes() {
		m[name] = cty.NullVal(aty)
	}
	any := false
	if live.CPUQuota > 0 && live.CPUPeriod > 0 {
		c := float64(live.CPUQuota) / float64(live.CPUPeriod)
		if a, ok := applied.float("cpus"); ok && math.Abs(a-c) < 0.0005 {
			m["cpus"] = applied.get("cpus")
		} else {
			m["cpus"] = cty.NumberVal(new(big.Float).SetFloat64(math.Round(c*1000) / 1000))
		}
		any = true
	}
	page := int64(os.Getpagesize())
	// The kernel keeps limits in whole pages.
	same := func(n, live int64) bool { return n/page*page == live || n == live }
	if live.Memory > 0 {
		if n, err := parseSize(applied.str("memory")); err == nil && same(n, live.Memory) {
			m["memory"] = applied.get("memory")
		} else {
			m["memory"] = cty.StringVal(formatSize(live.Memory))
		}
		any = true
	}
	if s := applied.str("memory_swap"); s != "" {
		switch n, err := parseSize(s); {
		case s == "-1" && live.MemorySwap == 0, err == nil && same(n, live.MemorySwap):
			m["memory_swap"] = applied.get("memory_swap")
		case live.MemorySwap > 0:
			m["memory_swap"] = cty.StringVal(formatSize(live.MemorySwap))
		}
		any = true
	}
	if live.PidsLimit > 0 {
		m["pids_limit"] = cty.NumberIntVal(live.PidsLimit)
		any = true
	}
	if !any && applied.isNull() {
		return cty.NullVal(ty)
	}
	return cty.ObjectVal(m)
}

func (p *Provider) deleteContainer(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	dir := shim.Dir(p.hosts.ContainerDir(id))
	rec, err := dir.Record()
	if errors.Is(err, os.ErrNotExist) {
		rec = &shim.Record{ID: id, StopTimeout: 10 * time.Second}
	} else if err != nil {
		return err
	}
	if err := p.hosts.Stop(ctx, rec, false); err != nil {
		shim.Kill(dir)
		if err := p.hosts.Runtime.Destroy(id); err != nil {
			return err
		}
	}
	if err := p.teardownNetwork(ctx, id); err != nil {
		return err
	}
	if err := p.hosts.Layers.Remove(id); err != nil {
		return err
	}
	for _, v := range rec.Volumes {
		if err := p.hosts.Volumes.Release(v, id); err != nil {
			return err
		}
		if vol, err := p.hosts.Volumes.Get(v); err == nil && vol.Owner == "container:"+id {
			if err := p.hosts.Volumes.Remove(ctx, v); err != nil {
				return err
			}
		}
	}
	if err := os.RemoveAll(string(dir)); err != nil {
		return fmt.Errorf("remove container directory: %w", err)
	}
	return nil
}

// undoCreate removes what a failed create of container id made.
func (p *Provider) undoCreate(ctx context.Context, id string, vols []string) {
	d := shim.Dir(p.hosts.ContainerDir(id))
	shim.Kill(d)
	_ = p.hosts.Runtime.Destroy(id)
	_ = p.teardownNetwork(ctx, id)
	_ = p.hosts.Layers.Remove(id)
	for _, v := range vols {
		_ = p.hosts.Volumes.Release(v, id)
		if vol, err := p.hosts.Volumes.Get(v); err == nil && vol.Owner == "container:"+id {
			_ = p.hosts.Volumes.Remove(ctx, v)
		}
	}
	_ = os.RemoveAll(string(d))
}

// Containers returns the records of every container on the host.
func (h *Host) Containers() ([]*shim.Record, error) {
	ents, err := os.ReadDir(filepath.Join(h.Root, "containers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*shim.Record
	for _, e := range ents {
		if r, err := shim.Dir(h.ContainerDir(e.Name())).Record(); err == nil {
			out = append(out, r)
		}
	}
	return out, nil
}
