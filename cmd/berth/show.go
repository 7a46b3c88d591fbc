package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/reconciler/inventory"
	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"golang.org/x/term"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// formatValue renders a value for people, hiding sensitive parts.
func formatValue(v cty.Value) string {
	var b strings.Builder
	writeValue(&b, v, "")
	return b.String()
}

func writeValue(b *strings.Builder, v cty.Value, indent string) {
	if v.HasMark(marks.Sensitive) {
		b.WriteString(marks.Redacted)
		return
	}
	v, _ = v.Unmark()
	switch {
	case v == cty.NilVal || v.IsNull():
		b.WriteString("null")
	case !v.IsKnown():
		b.WriteString("(known after apply)")
	case v.Type() == cty.String:
		b.WriteString(strconv.Quote(v.AsString()))
	case v.Type() == cty.Number:
		b.WriteString(v.AsBigFloat().Text('f', -1))
	case v.Type() == cty.Bool:
		b.WriteString(strconv.FormatBool(v.True()))
	case v.Type().IsListType() || v.Type().IsTupleType() || v.Type().IsSetType():
		if v.LengthInt() == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			b.WriteString(indent + "  ")
			writeValue(b, ev, indent+"  ")
			b.WriteString(",\n")
		}
		b.WriteString(indent + "]")
	case v.Type().IsMapType() || v.Type().IsObjectType():
		if v.LengthInt() == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{\n")
		var keys []string
		vals := map[string]cty.Value{}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			keys = append(keys, k.AsString())
			vals[k.AsString()] = ev
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(b, "%s  %s = ", indent, quoteKey(k))
			writeValue(b, vals[k], indent+"  ")
			b.WriteString("\n")
		}
		b.WriteString(indent + "}")
	default:
		b.WriteString(v.GoString())
	}
}

func quoteKey(k string) string {
	if addr.ValidName(k) {
		return k
	}
	return strconv.Quote(k)
}

// ownedObject is one owned object with its live state, for show.
type ownedObject struct {
	entry inventory.Entry
	state cty.Value
	gone  bool
	err   string
}

func (s *session) readOwned(ctx context.Context) ([]ownedObject, error) {
	entries, err := s.store.Entries()
	if err != nil {
		return nil, err
	}
	var out []ownedObject
	provs := s.provs
	for _, en := range entries {
		o := ownedObject{entry: en}
		p, ok := provs[en.Provider]
		if !ok {
			o.err = fmt.Sprintf("provider %q is not installed", en.Provider)
			out = append(out, o)
			continue
		}
		resp := p.Read(ctx, providers.ReadRequest{Kind: en.Kind, ID: en.ID, Owner: providers.Owner{Address: en.Address, Token: en.Token}, Private: en.Private})
		switch {
		case resp.Diagnostics.HasErrors():
			o.err = resp.Diagnostics.Err().Error()
		case resp.State == cty.NilVal || resp.State.IsNull():
			o.gone = true
		default:
			o.state = s.engine.MarkState(en.Kind, resp.State)
		}
		out = append(out, o)
	}
	return out, nil
}

func cmdShow(ctx context.Context, env *cliEnv, args []string) int {
	var o options
	fs := newFlagSet(env, "show", "show [-json] [ADDR]")
	o.register(fs, false)
	fs.BoolVar(&o.json, "json", false, "print one JSON document")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	var filter *addr.Instance
	if len(pos) > 1 {
		fmt.Fprintln(env.stderr, "Error: berth show takes at most one address")
		return 1
	}
	if len(pos) == 1 {
		a, err := addr.Parse(pos[0])
		if err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			return 1
		}
		filter = &a
	}
	s, err := openSession(ctx, env, &o, "berth show", false)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	defer s.close()
	objs, err := s.readOwned(ctx)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	outs, err := s.store.Outputs()
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	var shown []ownedObject
	for _, ob := range objs {
		if filter != nil {
			a, err := addr.Parse(ob.entry.Address)
			if err != nil || (a != *filter && !(filter.Key == addr.NoKey && a.Resource == filter.Resource)) {
				continue
			}
		}
		shown = append(shown, ob)
	}
	if filter != nil && len(shown) == 0 {
		fmt.Fprintf(env.stderr, "Error: berth owns no object at %s. Run `berth state list` to see what it owns.\n", filter)
		return 1
	}
	if o.json {
		return showJSON(env, shown, outs, filter == nil)
	}
	for _, ob := range shown {
		fmt.Fprintf(env.stdout, "# %s:\n", ob.entry.Address)
		switch {
		case ob.err != "":
			fmt.Fprintf(env.stdout, "# (cannot read: %s)\n\n", ob.err)
			continue
		case ob.gone:
			fmt.Fprintf(env.stdout, "# (the object is gone; berth apply will create it again)\n\n")
			continue
		}
		a, _ := addr.Parse(ob.entry.Address)
		fmt.Fprintf(env.stdout, "resource %q %q {\n", a.Kind, a.Name)
		writeAttrs(env, ob.state)
		fmt.Fprintln(env.stdout, "}")
		fmt.Fprintln(env.stdout)
	}
	if filter == nil && len(outs) > 0 {
		fmt.Fprintln(env.stdout, "Outputs:")
		fmt.Fprintln(env.stdout)
		for _, out := range outs {
			if out.Sensitive {
				fmt.Fprintf(env.stdout, "%s = %s\n", out.Name, marks.Redacted)
				continue
			}
			fmt.Fprintf(env.stdout, "%s = %s\n", out.Name, string(out.Value))
		}
	}
	if len(shown) == 0 && len(outs) == 0 {
		fmt.Fprintln(env.stdout, "berth owns nothing on this host yet.")
	}
	return 0
}

func writeAttrs(env *cliEnv, v cty.Value) {
	if v == cty.NilVal || !v.Type().IsObjectType() {
		return
	}
	names := make([]string, 0)
	for n := range v.Type().AttributeTypes() {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		if !v.GetAttr(n).IsNull() && len(n) > width {
			width = len(n)
		}
	}
	for _, n := range names {
		av := v.GetAttr(n)
		if av.IsNull() {
			continue
		}
		fmt.Fprintf(env.stdout, "    %-*s = %s\n", width, n, formatValue(av))
	}
}

// jsonValue converts a marked value to JSON with sensitive parts as null.
func jsonValue(v cty.Value) (json.RawMessage, bool) {
	if v == cty.NilVal {
		return json.RawMessage("null"), false
	}
	sens := false
	clean, err := cty.Transform(v, func(_ cty.Path, x cty.Value) (cty.Value, error) {
		if x.HasMark(marks.Sensitive) {
			x, _ = x.UnmarkDeep()
			if !x.IsNull() {
				sens = true
			}
			return cty.NullVal(x.Type()), nil
		}
		return x, nil
	})
	if err != nil {
		return json.RawMessage("null"), sens
	}
	clean, _ = clean.UnmarkDeep()
	if !clean.IsWhollyKnown() {
		return json.RawMessage("null"), sens
	}
	b, err := ctyjson.Marshal(clean, clean.Type())
	if err != nil {
		return json.RawMessage("null"), sens
	}
	return b, sens
}

func showJSON(env *cliEnv, objs []ownedObject, outs []inventory.Output, withOutputs bool) int {
	type res struct {
		Address      string          `json:"address"`
		Kind         string          `json:"kind"`
		Provider     string          `json:"provider"`
		ID           string          `json:"id"`
		Status       string          `json:"status"`
		Gone         bool            `json:"gone,omitempty"`
		Error        string          `json:"error,omitempty"`
		Values       json.RawMessage `json:"values"`
		HasSensitive bool            `json:"has_sensitive_values,omitempty"`
	}
	type outJSON struct {
		Value     json.RawMessage `json:"value"`
		Sensitive bool            `json:"sensitive"`
	}
	doc := struct {
		FormatVersion string             `json:"format_version"`
		Resources     []res              `json:"resources"`
		Outputs       map[string]outJSON `json:"outputs,omitempty"`
	}{FormatVersion: "1", Resources: []res{}}
	for _, ob := range objs {
		vals, sens := jsonValue(ob.state)
		doc.Resources = append(doc.Resources, res{
			Address: ob.entry.Address, Kind: ob.entry.Kind, Provider: ob.entry.Provider,
			ID: ob.entry.ID, Status: string(ob.entry.Status), Gone: ob.gone, Error: ob.err,
			Values: vals, HasSensitive: sens,
		})
	}
	if withOutputs {
		doc.Outputs = map[string]outJSON{}
		for _, o := range outs {
			v := o.Value
			if o.Sensitive || len(v) == 0 {
				v = json.RawMessage("null")
			}
			doc.Outputs[o.Name] = outJSON{Value: v, Sensitive: o.Sensitive}
		}
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	return 0
}

func cmdState(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprintln(env.stderr, "Usage: berth state list [ADDR...]")
		return 1
	}
	var o options
	fs := newFlagSet(env, "state list", "state list [ADDR...]")
	o.register(fs, false)
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return 1
	}
	st, err := inventory.Open(o.resolvedStateDir(env))
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	entries, err := st.Entries()
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	for _, en := range entries {
		if len(pos) > 0 {
			match := false
			for _, p := range pos {
				if en.Address == p || strings.HasPrefix(en.Address, p+"[") {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		suffix := ""
		if en.Status != inventory.Created {
			suffix = " (" + string(en.Status) + ")"
		}
		fmt.Fprintf(env.stdout, "%s%s\n", en.Address, suffix)
	}
	return 0
}
