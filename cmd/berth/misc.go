package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/reconciler/inventory"
	"github.com/berthhq/berth/spec"
	"github.com/berthhq/berth/spec/addr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

func cmdValidate(ctx context.Context, env *cliEnv, args []string) int {
	var o options
	fs := newFlagSet(env, "validate", "validate [DIR] [-var NAME=VALUE] [-var-file FILE]")
	o.register(fs, true)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	dir, ok := oneDir(env, pos, "validate")
	if !ok {
		return 1
	}
	s, err := openSession(ctx, env, &o, "berth validate", false)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	defer s.close()
	cfg, in, diags := s.loadConfig(dir)
	if !diags.HasErrors() {
		diags = append(diags, spec.ValidateWith(cfg, in, s.engine.Schemas(), func(r *spec.Resource, v cty.Value) hcl.Diagnostics {
			return s.engine.ValidateResource(ctx, r, v)
		})...)
	}
	s.diags(diags)
	if diags.HasErrors() {
		return 1
	}
	fmt.Fprintln(env.stdout, "Success! The configuration is valid.")
	return 0
}

func cmdImport(ctx context.Context, env *cliEnv, args []string) int {
	var o options
	var dir string
	fs := newFlagSet(env, "import", "import [-config DIR] ADDR ID")
	o.register(fs, true)
	fs.StringVar(&dir, "config", ".", "configuration directory that declares ADDR")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	if len(pos) != 2 {
		fmt.Fprintln(env.stderr, "Usage: berth import [-config DIR] ADDR ID\n\nAdopts the existing object ID as ADDR, which the configuration must declare.")
		return 1
	}
	a, err := addr.Parse(pos[0])
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	id := pos[1]
	s, err := openSession(ctx, env, &o, "berth import", true)
	if err != nil {
		return lockError(env, err)
	}
	defer s.close()
	cfg, in, diags := s.loadConfig(dir)
	if diags.HasErrors() {
		s.diags(diags)
		return 1
	}
	res, ok := cfg.Resources[a.Resource]
	if !ok {
		fmt.Fprintf(env.stderr, "Error: %s is not declared in %s\n\nDeclare it first (%s %q { ... }), so that the next apply keeps the imported object instead of deleting it.\n", a.Resource, dir, a.Kind, a.Name)
		return 1
	}
	if msg := checkInstance(cfg, in, s.engine.Schemas(), res, a); msg != "" {
		fmt.Fprintf(env.stderr, "Error: %s\n\nImport under an address the configuration produces, so that the next apply keeps the object instead of deleting it.\n", msg)
		return 1
	}
	kind, ok := s.engine.Schemas()[a.Kind]
	if !ok {
		fmt.Fprintf(env.stderr, "Error: no provider manages resources of kind %q\n", a.Kind)
		return 1
	}
	if !kind.Importable {
		fmt.Fprintf(env.stderr, "Error: objects of kind %q cannot be imported\n", a.Kind)
		return 1
	}
	entries, err := s.store.Entries()
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	for _, en := range entries {
		if en.Address == a.String() {
			fmt.Fprintf(env.stderr, "Error: berth already owns an object at %s (id %s). Remove it from the configuration and apply first, or import under another address.\n", a, en.ID)
			return 1
		}
		if en.Kind == a.Kind && en.ID == id {
			fmt.Fprintf(env.stderr, "Error: the object %s is already owned as %s.\n", id, en.Address)
			return 1
		}
	}
	provName := s.engine.ProviderOf(a.Kind)
	token := inventory.NewToken()
	resp := s.provs[provName].Import(ctx, providers.ImportRequest{Kind: a.Kind, ID: id, Owner: providers.Owner{Address: a.String(), Token: token}})
	if resp.Diagnostics.HasErrors() {
		fmt.Fprintf(env.stderr, "Error: import %s: %s\n", a, resp.Diagnostics.Err())
		return 1
	}
	if resp.ID != "" {
		id = resp.ID
	}
	now := time.Now()
	if err := s.store.Put(inventory.Entry{
		Token: token, Address: a.String(), Kind: a.Kind, Provider: provName, ID: id,
		Status: inventory.Created, Private: resp.Private, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	fmt.Fprintf(env.stdout, "Import successful: %s is now owned by berth as %s.\nRun berth plan to see how it differs from the configuration.\n", id, a)
	return 0
}

const exampleConfig = `# berth configuration: every *.hcl file of this directory is read.
# Plan with "berth plan", apply with "berth apply".

# Variables can be set with -var name=value, -var-file, or BERTH_VAR_name.
variable "greeting" {
  type        = string
  default     = "hello"
  description = "What the example file says."
}

locals {
  # host.name is the host being planned (--host-name), host.labels its labels.
  message = "${var.greeting} from ${host.name}\n"
}

# A file on the host, managed by the built-in local provider.
file "motd" {
  path    = "/tmp/berth-example/motd"
  content = local.message
  mode    = "0644"
}

output "motd_sha256" {
  value = file.motd.sha256
}
`

func cmdInit(_ context.Context, env *cliEnv, args []string) int {
	fs := newFlagSet(env, "init", "init [DIR]")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	dir, ok := oneDir(env, pos, "init")
	if !ok {
		return 1
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if len(matches) > 0 {
		fmt.Fprintf(env.stderr, "Error: %s already holds a configuration (%s); berth init writes only into a directory without *.hcl files.\n", dir, strings.Join(matches, ", "))
		return 1
	}
	p := filepath.Join(dir, "main.hcl")
	if err := os.WriteFile(p, []byte(exampleConfig), 0o644); err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	fmt.Fprintf(env.stdout, "Wrote %s. Next:\n    berth plan %s\n", p, dir)
	return 0
}

func cmdFmt(_ context.Context, env *cliEnv, args []string) int {
	var check, diff bool
	fs := newFlagSet(env, "fmt", "fmt [-check] [-diff] [DIR|FILE...]")
	fs.BoolVar(&check, "check", false, "do not write; exit 3 when a file is not formatted")
	fs.BoolVar(&diff, "diff", false, "print the changes")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	if len(pos) == 0 {
		pos = []string{"."}
	}
	var files []string
	for _, p := range pos {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			return 1
		}
		if st.IsDir() {
			m, _ := filepath.Glob(filepath.Join(p, "*.hcl"))
			sort.Strings(m)
			files = append(files, m...)
		} else {
			files = append(files, p)
		}
	}
	unformatted := false
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			return 1
		}
		_, diags := hclsyntax.ParseConfig(src, f, hcl.Pos{Line: 1, Column: 1})
		if diags.HasErrors() {
			renderDiags(env, &options{}, diags, map[string]*hcl.File{})
			return 1
		}
		out := hclwrite.Format(src)
		if bytes.Equal(src, out) {
			continue
		}
		unformatted = true
		fmt.Fprintln(env.stdout, f)
		if diff {
			writeDiff(env, f, string(src), string(out))
		}
		if !check {
			st, _ := os.Stat(f)
			if err := os.WriteFile(f, out, st.Mode().Perm()); err != nil {
				fmt.Fprintf(env.stderr, "Error: %s\n", err)
				return 1
			}
		}
	}
	if check && unformatted {
		return 3
	}
	return 0
}

// writeDiff prints a line diff of a and b in unified style.
func writeDiff(env *cliEnv, name, a, b string) {
	al := strings.SplitAfter(a, "\n")
	bl := strings.SplitAfter(b, "\n")
	// Longest common subsequence table; configuration files are small.
	n, m := len(al), len(bl)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	fmt.Fprintf(env.stdout, "--- old/%s\n+++ new/%s\n", name, name)
	i, j := 0, 0
	line := func(prefix, s string) {
		if s == "" {
			return
		}
		fmt.Fprint(env.stdout, prefix+strings.TrimSuffix(s, "\n")+"\n")
	}
	for i < n || j < m {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			line(" ", al[i])
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			line("+", bl[j])
			j++
		default:
			line("-", al[i])
			i++
		}
	}
}

// checkInstance returns why the configuration does not produce instance a
// of res, or "" when it does.
func checkInstance(cfg *spec.Config, in spec.Inputs, schemas spec.Schemas, res *spec.Resource, a addr.Instance) string {
	scope, diags := spec.NewScope(cfg, in)
	if diags.HasErrors() {
		return diags.Error()
	}
	g, diags := cfg.Graph(schemas)
	if diags.HasErrors() {
		return diags.Error()
	}
	order, _ := g.Order()
	for _, n := range order {
		if name, ok := strings.CutPrefix(n, "local."); ok {
			scope.EvalLocal(name, true)
		}
	}
	insts, known, diags := scope.Expand(res, true)
	if diags.HasErrors() {
		return scope.Redact(diags).Error()
	}
	if !known {
		return fmt.Sprintf("the instances of %s depend on values known only after apply", res.Addr)
	}
	var keys []string
	for _, inst := range insts {
		if inst.Key == a.Key {
			return ""
		}
		keys = append(keys, res.Addr.Instance(inst.Key).String())
	}
	if why, ok := scope.Unplaced(res.Addr); ok && len(keys) == 0 {
		return fmt.Sprintf("%s is %s", res.Addr, why)
	}
	if len(keys) == 0 {
		return fmt.Sprintf("the configuration declares no instance of %s (count or for_each is empty)", res.Addr)
	}
	return fmt.Sprintf("the configuration does not declare %s; it declares %s", a, strings.Join(keys, ", "))
}
