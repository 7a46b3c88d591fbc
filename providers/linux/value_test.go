package linux

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"64M", 64 << 20, false},
		{"64m", 64 << 20, false},
		{"64MiB", 64 << 20, false},
		{"1g", 1 << 30, false},
		{"512k", 512 << 10, false},
		{"1.5G", 3 << 29, false},
		{"1048576", 1 << 20, false},
		{"100b", 100, false},
		{"64Q", 0, true},
		{"", 0, true},
		{"M", 0, true},
		{"-5M", 0, true},
		{"1.2.3M", 0, true},
	} {
		got, err := parseSize(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
		if err != nil && !strings.Contains(err.Error(), `e.g. "64M"`) {
			t.Errorf("parseSize(%q) error does not say how to fix it: %v", c.in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{64 << 20: "64M", 1 << 30: "1G", 1536 << 20: "1536M", 1000: "1000", 3 << 10: "3K"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
		if n, err := parseSize(formatSize(in)); err != nil || n != in {
			t.Errorf("formatSize(%d) does not parse back: %d, %v", in, n, err)
		}
	}
}

// The combinations Docker documents for ENTRYPOINT, CMD, --entrypoint and
// a command on the docker run line.
func TestCommandLine(t *testing.T) {
	ie, ic := []string{"/entry", "-x"}, []string{"serve", "--port=80"}
	for _, c := range []struct {
		name             string
		imgEntry, imgCmd []string
		entry, cmd       []string
		entrySet, cmdSet bool
		want             []string
	}{
		{"image defaults", ie, ic, nil, nil, false, false, []string{"/entry", "-x", "serve", "--port=80"}},
		{"command replaces cmd", ie, ic, nil, []string{"run"}, false, true, []string{"/entry", "-x", "run"}},
		{"entrypoint drops image cmd", ie, ic, []string{"/other"}, nil, true, false, []string{"/other"}},
		{"entrypoint and command", ie, ic, []string{"/other"}, []string{"a"}, true, true, []string{"/other", "a"}},
		{"only cmd in image", nil, []string{"sh"}, nil, nil, false, false, []string{"sh"}},
		{"empty entrypoint clears", ie, ic, []string{}, []string{"ls"}, true, true, []string{"ls"}},
	} {
		got := commandLine(c.imgEntry, c.imgCmd, c.entry, c.cmd, c.entrySet, c.cmdSet)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestSplitCommandKeepsEntrypointApart(t *testing.T) {
	ep, cmd := splitCommand([]string{"/entry"}, []string{"serve"}, nil, []string{"run"}, false, true)
	if diff := cmp.Diff([][]string{{"/entry"}, {"run"}}, [][]string{ep, cmd}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "A=1", "B=2"}, map[string]string{"A": "x", "C": "3"})
	want := []string{"PATH=/bin", "A=x", "B=2", "C=3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDefaultName(t *testing.T) {
	for in, want := range map[string]string{
		"volume.site":            "site",
		"container.web[2]":       "web-2",
		`container.web["blue"]`:  "web-blue",
		`container.web["a b/c"]`: "web-a-b-c",
	} {
		if got := defaultName(in); got != want {
			t.Errorf("defaultName(%s) = %q, want %q", in, got, want)
		}
	}
}
