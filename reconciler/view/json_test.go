package view

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/spec/addr"
	"github.com/zclconf/go-cty/cty"
)

// jsonPlanFixture holds every action kind, sensitive values at the top and
// deep inside, unknowns, instance keys and outputs.
func jsonPlanFixture() *reconciler.Plan {
	p := examplePlan()
	deep := obj(map[string]cty.Value{
		"id":   str("s1"),
		"auth": obj(map[string]cty.Value{"user": str("admin"), "password": sens(str(secretOne))}),
		"env":  cty.MapVal(map[string]cty.Value{"PLAIN": str("1"), "TOKEN": sens(str(secretTwo))}),
		"args": list([]cty.Value{str("--token"), sens(str(secretTwo))}),
		"ports": list([]cty.Value{
			obj(map[string]cty.Value{"host": num(80), "ip": unk(cty.String)}),
		}),
	})
	p.Changes = append(p.Changes,
		&reconciler.Change{Addr: atKey("secret", "deep", addr.IntKey(2)), Provider: "test", Action: reconciler.Create, After: deep},
		&reconciler.Change{Addr: atKey("volume", "data", addr.StringKey("blue")), Provider: "linux", Action: reconciler.CreateThenDelete,
			Before: obj(map[string]cty.Value{"size": str("1G")}), After: obj(map[string]cty.Value{"size": str("2G")}),
			RequiresReplace: []cty.Path{attrPath("size"), attrPath("ports").IndexInt(1).GetAttr("host"), cty.Path{}.Index(str("k"))}},
		&reconciler.Change{Addr: at("thing", "old"), Provider: "test", Action: reconciler.Delete, Deposed: true,
			Before: obj(map[string]cty.Value{"id": str("x9")}), After: cty.NilVal},
	)
	p.Outputs = append(p.Outputs,
		&reconciler.OutputChange{Name: "later", Value: unk(cty.String)},
		&reconciler.OutputChange{Name: "partly", Value: obj(map[string]cty.Value{"user": str("u"), "pass": sens(str(secretTwo))}), Sensitive: false},
	)
	p.Fingerprint = "fp-123"
	return p
}

func TestWritePlanJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePlanJSON(&buf, jsonPlanFixture()); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	if bytes.Contains(raw, []byte("TOPSECRET")) {
		t.Fatalf("a sensitive value leaked into the JSON plan:\n%s", raw)
	}
	golden(t, filepath.Join("testdata", "plan_json.golden"), string(raw))

	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc["format_version"] != "1" {
		t.Errorf("format_version = %v", doc["format_version"])
	}
	rcs, _ := doc["resource_changes"].([]any)
	if len(rcs) != 8 {
		t.Fatalf("%d resource changes, want 8 (no-ops included)", len(rcs))
	}
	byAddr := map[string]map[string]any{}
	for _, rc := range rcs {
		m := rc.(map[string]any)
		for _, k := range []string{"address", "kind", "name", "index", "provider", "action", "before", "after", "after_unknown", "before_sensitive", "after_sensitive", "replace_paths"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%v: no %q", m["address"], k)
			}
		}
		byAddr[m["address"].(string)] = m
	}
	tests := []struct {
		addr, field string
		want        any
	}{
		{"container.web", "action", "create"},
		{"container.web", "kind", "container"},
		{"container.web", "name", "web"},
		{"container.web", "provider", "linux"},
		{"container.web", "index", nil},
		{"container.web", "before", nil},
		{"container.web", "after", map[string]any{"command": []any{"httpd", "-f"}, "id": nil, "name": "web", "note": nil}},
		{"container.web", "after_unknown", map[string]any{"id": true}},
		{"container.web", "after_sensitive", map[string]any{}},
		{"container.web", "before_sensitive", false},
		{"thing.a", "action", "no-op"},
		{"thing.b", "action", "replace"},
		{"thing.b", "reason", "flavor changed, which forces replacement"},
		{"thing.b", "replace_paths", []any{[]any{"flavor"}}},
		{"thing.b", "before", map[string]any{"flavor": "a", "id": "x1", "name": "b"}},
		{"thing.c", "action", "update"},
		{"thing.c", "before", map[string]any{"id": "x3", "name": "c", "port": json.Number("80"), "secret": nil, "value": "old"}},
		{"thing.c", "before_sensitive", map[string]any{"secret": true}},
		{"thing.c", "after_sensitive", map[string]any{"secret": true}},
		{"thing.c", "after_unknown", map[string]any{}},
		{"thing.d", "action", "delete"},
		{"thing.d", "after", nil},
		{"thing.d", "after_unknown", false},
		{"secret.deep[2]", "index", json.Number("2")},
		{"secret.deep[2]", "after", map[string]any{
			"id":    "s1",
			"auth":  map[string]any{"user": "admin", "password": nil},
			"env":   map[string]any{"PLAIN": "1", "TOKEN": nil},
			"args":  []any{"--token", nil},
			"ports": []any{map[string]any{"host": json.Number("80"), "ip": nil}},
		}},
		{"secret.deep[2]", "after_sensitive", map[string]any{
			"auth": map[string]any{"password": true},
			"env":  map[string]any{"TOKEN": true},
			"args": []any{false, true},
		}},
		{"secret.deep[2]", "after_unknown", map[string]any{
			"ports": []any{map[string]any{"ip": true}},
		}},
		{`volume.data["blue"]`, "index", "blue"},
		{`volume.data["blue"]`, "action", "create-then-delete"},
		{`volume.data["blue"]`, "replace_paths", []any{[]any{"size"}, []any{"ports", json.Number("1"), "host"}, []any{"k"}}},
		{"thing.old", "deposed", true},
		{"thing.old", "after", nil},
	}
	for _, tt := range tests {
		rc, ok := byAddr[tt.addr]
		if !ok {
			t.Errorf("no change for %s", tt.addr)
			continue
		}
		if got := rc[tt.field]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %s = %#v, want %#v", tt.addr, tt.field, got, tt.want)
		}
	}

	outs, _ := doc["output_changes"].(map[string]any)
	wantOuts := map[string]map[string]any{
		"greeting": {"sensitive": false, "after": "hello", "after_unknown": false, "after_sensitive": false},
		"token":    {"sensitive": true, "after": nil, "after_unknown": false, "after_sensitive": true},
		"later":    {"sensitive": false, "after": nil, "after_unknown": true, "after_sensitive": false},
		"partly":   {"sensitive": false, "after": map[string]any{"user": "u", "pass": nil}, "after_unknown": map[string]any{}, "after_sensitive": map[string]any{"pass": true}},
	}
	if !reflect.DeepEqual(any(outs), any(toAny(wantOuts))) {
		t.Errorf("output_changes = %#v\nwant %#v", outs, wantOuts)
	}
	wantSummary := map[string]any{"add": json.Number("4"), "change": json.Number("1"), "destroy": json.Number("4")}
	if !reflect.DeepEqual(doc["summary"], wantSummary) {
		t.Errorf("summary = %#v, want %#v", doc["summary"], wantSummary)
	}
	if doc["fingerprint"] != "fp-123" {
		t.Errorf("fingerprint = %v", doc["fingerprint"])
	}
}

func toAny(m map[string]map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestWritePlanJSONEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePlanJSON(&buf, &reconciler.Plan{}); err != nil {
		t.Fatal(err)
	}
	// Empty collections are written as [] and {}, never null, so that
	// programs can range over them.
	for _, want := range []string{`"resource_changes": []`, `"output_changes": {}`, `"add": 0`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("no %s in\n%s", want, buf.String())
		}
	}
	if err := WritePlanJSON(&buf, nil); err == nil {
		t.Error("WritePlanJSON(nil) returned no error")
	}
	if err := WritePlanJSON(failWriter{}, &reconciler.Plan{}); err == nil {
		t.Error("WritePlanJSON to a failing writer returned no error")
	}
}

func TestJSONValueNumbers(t *testing.T) {
	tests := []struct {
		in   cty.Value
		want string
	}{
		{cty.NumberIntVal(42), "42"},
		{cty.NumberFloatVal(0.5), "0.5"},
		{cty.MustParseNumberVal("123456789012345678901234567890"), "123456789012345678901234567890"},
		{cty.PositiveInfinity, `"Infinity"`},
		{cty.NegativeInfinity, `"-Infinity"`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(jsonValue(tt.in))
		if err != nil {
			t.Errorf("%#v: %v", tt.in, err)
			continue
		}
		if string(b) != tt.want {
			t.Errorf("%#v: got %s, want %s", tt.in, b, tt.want)
		}
	}
}
