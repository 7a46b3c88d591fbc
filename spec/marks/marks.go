// Package marks defines the cty value marks that berth attaches to values.
package marks

import "github.com/zclconf/go-cty/cty"

type mark string

// Sensitive marks a value that must never be shown: in output, plan files, logs
// or errors it appears as "(sensitive value)".
const Sensitive = mark("sensitive")

// Redacted is the text shown in place of a sensitive value.
const Redacted = "(sensitive value)"

// IsSensitive reports whether v or any value inside it is marked sensitive.
func IsSensitive(v cty.Value) bool {
	if v.HasMark(Sensitive) {
		return true
	}
	_, pvm := v.UnmarkDeepWithPaths()
	for _, pm := range pvm {
		if _, ok := pm.Marks[Sensitive]; ok {
			return true
		}
	}
	return false
}
