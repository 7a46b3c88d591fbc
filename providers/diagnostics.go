package providers

import (
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// Severity tells whether a diagnostic is an error or a warning.
type Severity int

const (
	// Error is a problem that stops the operation.
	Error Severity = iota + 1
	// Warning is a problem worth telling that does not stop the operation.
	Warning
)

// Diagnostic is a problem reported by a provider. When Path is set, it names
// the attribute of the configuration at fault, and the engine reports the
// source range of that attribute.
type Diagnostic struct {
	Severity Severity
	Summary  string
	Detail   string
	Path     cty.Path
}

// Diagnostics is a list of diagnostics.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns the errors of ds as one error, or nil when there are none.
func (ds Diagnostics) Err() error {
	var msgs []string
	for _, d := range ds {
		if d.Severity != Error {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// Errorf returns a diagnostics list holding one error.
func Errorf(format string, args ...any) Diagnostics {
	return Diagnostics{{Severity: Error, Summary: fmt.Sprintf(format, args...)}}
}

// AttributeErrorf returns a diagnostics list holding one error about the
// attribute at path.
func AttributeErrorf(path cty.Path, format string, args ...any) Diagnostics {
	return Diagnostics{{Severity: Error, Summary: fmt.Sprintf(format, args...), Path: path}}
}
