package view

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/zclconf/go-cty/cty"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Helpers that keep the hand-built plans short.
var (
	str  = cty.StringVal
	num  = cty.NumberIntVal
	obj  = cty.ObjectVal
	list = cty.ListVal
	unk  = cty.UnknownVal
)

func sens(v cty.Value) cty.Value { return v.Mark(marks.Sensitive) }

func at(kind, name string) addr.Instance {
	return addr.Resource{Kind: kind, Name: name}.Instance(addr.NoKey)
}

func atKey(kind, name string, k addr.Key) addr.Instance {
	return addr.Resource{Kind: kind, Name: name}.Instance(k)
}

func nullOf(v cty.Value) cty.Value { return cty.NullVal(v.Type()) }

func attrPath(names ...string) cty.Path {
	var p cty.Path
	for _, n := range names {
		p = p.GetAttr(n)
	}
	return p
}

// The secrets below must never appear in any output.
const (
	secretOne = "TOPSECRET-one"
	secretTwo = "TOPSECRET-two"
)

// examplePlan is the plan of the package documentation: every action kind,
// a reason, a sensitive change and an output.
func examplePlan() *reconciler.Plan {
	web := obj(map[string]cty.Value{
		"command": list([]cty.Value{str("httpd"), str("-f")}),
		"id":      unk(cty.String),
		"name":    str("web"),
		"note":    cty.NullVal(cty.String),
	})
	bBefore := obj(map[string]cty.Value{"flavor": str("a"), "id": str("x1"), "name": str("b")})
	bAfter := obj(map[string]cty.Value{"flavor": str("b"), "id": unk(cty.String), "name": str("b")})
	cBefore := obj(map[string]cty.Value{"id": str("x3"), "name": str("c"), "port": num(80), "secret": sens(str(secretOne)), "value": str("old")})
	cAfter := obj(map[string]cty.Value{"id": str("x3"), "name": str("c"), "port": num(80), "secret": sens(str(secretTwo)), "value": str("new")})
	dBefore := obj(map[string]cty.Value{"id": str("x4")})
	return &reconciler.Plan{
		Changes: []*reconciler.Change{
			{Addr: at("container", "web"), Provider: "linux", Action: reconciler.Create, Before: nullOf(web), After: web},
			{Addr: at("thing", "a"), Provider: "test", Action: reconciler.NoOp, Before: dBefore, After: dBefore},
			{Addr: at("thing", "b"), Provider: "test", Action: reconciler.Replace, Reason: "flavor changed, which forces replacement",
				Before: bBefore, After: bAfter, RequiresReplace: []cty.Path{attrPath("flavor")}},
			{Addr: at("thing", "c"), Provider: "test", Action: reconciler.Update, Before: cBefore, After: cAfter},
			{Addr: at("thing", "d"), Provider: "test", Action: reconciler.Delete, Reason: "thing.d is not in the configuration",
				Before: dBefore, After: nullOf(dBefore)},
		},
		Outputs: []*reconciler.OutputChange{
			{Name: "greeting", Value: str("hello")},
			{Name: "token", Value: sens(str(secretOne)), Sensitive: true},
		},
	}
}

func TestRenderPlanGolden(t *testing.T) {
	settings := obj(map[string]cty.Value{"cpu": num(2), "memory": str("512M"), "swap": cty.NullVal(cty.String)})
	port := func(host, ctr int64) cty.Value {
		return obj(map[string]cty.Value{"host": num(host), "container": num(ctr), "protocol": str("tcp")})
	}
	nested := obj(map[string]cty.Value{
		"id":       str("n1"),
		"name":     str("nested"),
		"settings": settings,
		"ports":    list([]cty.Value{port(8080, 80), port(8443, 443)}),
		"mounts":   cty.SetVal([]cty.Value{obj(map[string]cty.Value{"source": str("/data"), "target": str("/srv")})}),
	})
	nestedAfter := obj(map[string]cty.Value{
		"id":       str("n1"),
		"name":     str("nested"),
		"settings": obj(map[string]cty.Value{"cpu": num(4), "memory": str("512M"), "swap": str("1G")}),
		"ports":    list([]cty.Value{port(8080, 80), port(9443, 443), port(53, 53)}),
		"mounts":   cty.SetVal([]cty.Value{obj(map[string]cty.Value{"source": str("/data2"), "target": str("/srv")})}),
	})
	labels := cty.MapVal(map[string]cty.Value{"app": str("web"), "tier": str("front"), "team": str("ops"), "with space": str("x")})
	labelsAfter := cty.MapVal(map[string]cty.Value{"app": str("web"), "tier": str("back"), "owner": str("me"), "with space": str("x")})
	mapped := func(l cty.Value) cty.Value {
		return obj(map[string]cty.Value{"id": str("m1"), "labels": l, "env": cty.MapValEmpty(cty.String)})
	}
	lists := func(cmd ...string) cty.Value {
		vals := make([]cty.Value, len(cmd))
		for i, c := range cmd {
			vals[i] = str(c)
		}
		return obj(map[string]cty.Value{"id": str("l1"), "command": list(vals), "dns": cty.ListValEmpty(cty.String), "tags": cty.SetVal([]cty.Value{str("a"), str("b")})})
	}
	sensNested := func(pw string, token string) cty.Value {
		return obj(map[string]cty.Value{
			"id":   str("s1"),
			"auth": obj(map[string]cty.Value{"user": str("admin"), "password": sens(str(pw))}),
			"env":  cty.MapVal(map[string]cty.Value{"PLAIN": str("1"), "TOKEN": sens(str(token))}),
			"args": list([]cty.Value{str("--token"), sens(str(token))}),
			"key":  sens(str("unchanged-" + pw[:3])),
		})
	}
	wholeSens := obj(map[string]cty.Value{"id": str("w1"), "auth": sens(obj(map[string]cty.Value{"user": str("admin"), "password": str(secretOne)}))})
	unknowns := obj(map[string]cty.Value{
		"id":       unk(cty.String),
		"ip":       unk(cty.String),
		"settings": unk(settings.Type()),
		"ports":    unk(cty.List(port(0, 0).Type())),
		"labels":   cty.MapVal(map[string]cty.Value{"a": str("1"), "b": unk(cty.String)}),
		"aliases":  list([]cty.Value{str("x"), unk(cty.String)}),
	})
	strs := obj(map[string]cty.Value{
		"quote":   str(`say "hi"`),
		"newline": str("line1\nline2\ttab"),
		"unicode": str("grüße ✓"),
		"escape":  str("\x1b[31mred"),
		"flag":    cty.True,
		"ratio":   cty.NumberFloatVal(0.25),
	})
	cbdBefore := obj(map[string]cty.Value{"id": str("v1"), "size": str("1G"), "settings": settings})
	cbdAfter := obj(map[string]cty.Value{"id": unk(cty.String), "size": str("2G"),
		"settings": obj(map[string]cty.Value{"cpu": num(2), "memory": str("1G"), "swap": cty.NullVal(cty.String)})})

	tests := []struct {
		name string
		plan *reconciler.Plan
		opts Options
	}{
		{"example", examplePlan(), Options{}},
		{"example_color", examplePlan(), Options{Color: true}},
		{"no_changes", &reconciler.Plan{
			Changes: []*reconciler.Change{{Addr: at("thing", "a"), Action: reconciler.NoOp, Before: settings, After: settings}},
			Outputs: []*reconciler.OutputChange{{Name: "x", Value: str("y")}},
		}, Options{}},
		{"no_changes_color", &reconciler.Plan{}, Options{Color: true}},
		{"instance_keys_and_deposed", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: atKey("container", "web", addr.IntKey(0)), Action: reconciler.Create, After: obj(map[string]cty.Value{"name": str("web-0")})},
			{Addr: atKey("container", "web", addr.StringKey("blue")), Action: reconciler.Create, After: obj(map[string]cty.Value{"name": str("web-blue")})},
			{Addr: at("thing", "old"), Action: reconciler.Delete, Deposed: true, Reason: "finishing a delete that was interrupted",
				Before: obj(map[string]cty.Value{"id": str("x9")})},
		}}, Options{}},
		{"create_then_delete", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("volume", "data"), Action: reconciler.CreateThenDelete, Reason: "size changed, which forces replacement",
				Before: cbdBefore, After: cbdAfter, RequiresReplace: []cty.Path{attrPath("size"), attrPath("settings", "memory")}},
		}}, Options{}},
		{"nested_blocks", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("container", "create"), Action: reconciler.Create, After: nested},
			{Addr: at("container", "update"), Action: reconciler.Update, Reason: "settings, ports and mounts changed", Before: nested, After: nestedAfter},
			{Addr: at("container", "delete"), Action: reconciler.Delete, Before: nested},
		}}, Options{}},
		{"nested_forces_replacement", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("container", "web"), Action: reconciler.Replace, Before: nested, After: nestedAfter,
				RequiresReplace: []cty.Path{attrPath("settings"), attrPath("ports").IndexInt(1).GetAttr("host")}},
		}}, Options{}},
		{"maps", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("container", "create"), Action: reconciler.Create, After: mapped(labels)},
			{Addr: at("container", "update"), Action: reconciler.Update, Before: mapped(labels), After: mapped(labelsAfter)},
			{Addr: at("container", "drop"), Action: reconciler.Update, Before: mapped(labels), After: mapped(cty.NullVal(labels.Type()))},
		}}, Options{}},
		{"lists", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("container", "create"), Action: reconciler.Create, After: lists("httpd", "-f")},
			{Addr: at("container", "update"), Action: reconciler.Update, Before: lists("httpd", "-f", "-p", "80"), After: lists("httpd", "-p", "8080", "-v")},
		}}, Options{}},
		{"sensitive", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("secret", "create"), Action: reconciler.Create, After: sensNested(secretOne, secretOne)},
			{Addr: at("secret", "update"), Action: reconciler.Update, Before: sensNested(secretOne, secretOne), After: sensNested(secretOne, secretTwo)},
			{Addr: at("secret", "password"), Action: reconciler.Update, Before: sensNested(secretOne, secretOne), After: sensNested("TOPSECRET-three", secretOne)},
			{Addr: at("secret", "delete"), Action: reconciler.Delete, Before: sensNested(secretOne, secretTwo)},
			{Addr: at("secret", "whole"), Action: reconciler.Create, After: wholeSens},
			{Addr: at("secret", "all"), Action: reconciler.Create, After: sens(wholeSens)},
		}}, Options{}},
		{"unknown", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("network", "create"), Action: reconciler.Create, After: unknowns},
			{Addr: at("network", "everything"), Action: reconciler.Create, After: unk(unknowns.Type())},
			{Addr: at("network", "update"), Action: reconciler.Update,
				Before: obj(map[string]cty.Value{"id": str("n1"), "ip": str("10.0.0.2"), "labels": cty.MapVal(map[string]cty.Value{"a": str("1")})}),
				After:  obj(map[string]cty.Value{"id": str("n1"), "ip": unk(cty.String), "labels": unk(cty.Map(cty.String))})},
		}}, Options{}},
		{"strings_and_nulls", &reconciler.Plan{Changes: []*reconciler.Change{
			{Addr: at("thing", "create"), Action: reconciler.Create, After: strs},
			{Addr: at("thing", "update"), Action: reconciler.Update,
				Before: obj(map[string]cty.Value{"a": str("x"), "b": cty.NullVal(cty.String), "c": num(1)}),
				After:  obj(map[string]cty.Value{"a": cty.NullVal(cty.String), "b": str("y"), "c": num(1)})},
		}}, Options{}},
		{"outputs", &reconciler.Plan{
			Changes: []*reconciler.Change{{Addr: at("thing", "a"), Action: reconciler.Create, After: obj(map[string]cty.Value{"id": unk(cty.String)})}},
			Outputs: []*reconciler.OutputChange{
				{Name: "address", Value: unk(cty.String)},
				{Name: "labels", Value: cty.MapVal(map[string]cty.Value{"a": str("1"), "b": str("2")})},
				{Name: "nested_secret", Value: obj(map[string]cty.Value{"user": str("u"), "pass": sens(str(secretOne))})},
				{Name: "password", Value: str(secretTwo), Sensitive: true},
				{Name: "empty", Value: cty.NilVal},
			},
		}, Options{}},
		{"outputs_unchanged_and_updated", &reconciler.Plan{
			Changes: []*reconciler.Change{{Addr: at("thing", "a"), Action: reconciler.Create, After: obj(map[string]cty.Value{"id": unk(cty.String)})}},
			Outputs: []*reconciler.OutputChange{
				{Name: "same", Value: str("s"), Before: str("s"), Unchanged: true},
				{Name: "moved", Value: str("new"), Before: str("old")},
				{Name: "fresh", Value: str("f")},
			},
		}, Options{}},
		{"outputs_color", &reconciler.Plan{
			Changes: []*reconciler.Change{{Addr: at("thing", "a"), Action: reconciler.Delete, Before: obj(map[string]cty.Value{"id": str("a")})}},
			Outputs: []*reconciler.OutputChange{{Name: "ids", Value: list([]cty.Value{str("a"), str("b")})}},
		}, Options{Color: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderPlan(&buf, tt.plan, tt.opts); err != nil {
				t.Fatal(err)
			}
			got := buf.String()
			if strings.Contains(got, "TOPSECRET") {
				t.Errorf("a sensitive value leaked:\n%s", got)
			}
			if !tt.opts.Color && strings.Contains(got, "\x1b[") {
				t.Errorf("colour codes without Color:\n%q", got)
			}
			if tt.opts.Color && !strings.Contains(got, "\x1b[") {
				t.Errorf("no colour codes with Color:\n%q", got)
			}
			golden(t, filepath.Join("testdata", "plan_"+tt.name+".golden"), got)
		})
	}
}

// golden compares got with the file at path, or rewrites the file with
// -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reconciler/view -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test ./reconciler/view -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestRenderPlanBrief checks the exact lines of the documented shape, so
// that a careless -update cannot bless a wrong layout.
func TestRenderPlanBrief(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderPlan(&buf, examplePlan(), Options{}); err != nil {
		t.Fatal(err)
	}
	want := `berth will perform the following actions:

  # container.web will be created
  + resource "container" "web" {
      + command = ["httpd", "-f"]
      + id      = (known after apply)
      + name    = "web"
    }

  # thing.b must be replaced
  # (because flavor changed, which forces replacement)
-/+ resource "thing" "b" {
      ~ flavor = "a" -> "b" # forces replacement
      ~ id     = "x1" -> (known after apply)
        name   = "b"
    }

  # thing.c will be updated in-place
  ~ resource "thing" "c" {
      ~ secret = (sensitive value)
      ~ value  = "old" -> "new"
        # (3 unchanged attributes hidden)
    }

  # thing.d will be destroyed
  # (because thing.d is not in the configuration)
  - resource "thing" "d" {
      - id = "x4" -> null
    }

Plan: 2 to add, 1 to change, 2 to destroy.

Changes to Outputs:
  + greeting = "hello"
  + token    = (sensitive value)
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderPlanDestroyWarning(t *testing.T) {
	p := &reconciler.Plan{Changes: []*reconciler.Change{{
		Addr:    addr.Instance{Resource: addr.Resource{Kind: "volume", Name: "site"}},
		Action:  reconciler.Delete,
		Reason:  "volume.site is not in the configuration",
		Warning: "destroys data",
		Before:  cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal("site")}),
		After:   cty.NullVal(cty.DynamicPseudoType),
	}}}
	var buf bytes.Buffer
	if err := RenderPlan(&buf, p, Options{}); err != nil {
		t.Fatal(err)
	}
	want := "  # volume.site will be destroyed\n  # (because volume.site is not in the configuration)\n  # warning: this destroys data\n"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("plan:\n%s\nwant it to hold:\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := WritePlanJSON(&buf, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"warning":"destroys data"`) && !strings.Contains(buf.String(), `"warning": "destroys data"`) {
		t.Errorf("JSON plan has no warning: %s", buf.String())
	}
}

func TestRenderPlanNil(t *testing.T) {
	if err := RenderPlan(&bytes.Buffer{}, nil, Options{}); err == nil {
		t.Error("RenderPlan(nil) returned no error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestRenderPlanWriteError(t *testing.T) {
	if err := RenderPlan(failWriter{}, examplePlan(), Options{}); err == nil {
		t.Error("RenderPlan to a failing writer returned no error")
	}
}
