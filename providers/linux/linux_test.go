package linux

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux/runtime"
	"github.com/berthhq/berth/providers/linux/shim"
	"github.com/berthhq/berth/providers/providertest"
	"github.com/zclconf/go-cty/cty"
)

// The test binary is also the shim and the container init.
func TestMain(m *testing.M) {
	if runtime.IsInit() {
		runtime.Init()
	}
	if len(os.Args) == 3 && os.Args[1] == "__shim" {
		if err := shim.Serve(context.Background(), os.Args[2]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fixture is a provider with its own root and cgroup parent, and the
// busybox test image in its store as "test/busybox:1".
type fixture struct {
	p      *Provider
	root   string
	parent string
	image  string
}

const testImage = "test/busybox:1"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the linux provider's tests run containers and need root")
	}
	root := t.TempDir()
	parent := fmt.Sprintf("/berth-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{
		Root:         filepath.Join(root, "linux"),
		Exe:          exe,
		ShimArgs:     func(dir string) []string { return []string{"__shim", dir} },
		CgroupParent: parent,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{p: p, root: root, parent: parent}
	img := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: []string{"sh", "-c", "echo hello from the image; sleep 1000"}, Env: []string{"FROM_IMAGE=yes"}, WorkingDir: "/tmp"})
	tar := filepath.Join(root, "busybox.tar")
	testenv.SaveDocker(t, tar, testImage, img)
	fh, err := os.Open(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	imgs, err := p.hosts.Content.Load(context.Background(), fh)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("load test image: %v (%d images)", err, len(imgs))
	}
	f.image = imgs[0].Names[0]
	t.Cleanup(func() { f.cleanup(t) })
	return f
}

// cleanup deletes every container and checks that nothing is left: no
// process, mount or cgroup.
func (f *fixture) cleanup(t *testing.T) {
	recs, _ := f.p.hosts.Containers()
	for _, r := range recs {
		if err := f.p.deleteContainer(context.Background(), r.ID); err != nil {
			t.Errorf("cleanup of container %s: %v", r.ID, err)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	sc := bufio.NewScanner(strings.NewReader(string(mi)))
	for sc.Scan() {
		if strings.Contains(sc.Text(), f.root) {
			t.Errorf("mount left behind: %s", sc.Text())
		}
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + f.parent)
	more, _ := filepath.Glob("/sys/fs/cgroup/*/*" + f.parent)
	for _, d := range append(dirs, more...) {
		sub, _ := filepath.Glob(d + "/*/")
		for _, s := range sub {
			if fi, err := os.Stat(s); err == nil && fi.IsDir() {
				t.Errorf("cgroup left behind: %s", s)
			}
		}
		os.Remove(d)
	}
}

func obj2(m map[string]cty.Value, ty cty.Type) cty.Value {
	out := map[string]cty.Value{}
	for name, aty := range ty.AttributeTypes() {
		if v, ok := m[name]; ok {
			out[name] = v
		} else {
			out[name] = cty.NullVal(aty)
		}
	}
	return cty.ObjectVal(out)
}

func (f *fixture) config(kind string, m map[string]cty.Value) cty.Value {
	return obj2(m, f.p.types[kind])
}

func strs(ss ...string) cty.Value {
	vs := make([]cty.Value, len(ss))
	for i, s := range ss {
		vs[i] = cty.StringVal(s)
	}
	return cty.ListVal(vs)
}

func TestConformance(t *testing.T) {
	f := newFixture(t)
	resTy := f.p.types[KindContainer].AttributeType("resources")
	res := func(mem string) cty.Value {
		return obj2(map[string]cty.Value{"memory": cty.StringVal(mem), "pids_limit": cty.NumberIntVal(50)}, resTy)
	}
	cases := []providertest.Case{
		{
			Kind:    KindRegistry,
			Config:  f.config(KindRegistry, map[string]cty.Value{"address": cty.StringVal("127.0.0.1:5999")}),
			Update:  f.config(KindRegistry, map[string]cty.Value{"address": cty.StringVal("127.0.0.1:5999"), "username": cty.StringVal("u"), "password": cty.StringVal("p")}),
			Replace: f.config(KindRegistry, map[string]cty.Value{"address": cty.StringVal("127.0.0.1:5998")}),
		},
		{
			Kind:   KindVolume,
			Config: f.config(KindVolume, map[string]cty.Value{"name": cty.StringVal("conf-vol")}),
			Update: f.config(KindVolume, map[string]cty.Value{"name": cty.StringVal("conf-vol"), "labels": cty.MapVal(map[string]cty.Value{"a": cty.StringVal("b")})}),
		},
		{
			Kind:    KindContainer,
			Config:  f.config(KindContainer, map[string]cty.Value{"image": cty.StringVal(f.image), "network_mode": cty.StringVal("none"), "command": strs("sleep", "1000"), "resources": res("64M")}),
			Update:  f.config(KindContainer, map[string]cty.Value{"image": cty.StringVal(f.image), "network_mode": cty.StringVal("none"), "command": strs("sleep", "1000"), "resources": res("128M")}),
			Replace: f.config(KindContainer, map[string]cty.Value{"image": cty.StringVal(f.image), "network_mode": cty.StringVal("none"), "command": strs("sleep", "999"), "resources": res("128M")}),
		},
	}
	providertest.Run(t, func(t *testing.T) providers.Provider { return f.p }, cases)
}

// A volume resource whose name another one took never claims that volume:
// its create fails, it reads as absent, and deleting it leaves the other
// volume and its data alone.
func TestVolumeOfAnotherOwnerIsNeverClaimed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := f.config(KindVolume, map[string]cty.Value{"name": cty.StringVal("data")})
	a := providers.Owner{Address: "volume.a", Token: "tok-a"}
	b := providers.Owner{Address: "volume.b", Token: "tok-b"}
	plan := f.p.Plan(ctx, providers.PlanRequest{Kind: KindVolume, Prior: cty.NullVal(f.p.types[KindVolume]), Config: cfg})
	ra := f.p.Apply(ctx, providers.ApplyRequest{Kind: KindVolume, Owner: a, Prior: cty.NullVal(f.p.types[KindVolume]), Planned: plan.Planned, Config: cfg})
	if ra.Diagnostics.HasErrors() {
		t.Fatal(ra.Diagnostics.Err())
	}
	keep := filepath.Join(ra.State.GetAttr("path").AsString(), "keep")
	if err := os.WriteFile(keep, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	rb := f.p.Apply(ctx, providers.ApplyRequest{Kind: KindVolume, Owner: b, Prior: cty.NullVal(f.p.types[KindVolume]), Planned: plan.Planned, Config: cfg})
	if !rb.Diagnostics.HasErrors() {
		t.Fatal("a second volume with the same name was created")
	}
	for _, id := range []string{"", "data"} {
		if r := f.p.Read(ctx, providers.ReadRequest{Kind: KindVolume, ID: id, Owner: b}); !r.State.IsNull() {
			t.Errorf("Read(id %q) of the failed volume found %#v", id, r.State)
		}
	}
	if d := f.p.Delete(ctx, providers.DeleteRequest{Kind: KindVolume, ID: "data", Owner: b}); d.Diagnostics.HasErrors() {
		t.Fatal(d.Diagnostics.Err())
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "precious" {
		t.Errorf("the other volume's data after the delete: %q, %v", b, err)
	}
	if r := f.p.Read(ctx, providers.ReadRequest{Kind: KindVolume, ID: "data", Owner: a}); r.State.IsNull() {
		t.Error("the first volume reads as gone")
	}
	if d := f.p.Delete(ctx, providers.DeleteRequest{Kind: KindVolume, ID: "data", Owner: a}); d.Diagnostics.HasErrors() {
		t.Fatal(d.Diagnostics.Err())
	}
}
