// Package ident checks the identifiers that the linux provider accepts:
// names of volumes, networks and nftables tables, host names and object
// tokens. Each is a short run of ASCII letters, digits and a few
// punctuation characters.
//
// The checks are plain loops rather than regular expressions: a bounded
// repetition such as {0,252} compiles into a program of hundreds of
// states, and compiling a few of them at package initialisation cost every
// berth command about a millisecond before main.
package ident

// Valid reports whether s is 1 to maxLen bytes long, its first byte is an
// ASCII letter or digit or one of first, and each following byte is an
// ASCII letter or digit or one of rest.
func Valid(s string, maxLen int, first, rest string) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	extra := first
	for i := 0; i < len(s); i++ {
		if !alnum(s[i]) && !in(s[i], extra) {
			return false
		}
		extra = rest
	}
	return true
}

// alnum reports whether c is an ASCII letter or digit.
func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// IsDigit reports whether c is an ASCII digit.
func IsDigit(c byte) bool { return '0' <= c && c <= '9' }

// in reports whether c is one of the bytes of set.
func in(c byte, set string) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}
