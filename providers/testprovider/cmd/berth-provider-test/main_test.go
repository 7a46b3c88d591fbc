package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/plugin"
	"github.com/zclconf/go-cty/cty"
)

// build compiles the provider binary.
func build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the provider binary")
	}
	bin := filepath.Join(t.TempDir(), "berth-provider-test")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func start(t *testing.T, bin string, env ...string) (*plugin.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	c, err := plugin.Start(ctx, "test", cmd, plugin.Options{Env: env})
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// createThing plans and applies a thing named after address.
func createThing(p providers.Provider, address string) providers.ApplyResponse {
	ctx := context.Background()
	ty := p.Schema(ctx).Kinds["thing"].Block.ImpliedType()
	cfg := map[string]cty.Value{}
	for name, at := range ty.AttributeTypes() {
		cfg[name] = cty.NullVal(at)
	}
	cfg["name"] = cty.StringVal(address)
	cfg["port"] = cty.ListValEmpty(ty.AttributeType("port").ElementType())
	config := cty.ObjectVal(cfg)
	pr := p.Plan(ctx, providers.PlanRequest{Kind: "thing", Prior: cty.NullVal(ty), Config: config})
	if pr.Diagnostics.HasErrors() {
		return providers.ApplyResponse{Diagnostics: pr.Diagnostics}
	}
	return p.Apply(ctx, providers.ApplyRequest{Kind: "thing", Owner: providers.Owner{Address: address, Token: "tok-" + address},
		Prior: cty.NullVal(ty), Planned: pr.Planned, Config: config})
}

func objects(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

func TestBinary(t *testing.T) {
	bin := build(t)

	t.Run("refuses to start without a directory", func(t *testing.T) {
		if _, err := start(t, bin); err == nil || !strings.Contains(err.Error(), "BERTH_STATE_DIR") {
			t.Errorf("start without a directory: %v", err)
		}
	})
	t.Run("refuses a bad fault", func(t *testing.T) {
		if _, err := start(t, bin, "BERTH_STATE_DIR="+t.TempDir(), "BERTH_TESTPROVIDER_FAULT=apply:explode"); err == nil || !strings.Contains(err.Error(), "explode") {
			t.Errorf("start with a bad fault: %v", err)
		}
	})

	cases := []struct {
		name      string
		fault     string
		wantErr   string // "" for success
		wantFiles int
	}{
		{"no fault", "", "", 1},
		{"fault on another address", "apply:crash-before:thing.other", "", 1},
		{"fail", "apply:fail", "injected fault", 0},
		{"crash before", "apply:crash-before:thing.a", "", 0},
		{"crash after", "apply:crash-after", "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			state := t.TempDir()
			env := []string{"BERTH_STATE_DIR=" + state}
			if c.fault != "" {
				env = append(env, "BERTH_TESTPROVIDER_FAULT="+c.fault)
			}
			p, err := start(t, bin, env...)
			if err != nil {
				t.Fatal(err)
			}
			resp := createThing(p, "thing.a")
			crash := strings.HasPrefix(c.fault, "apply:crash") && !strings.Contains(c.fault, "other")
			msg := ""
			if resp.Diagnostics.HasErrors() {
				msg = resp.Diagnostics.Err().Error()
			}
			switch {
			case crash && !strings.Contains(msg, "exit status 3"):
				t.Errorf("crashed apply: %q, want an error with the exit status", msg)
			case !crash && c.wantErr == "" && msg != "":
				t.Errorf("apply: %s", msg)
			case c.wantErr != "" && !strings.Contains(msg, c.wantErr):
				t.Errorf("apply: %q, want %q", msg, c.wantErr)
			}
			if n := objects(t, filepath.Join(state, "testprovider")); n != c.wantFiles {
				t.Errorf("%d objects, want %d", n, c.wantFiles)
			}
			if c.wantFiles == 0 {
				return
			}
			// A new process finds the object by its owner token, as berth
			// does after a crash.
			q, err := start(t, bin, "BERTH_STATE_DIR="+state)
			if err != nil {
				t.Fatal(err)
			}
			rr := q.Read(context.Background(), providers.ReadRequest{Kind: "thing", Owner: providers.Owner{Address: "thing.a", Token: "tok-thing.a"}})
			if rr.Diagnostics.HasErrors() || rr.State.IsNull() || rr.State.GetAttr("name").AsString() != "thing.a" {
				t.Errorf("read by owner: %#v %v", rr.State, rr.Diagnostics)
			}
		})
	}
}
