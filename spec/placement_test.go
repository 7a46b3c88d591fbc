package spec

import (
	"strings"
	"testing"

	"github.com/berthhq/berth/spec/addr"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// evalAll evaluates cfg for a host as a plan does: every node in
// dependency order, every instance decoded, with the decoded values as the
// resources' values. It returns the scope and the diagnostics.
func evalAll(t *testing.T, cfg *Config, in Inputs) (*Scope, map[addr.Resource][]Instance, hcl.Diagnostics) {
	t.Helper()
	schemas := testSchemas()
	g, diags := cfg.Graph(schemas)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	s, ds := NewScope(cfg, in)
	diags = append(diags, ds...)
	if ds.HasErrors() {
		return s, nil, diags
	}
	order, ds := g.Order()
	diags = append(diags, ds...)
	expanded := map[addr.Resource][]Instance{}
	for _, node := range order {
		switch {
		case strings.HasPrefix(node, "local."):
			diags = append(diags, s.EvalLocal(strings.TrimPrefix(node, "local."), in.Partial)...)
		case strings.HasPrefix(node, "output."):
			_, ds := s.EvalOutput(cfg.Outputs[strings.TrimPrefix(node, "output.")], in.Partial)
			diags = append(diags, ds...)
		default:
			r := resourceByNode(cfg, node)
			spec := schemas[r.Addr.Kind].Block.DecoderSpec()
			insts, _, ds := s.Expand(r, in.Partial)
			diags = append(diags, ds...)
			expanded[r.Addr] = insts
			vals := map[addr.Key]cty.Value{}
			for i := range insts {
				v, ds := s.Decode(r, &insts[i], spec, in.Partial)
				diags = append(diags, ds...)
				vals[insts[i].Key] = v
			}
			s.SetResource(r, vals)
		}
	}
	return s, expanded, diags
}

const placementPrelude = `
variable "enabled" {
  type    = bool
  default = true
}
variable "only" {
  type    = list(string)
  default = null
}
locals {
  db_host = "db-1"
  roles   = { "web-1" = "web", "db-1" = "db" }
}
`

func TestPlacementInstances(t *testing.T) {
	web1 := Host{Name: "web-1", Labels: map[string]string{"role": "web", "zone": "a"}}
	web2 := Host{Name: "web-2", Labels: map[string]string{"role": "web", "zone": "b"}}
	db1 := Host{Name: "db-1", Labels: map[string]string{"role": "db"}}
	bare := Host{Name: "bare"}
	cases := []struct {
		name  string
		host  Host
		block string // the body of thing "t"
		vars  []VarInput
		want  int
		why   string // part of the reason when excluded
	}{
		{"no placement", bare, ``, nil, 1, ""},
		{"empty placement", bare, `placement {}`, nil, 1, ""},
		{"label matches", web1, `placement { labels = { role = "web" } }`, nil, 1, ""},
		{"label differs", db1, `placement { labels = { role = "web" } }`, nil, 0, `label role is "db", wanted "web"`},
		{"label missing", bare, `placement { labels = { role = "web" } }`, nil, 0, `the host has no label role, wanted role = "web"`},
		{"two labels both match", web2, `placement { labels = { role = "web", zone = "b" } }`, nil, 1, ""},
		{"two labels one differs", web1, `placement { labels = { role = "web", zone = "b" } }`, nil, 0, `label zone is "a", wanted "b"`},
		{"no labels asked", bare, `placement { labels = {} }`, nil, 1, ""},
		{"host listed", web2, `placement { hosts = ["web-1", "web-2"] }`, nil, 1, ""},
		{"host not listed", db1, `placement { hosts = ["web-1", "web-2"] }`, nil, 0, `"db-1" is not in hosts`},
		{"hosts empty", web1, `placement { hosts = [] }`, nil, 0, `"web-1" is not in hosts`},
		{"hosts as a set", web1, `placement { hosts = toset(["web-1"]) }`, nil, 1, ""},
		{"hosts from a local", db1, `placement { hosts = [local.db_host] }`, nil, 1, ""},
		{"hosts null means not given", bare, `placement { hosts = var.only }`, nil, 1, ""},
		{"hosts from a variable", bare, `placement { hosts = var.only }`, []VarInput{{Name: "only", Raw: `["web-1"]`, Source: "-var only"}}, 0, `"bare" is not in hosts`},
		{"when true", bare, `placement { when = true }`, nil, 1, ""},
		{"when false", bare, `placement { when = false }`, nil, 0, "when is false"},
		{"when over a variable", bare, `placement { when = var.enabled }`, []VarInput{{Name: "enabled", Raw: "false", Source: "-var enabled"}}, 0, "when is false"},
		{"when over a local", web1, `placement { when = lookup(local.roles, host.name, "none") == "web" }`, nil, 1, ""},
		{"when over a local, other host", db1, `placement { when = lookup(local.roles, host.name, "none") == "web" }`, nil, 0, "when is false"},
		{"when over labels", web2, `placement { when = lookup(host.labels, "zone", "") != "a" }`, nil, 1, ""},
		{"all hold", web1, `placement {
  labels = { role = "web" }
  hosts  = ["web-1"]
  when   = var.enabled
}`, nil, 1, ""},
		{"labels hold, hosts do not", web2, `placement {
  labels = { role = "web" }
  hosts  = ["web-1"]
}`, nil, 0, `"web-2" is not in hosts`},
		{"count placed", web1, `count = 3
placement { labels = { role = "web" } }`, nil, 3, ""},
		{"count excluded", db1, `count = 3
placement { labels = { role = "web" } }`, nil, 0, `label role is "db"`},
		{"for_each placed", web1, `for_each = { a = "x", b = "y" }
placement { hosts = ["web-1"] }`, nil, 2, ""},
		{"for_each excluded", web2, `for_each = { a = "x", b = "y" }
placement { hosts = ["web-1"] }`, nil, 0, `"web-2" is not in hosts`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := load(t, placementPrelude+"thing \"t\" {\n"+c.block+"\n}\n")
			in := Inputs{Host: c.host, Vars: c.vars}
			if diags := Validate(cfg, in, testSchemas()); diags.HasErrors() {
				t.Fatalf("validate: %s", diags.Error())
			}
			s, expanded, diags := evalAll(t, cfg, in)
			if diags.HasErrors() {
				t.Fatalf("evaluate: %s", diags.Error())
			}
			ta := addr.Resource{Kind: "thing", Name: "t"}
			if got := len(expanded[ta]); got != c.want {
				t.Fatalf("%d instances, want %d", got, c.want)
			}
			why, out := s.Unplaced(ta)
			if out != (c.why != "") {
				t.Fatalf("Unplaced = %q, %v; want excluded = %v", why, out, c.why != "")
			}
			if out {
				want := `not placed on host "` + c.host.Name + `" (placement at cfg/main.hcl:`
				if !strings.Contains(why, want) || !strings.Contains(why, c.why) {
					t.Errorf("Unplaced = %q, want it to hold %q and %q", why, want, c.why)
				}
			}
		})
	}
}

// TestPlacementPartial checks that validate evaluates what it can: an
// unknown variable leaves the placement unknown unless a known condition
// already excludes the host.
func TestPlacementPartial(t *testing.T) {
	cases := []struct {
		name      string
		placement string
		known     bool
		n         int
	}{
		{"unknown when", `when = var.on`, false, 0},
		{"unknown when, hosts exclude", "when = var.on\n hosts = [\"other\"]", true, 0},
		{"unknown when, hosts include", "when = var.on\n hosts = [\"h1\"]", false, 0},
		{"unknown hosts", `hosts = var.list`, false, 0},
		{"known", `hosts = ["h1"]`, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := load(t, `
variable "on" { type = bool }
variable "list" { type = list(string) }
thing "t" {
  placement {
    `+c.placement+`
  }
}
`)
			in := Inputs{Host: Host{Name: "h1"}, Partial: true}
			if diags := Validate(cfg, in, testSchemas()); diags.HasErrors() {
				t.Fatalf("validate: %s", diags.Error())
			}
			s, diags := NewScope(cfg, in)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			insts, known, diags := s.Expand(cfg.Resources[addr.Resource{Kind: "thing", Name: "t"}], true)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			if known != c.known || len(insts) != c.n {
				t.Errorf("known = %v with %d instances, want %v with %d", known, len(insts), c.known, c.n)
			}
		})
	}
}

func TestPlacementErrors(t *testing.T) {
	web1 := Host{Name: "web-1", Labels: map[string]string{"role": "web"}}
	cases := []struct {
		name    string
		src     string
		summary string
		line    int
		detail  string
	}{
		{"unknown argument", `
thing "t" {
  placement {
    lables = { role = "web" }
  }
}`, "Unsupported argument in placement", 4, `no argument "lables". Did you mean "labels"? Its arguments are labels, hosts, when.`},
		{"unknown argument far off", `
thing "t" {
  placement {
    region = "eu"
  }
}`, "Unsupported argument in placement", 4, `Its arguments are labels, hosts, when.`},
		{"nested block", `
thing "t" {
  placement {
    hosts = ["web-1"]
    labels {
      role = "web"
    }
  }
}`, "Unexpected block in placement", 5, `arguments only (labels, hosts, when)`},
		{"two placement blocks", `
thing "t" {
  placement { hosts = ["web-1"] }
  placement { labels = { role = "web" } }
}`, "Duplicate placement block", 4, "one placement block only"},
		{"reference to a resource", `
thing "a" {}
thing "t" {
  placement {
    when = thing.a.name == "x"
  }
}`, "Invalid reference in placement", 5, "when of a placement refers to thing.a, a resource"},
		{"reference to count", `
thing "t" {
  count = 2
  placement {
    when = count.index == 0
  }
}`, "Invalid reference in placement", 5, "refers to count.index"},
		{"reference to each", `
thing "t" {
  for_each = { a = 1 }
  placement {
    hosts = [each.key]
  }
}`, "Invalid reference in placement", 5, "hosts of a placement refers to each"},
		{"reference to self", `
thing "t" {
  placement {
    labels = self.tags
  }
}`, "Invalid reference in placement", 4, "refers to self"},
		{"undeclared variable", `
variable "enabled" { default = true }
thing "t" {
  placement {
    when = var.enabeld
  }
}`, "Reference to undeclared variable", 5, `Did you mean var.enabled?`},
		{"labels not a map", `
thing "t" {
  placement {
    labels = ["web"]
  }
}`, "Invalid placement", 4, `labels of the placement at cfg/main.hcl:4 must be a map of strings, such as { role = "web" }; got tuple.`},
		{"labels with a null value", `
thing "t" {
  placement {
    labels = { role = null }
  }
}`, "Invalid placement", 4, `the value of label "role" is null`},
		{"hosts a string", `
thing "t" {
  placement {
    hosts = "web-1"
  }
}`, "Invalid placement", 4, `hosts of the placement at cfg/main.hcl:4 must be a list of host names, such as ["web-1", "web-2"]; got string.`},
		{"hosts with null", `
thing "t" {
  placement {
    hosts = ["web-1", null]
  }
}`, "Invalid placement", 4, "it holds null"},
		{"when a number", `
thing "t" {
  placement {
    when = 3
  }
}`, "Invalid placement", 4, "when of the placement at cfg/main.hcl:4 must be true or false; got number."},
		{"when sensitive", `
variable "pw" {
  default   = "x"
  sensitive = true
}
thing "t" {
  placement {
    when = var.pw == "x"
  }
}`, "Invalid placement", 8, "when of a placement cannot use sensitive values"},
		{"hosts sensitive", `
variable "hosts" {
  default   = ["web-1"]
  sensitive = true
}
thing "t" {
  placement {
    hosts = var.hosts
  }
}`, "Invalid placement", 8, "hosts of a placement cannot use sensitive values"},
		{"missing label in when", `
thing "t" {
  placement {
    when = host.labels.zone == "a"
  }
}`, "Missing map element", 4, `"zone"`},
		{"attribute of a resource not placed here", `
thing "data" {
  placement { hosts = ["db-1"] }
}
widget "w" {
  label = thing.data.id
}`, "Reference to a resource not placed on this host", 6, `widget.w refers to thing.data, which is not placed on host "web-1" (placement at cfg/main.hcl:3: "web-1" is not in hosts). Give widget.w a placement that excludes this host too, or guard the reference, e.g. try(thing.data.id, null).`},
		{"resource given whole, not placed here", `
thing "data" {
  placement { labels = { role = "db" } }
}
widget "w" {
  label = thing.data
}`, "Reference to a resource not placed on this host", 6, `widget.w refers to thing.data, which is not placed on host "web-1" (placement at cfg/main.hcl:3: label role is "web", wanted "db")`},
		{"in a template, not placed here", `
thing "data" {
  placement { when = false }
}
widget "w" {
  label = "at ${thing.data.name}"
}`, "Reference to a resource not placed on this host", 6, `(placement at cfg/main.hcl:3: when is false)`},
		{"counted resource not placed here", `
thing "data" {
  count = 2
  placement { hosts = ["db-1"] }
}
widget "w" {
  label = thing.data[1].id
}`, "Reference to a resource not placed on this host", 7, "widget.w refers to thing.data, which is not placed"},
		{"computed index into a resource not placed here", `
thing "data" {
  count = 2
  placement { hosts = ["db-1"] }
}
widget "w" {
  count = 2
  label = thing.data[count.index].id
}`, "Reference to a resource not placed on this host", 8, "widget.w refers to thing.data"},
		{"for_each resource not placed here", `
thing "data" {
  for_each = { a = 1 }
  placement { hosts = ["db-1"] }
}
widget "w" {
  label = thing.data["a"].id
}`, "Reference to a resource not placed on this host", 7, "widget.w refers to thing.data"},
		{"local refers to a resource not placed here", `
thing "data" {
  placement { hosts = ["db-1"] }
}
locals {
  p = thing.data.name
}`, "Reference to a resource not placed on this host", 6, "local.p refers to thing.data, which is not placed"},
		{"output refers to a resource not placed here", `
thing "data" {
  placement { hosts = ["db-1"] }
}
output "o" {
  value = thing.data.id
}`, "Reference to a resource not placed on this host", 6, "output.o refers to thing.data, which is not placed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, diags := Parse("cfg", []string{"cfg/main.hcl"}, map[string][]byte{"cfg/main.hcl": []byte(c.src)})
			in := Inputs{Host: web1}
			// Validate first, as plan does; what validate cannot know
			// shows when evaluating for real.
			if !diags.HasErrors() {
				diags = append(diags, Validate(cfg, in, testSchemas())...)
			}
			if !diags.HasErrors() {
				_, _, ds := evalAll(t, cfg, in)
				diags = append(diags, ds...)
			}
			var found *hcl.Diagnostic
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Summary == c.summary {
					found = d
					break
				}
			}
			if found == nil {
				t.Fatalf("want %q, got:\n%s", c.summary, diags.Error())
			}
			if found.Subject == nil || found.Subject.Filename != "cfg/main.hcl" || found.Subject.Start.Line != c.line {
				t.Errorf("want %q at line %d, got subject %v", c.summary, c.line, found.Subject)
			}
			if !strings.Contains(found.Detail, c.detail) {
				t.Errorf("detail %q does not contain %q", found.Detail, c.detail)
			}
			if strings.HasPrefix(c.summary, "Reference to a resource not placed") {
				// The confusing error it explains is gone.
				for _, d := range diags {
					if d.Summary == "Unsupported attribute" || d.Summary == "Invalid index" || d.Summary == "Incorrect attribute value type" || d.Summary == "Invalid template interpolation value" {
						t.Errorf("the error %q was left beside the explanation", d.Summary)
					}
				}
			}
		})
	}
}

// TestPlacementUnknownAtPlan checks that a placement that depends, through
// a local, on a value known only after apply is an error when planning.
func TestPlacementUnknownAtPlan(t *testing.T) {
	cfg := load(t, `
thing "a" {}
locals {
  id = thing.a.id
}
thing "t" {
  placement {
    when = local.id != ""
  }
}
`)
	in := Inputs{Host: Host{Name: "h1"}}
	if diags := Validate(cfg, in, testSchemas()); diags.HasErrors() {
		t.Fatalf("validate must accept it (the value is unknown there): %s", diags.Error())
	}
	s, diags := NewScope(cfg, in)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	ta := addr.Resource{Kind: "thing", Name: "a"}
	s.SetResourceValue(ta, cty.UnknownVal(testSchemas()["thing"].Block.ImpliedType()))
	if ds := s.EvalLocal("id", false); ds.HasErrors() {
		t.Fatal(ds.Error())
	}
	_, _, diags = s.Expand(cfg.Resources[addr.Resource{Kind: "thing", Name: "t"}], false)
	if !diags.HasErrors() || diags[0].Summary != "Invalid placement" || !strings.Contains(diags[0].Detail, "known only after apply") {
		t.Fatalf("want an Invalid placement error about values known only after apply, got %v", diags)
	}
	if diags[0].Subject == nil || diags[0].Subject.Start.Line != 8 {
		t.Errorf("subject %v, want line 8", diags[0].Subject)
	}
}

// TestPlacementGuardedReference checks that a resource placed everywhere
// may refer to one placed on some hosts only when the reference is
// guarded.
func TestPlacementGuardedReference(t *testing.T) {
	cfg := load(t, `
thing "data" {
  placement { hosts = ["db-1"] }
  name = "data"
}
widget "try" {
  label = try(thing.data.name, "none")
}
widget "cond" {
  label = host.name == "db-1" ? thing.data.name : "none"
}
`)
	spec := testSchemas()["widget"].Block.DecoderSpec()
	for _, c := range []struct {
		host string
		want string
	}{{"web-1", "none"}, {"db-1", "data"}} {
		in := Inputs{Host: Host{Name: c.host}}
		if diags := Validate(cfg, in, testSchemas()); diags.HasErrors() {
			t.Fatalf("%s: validate: %s", c.host, diags.Error())
		}
		s, _, diags := evalAll(t, cfg, in)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", c.host, diags.Error())
		}
		for _, name := range []string{"try", "cond"} {
			r := cfg.Resources[addr.Resource{Kind: "widget", Name: name}]
			v, ds := s.Decode(r, &Instance{}, spec, false)
			if ds.HasErrors() {
				t.Fatal(ds.Error())
			}
			if got := v.GetAttr("label").AsString(); got != c.want {
				t.Errorf("%s: widget.%s label = %q, want %q", c.host, name, got, c.want)
			}
		}
	}
}

// TestPlacementDependencies checks that the variables and locals a
// placement uses are dependencies of the resource, so that they are
// evaluated before it is expanded.
func TestPlacementDependencies(t *testing.T) {
	cfg := load(t, `
variable "zone" { default = "a" }
locals {
  web = ["web-1"]
  on  = var.zone == "a"
}
thing "t" {
  placement {
    hosts = local.web
    when  = local.on
  }
}
`)
	g, diags := cfg.Graph(testSchemas())
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	got := strings.Join(g.DependsOn("thing.t"), " ")
	if got != "local.on local.web" {
		t.Errorf("thing.t depends on %q, want local.on and local.web", got)
	}
	order, _ := g.Order()
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	if pos["local.on"] > pos["thing.t"] || pos["local.web"] > pos["thing.t"] {
		t.Errorf("order %v evaluates thing.t before its placement's locals", order)
	}
	_, expanded, diags := evalAll(t, cfg, Inputs{Host: Host{Name: "web-1"}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if n := len(expanded[addr.Resource{Kind: "thing", Name: "t"}]); n != 1 {
		t.Errorf("%d instances of thing.t on web-1, want 1", n)
	}
}

// TestPlacementDecoded checks what the parser keeps of a placement block.
func TestPlacementDecoded(t *testing.T) {
	cfg := load(t, `
thing "a" {}
thing "b" {
  placement {
    when = true
  }
}
`)
	if p := cfg.Resources[addr.Resource{Kind: "thing", Name: "a"}].Placement; p != nil {
		t.Errorf("thing.a has a placement %v, want none", p)
	}
	p := cfg.Resources[addr.Resource{Kind: "thing", Name: "b"}].Placement
	if p == nil || p.Labels != nil || p.Hosts != nil || p.When == nil || len(p.Exprs()) != 1 {
		t.Fatalf("thing.b placement = %+v, want when only", p)
	}
	if p.DeclRange.Filename != "cfg/main.hcl" || p.DeclRange.Start.Line != 4 {
		t.Errorf("DeclRange = %s, want cfg/main.hcl line 4", p.DeclRange)
	}
}
