package view

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/berthhq/berth/spec/marks"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// maxSnippetLines bounds how many source lines a diagnostic shows.
const maxSnippetLines = 3

// RenderDiagnostics writes diags the way Terraform does: "Error: Summary"
// (or "Warning:"), the file and line with the enclosing block, the source
// line with the range underlined (with carets without colour), the values
// of the variables the expression refers to, and the detail text. files
// maps file names, as they appear in the ranges, to their parsed files; a
// file that is missing just has no source shown. Sensitive values are
// never shown.
func RenderDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File, opts Options) error {
	var b strings.Builder
	for _, d := range diags {
		if d != nil {
			writeDiagnostic(&b, d, files, opts)
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	return nil
}

func writeDiagnostic(b *strings.Builder, d *hcl.Diagnostic, files map[string]*hcl.File, opts Options) {
	switch d.Severity {
	case hcl.DiagWarning:
		b.WriteString(opts.paint("Warning:", ansiBold, ansiYellow))
	default:
		b.WriteString(opts.paint("Error:", ansiBold, ansiRed))
	}
	b.WriteString(" " + opts.paint(clean(d.Summary, false), ansiBold) + "\n\n")
	if r := d.Subject; r != nil && r.Filename != "" {
		file := files[r.Filename]
		where := "  on " + clean(r.Filename, false)
		if r.Start.Line > 0 {
			where += " line " + strconv.Itoa(r.Start.Line)
		}
		if ctx := contextString(file, r.Start.Byte); ctx != "" {
			where += ", in " + clean(ctx, false)
		}
		b.WriteString(where + ":\n")
		if file != nil {
			for _, l := range snippet(file.Bytes, *r, opts) {
				b.WriteString(l + "\n")
			}
		}
		if vals := expressionValues(d); len(vals) > 0 {
			b.WriteString("    ├────────────────\n")
			for _, v := range vals {
				b.WriteString("    │ " + v + "\n")
			}
		}
		b.WriteString("\n")
	}
	if d.Detail != "" {
		b.WriteString(clean(d.Detail, true) + "\n\n")
	}
}

// contextString names the block that encloses offset, such as
// `container "web"`, when the file can tell.
func contextString(file *hcl.File, offset int) string {
	if file == nil || offset < 0 || offset > len(file.Bytes) {
		return ""
	}
	type contextStringer interface {
		ContextString(offset int) string
	}
	if cs, ok := file.Nav.(contextStringer); ok {
		return cs.ContextString(offset)
	}
	return ""
}

// snippet returns the source lines of r with the range underlined: with
// ANSI underline when colour is on, with a line of carets otherwise.
func snippet(src []byte, r hcl.Range, opts Options) []string {
	type span struct{ start, end int }
	var lines []span
	start := 0
	for i := 0; i <= len(src); i++ {
		if i == len(src) || src[i] == '\n' {
			end := i
			if end > start && src[end-1] == '\r' {
				end--
			}
			lines = append(lines, span{start, end})
			start = i + 1
		}
	}
	first := r.Start.Line
	if first < 1 || first > len(lines) {
		return nil
	}
	sb, eb := r.Start.Byte, r.End.Byte
	// Trust the byte offsets only when they agree with the line number.
	underline := sb >= lines[first-1].start && sb <= lines[first-1].end && eb >= sb && eb <= len(src)
	last := first
	if underline {
		for last < len(lines) && last-first+1 < maxSnippetLines && lines[last].start < eb {
			last++
		}
	}
	var out []string
	for n := first; n <= last; n++ {
		ln := lines[n-1]
		text := string(src[ln.start:ln.end])
		gutter := fmt.Sprintf("%4d: ", n)
		if !underline {
			out = append(out, gutter+clean(text, false))
			continue
		}
		from, to := max(sb, ln.start)-ln.start, min(eb, ln.end)-ln.start
		if n > first {
			// Leave the indentation of continuation lines alone.
			from = max(from, len(text)-len(strings.TrimLeft(text, " \t")))
		}
		if n == first && to <= from {
			to = min(from+1, len(text))
		}
		if to <= from {
			out = append(out, gutter+clean(text, false))
			continue
		}
		before, mid, after := clean(text[:from], false), clean(text[from:to], false), clean(text[to:], false)
		if opts.Color {
			out = append(out, gutter+before+ansiUnder+mid+ansiReset+after)
			continue
		}
		out = append(out, gutter+before+mid+after)
		mask := strings.Map(func(r rune) rune {
			if r == '\t' {
				return '\t'
			}
			return ' '
		}, before)
		out = append(out, indent(len(gutter))+mask+strings.Repeat("^", len([]rune(mid))))
	}
	return out
}

// clean replaces control characters, which could drive the terminal, by
// U+FFFD; tabs stay, and newlines too when multiline is set.
func clean(s string, multiline bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t', multiline && r == '\n':
			return r
		case unicode.IsControl(r):
			return unicode.ReplacementChar
		}
		return r
	}, s)
}

// expressionValues describes the values of the variables that the
// diagnostic's expression refers to, like `var.port is "eighty"`.
func expressionValues(d *hcl.Diagnostic) []string {
	if d.Expression == nil || d.EvalContext == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, tr := range d.Expression.Variables() {
		name, ok := traversalName(tr)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		v, ok := lookup(d.EvalContext, tr)
		if !ok {
			continue
		}
		out = append(out, clean(name+" "+describe(v), false))
	}
	sort.Strings(out)
	return out
}

// traversalName writes a traversal like var.list[0].name.
func traversalName(tr hcl.Traversal) (string, bool) {
	var b strings.Builder
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			k := s.Key
			if k.IsMarked() || !k.IsKnown() || k.IsNull() || kindOf(k) != kindPrimitive {
				return "", false
			}
			b.WriteString("[" + primitive(k) + "]")
		default:
			return "", false
		}
	}
	return b.String(), b.Len() > 0
}

// lookup evaluates a variable traversal in ctx, stopping at values it
// cannot look into (sensitive, unknown or null ones), which it returns.
func lookup(ctx *hcl.EvalContext, tr hcl.Traversal) (cty.Value, bool) {
	if len(tr) == 0 {
		return cty.NilVal, false
	}
	root, ok := tr[0].(hcl.TraverseRoot)
	if !ok {
		return cty.NilVal, false
	}
	var v cty.Value
	found := false
	for c := ctx; c != nil && !found; c = c.Parent() {
		v, found = c.Variables[root.Name]
	}
	if !found {
		return cty.NilVal, false
	}
	v = norm(v)
	for _, step := range tr[1:] {
		if isSensitive(v) || !v.IsKnown() || v.IsNull() {
			return v, true
		}
		u := unmarked(v)
		var key cty.Value
		switch s := step.(type) {
		case hcl.TraverseAttr:
			if u.Type().IsObjectType() {
				if !u.Type().HasAttribute(s.Name) {
					return cty.NilVal, false
				}
				v = attrOf(v, s.Name)
				continue
			}
			key = cty.StringVal(s.Name)
		case hcl.TraverseIndex:
			key = s.Key
		default:
			return cty.NilVal, false
		}
		next, ok := index(v, key)
		if !ok {
			return cty.NilVal, false
		}
		v = next
	}
	return v, true
}

// index returns the element of the known, non-null, not sensitive
// collection v at key.
func index(v, key cty.Value) (cty.Value, bool) {
	if key.IsMarked() || !key.IsKnown() || key.IsNull() {
		return cty.NilVal, false
	}
	switch kindOf(v) {
	case kindList:
		if v.Type().IsSetType() || key.Type() != cty.Number {
			return cty.NilVal, false
		}
		i, acc := key.AsBigFloat().Int64()
		es := elements(v)
		if acc != 0 || i < 0 || i >= int64(len(es)) {
			return cty.NilVal, false
		}
		return es[i], true
	case kindMap, kindObject:
		if key.Type() != cty.String {
			return cty.NilVal, false
		}
		_, vals := keyedElements(v)
		e, ok := vals[key.AsString()]
		return e, ok
	}
	return cty.NilVal, false
}

// describe says what a value is without showing anything sensitive.
func describe(v cty.Value) string {
	v = norm(v)
	switch {
	case marks.IsSensitive(v):
		return "has a sensitive value"
	case !v.IsKnown():
		return "is a " + v.Type().FriendlyName() + ", known only after apply"
	case v.IsNull():
		return "is null"
	}
	switch kindOf(v) {
	case kindPrimitive:
		return "is " + primitive(v)
	case kindList, kindMap:
		n := len(elements(v))
		if kindOf(v) == kindMap {
			keys, _ := keyedElements(v)
			n = len(keys)
		}
		return "is a " + v.Type().FriendlyName() + " with " + plural(n, "element", "elements")
	case kindObject:
		return "is object with " + plural(len(v.Type().AttributeTypes()), "attribute", "attributes")
	}
	return "is a " + v.Type().FriendlyName()
}
