package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("cannot unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("cannot name the pty: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("cannot open the pty: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func TestColourOnlyOnATerminal(t *testing.T) {
	_, tty := openPTY(t)
	cases := []struct {
		name    string
		w       io.Writer
		noColor bool
		environ []string
		want    bool
	}{
		{"terminal", tty, false, nil, true},
		{"terminal with -no-color", tty, true, nil, false},
		{"terminal with NO_COLOR", tty, false, []string{"NO_COLOR=1"}, false},
		{"buffer", &bytes.Buffer{}, false, nil, false},
	}
	for _, c := range cases {
		env := &cliEnv{environ: c.environ}
		o := &options{noColor: c.noColor}
		if got := o.color(env, c.w); got != c.want {
			t.Errorf("%s: colour = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestApplyAsksOnATerminal answers the confirmation prompt through a
// pseudo-terminal: "no" changes nothing, "yes" applies.
func TestApplyAsksOnATerminal(t *testing.T) {
	master, tty := openPTY(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "out", "hello.txt")
	cfg := filepath.Join(dir, "cfg")
	os.MkdirAll(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "main.hcl"), []byte(fmt.Sprintf("file \"hello\" {\n  path    = %q\n  content = \"hi\\n\"\n}\n", target)), 0o644)
	t.Setenv("BERTH_STATE_DIR", filepath.Join(dir, "state"))
	t.Setenv("NO_COLOR", "1")

	for _, c := range []struct {
		answer  string
		code    int
		created bool
		say     string
	}{
		{"no\n", 1, false, "Cancelled: nothing was changed."},
		{"yes\n", 0, true, "Apply complete! Resources: 1 added"},
	} {
		if _, err := master.WriteString(c.answer); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"apply", cfg}, tty, &out, &errb)
		if code != c.code {
			t.Fatalf("answer %q: exit %d, want %d\n%s%s", c.answer, code, c.code, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), "Enter a value:") || !strings.Contains(out.String(), c.say) {
			t.Errorf("answer %q: output lacks the prompt or %q:\n%s", c.answer, c.say, out.String())
		}
		_, err := os.Stat(target)
		if (err == nil) != c.created {
			t.Errorf("answer %q: file exists = %v, want %v", c.answer, err == nil, c.created)
		}
	}
}
