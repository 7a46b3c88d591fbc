package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/linux"
	"github.com/berthhq/berth/providers/linux/shim"
	"github.com/berthhq/berth/providers/local"
	"github.com/berthhq/berth/providers/plugin"
	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/reconciler/inventory"
	"github.com/berthhq/berth/reconciler/lock"
	"github.com/berthhq/berth/reconciler/view"
	"github.com/berthhq/berth/spec"
	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"
)

// providerSubcommand is the hidden subcommand that serves a built-in
// provider in a child process. It must never be "init": the container
// runtime re-executes the binary with that word.
const providerSubcommand = "__provider"

// builtinProviders lists the providers served by the berth binary itself.
func builtinProviders() []string { return []string{"local", "linux"} }

// shimSubcommand is the hidden subcommand that runs a container's shim.
const shimSubcommand = "__shim"

// rotateSubcommand is the hidden subcommand a shim runs when its container
// starts or stops serving: `berth __rotate DIR in|out`.
const rotateSubcommand = "__rotate"

// cmdRotate takes a container in or out of the rotation of its published
// ports; its shim runs it.
func cmdRotate(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) != 2 || (args[1] != "in" && args[1] != "out") {
		fmt.Fprintln(env.stderr, "berth: this command is run by a container's shim")
		return 2
	}
	dir := filepath.Clean(args[0])
	root := filepath.Dir(filepath.Dir(dir))
	h, err := linux.OpenHost(root)
	if err != nil {
		fmt.Fprintf(env.stderr, "berth: rotate: %v\n", err)
		return 1
	}
	if err := h.Rotate(ctx, filepath.Base(dir), args[1] == "in"); err != nil {
		fmt.Fprintf(env.stderr, "berth: rotate: %v\n", err)
		return 1
	}
	return 0
}

func protocolVersion() int { return providers.ProtocolVersion }

// cmdProvider serves a built-in provider over the plugin protocol.
func cmdProvider(_ context.Context, env *cliEnv, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(env.stderr, "berth: this command is started by berth itself to serve a provider")
		return 1
	}
	stateDir := env.getenv("BERTH_STATE_DIR")
	if stateDir == "" {
		stateDir = "/var/lib/berth"
	}
	p, err := builtinProvider(env, args[0], stateDir, env.getenv(confinedEnv) == "1")
	if err != nil {
		fmt.Fprintf(env.stderr, "berth: %v\n", err)
		return 1
	}
	plugin.Serve(p)
	return 0
}

// confinedEnv tells a built-in provider process to serve a configuration
// the host does not trust (options.confined).
const confinedEnv = "BERTH_PROVIDER_CONFINED"

// builtinProvider returns the built-in provider name for a state
// directory, confined or not (options.confined).
func builtinProvider(env *cliEnv, name, stateDir string, confined bool) (providers.Provider, error) {
	switch name {
	case local.Name:
		return local.New(filepath.Join(stateDir, "providers", "local")), nil
	case linux.Name:
		opts := linuxOptions(env, stateDir)
		opts.Confined = confined
		p, err := linux.New(opts)
		if err != nil {
			return nil, fmt.Errorf("linux provider: %w", err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("no built-in provider %q", name)
}

// linuxOptions are the settings of the linux provider for a state
// directory.
func linuxOptions(env *cliEnv, stateDir string) linux.Options {
	exe, args := shimCommand(env)
	return linux.Options{
		Root:         filepath.Join(stateDir, "providers", "linux"),
		Exe:          exe,
		ShimArgs:     args,
		Rotate:       func(dir string) []string { return []string{env.self, rotateSubcommand, dir} },
		CgroupParent: env.getenv("BERTH_CGROUP_PARENT"),
	}
}

// shimProgram is the name of the shim program that berth looks for
// beside its own executable.
const shimProgram = "berth-shim"

// shimCommand is how a container's shim is started: the berth-shim
// program beside berth's own executable, or else berth itself in the shim
// role. Both run the same code; berth-shim is a fraction of berth's size,
// so the process that stays beside every container, and the container
// init it starts, take less memory and start sooner.
func shimCommand(env *cliEnv) (string, func(dir string) []string) {
	p := filepath.Join(filepath.Dir(env.self), shimProgram)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p, func(dir string) []string { return []string{dir} }
	}
	return env.self, func(dir string) []string { return []string{shimSubcommand, dir} }
}

// cmdShim runs the shim of one container; the linux provider starts it.
func cmdShim(_ context.Context, env *cliEnv, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(env.stderr, "berth: this command is started by berth itself to supervise a container")
		return 1
	}
	if err := shim.Serve(context.Background(), args[0]); err != nil {
		fmt.Fprintf(env.stderr, "berth: shim: %v\n", err)
		return 1
	}
	return 0
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// varFlag collects -var and -var-file in command-line order.
type varFlag struct {
	list *[]varArg
	file bool
}

type varArg struct {
	file  bool
	value string
}

func (v varFlag) String() string { return "" }
func (v varFlag) Set(s string) error {
	*v.list = append(*v.list, varArg{file: v.file, value: s})
	return nil
}

// options are the flags shared by several commands.
type options struct {
	stateDir    string
	pluginDirs  multiFlag
	hostName    string
	labels      multiFlag
	noColor     bool
	parallelism int
	lockTimeout time.Duration
	callTimeout time.Duration
	vars        []varArg
	json        bool
	targets     multiFlag
	// providerProcesses runs each built-in provider in a process of its
	// own rather than in berth's.
	providerProcesses bool
	// confined serves a configuration the host does not trust: the
	// built-in providers look at no host path it names and contact no
	// registry while planning (linux.Options.Confined).
	confined bool
}

func (o *options) register(fs *flag.FlagSet, withVars bool) {
	fs.StringVar(&o.stateDir, "state-dir", "", "state directory (env BERTH_STATE_DIR, default /var/lib/berth)")
	fs.Var(&o.pluginDirs, "plugin-dir", "extra directory to search for provider plugins (repeatable)")
	fs.StringVar(&o.hostName, "host-name", "", "host name seen as host.name (default: this machine's hostname)")
	fs.Var(&o.labels, "label", "host label k=v seen in host.labels (repeatable)")
	fs.BoolVar(&o.noColor, "no-color", false, "disable colour (also NO_COLOR)")
	fs.IntVar(&o.parallelism, "parallelism", 10, "number of provider operations run at once")
	fs.DurationVar(&o.lockTimeout, "lock-timeout", 0, "how long to wait for the state lock (0: fail at once)")
	fs.DurationVar(&o.callTimeout, "provider-timeout", 10*time.Minute, "how long one provider operation may take")
	if withVars {
		fs.Var(varFlag{list: &o.vars}, "var", "set a variable: -var NAME=VALUE (repeatable)")
		fs.Var(varFlag{list: &o.vars, file: true}, "var-file", "read variables from an HCL file (repeatable)")
	}
}

// parseArgs parses flags that may come before or after positional
// arguments, as `berth plan DIR -out FILE` and `berth plan -out FILE DIR`.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(env *cliEnv, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: berth %s\n\nOptions:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

func (o *options) resolvedStateDir(env *cliEnv) string {
	if o.stateDir != "" {
		return o.stateDir
	}
	if d := env.getenv("BERTH_STATE_DIR"); d != "" {
		return d
	}
	return "/var/lib/berth"
}

func (o *options) color(env *cliEnv, w io.Writer) bool {
	if o.noColor || env.getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (o *options) host() (spec.Host, error) {
	h := spec.Host{Name: o.hostName, Labels: map[string]string{}}
	if h.Name == "" {
		n, err := os.Hostname()
		if err != nil {
			return h, fmt.Errorf("cannot read the hostname: %w; set --host-name", err)
		}
		h.Name = n
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return h, fmt.Errorf("invalid --label %q: write --label KEY=VALUE", l)
		}
		h.Labels[k] = v
	}
	return h, nil
}

// session is what a command that talks to providers holds.
type session struct {
	env      *cliEnv
	opts     *options
	stateDir string
	clients  []interface{ Close() }
	provs    map[string]providers.Provider
	engine   *reconciler.Engine
	store    *inventory.Store
	lock     *lock.Lock
	files    map[string]*hcl.File
}

// openSession starts the providers, opens the inventory and, when write is
// set, takes the state lock.
func openSession(ctx context.Context, env *cliEnv, o *options, command string, write bool) (*session, error) {
	s := &session{env: env, opts: o, stateDir: o.resolvedStateDir(env), files: map[string]*hcl.File{}}
	if err := os.MkdirAll(s.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the state directory: %w", err)
	}
	if write {
		l, err := lock.Acquire(ctx, s.stateDir, o.lockTimeout, command)
		if err != nil {
			return nil, err
		}
		s.lock = l
	}
	st, err := inventory.Open(s.stateDir)
	if err != nil {
		s.close()
		return nil, err
	}
	s.store = st
	provs, err := s.startProviders(ctx)
	if err != nil {
		s.close()
		return nil, err
	}
	s.provs = provs
	key, err := fingerprintKey(s.stateDir)
	if err != nil {
		s.close()
		return nil, err
	}
	eng, err := reconciler.New(ctx, reconciler.Options{
		Providers:      provs,
		Inventory:      st,
		Parallelism:    o.parallelism,
		CallTimeout:    o.callTimeout,
		FingerprintKey: key,
	})
	if err != nil {
		s.close()
		return nil, err
	}
	s.engine = eng
	return s, nil
}

func (s *session) startProviders(ctx context.Context) (map[string]providers.Provider, error) {
	out := map[string]providers.Provider{}
	// Always set, so that berth's own environment cannot confine or
	// unconfine a provider.
	confined := confinedEnv + "=0"
	if s.opts.confined {
		confined = confinedEnv + "=1"
	}
	env := []string{"BERTH_STATE_DIR=" + s.stateDir, confined}
	// start starts a provider's process; a provider that crashed or hung
	// is started again for the next call, a few times at most, so that
	// independent objects still get managed.
	start := func(ctx context.Context, name string, command func() *exec.Cmd) (*plugin.Restarting, error) {
		return plugin.NewRestarting(ctx, name, 3, func(ctx context.Context) (*plugin.Client, error) {
			cmd := command()
			// A provider must not outlive berth, even when berth is
			// killed.
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			return plugin.Start(ctx, name, cmd, plugin.Options{Env: env})
		})
	}
	// Built-in providers start with their first call other than Schema:
	// berth knows their schemas, and a run that manages none of their
	// kinds does without them. A command serves them in its own process,
	// which spares a program start and a handshake; the agent, which runs
	// for months, gives each its own process, so that a provider that
	// crashes or leaks is restarted without it.
	for _, name := range builtinProviders() {
		command := func() *exec.Cmd {
			cmd := exec.Command(s.env.self, providerSubcommand, name)
			// The child sees itself as "berth" whatever the file is called.
			cmd.Args[0] = "berth"
			return cmd
		}
		lazy, err := plugin.NewLazy(name, builtinSchema(name, s.stateDir), func(ctx context.Context) (plugin.Closer, error) {
			if !s.opts.providerProcesses {
				p, err := builtinProvider(s.env, name, s.stateDir, s.opts.confined)
				if err != nil {
					return nil, err
				}
				return plugin.InProcess(name, p), nil
			}
			return start(ctx, name, command)
		})
		if err != nil {
			return nil, err
		}
		s.clients = append(s.clients, lazy)
		out[name] = lazy
	}
	dirs := append([]string{filepath.Join(s.stateDir, "plugins")}, s.opts.pluginDirs...)
	found, err := plugin.Discover(dirs...)
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(found))
	for _, name := range names {
		if slices.Contains(builtinProviders(), name) {
			return nil, fmt.Errorf("plugin %s has the name of a built-in provider; rename or remove it", found[name])
		}
	}
	// Plugins start at once, each in its own process: a plan waits for
	// the slowest, not for their sum.
	clients := make([]*plugin.Restarting, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := found[name]
			clients[i], errs[i] = start(ctx, name, func() *exec.Cmd { return exec.Command(path) })
		}()
	}
	wg.Wait()
	var firstErr error
	for i, name := range names {
		if errs[i] != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("start provider %q (%s): %w", name, found[name], errs[i])
			}
			continue
		}
		s.clients = append(s.clients, clients[i])
		out[name] = clients[i]
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// builtinSchema is the schema of a built-in provider, known without its
// process.
func builtinSchema(name, stateDir string) providers.SchemaResponse {
	if name == linux.Name {
		return linux.StaticSchema()
	}
	return local.New(filepath.Join(stateDir, "providers", "local")).Schema(context.Background())
}

func (s *session) close() {
	for _, c := range s.clients {
		c.Close()
	}
	if s.lock != nil {
		_ = s.lock.Release()
	}
}

// fingerprintKey returns the state directory's key for plan fingerprints,
// creating it on first use.
func fingerprintKey(stateDir string) ([]byte, error) {
	p := filepath.Join(stateDir, "plan.key")
	b, err := os.ReadFile(p)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read plan key: %w", err)
	}
	tok := inventory.NewToken() + inventory.NewToken()
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok), 0o600); err != nil {
		return nil, fmt.Errorf("write plan key: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, fmt.Errorf("write plan key: %w", err)
	}
	return []byte(tok), nil
}

// loadConfig loads the configuration in dir and the variable inputs.
func (s *session) loadConfig(dir string) (*spec.Config, spec.Inputs, hcl.Diagnostics) {
	return loadConfig(s.env, s.opts, dir, s.files)
}

func loadConfig(env *cliEnv, o *options, dir string, files map[string]*hcl.File) (*spec.Config, spec.Inputs, hcl.Diagnostics) {
	var in spec.Inputs
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return nil, in, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No configuration directory",
			Detail:   fmt.Sprintf("%s is not a directory. Give the directory that holds your *.hcl files.", dir),
		}}
	}
	cfg, diags := spec.Load(os.DirFS(dir), dir)
	if cfg != nil {
		for n, f := range cfg.Files {
			files[n] = f
		}
	}
	in.Vars = spec.EnvVars(env.environ)
	for _, v := range o.vars {
		if v.file {
			vs, f, ds := spec.LoadVarFile(v.value)
			if f != nil {
				files[v.value] = f
			}
			diags = append(diags, ds...)
			in.Vars = append(in.Vars, vs...)
			continue
		}
		vi, err := spec.ParseVarFlag(v.value)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid -var", Detail: err.Error()})
			continue
		}
		in.Vars = append(in.Vars, vi)
	}
	h, err := o.host()
	if err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid host settings", Detail: err.Error()})
	}
	in.Host = h
	return cfg, in, diags
}

func (s *session) diags(diags hcl.Diagnostics) {
	renderDiags(s.env, s.opts, diags, s.files)
}

func renderDiags(env *cliEnv, o *options, diags hcl.Diagnostics, files map[string]*hcl.File) {
	if len(diags) == 0 {
		return
	}
	_ = view.RenderDiagnostics(env.stderr, diags, files, view.Options{Color: o.color(env, env.stderr)})
}
