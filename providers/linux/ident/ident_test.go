package ident

import (
	"regexp"
	"strings"
	"testing"
)

// The regular expressions that Valid replaces, with the arguments that
// stand for each: Valid must agree with them on every input.
var equivalents = []struct {
	re          *regexp.Regexp
	max         int
	first, rest string
	noDigit     bool // the first byte must not be a digit either
}{
	{regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,252}$`), 253, "_", "_.-", false},
	{regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`), 128, "", "_.-", false},
	{regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`), 64, "", "_.-", false},
	{regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`), 128, "_.-", "_.-", false},
	{regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`), 64, "", "_-", true},
}

// check is how a caller combines Valid and IsDigit for e.
func check(s string, max int, first, rest string, noDigit bool) bool {
	return Valid(s, max, first, rest) && !(noDigit && IsDigit(s[0]))
}

func TestValidMatchesTheRegexps(t *testing.T) {
	inputs := []string{
		"", "a", "A", "0", "9x", "_", ".", "-", "a.b", "_a", ".a", "-a", "a-", "a_b.c-d",
		"a b", "a/b", "é", "a\x00", "a\n", "web-1", "db.example.com",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65),
		strings.Repeat("b", 127), strings.Repeat("b", 128), strings.Repeat("b", 129),
		strings.Repeat("c", 252), strings.Repeat("c", 253), strings.Repeat("c", 254),
	}
	for _, e := range equivalents {
		for _, s := range inputs {
			if got, want := check(s, e.max, e.first, e.rest, e.noDigit), e.re.MatchString(s); got != want {
				t.Errorf("Valid(%q, %d, %q, %q) = %v, the regexp %s says %v", s, e.max, e.first, e.rest, got, e.re, want)
			}
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{"", "a", "_x", "a.b-c", "é", strings.Repeat("z", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range equivalents {
			if got, want := check(s, e.max, e.first, e.rest, e.noDigit), e.re.MatchString(s); got != want {
				t.Fatalf("Valid(%q, %d, %q, %q) = %v, the regexp %s says %v", s, e.max, e.first, e.rest, got, e.re, want)
			}
		}
	})
}
