package view

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/zclconf/go-cty/cty"
)

// PlanFormatVersion is the version of the JSON plan document written by
// WritePlanJSON. It changes its major number when a field is removed or
// changes meaning; new fields may appear in any version.
const PlanFormatVersion = "1"

// jsonPlan is the JSON plan document; docs/json-output.md describes it.
type jsonPlan struct {
	FormatVersion   string                      `json:"format_version"`
	Fingerprint     string                      `json:"fingerprint,omitempty"`
	CreatedAt       string                      `json:"created_at,omitempty"`
	ResourceChanges []jsonResourceChange        `json:"resource_changes"`
	OutputChanges   map[string]jsonOutputChange `json:"output_changes"`
	Summary         jsonSummary                 `json:"summary"`
}

type jsonResourceChange struct {
	Address         string  `json:"address"`
	Kind            string  `json:"kind"`
	Name            string  `json:"name"`
	Index           any     `json:"index"`
	Provider        string  `json:"provider"`
	Action          string  `json:"action"`
	Reason          string  `json:"reason"`
	Warning         string  `json:"warning,omitempty"`
	Deposed         bool    `json:"deposed"`
	Before          any     `json:"before"`
	After           any     `json:"after"`
	AfterUnknown    any     `json:"after_unknown"`
	BeforeSensitive any     `json:"before_sensitive"`
	AfterSensitive  any     `json:"after_sensitive"`
	ReplacePaths    [][]any `json:"replace_paths"`
}

type jsonOutputChange struct {
	Sensitive      bool `json:"sensitive"`
	After          any  `json:"after"`
	AfterUnknown   any  `json:"after_unknown"`
	AfterSensitive any  `json:"after_sensitive"`
}

type jsonSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	Failed  int `json:"failed,omitempty"`
	Skipped int `json:"skipped,omitempty"`
}

// WritePlanJSON writes p as one JSON document followed by a newline, in the
// format described in docs/json-output.md. Sensitive values never appear in
// it: they are written as null and flagged true in before_sensitive and
// after_sensitive. Unknown values are written as null and flagged true in
// after_unknown.
func WritePlanJSON(w io.Writer, p *reconciler.Plan) error {
	if p == nil {
		return errors.New("write plan json: no plan given")
	}
	doc := jsonPlan{
		FormatVersion:   PlanFormatVersion,
		Fingerprint:     p.Fingerprint,
		ResourceChanges: []jsonResourceChange{},
		OutputChanges:   map[string]jsonOutputChange{},
	}
	if !p.CreatedAt.IsZero() {
		doc.CreatedAt = p.CreatedAt.UTC().Format(time.RFC3339)
	}
	var changes []*reconciler.Change
	for _, c := range p.Changes {
		if c == nil {
			continue
		}
		changes = append(changes, c)
		before, after := norm(c.Before), norm(c.After)
		switch c.Action {
		case reconciler.Create:
			before = cty.NullVal(cty.DynamicPseudoType)
		case reconciler.Delete:
			after = cty.NullVal(cty.DynamicPseudoType)
		}
		rc := jsonResourceChange{
			Address:         c.Addr.String(),
			Kind:            c.Addr.Kind,
			Name:            c.Addr.Name,
			Index:           jsonIndex(c.Addr.Key),
			Provider:        c.Provider,
			Action:          c.Action.String(),
			Reason:          c.Reason,
			Warning:         c.Warning,
			Deposed:         c.Deposed,
			Before:          jsonValue(before),
			After:           jsonValue(after),
			AfterUnknown:    unknownMirror(after),
			BeforeSensitive: sensitiveMirror(before),
			AfterSensitive:  sensitiveMirror(after),
			ReplacePaths:    [][]any{},
		}
		for _, path := range c.RequiresReplace {
			rc.ReplacePaths = append(rc.ReplacePaths, jsonPath(path))
		}
		doc.ResourceChanges = append(doc.ResourceChanges, rc)
	}
	for _, o := range p.Outputs {
		if o == nil {
			continue
		}
		v := norm(o.Value)
		oc := jsonOutputChange{
			Sensitive:      o.Sensitive,
			After:          jsonValue(v),
			AfterUnknown:   unknownMirror(v),
			AfterSensitive: sensitiveMirror(v),
		}
		if o.Sensitive {
			oc.After, oc.AfterSensitive = nil, true
		}
		doc.OutputChanges[o.Name] = oc
	}
	doc.Summary.Add, doc.Summary.Change, doc.Summary.Destroy = counts(changes)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write plan json: %w", err)
	}
	return nil
}

// jsonIndex returns an instance key as JSON: null, a number or a string.
func jsonIndex(k addr.Key) any {
	switch k.Type() {
	case addr.IntKeyType:
		return k.Int()
	case addr.StringKeyType:
		return k.Str()
	}
	return nil
}

// jsonPath returns a path as a list of steps: attribute names and map keys
// as strings, list indexes as numbers.
func jsonPath(p cty.Path) []any {
	out := []any{}
	for _, s := range p {
		switch s := s.(type) {
		case cty.GetAttrStep:
			out = append(out, s.Name)
		case cty.IndexStep:
			out = append(out, jsonValue(s.Key))
		}
	}
	return out
}

// jsonValue converts v to a value for encoding/json: sensitive and unknown
// values, at any depth, become null.
func jsonValue(v cty.Value) any {
	v = norm(v)
	if isSensitive(v) || !v.IsKnown() || v.IsNull() {
		return nil
	}
	switch kindOf(v) {
	case kindPrimitive:
		u := unmarked(v)
		switch u.Type() {
		case cty.String:
			return u.AsString()
		case cty.Bool:
			return u.True()
		case cty.Number:
			f := u.AsBigFloat()
			if f.IsInf() {
				return formatNumber(f)
			}
			return json.Number(f.Text('f', -1))
		}
	case kindList:
		out := []any{}
		for _, e := range elements(v) {
			out = append(out, jsonValue(e))
		}
		return out
	case kindMap, kindObject:
		keys, vals := keyedElements(v)
		out := make(map[string]any, len(keys))
		for _, k := range keys {
			out[k] = jsonValue(vals[k])
		}
		return out
	}
	return nil
}

// unknownMirror returns the mirror of v that flags unknown values: true
// for an unknown value; for a map or an object, an object holding only the
// keys under which something is flagged; for a list, set or tuple, an array
// with one entry per element, false for an element with nothing flagged;
// false otherwise.
func unknownMirror(v cty.Value) any {
	m, _ := mirror(norm(v), func(v cty.Value) bool { return !v.IsKnown() })
	return m
}

// sensitiveMirror returns the mirror of v that flags sensitive values, in
// the same shape as unknownMirror.
func sensitiveMirror(v cty.Value) any {
	m, _ := mirror(norm(v), isSensitive)
	return m
}

// mirror returns the mirror of v and whether anything in it is flagged.
func mirror(v cty.Value, flag func(cty.Value) bool) (any, bool) {
	if flag(v) {
		return true, true
	}
	if !v.IsKnown() || v.IsNull() {
		return false, false
	}
	switch kindOf(v) {
	case kindList:
		out := []any{}
		flagged := false
		for _, e := range elements(v) {
			m, f := mirror(e, flag)
			if !f {
				m = false
			}
			out = append(out, m)
			flagged = flagged || f
		}
		return out, flagged
	case kindMap, kindObject:
		keys, vals := keyedElements(v)
		out := map[string]any{}
		for _, k := range keys {
			if m, f := mirror(vals[k], flag); f {
				out[k] = m
			}
		}
		return out, len(out) > 0
	}
	return false, false
}

// idOf returns the "id" attribute of the object v as text when it is known,
// not null and not sensitive.
func idOf(v cty.Value) (string, bool) {
	v = norm(v)
	if isSensitive(v) || !v.IsKnown() || v.IsNull() || !v.Type().IsObjectType() || !v.Type().HasAttribute("id") {
		return "", false
	}
	id := attrOf(v, "id")
	if marks.IsSensitive(id) || !id.IsKnown() || id.IsNull() || kindOf(id) != kindPrimitive {
		return "", false
	}
	u := unmarked(id)
	if u.Type() == cty.String {
		return u.AsString(), true
	}
	return primitive(u), true
}
