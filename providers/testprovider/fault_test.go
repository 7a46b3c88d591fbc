package testprovider

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

func TestParseFaults(t *testing.T) {
	cases := []struct {
		in      string
		want    []Fault
		wantErr string
	}{
		{in: "", want: nil},
		{in: "apply:fail", want: []Fault{{Op: "apply", Mode: "fail"}}},
		{in: "apply:crash-after:thing.web[1], delete:hang", want: []Fault{{Op: "apply", Mode: "crash-after", Address: "thing.web[1]"}, {Op: "delete", Mode: "hang"}}},
		{in: `read:fail:thing.x["a:b"]`, want: []Fault{{Op: "read", Mode: "fail", Address: `thing.x["a:b"]`}}},
		{in: "plan:crash-before:thing.a", want: []Fault{{Op: "plan", Mode: "crash-before", Address: "thing.a"}}},
		{in: "apply", wantErr: "want OP:MODE"},
		{in: "write:fail", wantErr: `unknown operation "write"`},
		{in: "apply:explode", wantErr: `unknown mode "explode"`},
		{in: "apply:fail:", wantErr: "address after the second colon is empty"},
	}
	for _, c := range cases {
		got, err := ParseFaults(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseFaults(%q): %v, want error %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseFaults(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		for _, f := range got {
			if back, err := ParseFaults(f.String()); err != nil || len(back) != 1 || back[0] != f {
				t.Errorf("%v does not round-trip: %v %v", f, back, err)
			}
		}
	}
}

func TestOptionsFromEnv(t *testing.T) {
	cases := []struct {
		env       map[string]string
		wantErr   bool
		wantDelay time.Duration
		faults    int
	}{
		{env: map[string]string{}},
		{env: map[string]string{EnvFault: "read:fail,plan:hang"}, faults: 2},
		{env: map[string]string{EnvDelay: "40ms"}, wantDelay: 40 * time.Millisecond},
		{env: map[string]string{EnvDelay: "soon"}, wantErr: true},
		{env: map[string]string{EnvDelay: "-1s"}, wantErr: true},
		{env: map[string]string{EnvFault: "nope"}, wantErr: true},
	}
	for _, c := range cases {
		opts, err := OptionsFromEnv(func(k string) string { return c.env[k] })
		if (err != nil) != c.wantErr {
			t.Errorf("%v: err %v, want error %v", c.env, err, c.wantErr)
			continue
		}
		var o options
		for _, opt := range opts {
			opt(&o)
		}
		if o.delay != c.wantDelay || len(o.faults) != c.faults {
			t.Errorf("%v: delay %v faults %v", c.env, o.delay, o.faults)
		}
	}
	dirs := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvDir: "/a", "BERTH_STATE_DIR": "/s"}, "/a"},
		{map[string]string{"BERTH_STATE_DIR": "/s"}, "/s/testprovider"},
		{map[string]string{}, ""},
	}
	for _, d := range dirs {
		if got := DirFromEnv(func(k string) string { return d.env[k] }); got != d.want {
			t.Errorf("DirFromEnv(%v) = %q, want %q", d.env, got, d.want)
		}
	}
}

// faultRun creates thing.a and thing.b without faults, then runs op on
// address with the fault and reports the diagnostics.
func faultRun(t *testing.T, fault, op, address string, extra ...Option) (providers.Diagnostics, string, *int) {
	t.Helper()
	dir := t.TempDir()
	clean := New(dir)
	ids := map[string]string{}
	states := map[string]cty.Value{}
	for _, a := range []string{"thing.a", "thing.b"} {
		r := create(t, clean, "thing", a, `name = "`+a+`"`)
		ids[a], states[a] = r.ID, r.State
	}
	faults, err := ParseFaults(fault)
	if err != nil {
		t.Fatal(err)
	}
	exited := new(int)
	*exited = -1
	p := New(dir, append([]Option{WithFaults(faults...), withExit(func(c int) { *exited = c })}, extra...)...)
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	var diags providers.Diagnostics
	id, st := ids[address], states[address]
	switch op {
	case OpRead:
		rr := p.Read(cctx, providers.ReadRequest{Kind: "thing", ID: id, Owner: owner(address)})
		diags = rr.Diagnostics
	case OpPlan:
		// The private data from Read tells the address.
		priv := clean.Read(ctx, providers.ReadRequest{Kind: "thing", ID: id, Owner: owner(address)}).Private
		pr := p.Plan(cctx, providers.PlanRequest{Kind: "thing", Prior: st, Config: stateConfig(st), Private: priv})
		diags = pr.Diagnostics
	case OpApply:
		cfg := stateConfig(st).AsValueMap()
		cfg["value"] = cty.StringVal("changed")
		pr := clean.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: st, Config: cty.ObjectVal(cfg)})
		ar := p.Apply(cctx, providers.ApplyRequest{Kind: "thing", ID: id, Owner: owner(address), Prior: st, Planned: pr.Planned, Config: cty.ObjectVal(cfg)})
		diags = ar.Diagnostics
	case OpDelete:
		dr := p.Delete(cctx, providers.DeleteRequest{Kind: "thing", ID: id, Owner: owner(address), Prior: st})
		diags = dr.Diagnostics
	}
	return diags, filepath.Join(dir, id+".json"), exited
}

func TestFaults(t *testing.T) {
	cases := []struct {
		fault, op, address string
		wantErr            string // "" for success
		wantExit           bool
		// wantValue is the value the file holds after the call: "" for
		// none (file gone), "unchanged" or "changed".
		wantFile string
	}{
		{"read:fail", OpRead, "thing.a", "injected fault: read of thing.a fails", false, "unchanged"},
		{"read:fail:thing.b", OpRead, "thing.a", "", false, "unchanged"},
		{"read:fail:thing.b", OpRead, "thing.b", "read of thing.b fails", false, "unchanged"},
		{"plan:fail", OpPlan, "thing.a", "plan of thing.a", false, "unchanged"},
		{"plan:fail:thing.a", OpPlan, "thing.a", "plan of thing.a", false, "unchanged"},
		{"plan:fail:thing.b", OpPlan, "thing.a", "", false, "unchanged"},
		{"apply:fail:thing.a", OpApply, "thing.a", `apply of thing.a (name "thing.a") fails`, false, "unchanged"},
		{"apply:fail:thing.b", OpApply, "thing.a", "", false, "changed"},
		{"delete:fail", OpDelete, "thing.b", "delete of thing.b", false, "unchanged"},
		{"delete:fail:thing.a", OpDelete, "thing.b", "", false, ""},
		{"apply:hang", OpApply, "thing.a", "hung until it was cancelled", false, "unchanged"},
		{"delete:hang:thing.a", OpDelete, "thing.a", "hung until it was cancelled", false, "unchanged"},
		{"read:hang", OpRead, "thing.a", "hung", false, "unchanged"},
		{"apply:crash-before", OpApply, "thing.a", "crashed", true, "unchanged"},
		{"apply:crash-after", OpApply, "thing.a", "crashed", true, "changed"},
		{"delete:crash-before", OpDelete, "thing.a", "crashed", true, "unchanged"},
		{"delete:crash-after", OpDelete, "thing.a", "crashed", true, ""},
	}
	for _, c := range cases {
		t.Run(strings.NewReplacer(":", "_").Replace(c.fault)+"_"+c.op+"_"+c.address, func(t *testing.T) {
			start := time.Now()
			diags, file, exited := faultRun(t, c.fault, c.op, c.address)
			if c.wantErr == "" {
				mustOK(t, c.op, diags)
			} else if !diags.HasErrors() || !strings.Contains(diags.Err().Error(), c.wantErr) {
				t.Errorf("diagnostics %v, want %q", diags, c.wantErr)
			}
			if (*exited == crashStatus) != c.wantExit {
				t.Errorf("exit %d, want exit: %v", *exited, c.wantExit)
			}
			if strings.Contains(c.fault, "hang") && time.Since(start) < 150*time.Millisecond {
				t.Errorf("hang returned after %v, before the context was done", time.Since(start))
			}
			b, err := os.ReadFile(file)
			switch {
			case c.wantFile == "" && err == nil:
				t.Errorf("the object is still there")
			case c.wantFile != "" && err != nil:
				t.Errorf("the object is gone: %v", err)
			case c.wantFile == "changed" && !strings.Contains(string(b), `"changed"`):
				t.Errorf("the work was not done:\n%s", b)
			case c.wantFile == "unchanged" && strings.Contains(string(b), `"changed"`):
				t.Errorf("the work was done:\n%s", b)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	p := New(t.TempDir(), WithDelay(1500*time.Millisecond))
	start := time.Now()
	p.Read(ctx, providers.ReadRequest{Kind: "thing", ID: "thing-x"})
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("read took %v, want at least the delay", d)
	}
	// Plan does not sleep.
	start = time.Now()
	p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: cty.NullVal(thingKind().ty), Config: decode(t, p, "thing", "")})
	if d := time.Since(start); d >= 1500*time.Millisecond {
		t.Errorf("plan took %v, want no delay", d)
	}
	// A cancelled context cuts the delay short.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	start = time.Now()
	dr := p.Delete(cctx, providers.DeleteRequest{Kind: "thing", ID: "thing-x"})
	if d := time.Since(start); d >= 1500*time.Millisecond || !dr.Diagnostics.HasErrors() {
		t.Errorf("cancelled delete took %v: %v", d, dr.Diagnostics)
	}
}
