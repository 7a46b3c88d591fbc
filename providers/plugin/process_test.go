package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/plugin"
	"github.com/zclconf/go-cty/cty"
)

// helperEnv makes the test binary act as a provider binary.
const helperEnv = "BERTH_PLUGIN_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper runs the test binary as a provider binary.
func runHelper(mode string) int {
	switch mode {
	case "provider":
		plugin.Serve(helperProvider{})
	case "version2":
		plugin.ServeVersion(helperProvider{}, providers.ProtocolVersion+1)
	case "slowstart":
		time.Sleep(20 * time.Second)
		plugin.Serve(helperProvider{})
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		return 2
	}
	return 0
}

// helperProvider is the provider of the helper binary. Its Apply does
// what the kind says: "crash" crashes the process, "hang" never answers,
// "sulk" answers with its own error just before its deadline, anything
// else echoes the planned value.
type helperProvider struct{}

func (helperProvider) Schema(context.Context) providers.SchemaResponse {
	return providers.SchemaResponse{Name: "helper", Kinds: map[string]*providers.Kind{"echo": {Block: &providers.Block{}}}}
}

func (helperProvider) Validate(context.Context, providers.ValidateRequest) providers.ValidateResponse {
	return providers.ValidateResponse{}
}

// Read answers with the environment variable named by the ID.
func (helperProvider) Read(_ context.Context, req providers.ReadRequest) providers.ReadResponse {
	return providers.ReadResponse{ID: req.ID, State: cty.StringVal(os.Getenv(req.ID))}
}

func (helperProvider) Plan(_ context.Context, req providers.PlanRequest) providers.PlanResponse {
	return providers.PlanResponse{Planned: req.Config}
}

func (helperProvider) Apply(ctx context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	switch req.Kind {
	case "sulk":
		// Give up a little before the deadline, as a provider whose clock
		// or network runs ahead of berth's would.
		if d, ok := ctx.Deadline(); ok {
			time.Sleep(time.Until(d) - 40*time.Millisecond)
		}
		return providers.ApplyResponse{Diagnostics: providers.Errorf("gave up: deadline near")}
	case "crash":
		// An unrecovered panic in another goroutine kills the process,
		// like a real provider bug.
		done := make(chan struct{})
		go func() {
			defer close(done)
			panic("boom: disk on fire")
		}()
		<-done
	case "hang":
		select {}
	}
	return providers.ApplyResponse{ID: "1", State: req.Planned}
}

func (helperProvider) Delete(context.Context, providers.DeleteRequest) providers.DeleteResponse {
	return providers.DeleteResponse{}
}

func (helperProvider) Import(context.Context, providers.ImportRequest) providers.ImportResponse {
	return providers.ImportResponse{}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startHelper starts the test binary as a provider in the given mode.
func startHelper(t *testing.T, mode string, opts plugin.Options) *plugin.Client {
	t.Helper()
	opts.Env = append(opts.Env, helperEnv+"="+mode)
	c, err := plugin.Start(context.Background(), "helper", exec.Command(os.Args[0]), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// processGone reports whether no process (not even a zombie) has pid.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStartAndCall(t *testing.T) {
	ctx := context.Background()
	c := startHelper(t, "provider", plugin.Options{Env: []string{"BERTH_TEST_VALUE=from-options", helperEnv + "=ignored-before"}})
	if sr := c.Schema(ctx); sr.Name != "helper" || sr.Diagnostics.HasErrors() {
		t.Fatalf("Schema = %q, %v", sr.Name, sr.Diagnostics.Err())
	}
	// Options.Env reaches the provider.
	if r := c.Read(ctx, providers.ReadRequest{Kind: "echo", ID: "BERTH_TEST_VALUE"}); !r.State.RawEquals(cty.StringVal("from-options")) {
		t.Errorf("provider sees BERTH_TEST_VALUE = %#v, %v", r.State, r.Diagnostics.Err())
	}
	planned := cty.ObjectVal(map[string]cty.Value{"id": cty.UnknownVal(cty.String)})
	if r := c.Apply(ctx, providers.ApplyRequest{Kind: "echo", Planned: planned}); r.Diagnostics.HasErrors() || !r.State.RawEquals(planned) {
		t.Errorf("Apply = %#v, %v", r.State, r.Diagnostics.Err())
	}

	pid := plugin.PID(c)
	c.Close()
	if !processGone(pid) {
		t.Errorf("provider process %d still exists after Close", pid)
	}
	ds := c.Read(ctx, providers.ReadRequest{Kind: "echo", ID: "X"}).Diagnostics
	if !ds.HasErrors() || !strings.Contains(ds[0].Summary, `provider "helper" is not running (berth closed it)`) {
		t.Errorf("Read after Close: %v", ds)
	}
	c.Close() // a second Close is harmless
}

func TestCrashDuringCall(t *testing.T) {
	ctx := context.Background()
	var sink syncBuffer
	c := startHelper(t, "provider", plugin.Options{Stderr: &sink})
	pid := plugin.PID(c)

	start := time.Now()
	ds := c.Apply(ctx, providers.ApplyRequest{Kind: "crash"}).Diagnostics
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the crashed call took %s", took)
	}
	if !ds.HasErrors() {
		t.Fatal("Apply of a crashing provider gave no error")
	}
	t.Log(ds[0].Summary)
	want := `provider "helper" crashed during Apply: exit status 2; last output: `
	if !strings.HasPrefix(ds[0].Summary, want) || !strings.Contains(ds[0].Summary, "panic: boom: disk on fire") {
		t.Errorf("summary = %q, want it to start with %q and hold the panic", ds[0].Summary, want)
	}
	if !strings.Contains(sink.String(), "boom: disk on fire") {
		t.Errorf("Options.Stderr did not get the provider's output: %q", sink.String())
	}
	if !processGone(pid) {
		t.Errorf("crashed provider %d was not reaped", pid)
	}

	// Later calls fail at once.
	start = time.Now()
	ds = c.Plan(ctx, providers.PlanRequest{Kind: "echo", Config: cty.EmptyObjectVal}).Diagnostics
	if took := time.Since(start); took > time.Second {
		t.Errorf("a call after the crash took %s", took)
	}
	if !ds.HasErrors() || !strings.Contains(ds[0].Summary, `provider "helper" is not running (it crashed during Apply: exit status 2)`) {
		t.Errorf("Plan after the crash: %v", ds)
	}
}

func TestHangIsKilled(t *testing.T) {
	c := startHelper(t, "provider", plugin.Options{})
	pid := plugin.PID(c)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	ds := c.Apply(ctx, providers.ApplyRequest{Kind: "hang"}).Diagnostics
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the hung call returned after %s", took)
	}
	if !ds.HasErrors() || !strings.HasPrefix(ds[0].Summary, `provider "helper" did not answer Apply in time (context deadline exceeded after `) {
		t.Fatalf("Apply of a hung provider: %v", ds)
	}
	t.Log(ds[0].Summary)
	if !processGone(pid) {
		t.Errorf("hung provider %d is still there", pid)
	}

	ds = c.Read(context.Background(), providers.ReadRequest{Kind: "echo", ID: "X"}).Diagnostics
	if !ds.HasErrors() || !strings.Contains(ds[0].Summary, "is not running (it did not answer Apply in time and berth killed it)") {
		t.Errorf("Read after the kill: %v", ds)
	}
}

// A provider that notices the deadline gRPC passed on and answers with its
// own error a moment before berth's deadline has still timed out.
func TestAnswerAtDeadlineIsTimeout(t *testing.T) {
	c := startHelper(t, "provider", plugin.Options{})
	pid := plugin.PID(c)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ds := c.Apply(ctx, providers.ApplyRequest{Kind: "sulk"}).Diagnostics
	if !ds.HasErrors() || !strings.HasPrefix(ds[0].Summary, `provider "helper" did not answer Apply in time`) {
		t.Fatalf("Apply of a provider that gave up at the deadline: %v", ds)
	}
	if !processGone(pid) {
		t.Errorf("provider %d is still there", pid)
	}
}

func TestCancelledCallIsKilled(t *testing.T) {
	c := startHelper(t, "provider", plugin.Options{})
	pid := plugin.PID(c)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	ds := c.Apply(ctx, providers.ApplyRequest{Kind: "hang"}).Diagnostics
	if !ds.HasErrors() || !strings.Contains(ds[0].Summary, "did not answer Apply in time (context canceled") {
		t.Fatalf("Apply cancelled: %v", ds)
	}
	if !processGone(pid) {
		t.Errorf("provider %d is still there", pid)
	}
}

func TestCallWithDoneContextDoesNotKill(t *testing.T) {
	c := startHelper(t, "provider", plugin.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ds := c.Read(ctx, providers.ReadRequest{Kind: "echo", ID: "X"}).Diagnostics
	if !ds.HasErrors() || !strings.Contains(ds[0].Summary, "berth did not call Read") {
		t.Errorf("Read with a done context: %v", ds)
	}
	if ds := c.Read(context.Background(), providers.ReadRequest{Kind: "echo", ID: "X"}).Diagnostics; ds.HasErrors() {
		t.Errorf("the provider was stopped by a call that was never made: %v", ds.Err())
	}
}

func TestProcessKilledBetweenCalls(t *testing.T) {
	c := startHelper(t, "provider", plugin.Options{})
	pid := plugin.PID(c)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Every call says that the provider crashed, the first one to notice
	// and the later ones alike, as calls in flight do when it crashes
	// under them.
	for range 2 {
		ds := c.Read(context.Background(), providers.ReadRequest{Kind: "echo", ID: "X"}).Diagnostics
		if !ds.HasErrors() || !strings.Contains(ds[0].Summary, "signal: killed") || !strings.Contains(ds[0].Summary, "crashed") {
			t.Errorf("Read of a killed provider: %v; want an error that says it crashed (signal: killed)", ds)
		}
	}
}

func TestHandshakeFailures(t *testing.T) {
	tests := []struct {
		name string
		cmd  *exec.Cmd
		env  []string
		want []string
	}{
		{"exits at once", exec.Command("/bin/true"), nil,
			[]string{"handshake failed: /bin/true is not a berth provider", "it printed no handshake (exit status 0)"}},
		{"prints something else", exec.Command("/bin/echo", "hello there"), nil,
			[]string{"handshake failed: /bin/echo is not a berth provider", `it printed "hello there" instead of the handshake`}},
		{"another protocol version", exec.Command(os.Args[0]), []string{helperEnv + "=version2"},
			[]string{fmt.Sprintf("speaks provider protocol version %d, this berth speaks version %d", providers.ProtocolVersion+1, providers.ProtocolVersion)}},
		{"fails with output", exec.Command(os.Args[0]), []string{helperEnv + "=nonsense"},
			[]string{"is not a berth provider", "(exit status 2); last output: unknown helper mode \"nonsense\""}},
		{"missing binary", exec.Command("/nonexistent/berth-provider-x"), nil,
			[]string{"cannot run /nonexistent/berth-provider-x: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c, err := plugin.Start(context.Background(), "x", tt.cmd, plugin.Options{Env: tt.env})
			if err == nil {
				c.Close()
				t.Fatal("Start succeeded")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Start took %s to fail", took)
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStartHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := plugin.Start(ctx, "slow", exec.Command(os.Args[0]), plugin.Options{Env: []string{helperEnv + "=slowstart"}})
	if err == nil {
		t.Fatal("Start of a provider that never answers succeeded")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Start took %s", took)
	}
}
