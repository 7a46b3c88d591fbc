package spec

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func testSchemas() Schemas {
	return Schemas{
		"thing": {Block: &providers.Block{
			Attributes: map[string]*providers.Attribute{
				"name":   {Type: cty.String, Optional: true},
				"value":  {Type: cty.String, Optional: true},
				"secret": {Type: cty.String, Optional: true, Sensitive: true},
				"size":   {Type: cty.Number, Optional: true},
				"tags":   {Type: cty.Map(cty.String), Optional: true},
				"id":     {Type: cty.String, Computed: true},
			},
			Blocks: map[string]*providers.NestedBlock{
				"port": {Nesting: providers.NestingList, Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"number": {Type: cty.Number, Required: true},
				}}},
			},
		}},
		"widget": {Block: &providers.Block{
			Attributes: map[string]*providers.Attribute{
				"label": {Type: cty.String, Required: true},
				"id":    {Type: cty.String, Computed: true},
			},
		}},
	}
}

func load(t *testing.T, src string) *Config {
	t.Helper()
	cfg, diags := Parse("cfg", []string{"cfg/main.hcl"}, map[string][]byte{"cfg/main.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatalf("parse: %s", diags.Error())
	}
	return cfg
}

var wantRE = regexp.MustCompile(`^# want: (.+?) at (\d+): (.+)$`)

// TestInvalidFixtures checks that every fixture in testdata/invalid yields
// the diagnostic its first line names, at the line it names.
func TestInvalidFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(src), "\n")
			m := wantRE.FindStringSubmatch(first)
			if m == nil {
				t.Fatalf("fixture lacks a '# want: SUMMARY at LINE: DETAIL' first line")
			}
			wantLine, _ := strconv.Atoi(m[2])
			name := "dir/" + filepath.Base(f)
			cfg, diags := Parse("dir", []string{name}, map[string][]byte{name: src})
			if !diags.HasErrors() {
				diags = append(diags, Validate(cfg, Inputs{Host: Host{Name: "h1"}}, testSchemas())...)
			}
			if !diags.HasErrors() {
				_, ds := NewScope(cfg, Inputs{Host: Host{Name: "h1"}})
				diags = append(diags, ds...)
			}
			var found *hcl.Diagnostic
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Summary == m[1] {
					found = d
					break
				}
			}
			if found == nil {
				t.Fatalf("want diagnostic %q, got:\n%s", m[1], diags.Error())
			}
			if found.Subject == nil || found.Subject.Filename != name || found.Subject.Start.Line != wantLine {
				t.Errorf("want %s at %s:%d, got subject %v", m[1], name, wantLine, found.Subject)
			}
			if !strings.Contains(found.Detail, m[3]) {
				t.Errorf("detail %q does not contain %q", found.Detail, m[3])
			}
		})
	}
}

func TestExpandCountAndForEach(t *testing.T) {
	cfg := load(t, `
variable "n" {
  type    = number
  default = 3
}
variable "names" {
  type    = set(string)
  default = ["blue", "green"]
}
thing "c" {
  count = var.n
  name  = "c-${count.index}"
}
thing "e" {
  for_each = var.names
  name     = "e-${each.key}"
}
thing "m" {
  for_each = { a = 1, b = 2 }
  size     = each.value
}
`)
	if diags := Validate(cfg, Inputs{}, testSchemas()); diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	s, diags := NewScope(cfg, Inputs{Vars: []VarInput{{Name: "n", Raw: "2", Source: "-var n"}}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	spec := testSchemas()["thing"].Block.DecoderSpec()
	cases := []struct {
		res  string
		keys []string
		attr string
		want []cty.Value
	}{
		{"thing.c", []string{"[0]", "[1]"}, "name", []cty.Value{cty.StringVal("c-0"), cty.StringVal("c-1")}},
		{"thing.e", []string{`["blue"]`, `["green"]`}, "name", []cty.Value{cty.StringVal("e-blue"), cty.StringVal("e-green")}},
		{"thing.m", []string{`["a"]`, `["b"]`}, "size", []cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)}},
	}
	for _, c := range cases {
		ra, _ := addr.ParseResource(c.res)
		r := cfg.Resources[ra]
		insts, known, ds := s.Expand(r, false)
		if ds.HasErrors() || !known {
			t.Fatalf("%s: expand: %s", c.res, ds.Error())
		}
		if len(insts) != len(c.keys) {
			t.Fatalf("%s: got %d instances, want %d", c.res, len(insts), len(c.keys))
		}
		for i, in := range insts {
			if in.Key.String() != c.keys[i] {
				t.Errorf("%s: key %d = %s, want %s", c.res, i, in.Key, c.keys[i])
			}
			v, ds := s.Decode(r, &insts[i], spec, false)
			if ds.HasErrors() {
				t.Fatal(ds.Error())
			}
			if got := v.GetAttr(c.attr); !got.RawEquals(c.want[i]) {
				t.Errorf("%s%s.%s = %#v, want %#v", c.res, in.Key, c.attr, got, c.want[i])
			}
		}
	}
}

func TestVariablePrecedenceAndHost(t *testing.T) {
	cfg := load(t, `
variable "a" {
  default = "default"
}
variable "pw" {
  sensitive = true
}
thing "t" {
  name  = "${var.a}@${host.name}/${host.labels.role}"
  value = var.pw
}
`)
	in := Inputs{
		Vars: append(EnvVars([]string{"BERTH_VAR_a=env", "BERTH_VAR_pw=s3cret", "OTHER=x"}),
			VarInput{Name: "a", Raw: "flag", Source: "-var a"}),
		Host: Host{Name: "h1", Labels: map[string]string{"role": "web"}},
	}
	s, diags := NewScope(cfg, in)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	r := cfg.Resources[addr.Resource{Kind: "thing", Name: "t"}]
	v, ds := s.Decode(r, &Instance{}, testSchemas()["thing"].Block.DecoderSpec(), false)
	if ds.HasErrors() {
		t.Fatal(ds.Error())
	}
	if got := v.GetAttr("name").AsString(); got != "flag@h1/web" {
		t.Errorf("name = %q, want flag@h1/web (the -var wins over the environment)", got)
	}
	if !v.GetAttr("value").HasMark(marks.Sensitive) {
		t.Errorf("value from a sensitive variable is not marked sensitive")
	}
}

func TestFunctions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "t.tpl"), []byte("hi ${who}"), 0o644)
	cfg, diags := Parse(dir, []string{"m.hcl"}, map[string][]byte{"m.hcl": []byte(`
locals {
  a = cidrsubnet("10.89.0.0/16", 8, 3)
  b = cidrhost("10.89.0.0/24", 10)
  c = base64encode("berth")
  d = templatefile("t.tpl", { who = "there" })
  e = upper(join(",", ["x", "y"]))
  f = cidrnetmask("10.0.0.0/12")
  g = sha256("x")
  h = try(tonumber("nope"), 7)
  i = abspath("images/app.tar")
  j = abspath("/srv/x")
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	s, _ := NewScope(cfg, Inputs{})
	want := map[string]cty.Value{
		"a": cty.StringVal("10.89.3.0/24"),
		"b": cty.StringVal("10.89.0.10"),
		"c": cty.StringVal("YmVydGg="),
		"d": cty.StringVal("hi there"),
		"e": cty.StringVal("X,Y"),
		"f": cty.StringVal("255.240.0.0"),
		"g": cty.StringVal("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"),
		"h": cty.NumberIntVal(7),
		"i": cty.StringVal(filepath.Join(dir, "images/app.tar")),
		"j": cty.StringVal("/srv/x"),
	}
	for name, w := range want {
		if ds := s.EvalLocal(name, false); ds.HasErrors() {
			t.Fatalf("%s: %s", name, ds.Error())
		}
		got := s.locals[name]
		if !got.RawEquals(w) && !(got.Type() == cty.Number && got.Equals(w).True()) {
			t.Errorf("local.%s = %#v, want %#v", name, got, w)
		}
	}
}

func TestSensitiveFunctionAndOutputs(t *testing.T) {
	cfg := load(t, `
output "hidden" {
  value     = "pw"
  sensitive = true
}
output "marked" {
  value = sensitive("x")
}
`)
	s, _ := NewScope(cfg, Inputs{})
	v, ds := s.EvalOutput(cfg.Outputs["hidden"], false)
	if ds.HasErrors() || !v.HasMark(marks.Sensitive) {
		t.Errorf("sensitive output not marked: %v %s", v, ds.Error())
	}
	_, ds = s.EvalOutput(cfg.Outputs["marked"], false)
	if !ds.HasErrors() {
		t.Errorf("an output holding sensitive() without sensitive = true must be an error")
	}
}

func TestLoadFromFS(t *testing.T) {
	fsys := fstest.MapFS{
		"a.hcl":       {Data: []byte(`thing "a" {}`)},
		"b.hcl":       {Data: []byte(`widget "b" { label = thing.a.id }`)},
		"notes.txt":   {Data: []byte(`not config`)},
		".hidden.hcl": {Data: []byte(`garbage {{{`)},
	}
	cfg, diags := Load(fsys, "conf")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(cfg.Resources) != 2 || len(cfg.Files) != 2 {
		t.Fatalf("got %d resources from %d files, want 2 and 2", len(cfg.Resources), len(cfg.Files))
	}
	g, diags := cfg.Graph(testSchemas())
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if deps := g.DependsOn("widget.b"); len(deps) != 1 || deps[0] != "thing.a" {
		t.Errorf("widget.b depends on %v, want [thing.a]", deps)
	}
	if _, diags := Load(fstest.MapFS{}, "empty"); !diags.HasErrors() {
		t.Errorf("an empty directory must be an error")
	}
}

// FuzzConfig feeds arbitrary text through parsing, validation and
// evaluation: no input may make berth panic.
func FuzzConfig(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/invalid/*.hcl")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Add([]byte(`thing "a" { count = 2
 name = "${count.index}" }
widget "w" { label = thing.a[0].id }
output "o" { value = widget.w }`))
	f.Add([]byte(`variable "v" { type = map(list(number)) }
locals { x = { for k, v in var.v : k => length(v) } }`))
	schemas := testSchemas()
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Parse("d", []string{"d/f.hcl"}, map[string][]byte{"d/f.hcl": src})
		if diags.HasErrors() {
			return
		}
		diags = Validate(cfg, Inputs{Host: Host{Name: "h"}}, schemas)
		if diags.HasErrors() {
			return
		}
		s, diags := NewScope(cfg, Inputs{Host: Host{Name: "h"}, Partial: true})
		if diags.HasErrors() {
			return
		}
		for _, r := range cfg.SortedResources() {
			k, ok := schemas[r.Addr.Kind]
			if !ok {
				continue
			}
			insts, known, _ := s.Expand(r, true)
			if known {
				for i := range insts {
					s.Decode(r, &insts[i], k.Block.DecoderSpec(), true)
				}
			}
		}
	})
}

func TestConfinedFileFunctions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := ConfinedFunctions(dir)
	if v, err := fs["file"].Call([]cty.Value{cty.StringVal("ok.txt")}); err != nil || v.AsString() != "inside" {
		t.Fatalf("file(ok.txt) = %v, %v", v, err)
	}
	for _, p := range []string{outside, "../" + filepath.Base(filepath.Dir(outside)) + "/secret", "etc/hostname", "/etc/hostname"} {
		if _, err := fs["file"].Call([]cty.Value{cty.StringVal(p)}); err == nil {
			t.Errorf("file(%q) read outside the configuration", p)
		}
		if _, err := fs["templatefile"].Call([]cty.Value{cty.StringVal(p), cty.EmptyObjectVal}); err == nil {
			t.Errorf("templatefile(%q) read outside the configuration", p)
		}
	}
	// Unconfined, the same absolute path is read.
	if v, err := Functions(dir)["file"].Call([]cty.Value{cty.StringVal(outside)}); err != nil || v.AsString() != "secret" {
		t.Fatalf("unconfined file() = %v, %v", v, err)
	}
}

func TestUntrustedInputsAreSensitive(t *testing.T) {
	cfg, diags := Parse("cfg", []string{"main.hcl"}, map[string][]byte{"main.hcl": []byte(`
variable "db_password" {
  type = string
}
variable "greeting" {
  type    = string
  default = "hello"
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	for _, untrusted := range []bool{false, true} {
		s, diags := NewScope(cfg, Inputs{Vars: []VarInput{{Name: "db_password", Raw: "hunter2", Source: "test"}}, Untrusted: untrusted})
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		vars := s.Variables()
		if got := marks.IsSensitive(vars["db_password"]); got != untrusted {
			t.Errorf("untrusted %v: the host's value is sensitive: %v", untrusted, got)
		}
		if marks.IsSensitive(vars["greeting"]) {
			t.Errorf("untrusted %v: the configuration's own default is sensitive", untrusted)
		}
	}
}
