package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/berthhq/berth/providers"
	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// outputTail is how much of a provider's latest output a Client keeps
	// for crash reports.
	outputTail = 4 << 10
	// defaultStartTimeout bounds the start and handshake of a provider.
	defaultStartTimeout = 30 * time.Second
	// exitWait bounds the wait for a provider whose connection broke to
	// be seen as exited.
	exitWait = 3 * time.Second
	// killWait bounds the wait for a provider to be gone after berth
	// stopped it; closeWait does the same for a graceful Close.
	killWait  = 3 * time.Second
	closeWait = 5 * time.Second
)

// Options configures Start.
type Options struct {
	// Stderr receives whatever the provider writes to its standard output
	// and error. Nil discards it. In any case the Client keeps the last
	// 4 KiB to include in crash reports.
	Stderr io.Writer
	// Env holds KEY=VALUE pairs added to the provider's environment. They
	// win over the variables of the command's environment (cmd.Env, or
	// berth's own environment when that is nil).
	Env []string
	// StartTimeout bounds the start and handshake of the provider; zero
	// means 30 seconds. A deadline of Start's context that comes sooner
	// wins.
	StartTimeout time.Duration
}

// Client is a provider running in a child process. It implements
// providers.Provider and is safe for concurrent use.
//
// A call whose context ends before the provider answers returns an error
// diagnostic at once and kills the provider: a hung provider never hangs
// berth. A provider that crashes turns the calls under way into error
// diagnostics that carry its exit status and last output. After either,
// every call fails at once with a diagnostic that says why.
type Client struct {
	name   string
	cmd    *exec.Cmd
	gp     *goplugin.Client
	remote *remote
	output *tail

	mu      sync.Mutex
	stopped string // why the provider no longer runs; empty while it runs

	stopOnce sync.Once
}

var _ providers.Provider = (*Client)(nil)

// Start starts the provider binary of cmd, named name in messages, and
// completes the plugin handshake. It fails with a clear error when the
// binary is not a berth provider or speaks another protocol version. The
// context bounds the start only; cancelling it later does not stop the
// provider (Close does).
//
// Start sets cmd's environment, standard input and output; the caller may
// set its other fields, such as SysProcAttr.
func Start(ctx context.Context, name string, cmd *exec.Cmd, opts Options) (*Client, error) {
	if cmd == nil {
		return nil, errors.New("no provider command to start")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("provider %q not started: %w", name, err)
	}
	out := newTail(outputTail, opts.Stderr)
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(slices.Clip(env), opts.Env...)

	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	gp := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake(providers.ProtocolVersion),
		Plugins:          goplugin.PluginSet{PluginName: &GRPCPlugin{Name: name}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     timeout,
		Stderr:           out,
		SyncStdout:       out,
		SyncStderr:       out,
		Logger:           hclog.NewNullLogger(),
	})
	c := &Client{name: name, cmd: cmd, gp: gp, output: out}

	type started struct {
		r   *remote
		err error
	}
	done := make(chan started, 1)
	go func() {
		r, err := dispense(gp)
		done <- started{r, err}
	}()
	select {
	case s := <-done:
		if s.err != nil {
			return nil, c.startError(s.err)
		}
		s.r.guard = c
		c.remote = s.r
		return c, nil
	case <-ctx.Done():
		// go-plugin holds its lock for the whole handshake, so the
		// process can only be killed once the handshake gives up.
		go func() {
			<-done
			gp.Kill()
		}()
		return nil, fmt.Errorf("provider %q did not start in time: %w", name, ctx.Err())
	}
}

// dispense starts the process, completes the handshake and returns the
// client half of the protocol.
func dispense(gp *goplugin.Client) (*remote, error) {
	rpc, err := gp.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return nil, err
	}
	r, ok := raw.(*remote)
	if !ok {
		return nil, fmt.Errorf("go-plugin dispensed a %T", raw)
	}
	return r, nil
}

// startError explains why the handshake failed, once the process is gone.
func (c *Client) startError(err error) error {
	c.killProcess(killWait)
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if v, ok := pluginVersion(msg); ok {
		return &handshakeError{
			msg: fmt.Sprintf("handshake failed: the provider speaks provider protocol version %s, this berth speaks version %d; install a release of the provider built for protocol version %d",
				v, providers.ProtocolVersion, providers.ProtocolVersion),
			err: err,
		}
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return &handshakeError{msg: fmt.Sprintf("cannot run %s: %v", c.cmd.Path, pathErr.Err), err: err}
	}
	const unrecognized = "Unrecognized remote plugin message: "
	switch {
	case strings.HasPrefix(msg, unrecognized):
		if got := strings.TrimSpace(strings.TrimPrefix(msg, unrecognized)); got != "" {
			msg = fmt.Sprintf("it printed %q instead of the handshake", got)
		} else {
			msg = "it printed no handshake"
		}
	case strings.Contains(msg, "exited before we could connect"):
		msg = "it exited before the handshake"
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		msg = "it did not complete the handshake in time"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "handshake failed: %s is not a berth provider, or it failed before answering: %s", c.cmd.Path, msg)
	if st, ok := c.exitStatus(); ok {
		fmt.Fprintf(&b, " (%s)", st)
	}
	if out := c.output.String(); out != noOutput {
		fmt.Fprintf(&b, "; last output: %s", out)
	}
	return &handshakeError{msg: b.String(), err: err}
}

// pluginVersion returns the protocol version named by go-plugin's error
// for a version mismatch.
func pluginVersion(msg string) (string, bool) {
	const marker = "Plugin version: "
	if !strings.Contains(strings.ToLower(msg), "incompatible api version") {
		return "", false
	}
	_, rest, ok := strings.Cut(msg, marker)
	if !ok {
		return "", false
	}
	v, _, _ := strings.Cut(rest, ",")
	return strings.TrimSpace(v), v != ""
}

// handshakeError is the error of a failed start.
type handshakeError struct {
	msg string
	err error
}

func (e *handshakeError) Error() string { return e.msg }
func (e *handshakeError) Unwrap() error { return e.err }

// Close stops the provider: it asks it to exit and kills it when it does
// not within a few seconds. Calls made after Close fail.
func (c *Client) Close() {
	c.setStopped("berth closed it")
	c.stopOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			c.gp.Kill()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeWait):
			c.killProcess(killWait)
		}
	})
}

// stop kills the provider for the given reason.
func (c *Client) stop(reason string) {
	c.setStopped(reason)
	c.stopOnce.Do(func() { c.killProcess(killWait) })
}

// killProcess kills the provider process and waits, at most d, until it
// is reaped.
func (c *Client) killProcess(d time.Duration) {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
	done := make(chan struct{})
	go func() {
		c.gp.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func (c *Client) setStopped(reason string) {
	c.mu.Lock()
	if c.stopped == "" {
		c.stopped = reason
	}
	c.mu.Unlock()
}

func (c *Client) stoppedReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// exitStatus returns the exit status of the provider once it has exited.
func (c *Client) exitStatus() (string, bool) {
	// go-plugin records the exit under its lock after cmd.Wait returned,
	// so ProcessState is safe to read once Exited reports true.
	if !c.gp.Exited() || c.cmd.ProcessState == nil {
		return "", false
	}
	return c.cmd.ProcessState.String(), true
}

// waitExit waits, at most d, until the provider has exited.
func (c *Client) waitExit(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !c.gp.Exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// before implements guard.
func (c *Client) before(_ context.Context, op string) providers.Diagnostics {
	if reason := c.stoppedReason(); reason != "" {
		return providers.Errorf("provider %q is not running (%s), so berth cannot call %s; run berth again to restart it", c.name, reason, op)
	}
	if st, ok := c.exitStatus(); ok {
		// The process ended on its own: it crashed, during another call
		// or between calls. Calls in flight report the same reason.
		c.setStopped("it crashed: " + st)
		return providers.Errorf("provider %q is not running: it crashed (%s); last output: %s", c.name, st, c.output.String())
	}
	return nil
}

// after implements guard.
func (c *Client) after(ctx context.Context, op string, started time.Time, err error) providers.Diagnostics {
	if reason := c.stoppedReason(); reason != "" {
		return providers.Errorf("provider %q stopped during %s: %s", c.name, op, reason)
	}
	if timedOut(ctx) {
		c.stop(fmt.Sprintf("it did not answer %s in time and berth killed it", op))
		return providers.Errorf("provider %q did not answer %s in time (%v after %s); berth killed the provider", c.name, op, ctxErr(ctx), since(started))
	}
	if status.Code(err) == codes.Unavailable || c.gp.Exited() {
		if c.waitExit(exitWait) {
			st, _ := c.exitStatus()
			c.setStopped(fmt.Sprintf("it crashed during %s: %s", op, st))
			return providers.Errorf("provider %q crashed during %s: %s; last output: %s", c.name, op, st, c.output.String())
		}
		c.stop(fmt.Sprintf("its connection broke during %s and berth killed it", op))
		return providers.Errorf("provider %q lost its connection during %s (%s); berth killed the provider; last output: %s",
			c.name, op, status.Convert(err).Message(), c.output.String())
	}
	return providers.Errorf("provider %q failed during %s: %s", c.name, op, status.Convert(err).Message())
}

// Schema implements providers.Provider.
func (c *Client) Schema(ctx context.Context) providers.SchemaResponse {
	return c.remote.Schema(ctx)
}

// Validate implements providers.Provider.
func (c *Client) Validate(ctx context.Context, req providers.ValidateRequest) providers.ValidateResponse {
	return c.remote.Validate(ctx, req)
}

// Read implements providers.Provider.
func (c *Client) Read(ctx context.Context, req providers.ReadRequest) providers.ReadResponse {
	return c.remote.Read(ctx, req)
}

// Plan implements providers.Provider.
func (c *Client) Plan(ctx context.Context, req providers.PlanRequest) providers.PlanResponse {
	return c.remote.Plan(ctx, req)
}

// Apply implements providers.Provider.
func (c *Client) Apply(ctx context.Context, req providers.ApplyRequest) providers.ApplyResponse {
	return c.remote.Apply(ctx, req)
}

// Delete implements providers.Provider.
func (c *Client) Delete(ctx context.Context, req providers.DeleteRequest) providers.DeleteResponse {
	return c.remote.Delete(ctx, req)
}

// Import implements providers.Provider.
func (c *Client) Import(ctx context.Context, req providers.ImportRequest) providers.ImportResponse {
	return c.remote.Import(ctx, req)
}

// tail is an io.Writer that forwards to a sink and keeps the last bytes
// written.
type tail struct {
	mu   sync.Mutex
	sink io.Writer
	size int
	buf  []byte
	cut  bool // whether older output was dropped
}

func newTail(size int, sink io.Writer) *tail {
	return &tail{size: size, sink: sink}
}

// Write implements io.Writer. It never fails: a failing sink must not
// break the provider.
func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sink != nil {
		_, _ = t.sink.Write(p)
	}
	t.buf = append(t.buf, p...)
	if n := len(t.buf) - t.size; n > 0 {
		t.buf = append(t.buf[:0], t.buf[n:]...)
		t.cut = true
	}
	return len(p), nil
}

// noOutput stands for the output of a provider that wrote nothing.
const noOutput = "(none)"

// String returns the kept output, trimmed, or noOutput.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.cut {
		// Drop a rune cut in half.
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	switch {
	case s == "":
		return noOutput
	case t.cut:
		return "..." + s
	}
	return s
}

// ReadMany implements providers.BatchReader.
func (c *Client) ReadMany(ctx context.Context, reqs []providers.ReadRequest) []providers.ReadResponse {
	return c.remote.ReadMany(ctx, reqs)
}
