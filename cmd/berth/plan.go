package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/reconciler/planfile"
	"github.com/berthhq/berth/reconciler/view"
	"github.com/berthhq/berth/spec"
	"github.com/berthhq/berth/spec/addr"
)

// planFlags are the flags of plan, apply and destroy.
type planFlags struct {
	options
	out              string
	detailedExitCode bool
	autoApprove      bool
	destroy          bool
	lock             bool
}

func (p *planFlags) targetAddrs() ([]addr.Instance, error) {
	var out []addr.Instance
	for _, t := range p.targets {
		a, err := addr.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("invalid -target: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

func lockError(env *cliEnv, err error) int {
	fmt.Fprintf(env.stderr, "Error: %s\n", err)
	return 1
}

func cmdPlan(ctx context.Context, env *cliEnv, args []string) int {
	var pf planFlags
	fs := newFlagSet(env, "plan", "plan [DIR] [-fleet ADDR] [-out FILE] [-json] [-detailed-exitcode] [-var NAME=VALUE] [-var-file FILE] [-target ADDR] [-destroy]")
	pf.register(fs, true)
	fs.StringVar(&pf.out, "out", "", "save the plan to FILE for `berth apply FILE`")
	fs.BoolVar(&pf.json, "json", false, "print the plan as one JSON document")
	fs.BoolVar(&pf.detailedExitCode, "detailed-exitcode", false, "exit 0: no changes, 1: error, 2: changes present")
	fs.Var(&pf.targets, "target", "limit the plan to this resource and what it depends on (repeatable)")
	fs.BoolVar(&pf.destroy, "destroy", false, "plan the deletion of every owned object")
	fs.BoolVar(&pf.lock, "lock", true, "take the state lock while planning")
	var af agentFlags
	fs.StringVar(&af.addr, "fleet", "", "send the configuration to the fleet through the agent at ADDR (unix:///path/agent.sock or https://host:port) and print each host's plan")
	fs.StringVar(&af.tokenFile, "token-file", "", "with -fleet: file holding the agent's API token (or env BERTH_AGENT_TOKEN)")
	fs.StringVar(&af.caFile, "ca-file", "", "with -fleet: CA certificate that signed the agent's certificate")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	dir, ok := oneDir(env, pos, "plan")
	if !ok {
		return 1
	}
	if af.addr != "" {
		if pf.out != "" || pf.destroy || len(pf.targets) > 0 || len(pf.vars) > 0 {
			fmt.Fprintln(env.stderr, "Error: -fleet plans the configuration as each agent would apply it: -out, -destroy, -target and -var do not apply")
			return 1
		}
		return fleetPlan(ctx, env, &pf, &af, dir)
	}
	s, err := openSession(ctx, env, &pf.options, "berth plan", pf.lock)
	if err != nil {
		return lockError(env, err)
	}
	defer s.close()
	p, req, code := s.plan(ctx, dir, &pf)
	if code != 0 {
		return code
	}
	if pf.json {
		if err := view.WritePlanJSON(env.stdout, p); err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			return 1
		}
	} else {
		if err := view.RenderPlan(env.stdout, p, view.Options{Color: pf.color(env, env.stdout)}); err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			return 1
		}
	}
	if pf.out != "" {
		if err := savePlan(pf.out, dir, &pf, req, p); err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			return 1
		}
		if !pf.json {
			fmt.Fprintf(env.stdout, "\nSaved the plan to %s. Apply exactly this plan with:\n    berth apply %s\n", pf.out, pf.out)
		}
	}
	if pf.detailedExitCode && (p.HasChanges() || outputsChange(p)) {
		return 2
	}
	return 0
}

// outputsChange reports whether applying p would change an output.
func outputsChange(p *reconciler.Plan) bool {
	for _, o := range p.Outputs {
		if !o.Unchanged {
			return true
		}
	}
	return false
}

// plan loads the configuration in dir and plans it. code is non-zero when
// it failed, and the diagnostics were shown.
func (s *session) plan(ctx context.Context, dir string, pf *planFlags) (*reconciler.Plan, reconciler.PlanRequest, int) {
	var req reconciler.PlanRequest
	cfg, in, diags := s.loadConfig(dir)
	if diags.HasErrors() {
		s.diags(diags)
		return nil, req, 1
	}
	targets, err := pf.targetAddrs()
	if err != nil {
		fmt.Fprintf(s.env.stderr, "Error: %s\n", err)
		return nil, req, 1
	}
	req = reconciler.PlanRequest{Config: cfg, Inputs: in, Targets: targets, Destroy: pf.destroy}
	p, ds := s.engine.Plan(ctx, req)
	diags = append(diags, ds...)
	s.diags(diags)
	if diags.HasErrors() || p == nil {
		return nil, req, 1
	}
	return p, req, 0
}

func oneDir(env *cliEnv, pos []string, cmd string) (string, bool) {
	switch len(pos) {
	case 0:
		return ".", true
	case 1:
		return pos[0], true
	}
	fmt.Fprintf(env.stderr, "Error: berth %s takes at most one directory; got %s\n", cmd, strings.Join(pos, " "))
	return "", false
}

func savePlan(path, dir string, pf *planFlags, req reconciler.PlanRequest, p *reconciler.Plan) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	f := &planfile.File{
		BerthVersion: Version,
		CreatedAt:    p.CreatedAt,
		Dir:          abs,
		HostName:     req.Inputs.Host.Name,
		HostLabels:   req.Inputs.Host.Labels,
		Targets:      pf.targets,
		Destroy:      pf.destroy,
		Fingerprint:  p.Fingerprint,
	}
	for _, v := range pf.vars {
		if v.file {
			vf, err := filepath.Abs(v.value)
			if err != nil {
				return fmt.Errorf("resolve %s: %w", v.value, err)
			}
			f.VarFiles = append(f.VarFiles, vf)
			continue
		}
		vi, err := spec.ParseVarFlag(v.value)
		if err != nil {
			return err
		}
		if decl, ok := req.Config.Variables[vi.Name]; ok && decl.Sensitive {
			continue
		}
		f.Vars = append(f.Vars, planfile.Var{Name: vi.Name, Value: vi.Raw})
	}
	for _, name := range slices.Sorted(maps.Keys(req.Config.Variables)) {
		if req.Config.Variables[name].Sensitive {
			f.SensitiveVars = append(f.SensitiveVars, name)
		}
	}
	for _, c := range p.Changes {
		if c.Action != reconciler.NoOp {
			f.Changes = append(f.Changes, planfile.Change{Address: c.Addr.String(), Action: c.Action.String()})
		}
	}
	return planfile.Write(path, f)
}

func cmdApply(ctx context.Context, env *cliEnv, args []string) int {
	return applyCommand(ctx, env, args, false)
}

func cmdDestroy(ctx context.Context, env *cliEnv, args []string) int {
	return applyCommand(ctx, env, args, true)
}

func applyCommand(ctx context.Context, env *cliEnv, args []string, destroy bool) int {
	name := "apply"
	usageLine := "apply [DIR|PLANFILE] [-auto-approve] [-json] [-var NAME=VALUE] [-var-file FILE] [-target ADDR]"
	if destroy {
		name = "destroy"
		usageLine = "destroy [DIR] [-auto-approve] [-json] [-var NAME=VALUE] [-var-file FILE] [-target ADDR]"
	}
	var pf planFlags
	fs := newFlagSet(env, name, usageLine)
	pf.register(fs, true)
	fs.BoolVar(&pf.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	fs.BoolVar(&pf.json, "json", false, "print progress as JSON lines")
	fs.Var(&pf.targets, "target", "limit to this resource and what it depends on (repeatable)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 1
	}
	pf.destroy = destroy
	dir, ok := oneDir(env, pos, name)
	if !ok {
		return 1
	}
	var saved *planfile.File
	if st, statErr := os.Stat(dir); !destroy && len(pos) == 1 && statErr == nil && st.Mode().IsRegular() {
		saved, err = planfile.Read(pos[0])
		if err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n\nberth apply takes a configuration directory or a plan saved with berth plan -out.\n", err)
			return 1
		}
		if len(pf.targets) > 0 {
			fmt.Fprintln(env.stderr, "Error: -target cannot be used with a saved plan: the targets were fixed when it was made. Plan again with -target and -out.")
			return 1
		}
		dir = saved.Dir
		pf.hostName = saved.HostName
		pf.labels = nil
		for k, v := range saved.HostLabels {
			pf.labels = append(pf.labels, k+"="+v)
		}
		pf.targets = saved.Targets
		pf.destroy = saved.Destroy
		given := pf.vars
		pf.vars = nil
		for _, vf := range saved.VarFiles {
			pf.vars = append(pf.vars, varArg{file: true, value: vf})
		}
		for _, v := range saved.Vars {
			pf.vars = append(pf.vars, varArg{value: v.Name + "=" + v.Value})
		}
		// Sensitive values were not saved: they come again from the
		// environment or the command line.
		pf.vars = append(pf.vars, given...)
	}
	if pf.json && saved == nil && !pf.autoApprove {
		fmt.Fprintf(env.stderr, "Error: -json needs -auto-approve\n\nberth cannot ask for confirmation in the middle of a JSON stream. Add -auto-approve, or apply a saved plan.\n")
		return 1
	}
	s, err := openSession(ctx, env, &pf.options, "berth "+name, true)
	if err != nil {
		return lockError(env, err)
	}
	defer s.close()
	p, _, code := s.plan(ctx, dir, &pf)
	if code != 0 {
		return code
	}
	if saved != nil {
		if p.Fingerprint != saved.Fingerprint || !sameChanges(p, saved) {
			fmt.Fprintf(env.stderr, "Error: plan is stale\n\nThe configuration, the variable values, the inventory or the live state changed since %s was saved at %s, so berth will not apply it. Run berth plan -out %s again, review it, and apply the new plan.\n", pos[0], saved.CreatedAt.Format("2006-01-02 15:04:05"), pos[0])
			if len(saved.SensitiveVars) > 0 {
				fmt.Fprintf(env.stderr, "\nThe plan left out the sensitive variables %s: give them again with -var or BERTH_VAR_name, with the same values as when planning.\n", strings.Join(saved.SensitiveVars, ", "))
			}
			return 1
		}
	}
	color := pf.color(env, env.stdout)
	if !pf.json && saved == nil {
		if err := view.RenderPlan(env.stdout, p, view.Options{Color: color}); err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			return 1
		}
	}
	if saved == nil && p.HasChanges() && !pf.autoApprove {
		if code := confirm(env, destroy); code != 0 {
			return code
		}
	}
	if !pf.json && saved == nil {
		fmt.Fprintln(env.stdout)
	}
	var hook reconciler.Hook
	var jsonHook *view.JSONHook
	if pf.json {
		jsonHook = view.NewJSONHook(env.stdout)
		hook = jsonHook
	} else {
		h := view.NewApplyHook(env.stdout, view.Options{Color: color})
		defer h.Close()
		hook = h
	}
	res := s.engine.Apply(ctx, p, hook)
	s.diags(res.Diagnostics)
	if jsonHook != nil {
		failed := len(res.Failed)
		if failed == 0 && res.Diagnostics.HasErrors() {
			failed = 1 // an error not tied to one instance
		}
		jsonHook.SummaryFailed(res.Added, res.Changed, res.Destroyed, failed, len(res.Skipped))
	} else {
		if res.Diagnostics.HasErrors() {
			fmt.Fprintf(env.stdout, "\nApply failed: %d failed, %d skipped. Resources: %d added, %d changed, %d destroyed.\n", len(res.Failed), len(res.Skipped), res.Added, res.Changed, res.Destroyed)
		} else {
			fmt.Fprintln(env.stdout)
			view.ApplySummary(env.stdout, res.Added, res.Changed, res.Destroyed, view.Options{Color: color})
			printOutputs(env, res.Outputs)
		}
	}
	if res.Diagnostics.HasErrors() {
		return 1
	}
	return 0
}

func sameChanges(p *reconciler.Plan, f *planfile.File) bool {
	var got []planfile.Change
	for _, c := range p.Changes {
		if c.Action != reconciler.NoOp {
			got = append(got, planfile.Change{Address: c.Addr.String(), Action: c.Action.String()})
		}
	}
	if len(got) != len(f.Changes) {
		return false
	}
	for i := range got {
		if got[i] != f.Changes[i] {
			return false
		}
	}
	return true
}

// confirm asks on a terminal; without one it refuses.
func confirm(env *cliEnv, destroy bool) int {
	in, ok := env.stdin.(*os.File)
	if !ok || !isTerminal(in) {
		fmt.Fprintf(env.stderr, "Error: no terminal to confirm on\n\nberth asks for confirmation before changing the host, and standard input is not a terminal. Run again with -auto-approve to apply without asking.\n")
		return 1
	}
	what := "apply these changes"
	if destroy {
		what = "destroy every object berth owns here"
	}
	fmt.Fprintf(env.stdout, "\nDo you want to %s?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", what)
	var answer string
	if _, err := fmt.Fscanln(in, &answer); err != nil || answer != "yes" {
		fmt.Fprintln(env.stdout, "\nCancelled: nothing was changed.")
		return 1
	}
	return 0
}

func printOutputs(env *cliEnv, outs []*reconciler.OutputChange) {
	if len(outs) == 0 {
		return
	}
	fmt.Fprintln(env.stdout, "\nOutputs:")
	fmt.Fprintln(env.stdout)
	for _, o := range outs {
		fmt.Fprintf(env.stdout, "%s = %s\n", o.Name, formatValue(o.Value))
	}
}
