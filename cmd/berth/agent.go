package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthhq/berth/agent"
	"github.com/berthhq/berth/agent/metrics"
	"github.com/berthhq/berth/providers/linux"
	"github.com/berthhq/berth/providers/linux/shim"
	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/reconciler/view"
	"github.com/berthhq/berth/spec/addr"
	"github.com/hashicorp/hcl/v2"
)

// cmdAgent runs the agent: `berth agent --config agent.hcl`.
func cmdAgent(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlagSet(env, "agent", "agent --config FILE [--state-dir DIR] [--node-name NAME] [--label K=V] [--log-format text|json]")
	config := fs.String("config", "", "the agent's configuration file (agent.hcl)")
	var ov agent.Overrides
	var labels multiFlag
	fs.StringVar(&ov.StateDir, "state-dir", "", "state directory (overrides state_dir and BERTH_STATE_DIR)")
	fs.StringVar(&ov.NodeName, "node-name", "", "this host's name (overrides node.name)")
	fs.Var(&labels, "label", "a host label K=V, added to node.labels (repeatable)")
	fs.StringVar(&ov.LogFormat, "log-format", "", "log format: text or json (overrides log_format)")
	fs.BoolVar(&ov.InsecureGossip, "insecure-gossip", false, "allow gossip without a key (tests only)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	if len(pos) > 0 || *config == "" {
		fmt.Fprintln(env.stderr, "Error: berth agent takes --config FILE and no arguments")
		fs.Usage()
		return 1
	}
	ov.Labels = map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			fmt.Fprintf(env.stderr, "Error: invalid --label %q: write --label KEY=VALUE\n", l)
			return 1
		}
		ov.Labels[k] = v
	}
	cfg, files, diags := agent.LoadConfig(*config, ov, env.getenv)
	if len(diags) > 0 {
		_ = view.RenderDiagnostics(env.stderr, diags, files, view.Options{})
	}
	if diags.HasErrors() {
		return 1
	}
	var h slog.Handler = slog.NewTextHandler(env.stderr, nil)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(env.stderr, nil)
	}
	log := slog.New(h)
	opts := options{stateDir: cfg.StateDir, hostName: cfg.Node.Name, parallelism: 10, callTimeout: 10 * time.Minute, lockTimeout: 2 * time.Minute}
	for k, v := range cfg.Node.Labels {
		opts.labels = append(opts.labels, k+"="+v)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Variables)) {
		opts.vars = append(opts.vars, varArg{value: k + "=" + cfg.Variables[k]})
	}
	r := &engineRunner{env: env, opts: opts, log: log}
	err = agent.Serve(ctx, cfg, agent.Deps{
		Runner:     r,
		Containers: containerSource{root: linuxOptions(env, cfg.StateDir).Root},
		Logger:     log,
		Version:    Version,
		Idle:       shim.Trim,
	})
	if err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	log.Info("agent stopped; containers keep running")
	return 0
}

// engineRunner plans and applies configurations for the agent with the
// engine and the providers, as `berth apply` does.
type engineRunner struct {
	env  *cliEnv
	opts options
	log  *slog.Logger
}

// Run implements agent.Runner.
func (r *engineRunner) Run(ctx context.Context, req agent.RunRequest) (*agent.Outcome, error) {
	o := r.opts
	o.providerProcesses = true
	o.confined = req.Confine
	s, err := openSession(ctx, r.env, &o, "berth agent", true)
	if err != nil {
		return nil, err
	}
	defer s.close()
	out := &agent.Outcome{}
	cfg, in, diags := s.loadConfig(req.Dir)
	in.Untrusted = req.Confine
	if diags.HasErrors() {
		out.Invalid = true
		out.Diagnostics = r.diagText(s, req.Dir, diags)
		return out, nil
	}
	p, ds := s.engine.Plan(ctx, reconciler.PlanRequest{Config: cfg, Inputs: in})
	diags = append(diags, ds...)
	if diags.HasErrors() || p == nil {
		out.Invalid = true
		out.Recheck = true
		out.Diagnostics = r.diagText(s, req.Dir, diags)
		return out, nil
	}
	for _, c := range p.Changes {
		if c.Action != reconciler.Delete {
			out.Resources++
		}
		if c.Action != reconciler.Create {
			out.Owned++
		}
		if c.Action != reconciler.NoOp {
			out.Changes = append(out.Changes, c.Addr.String())
		}
	}
	out.Add, out.Change, out.Destroy = p.Counts()
	if req.Render {
		var buf bytes.Buffer
		if err := view.RenderPlan(&buf, p, view.Options{}); err != nil {
			return nil, err
		}
		out.PlanText = buf.String()
	}
	if !req.Apply || !p.HasChanges() {
		return out, nil
	}
	res := s.engine.Apply(ctx, p, logHook{log: r.log})
	for _, f := range res.Failed {
		out.Failed = append(out.Failed, f.String())
	}
	for _, sk := range res.Skipped {
		out.Failed = append(out.Failed, sk.String())
	}
	if res.Diagnostics.HasErrors() {
		out.Diagnostics = r.diagText(s, req.Dir, res.Diagnostics)
		if len(out.Failed) == 0 {
			out.Failed = []string{"(apply)"}
		}
	}
	return out, nil
}

// diagText renders diagnostics as text, naming files relative to the
// configuration directory.
func (r *engineRunner) diagText(s *session, dir string, diags hcl.Diagnostics) string {
	var buf bytes.Buffer
	_ = view.RenderDiagnostics(&buf, diags, s.files, view.Options{})
	return strings.ReplaceAll(buf.String(), filepath.Clean(dir)+string(filepath.Separator), "")
}

// logHook logs the progress of an agent's apply.
type logHook struct{ log *slog.Logger }

func (h logHook) PreApply(c *reconciler.Change) {}

func (h logHook) PostApply(c *reconciler.Change, elapsed time.Duration, err error) {
	if err != nil {
		h.log.Error("apply failed", "address", c.Addr.String(), "action", c.Action.String(), "err", err)
		return
	}
	h.log.Info("applied", "address", c.Addr.String(), "action", c.Action.String(), "elapsed", elapsed.Round(time.Millisecond))
}

func (h logHook) Skipped(c *reconciler.Change, cause addr.Instance) {
	h.log.Warn("skipped", "address", c.Addr.String(), "because", cause.String())
}

// containerSource gives the metrics the figures of this host's
// containers.
type containerSource struct{ root string }

// Containers implements metrics.ContainerSource.
func (c containerSource) Containers(ctx context.Context) ([]metrics.Container, error) {
	h, err := linux.OpenHost(c.root)
	if err != nil {
		return nil, err
	}
	samples, err := h.Samples()
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Container, 0, len(samples))
	for _, s := range samples {
		out = append(out, metrics.Container{
			Address: s.Address, ID: s.ID, Image: s.Image, Running: s.Running,
			CPUSeconds:  s.CPUUsage.Seconds(),
			MemoryUsage: s.MemoryUsage, MemoryLimit: s.MemoryLimit, Pids: s.Pids,
			NetRx: s.NetRx, NetTx: s.NetTx, BlockRead: s.BlockRead, BlockWrite: s.BlockWrite,
			Restarts: s.Restarts,
		})
	}
	return out, nil
}

// agentFlags are the flags of the commands that talk to an agent.
type agentFlags struct {
	stateDir  string
	addr      string
	tokenFile string
	caFile    string
}

func (f *agentFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&f.stateDir, "state-dir", "", "state directory whose agent to ask (env BERTH_STATE_DIR, default /var/lib/berth)")
	fs.StringVar(&f.addr, "agent", "", "the agent: unix:///path/agent.sock or https://host:port (default: the state directory's socket)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the API token for https (or env BERTH_AGENT_TOKEN)")
	fs.StringVar(&f.caFile, "ca-file", "", "CA certificate that signed the agent's certificate")
}

func (f *agentFlags) client(env *cliEnv) (*agent.Client, error) {
	addr := f.addr
	if addr == "" {
		o := options{stateDir: f.stateDir}
		addr = "unix://" + filepath.Join(o.resolvedStateDir(env), "agent.sock")
	}
	token := env.getenv("BERTH_AGENT_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read the token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return agent.NewClient(agent.ClientOptions{Addr: addr, Token: token, CAFile: f.caFile})
}

// cmdStatus prints the fleet as an agent sees it.
func cmdStatus(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlagSet(env, "status", "status [--agent ADDR] [-json]")
	var af agentFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print the fleet as JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return 1
	}
	c, err := af.client(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	fv, err := c.Fleet(ctx)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(fv)
		return 0
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tMEMBER\tLABELS\tREVISION\tSTATE\tLAST APPLY\tDRIFT\tFAILING")
	now := time.Now()
	for _, m := range fv.Members {
		last := "-"
		if !m.Status.LastApply.IsZero() {
			last = humanAgo(now.Sub(m.Status.LastApply)) + " ago"
		}
		failing := "-"
		if len(m.Status.FailingAddrs) > 0 {
			failing = strings.Join(m.Status.FailingAddrs, ",")
		} else if m.Status.Failing > 0 {
			failing = fmt.Sprint(m.Status.Failing)
		}
		state := m.Status.State
		if state == "" {
			state = "-"
		}
		name := m.Name
		if m.Self {
			name += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", name, m.State, labelString(m.Labels), shortRevision(m.Status.Revision), state, last, m.Status.Drifted, failing)
	}
	tw.Flush()
	for _, m := range fv.Members {
		if m.Status.Message != "" && (m.Status.State == agent.StateRefused || m.Status.State == agent.StateFailing) {
			fmt.Fprintf(env.stdout, "\n%s: %s\n", m.Name, strings.TrimSpace(m.Status.Message))
		}
	}
	return 0
}

// cmdSync asks the agent, and through gossip the fleet, to fetch at once.
func cmdSync(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlagSet(env, "sync", "sync [--agent ADDR]")
	var af agentFlags
	af.register(fs)
	if _, err := parseArgs(fs, args); err != nil {
		return 1
	}
	c, err := af.client(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	if err := c.Sync(ctx); err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	fmt.Fprintln(env.stdout, "Sync triggered.")
	return 0
}

// fleetPlan sends dir to the fleet through the agent at addr and prints
// each host's plan.
func fleetPlan(ctx context.Context, env *cliEnv, pf *planFlags, af *agentFlags, dir string) int {
	c, err := af.client(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	fp, err := c.FleetPlan(ctx, dir)
	if err != nil {
		fmt.Fprintf(env.stderr, "Error: %s\n", err)
		return 1
	}
	if pf.json {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(fp)
	}
	var targeted, changing, failed, untouched, unreachable int
	var add, change, destroy int
	for _, h := range fp.Hosts {
		switch {
		case h.Unreachable:
			unreachable++
		case h.Error != "" || h.Invalid:
			failed++
		case !h.Targeted:
			untouched++
		case h.HasChanges():
			targeted++
			changing++
		default:
			targeted++
		}
		add, change, destroy = add+h.Add, change+h.Change, destroy+h.Destroy
		if pf.json || (!h.Targeted && h.Error == "") {
			continue
		}
		fmt.Fprintf(env.stdout, "── host %s", h.Node)
		if len(h.Labels) > 0 {
			fmt.Fprintf(env.stdout, " [%s]", labelString(h.Labels))
		}
		fmt.Fprintln(env.stdout, " ──")
		switch {
		case h.Unreachable:
			fmt.Fprintf(env.stdout, "\nWarning: %s\n\n", h.Error)
		case h.Error != "":
			fmt.Fprintf(env.stdout, "\nError: %s\n\n", h.Error)
		case h.Invalid:
			fmt.Fprintf(env.stdout, "\n%s\n", h.Diagnostics)
		default:
			fmt.Fprintf(env.stdout, "\n%s\n", strings.TrimRight(h.Text, "\n"))
			if h.Diagnostics != "" {
				fmt.Fprintf(env.stdout, "\n%s\n", h.Diagnostics)
			}
			fmt.Fprintln(env.stdout)
		}
	}
	if !pf.json {
		var names []string
		for _, h := range fp.Hosts {
			if !h.Targeted && h.Error == "" {
				names = append(names, h.Node)
			}
		}
		fmt.Fprintf(env.stdout, "Fleet: %d hosts: %d targeted (%d would change), %d not targeted, %d failed to plan, %d unreachable.\n", len(fp.Hosts), targeted, changing, untouched, failed, unreachable)
		if len(names) > 0 {
			fmt.Fprintf(env.stdout, "Not targeted: %s.\n", strings.Join(names, ", "))
		}
		fmt.Fprintf(env.stdout, "Fleet plan: %d to add, %d to change, %d to destroy.\n", add, change, destroy)
	}
	if failed > 0 {
		return 1
	}
	if pf.detailedExitCode && changing > 0 {
		return 2
	}
	return 0
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// shortRevision shortens the hash of a revision for a table.
func shortRevision(r string) string {
	if r == "" {
		return "-"
	}
	if i := strings.Index(r, "sha1:"); i >= 0 && len(r) > i+5+12 {
		return r[:i+5+12]
	}
	return r
}

func humanAgo(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
