// Package reconciler is berth's engine: it builds the resource graph of a
// configuration, reads the live state of every desired and owned object
// through the providers, computes a plan and applies it in dependency order.
package reconciler

import (
	"time"

	"github.com/berthhq/berth/spec/addr"
	"github.com/zclconf/go-cty/cty"
)

// Action is what a plan does to one resource instance.
type Action int

const (
	// NoOp leaves the object as it is.
	NoOp Action = iota
	// Create creates a new object.
	Create
	// Update changes the object in place.
	Update
	// Replace deletes the object and creates a new one.
	Replace
	// CreateThenDelete creates the new object before deleting the old one
	// (lifecycle create_before_destroy).
	CreateThenDelete
	// Delete removes the object.
	Delete
)

// String returns the action's name as used in JSON output: "no-op",
// "create", "update", "replace", "create-then-delete" or "delete".
func (a Action) String() string {
	switch a {
	case Create:
		return "create"
	case Update:
		return "update"
	case Replace:
		return "replace"
	case CreateThenDelete:
		return "create-then-delete"
	case Delete:
		return "delete"
	}
	return "no-op"
}

// IsReplace reports whether a replaces the object.
func (a Action) IsReplace() bool { return a == Replace || a == CreateThenDelete }

// Change is the planned change of one resource instance.
type Change struct {
	Addr addr.Instance
	// Provider is the name of the provider that manages the kind.
	Provider string
	Action   Action
	// Reason explains the action in words, e.g. "image changed" or "not in
	// the configuration".
	Reason string
	// Before is the live state (null for a create); After the planned state
	// (null for a delete). Both carry marks.Sensitive marks on sensitive
	// values, and After holds unknown values for what is known only after
	// apply.
	Before cty.Value
	After  cty.Value
	// RequiresReplace lists the attributes that force a replacement.
	RequiresReplace []cty.Path
	// Deposed tells that the object is an older object of the address left
	// behind by an interrupted replace.
	Deposed bool
	// Warning is what the provider says a delete of the kind costs, e.g.
	// "destroys data"; set on deletes and replacements only.
	Warning string
	// Highlights are the attributes of the kind worth showing when the
	// change has been applied (Kind.Highlights).
	Highlights []string
}

// OutputChange is the planned value of one output.
type OutputChange struct {
	Name      string
	Value     cty.Value
	Sensitive bool
	// Before is the value recorded by the last apply, cty.NilVal when there
	// is none (or it was sensitive and so not recorded).
	Before cty.Value
	// Unchanged tells that the value is the one the last apply recorded.
	Unchanged bool
}

// Plan is the result of planning: pure data, rendered by views.
type Plan struct {
	// Changes holds one entry per resource instance, no-ops included, in
	// address order.
	Changes []*Change
	Outputs []*OutputChange
	// Fingerprint identifies the configuration, inventory and live state the
	// plan was built from; a saved plan whose fingerprint no longer matches is
	// stale.
	Fingerprint string
	CreatedAt   time.Time

	state *planState
}

// Counts returns the numbers that the summary line shows: objects to add,
// to change and to destroy. A replacement counts as one add and one destroy.
func (p *Plan) Counts() (add, change, destroy int) {
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			add++
		case Update:
			change++
		case Replace, CreateThenDelete:
			add++
			destroy++
		case Delete:
			destroy++
		}
	}
	return add, change, destroy
}

// HasChanges reports whether applying p would change anything.
func (p *Plan) HasChanges() bool {
	a, c, d := p.Counts()
	return a+c+d > 0
}

// Hook receives the progress of an apply. The CLI's human and JSON views and
// the agent implement it. Calls may come from several goroutines at once.
type Hook interface {
	// PreApply is called when the engine starts changing an instance.
	PreApply(c *Change)
	// PostApply is called when it is done; err is nil on success.
	PostApply(c *Change, elapsed time.Duration, err error)
	// Skipped is called for a change that was not attempted because a
	// dependency failed.
	Skipped(c *Change, cause addr.Instance)
}

// NopHook is a Hook that does nothing.
type NopHook struct{}

// PreApply does nothing.
func (NopHook) PreApply(*Change) {}

// PostApply does nothing.
func (NopHook) PostApply(*Change, time.Duration, error) {}

// Skipped does nothing.
func (NopHook) Skipped(*Change, addr.Instance) {}
