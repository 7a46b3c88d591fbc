package plugin

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		writes []string
		want   string
	}{
		{"nothing", 8, nil, "(none)"},
		{"blank", 8, []string{"  \n"}, "(none)"},
		{"fits", 8, []string{"ab", "cd\n"}, "abcd"},
		{"keeps the end", 8, []string{"0123456789", "abcdef"}, "...89abcdef"},
		{"drops a cut rune", 4, []string{"xé", "abc"}, "...abc"},
		{"invalid utf-8", 8, []string{"a\xffb"}, "a?b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sink bytes.Buffer
			tl := newTail(tt.size, &sink)
			for _, w := range tt.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := tl.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if got, want := sink.String(), strings.Join(tt.writes, ""); got != want {
				t.Errorf("sink got %q, want %q", got, want)
			}
		})
	}
}

func TestTailBound(t *testing.T) {
	tl := newTail(outputTail, nil)
	for range 100 {
		_, _ = tl.Write([]byte(strings.Repeat("é", 100) + "\n"))
	}
	s := tl.String()
	if len(s) > outputTail+len("...") || !strings.HasPrefix(s, "...") || !utf8.ValidString(s) {
		t.Errorf("tail of %d bytes, prefix %q", len(s), s[:10])
	}
}
