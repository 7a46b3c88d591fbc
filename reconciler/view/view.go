// Package view renders what the engine produces for people and for programs:
// plans in Terraform's shape and as a JSON document, the progress of an apply
// as human lines or JSON lines, and diagnostics with their source.
//
// Every renderer takes values that carry marks.Sensitive marks and never
// writes a sensitive value: it shows "(sensitive value)" or, in JSON, null
// with a flag beside it.
package view

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Options controls the human renderers.
type Options struct {
	// Color turns on ANSI colours: green for what is added, yellow for what
	// changes, red for what is removed.
	Color bool
}

// ANSI escape sequences used when Options.Color is on.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiUnder  = "\x1b[4m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// paint wraps s in the given ANSI codes when colour is on.
func (o Options) paint(s string, codes ...string) string {
	if !o.Color || s == "" || len(codes) == 0 {
		return s
	}
	return strings.Join(codes, "") + s + ansiReset
}

// indent returns n spaces.
func indent(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat(" ", n)
}

// pad right-pads s with spaces to width runes.
func pad(s string, width int) string {
	return s + indent(width-utf8.RuneCountInString(s))
}

// plural returns "1 thing" or "N things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
