package view

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/spec/marks"
	"github.com/zclconf/go-cty/cty"
)

// RenderPlan writes p for people, in the shape of Terraform's plan: one
// block per resource instance that changes, with its reason, then the line
// "Plan: N to add, N to change, N to destroy." and the planned outputs. A
// plan without changes prints "No changes. The host matches the
// configuration." and no outputs, since their values are those already
// applied.
func RenderPlan(w io.Writer, p *reconciler.Plan, opts Options) error {
	if p == nil {
		return errors.New("render plan: no plan given")
	}
	var b strings.Builder
	var changes []*reconciler.Change
	for _, c := range p.Changes {
		if c == nil {
			continue
		}
		switch c.Action {
		case reconciler.Create, reconciler.Update, reconciler.Replace, reconciler.CreateThenDelete, reconciler.Delete:
			changes = append(changes, c)
		}
	}
	if len(changes) == 0 {
		b.WriteString(opts.paint("No changes.", ansiBold, ansiGreen) + " The host matches the configuration.\n")
	} else {
		b.WriteString("berth will perform the following actions:\n")
		for _, c := range changes {
			b.WriteString("\n")
			for _, l := range renderChange(c, opts) {
				b.WriteString(strings.TrimRight(l, " ") + "\n")
			}
		}
		add, chg, del := counts(changes)
		b.WriteString("\n" + opts.paint("Plan:", ansiBold) + fmt.Sprintf(" %d to add, %d to change, %d to destroy.\n", add, chg, del))
		if lines := renderOutputs(p.Outputs, opts); len(lines) > 0 {
			b.WriteString("\nChanges to Outputs:\n")
			for _, l := range lines {
				b.WriteString(strings.TrimRight(l, " ") + "\n")
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

// renderChange renders one resource instance change.
func renderChange(c *reconciler.Change, opts Options) []string {
	addr := c.Addr.String()
	head := opts.paint("# "+addr, ansiBold)
	var what, symbol string
	d := &differ{opts: opts}
	before, after := norm(c.Before), norm(c.After)
	switch c.Action {
	case reconciler.Create:
		what, symbol = " will be created", "  "+d.mark(symCreate)
		before = cty.NullVal(cty.DynamicPseudoType)
	case reconciler.Update:
		what, symbol = " will be updated in-place", "  "+d.mark(symUpdate)
	case reconciler.Replace:
		what = " must be replaced"
		symbol = d.mark(symDelete) + "/" + d.mark(symCreate)
		d.full, d.forces = true, c.RequiresReplace
	case reconciler.CreateThenDelete:
		what = " must be replaced (create before destroy)"
		symbol = d.mark(symCreate) + "/" + d.mark(symDelete)
		d.full, d.forces = true, c.RequiresReplace
	default: // reconciler.Delete; RenderPlan passes no other action
		what, symbol = " will be destroyed", "  "+d.mark(symDelete)
		if c.Deposed {
			what = " (deposed object) will be destroyed"
		}
		after = cty.NullVal(cty.DynamicPseudoType)
	}
	lines := []string{"  " + head + what}
	if c.Reason != "" {
		for _, r := range strings.Split(c.Reason, "\n") {
			lines = append(lines, "  # (because "+r+")")
		}
	}
	if c.Warning != "" {
		lines = append(lines, "  "+opts.paint("# warning: this "+c.Warning, ansiBold))
	}
	open := symbol + " resource " + strconv.Quote(c.Addr.Kind) + " " + strconv.Quote(c.Addr.Name)
	var body []string
	switch {
	case isSensitive(before) || isSensitive(after):
		body = []string{comment(1, "(all attributes are sensitive)")}
	case !after.IsKnown():
		body = []string{comment(1, "(all attributes known after apply)")}
	default:
		body = d.body(1, nil, before, after)
	}
	if len(body) == 0 {
		return append(lines, open+" {}")
	}
	lines = append(lines, open+" {")
	lines = append(lines, body...)
	return append(lines, closer(1)+"}")
}

// renderOutputs renders the planned outputs as entries at depth 0.
func renderOutputs(outs []*reconciler.OutputChange, opts Options) []string {
	d := &differ{opts: opts}
	var es []entry
	for _, o := range outs {
		if o == nil {
			continue
		}
		if o.Unchanged {
			continue
		}
		s := symCreate
		if o.Before != cty.NilVal {
			s = symUpdate
		}
		lines := []string{marks.Redacted}
		switch {
		case o.Sensitive:
		case s == symUpdate:
			lines = d.value(0, nil, s, o.Before, o.Value)
		default:
			lines = d.whole(0, o.Value, symCreate)
		}
		es = append(es, entry{sym: s, name: o.Name, lines: lines})
	}
	return d.layout(0, es, nil, 0, 0, "", "")
}

// counts returns the plan summary numbers of changes, which must not hold
// nil entries.
func counts(changes []*reconciler.Change) (add, change, destroy int) {
	return (&reconciler.Plan{Changes: changes}).Counts()
}
