package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/providers/plugin"
	"github.com/berthhq/berth/providers/testprovider"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"berth": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
		"berth-provider-test": func() {
			opts, err := testprovider.OptionsFromEnv(os.Getenv)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			plugin.Serve(testprovider.New(testprovider.DirFromEnv(os.Getenv), opts...))
			os.Exit(0)
		},
	})
}

// TestScripts runs the CLI scripts in testdata/script. Each script gets a
// state directory, $WORK/state, with the test provider installed as a
// third-party plugin.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			state := filepath.Join(env.WorkDir, "state")
			if err := os.MkdirAll(filepath.Join(state, "plugins"), 0o700); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			if err := os.Symlink(exe, filepath.Join(state, "plugins", "berth-provider-test")); err != nil {
				return err
			}
			// A second copy of the test provider, for -plugin-dir.
			alt := filepath.Join(env.WorkDir, "altplugins")
			if err := os.MkdirAll(alt, 0o755); err != nil {
				return err
			}
			if err := os.Symlink(exe, filepath.Join(alt, "berth-provider-test")); err != nil {
				return err
			}
			env.Setenv("BERTH_STATE_DIR", state)
			env.Setenv("NO_COLOR", "1")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"filemode": cmdFilemode,
			"drift":    cmdDrift,
			"grepdir":  cmdGrepdir,
			"waitlock": cmdWaitlock,
			"exitcode": cmdExitcode,
		},
	})
}

// filemode FILE MODE checks a file's permission bits.
func cmdFilemode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: filemode FILE MODE")
	}
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	got := uint64(st.Mode().Perm())
	if (got == want) == neg {
		ts.Fatalf("%s has mode %04o, want %s%04o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// drift NAME ATTR VALUE edits the test provider's object named NAME by
// hand, as an operator would change a live object.
func cmdDrift(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: drift NAME ATTR VALUE")
	}
	dir := filepath.Join(ts.Getenv("BERTH_STATE_DIR"), "testprovider")
	entries, err := os.ReadDir(dir)
	ts.Check(err)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		ts.Check(err)
		var rec map[string]any
		ts.Check(json.Unmarshal(b, &rec))
		attrs, ok := rec["attributes"].(map[string]any)
		if !ok || attrs["name"] != args[0] {
			continue
		}
		attrs[args[1]] = args[2]
		out, err := json.Marshal(rec)
		ts.Check(err)
		ts.Check(os.WriteFile(p, out, 0o600))
		return
	}
	ts.Fatalf("no object named %q in %s", args[0], dir)
}

// grepdir PATTERN DIR succeeds when a file under DIR contains PATTERN.
func cmdGrepdir(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: grepdir TEXT DIR")
	}
	found := ""
	ts.Check(filepath.Walk(ts.MkAbs(args[1]), func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), args[0]) {
				found = p
			}
		}
		return nil
	}))
	if (found != "") != !neg {
		if neg {
			ts.Fatalf("%q found in %s", args[0], found)
		}
		ts.Fatalf("%q not found under %s", args[0], args[1])
	}
}

// waitlock waits until a berth process holds the state lock.
func cmdWaitlock(ts *testscript.TestScript, neg bool, args []string) {
	p := filepath.Join(ts.Getenv("BERTH_STATE_DIR"), "lock.info")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			var info struct {
				PID int `json:"PID"`
			}
			if json.Unmarshal(b, &info) == nil && info.PID > 0 {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", info.PID)); err == nil {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("no berth process took the lock within 20s")
}

// exitcode N CMD ARGS... runs a command and checks its exit code exactly;
// its output can be checked afterwards like that of exec.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: exitcode N COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if code != want {
		ts.Fatalf("%s exited %d, want %d", args[1], code, want)
	}
}
