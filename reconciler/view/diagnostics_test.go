package view

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

const diagSource = `container "web" {
  image = 5
	foo   = "bar"
  command = [
    "a",
    "b",
  ]
  port = var.port + var.token + var.settings.size + var.missing + local.ids[1]
}
`

func TestRenderDiagnostics(t *testing.T) {
	file, diags := hclsyntax.ParseConfig([]byte(diagSource), "cfg/main.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	attrs := file.Body.(*hclsyntax.Body).Blocks[0].Body.Attributes
	rng := func(name string) *hcl.Range {
		r := attrs[name].Expr.Range()
		return &r
	}
	nameRange := func(name string) *hcl.Range {
		r := attrs[name].NameRange
		return &r
	}
	files := map[string]*hcl.File{"cfg/main.hcl": file}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{
			"port":     cty.StringVal("eighty"),
			"token":    sens(cty.StringVal(secretOne)),
			"settings": sens(cty.ObjectVal(map[string]cty.Value{"size": cty.StringVal(secretTwo)})),
		}),
	}}
	child := ctx.NewChild()
	child.Variables = map[string]cty.Value{"local": cty.ObjectVal(map[string]cty.Value{"ids": cty.ListVal([]cty.Value{cty.StringVal("a"), cty.UnknownVal(cty.String)})})}

	tests := []struct {
		name  string
		diags hcl.Diagnostics
		opts  Options
	}{
		{"subject", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Incorrect attribute value type", Detail: "Inappropriate value for attribute \"image\": string required.", Subject: rng("image")}}, Options{}},
		{"warning_tab", hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "Deprecated argument", Detail: "The argument \"foo\" is deprecated.\nUse \"bar\" instead.", Subject: nameRange("foo")}}, Options{}},
		{"multiline", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Too many commands", Subject: rng("command")}}, Options{}},
		{"no_subject", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No configuration files", Detail: "The directory holds no .hcl files; run berth init to create one."}}, Options{}},
		{"missing_file", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Gone", Subject: &hcl.Range{Filename: "other.hcl", Start: hcl.Pos{Line: 3, Column: 1, Byte: 10}, End: hcl.Pos{Line: 3, Column: 4, Byte: 13}}}}, Options{}},
		{"bogus_ranges", hcl.Diagnostics{
			{Severity: hcl.DiagError, Summary: "Line too far", Subject: &hcl.Range{Filename: "cfg/main.hcl", Start: hcl.Pos{Line: 99, Byte: 9999}, End: hcl.Pos{Line: 99, Byte: 10000}}},
			{Severity: hcl.DiagError, Summary: "Bytes disagree", Subject: &hcl.Range{Filename: "cfg/main.hcl", Start: hcl.Pos{Line: 2, Byte: -5}, End: hcl.Pos{Line: 1, Byte: 1 << 30}}},
			{Severity: hcl.DiagError, Summary: "Empty range", Subject: &hcl.Range{Filename: "cfg/main.hcl", Start: hcl.Pos{Line: 2, Column: 3, Byte: 20}, End: hcl.Pos{Line: 2, Column: 3, Byte: 20}}},
			nil,
		}, Options{}},
		{"expression_values", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid operand", Detail: "Unsuitable value for the left operand.", Subject: rng("port"), Expression: attrs["port"].Expr, EvalContext: child}}, Options{}},
		{"color", hcl.Diagnostics{
			{Severity: hcl.DiagError, Summary: "Incorrect attribute value type", Detail: "string required", Subject: rng("image")},
			{Severity: hcl.DiagWarning, Summary: "Deprecated argument", Subject: nameRange("foo")},
		}, Options{Color: true}},
		{"control_characters", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Bad \x1b[2Jsummary", Detail: "line one\nline \x07two"}}, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderDiagnostics(&buf, tt.diags, files, tt.opts); err != nil {
				t.Fatal(err)
			}
			got := buf.String()
			if strings.Contains(got, "TOPSECRET") {
				t.Errorf("a sensitive value leaked:\n%s", got)
			}
			if !tt.opts.Color && strings.Contains(got, "\x1b") {
				t.Errorf("escape characters without Color:\n%q", got)
			}
			golden(t, filepath.Join("testdata", "diag_"+tt.name+".golden"), got)
		})
	}
}

// TestRenderDiagnosticsShape checks the documented layout exactly.
func TestRenderDiagnosticsShape(t *testing.T) {
	file, _ := hclsyntax.ParseConfig([]byte(diagSource), "main.hcl", hcl.InitialPos)
	r := file.Body.(*hclsyntax.Body).Blocks[0].Body.Attributes["image"].Expr.Range()
	var buf bytes.Buffer
	err := RenderDiagnostics(&buf, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Incorrect attribute value type", Detail: "A string is required.", Subject: &r}}, map[string]*hcl.File{"main.hcl": file}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `Error: Incorrect attribute value type

  on main.hcl line 2, in container "web":
   2:   image = 5
                ^

A string is required.

`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	if err := RenderDiagnostics(failWriter{}, hcl.Diagnostics{{Summary: "x"}}, nil, Options{}); err == nil {
		t.Error("RenderDiagnostics to a failing writer returned no error")
	}
}
