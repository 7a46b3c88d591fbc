package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binaries are built once per test run.
type binaries struct {
	berth    string
	provider string
}

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
)

// build compiles berth and the test provider into a temporary directory.
func build(t *testing.T) binaries {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-acceptance-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built = binaries{berth: filepath.Join(dir, "berth"), provider: filepath.Join(dir, "berth-provider-test")}
		// berth-shim goes beside berth, as an installation has it, so
		// that containers run under the small shim program.
		for pkg, out := range map[string]string{"../cmd/berth": built.berth, "../cmd/berth-shim": filepath.Join(dir, "berth-shim"), "../providers/testprovider/cmd/berth-provider-test": built.provider} {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = err
				built = binaries{}
				os.Stderr.Write(b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return built
}

// host is one simulated host: a state directory with the test provider
// installed, and a configuration directory.
type host struct {
	t        *testing.T
	bin      binaries
	stateDir string
	cfgDir   string
	env      []string
}

func newHost(t *testing.T) *host {
	t.Helper()
	bin := build(t)
	root := t.TempDir()
	h := &host{t: t, bin: bin, stateDir: filepath.Join(root, "state"), cfgDir: filepath.Join(root, "cfg")}
	plugins := filepath.Join(h.stateDir, "plugins")
	if err := os.MkdirAll(plugins, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(h.cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin.provider, filepath.Join(plugins, "berth-provider-test")); err != nil {
		t.Fatal(err)
	}
	h.env = append(os.Environ(), "BERTH_STATE_DIR="+h.stateDir, "NO_COLOR=1")
	return h
}

// objectsDir is where the test provider keeps its objects.
func (h *host) objectsDir() string { return filepath.Join(h.stateDir, "testprovider") }

func (h *host) write(src string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.cfgDir, "main.hcl"), []byte(src), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// result is the outcome of one berth run.
type result struct {
	code           int
	stdout, stderr string
}

func (h *host) berth(extraEnv []string, args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin.berth, args...)
	cmd.Env = append(append([]string{}, h.env...), extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("berth %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// mustBerth runs berth and fails the test unless it exits with want.
func (h *host) mustBerth(want int, extraEnv []string, args ...string) result {
	h.t.Helper()
	r := h.berth(extraEnv, args...)
	if r.code != want {
		h.t.Fatalf("berth %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// shown is what `berth show -json` lists.
type shown struct {
	Resources []struct {
		Address string `json:"address"`
		ID      string `json:"id"`
		Status  string `json:"status"`
		Gone    bool   `json:"gone"`
	} `json:"resources"`
}

func (h *host) show() shown {
	h.t.Helper()
	r := h.mustBerth(0, nil, "show", "-json")
	var s shown
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		h.t.Fatalf("show -json: %v\n%s", err, r.stdout)
	}
	return s
}

// objectFiles lists the objects the test provider holds.
func (h *host) objectFiles() []string {
	h.t.Helper()
	entries, err := os.ReadDir(h.objectsDir())
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}
