package linux

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// newPlanProvider returns a provider with its own root, confined or not,
// for Validate and Plan only.
func newPlanProvider(t *testing.T, confined bool) *Provider {
	t.Helper()
	p, err := New(Options{Root: filepath.Join(t.TempDir(), "linux"), Confined: confined})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfinedLooksAtNoHostPath checks that a confined provider validates
// bind sources, image archives and CA files without looking at the host's
// files, while an unconfined one tells that they are missing.
func TestConfinedLooksAtNoHostPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-file")
	ctx := context.Background()
	for _, tt := range []struct {
		kind string
		attr string
		cfg  func(p *Provider) cty.Value
	}{
		{KindContainer, "source", func(p *Provider) cty.Value {
			mountTy := p.types[KindContainer].AttributeType("mount").ElementType()
			return obj2(map[string]cty.Value{
				"image": cty.StringVal("busybox:1"), "network_mode": cty.StringVal("none"),
				"mount": cty.ListVal([]cty.Value{obj2(map[string]cty.Value{
					"type": cty.StringVal("bind"), "source": cty.StringVal(missing), "target": cty.StringVal("/data"),
				}, mountTy)}),
			}, p.types[KindContainer])
		}},
		{KindImage, "archive", func(p *Provider) cty.Value {
			return obj2(map[string]cty.Value{"archive": cty.StringVal(missing)}, p.types[KindImage])
		}},
		{KindRegistry, "ca_file", func(p *Provider) cty.Value {
			return obj2(map[string]cty.Value{"address": cty.StringVal("127.0.0.1:5000"), "ca_file": cty.StringVal(missing)}, p.types[KindRegistry])
		}},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			open := newPlanProvider(t, false)
			ds := open.Validate(ctx, providers.ValidateRequest{Kind: tt.kind, Config: tt.cfg(open)}).Diagnostics
			if !ds.HasErrors() || !strings.Contains(ds.Err().Error(), missing) {
				t.Fatalf("unconfined: diagnostics %v, want an error about %s: the test proves nothing", ds, missing)
			}
			confined := newPlanProvider(t, true)
			if ds := confined.Validate(ctx, providers.ValidateRequest{Kind: tt.kind, Config: tt.cfg(confined)}).Diagnostics; ds.HasErrors() {
				t.Errorf("confined: %v; a confined plan must not tell whether %s exists", ds.Err(), missing)
			}
		})
	}
}

// TestConfinedContactsNoRegistry checks that a confined provider plans an
// image without asking its registry, which an unconfined one does.
func TestConfinedContactsNoRegistry(t *testing.T) {
	// A registry that counts the connections made to it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var hits atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	host := ln.Addr().String()
	ctx := context.Background()
	plan := func(p *Provider) providers.PlanResponse {
		cfg := obj2(map[string]cty.Value{"ref": cty.StringVal(host + "/tools/app:1"), "pull": cty.StringVal("always")}, p.types[KindImage])
		return p.Plan(ctx, providers.PlanRequest{Kind: KindImage, Prior: cty.NullVal(cfg.Type()), Config: cfg})
	}
	plan(newPlanProvider(t, false))
	time.Sleep(50 * time.Millisecond) // let the accept loop count
	if hits.Load() == 0 {
		t.Fatal("an unconfined plan did not ask the registry: the test proves nothing")
	}
	hits.Store(0)
	resp := plan(newPlanProvider(t, true))
	time.Sleep(50 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Errorf("a confined plan made %d requests to the registry", n)
	}
	if resp.Diagnostics.HasErrors() {
		t.Fatalf("confined plan: %v", resp.Diagnostics.Err())
	}
	if d := resp.Planned.GetAttr("digest"); d.IsKnown() {
		t.Errorf("confined plan of an image not on the host: digest %#v, want unknown", d)
	}
	if len(resp.Diagnostics) == 0 || !strings.Contains(resp.Diagnostics[0].Summary, "contacts no registry") {
		t.Errorf("confined plan: diagnostics %v, want a warning that no registry was contacted", resp.Diagnostics)
	}
}
