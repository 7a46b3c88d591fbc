package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthhq/berth/providers/linux"
	"github.com/berthhq/berth/providers/linux/runtime"
	"github.com/berthhq/berth/providers/linux/shim"
	"golang.org/x/term"
)

// hostCmd is what the day-2 commands share: flags and the linux host.
type hostCmd struct {
	env  *cliEnv
	o    options
	fs   *flag.FlagSet
	host *linux.Host
}

func newHostCmd(env *cliEnv, name, usage string) *hostCmd {
	c := &hostCmd{env: env}
	c.fs = newFlagSet(env, name, usage)
	c.fs.StringVar(&c.o.stateDir, "state-dir", "", "state directory (env BERTH_STATE_DIR, default /var/lib/berth)")
	return c
}

// parse parses args and opens the host; it reports problems itself.
func (c *hostCmd) parse(args []string, min, max int) ([]string, bool) {
	pos, err := parseArgs(c.fs, args)
	if err != nil {
		return nil, false
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		c.fs.Usage()
		return nil, false
	}
	return pos, c.open()
}

// open opens the linux provider's data of the state directory.
func (c *hostCmd) open() bool {
	var err error
	c.host, err = linux.OpenHost(linuxOptions(c.env, c.o.resolvedStateDir(c.env)).Root)
	if err != nil {
		fmt.Fprintf(c.env.stderr, "Error: %s\n", err)
		return false
	}
	return true
}

func (c *hostCmd) fail(err error) int {
	fmt.Fprintf(c.env.stderr, "Error: %s\n", err)
	return 1
}

func cmdPs(_ context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "ps", "ps [-a]")
	all := c.fs.Bool("a", true, "show stopped containers too")
	if _, ok := c.parse(args, 0, 0); !ok {
		return 1
	}
	sts, err := c.host.Statuses()
	if err != nil {
		return c.fail(err)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tID\tSTATE\tHEALTH\tUPTIME\tRESTARTS\tIMAGE\tIP\tPORTS")
	for _, s := range sts {
		if !*all && !strings.HasPrefix(s.State, "running") {
			continue
		}
		up := "-"
		if strings.HasPrefix(s.State, "running") && !s.Started.IsZero() {
			up = time.Since(s.Started).Round(time.Second).String()
		}
		state := s.State
		if (state == "exited" || state == "stopped") && s.ExitCode != nil {
			state = fmt.Sprintf("%s (%d)", state, *s.ExitCode)
		}
		health := s.Health
		if health == "" {
			health = "-"
		}
		ports, ip := c.host.Published(s.Record.ID)
		if ip == "" {
			ip = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Record.Address, shortID(s.Record.ID), state, health, up, s.Restarts, s.Record.Image, ip, strings.Join(ports, ", "))
	}
	tw.Flush()
	return 0
}

func cmdLogs(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "logs", "logs [-f] [-tail N] [-since D] ADDR")
	follow := c.fs.Bool("f", false, "follow: keep printing new output")
	tail := c.fs.Int("tail", -1, "print only the last N lines")
	since := c.fs.Duration("since", 0, "print only lines of the last D (e.g. 10m)")
	stamps := c.fs.Bool("timestamps", false, "print the time of each line")
	pos, ok := c.parse(args, 1, 1)
	if !ok {
		return 1
	}
	rec, err := c.host.Find(pos[0])
	if err != nil {
		return c.fail(err)
	}
	opts := shim.LogOptions{Tail: *tail, Follow: *follow}
	if *since > 0 {
		opts.Since = time.Now().Add(-*since)
	}
	err = shim.Dir(c.host.ContainerDir(rec.ID)).ReadLogs(ctx, opts, func(e shim.Entry) error {
		w := env.stdout
		if e.Stream == "stderr" {
			w = env.stderr
		}
		line := e.Log
		if *stamps {
			line = e.Time.Format(time.RFC3339Nano) + " " + line
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		_, err := io.WriteString(w, line)
		return err
	})
	if err != nil {
		return c.fail(err)
	}
	return 0
}

func cmdExec(_ context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "exec", "exec [-i] [-t] [-u USER] [-w DIR] [-e K=V] ADDR -- CMD [ARG...]")
	interactive := c.fs.Bool("i", false, "keep standard input open")
	tty := c.fs.Bool("t", false, "give the process a terminal")
	it := c.fs.Bool("it", false, "same as -i -t")
	user := c.fs.String("u", "", "run as this user (default: the container's)")
	wd := c.fs.String("w", "", "working directory (default: the container's)")
	var envs multiFlag
	c.fs.Var(&envs, "e", "set an environment variable K=V (repeatable)")
	// Flags come before ADDR; everything after ADDR (and an optional
	// "--") is the command, whose own flags berth must not read.
	if err := c.fs.Parse(args); err != nil {
		return 1
	}
	pos := c.fs.Args()
	if len(pos) > 1 && pos[1] == "--" {
		pos = append(pos[:1:1], pos[2:]...)
	}
	if len(pos) < 2 {
		c.fs.Usage()
		return 1
	}
	if !c.open() {
		return 1
	}
	if *it {
		*interactive, *tty = true, true
	}
	rec, err := c.host.Find(pos[0])
	if err != nil {
		return c.fail(err)
	}
	spec := runtime.ExecSpec{
		Args: pos[1:],
		Env:  append(append([]string(nil), rec.Spec.Env...), envs...),
		Cwd:  firstNonEmpty(*wd, rec.Spec.Cwd),
		User: firstNonEmpty(*user, rec.Spec.User),
		TTY:  *tty,
	}
	stdio := runtime.Stdio{Stdout: env.stdout, Stderr: env.stderr}
	if *interactive {
		stdio.Stdin = env.stdin
	}
	if *tty {
		if f, ok := env.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			if w, h, err := term.GetSize(int(f.Fd())); err == nil {
				spec.Width, spec.Height = uint16(w), uint16(h)
			}
			if old, err := term.MakeRaw(int(f.Fd())); err == nil {
				defer term.Restore(int(f.Fd()), old)
			}
		}
	}
	p, err := c.host.Runtime.Exec(rec.ID, spec, stdio)
	if err != nil {
		return c.fail(err)
	}
	code, err := p.Wait()
	if err != nil && code < 0 {
		return c.fail(err)
	}
	return code
}

// shortID is the first 12 characters of a container ID.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cmdStats(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "stats", "stats [-no-stream] [ADDR...]")
	noStream := c.fs.Bool("no-stream", false, "print one sample and exit")
	pos, ok := c.parse(args, 0, -1)
	if !ok {
		return 1
	}
	prev := map[string]uint64{}
	last := time.Now()
	// The first sample only sets the CPU baseline; the figures come from
	// the second one on.
	for n := 0; ; n++ {
		sts, err := c.host.Statuses()
		if err != nil {
			return c.fail(err)
		}
		now := time.Now()
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		if n > 0 {
			fmt.Fprintln(tw, "ADDRESS\tID\tCPU %\tMEM USAGE / LIMIT\tMEM %\tPIDS\tBLOCK I/O")
		}
		for _, s := range sts {
			if !strings.HasPrefix(s.State, "running") || !selected(s.Record, pos) {
				continue
			}
			st, err := c.host.Runtime.Stats(s.Record.ID)
			if err != nil {
				continue
			}
			cpu := 0.0
			if p, ok := prev[s.Record.ID]; ok && now.After(last) && st.CPUUsage >= p {
				cpu = float64(st.CPUUsage-p) / float64(now.Sub(last).Nanoseconds()) * 100
			}
			prev[s.Record.ID] = st.CPUUsage
			if n == 0 {
				continue
			}
			limit := st.Resources.Memory
			limStr, memPct := "unlimited", "-"
			if limit > 0 {
				limStr = humanBytes(uint64(limit))
				memPct = fmt.Sprintf("%.2f%%", float64(st.MemoryUsage)/float64(limit)*100)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f%%\t%s / %s\t%s\t%d\t%s / %s\n", s.Record.Address, shortID(s.Record.ID), cpu,
				humanBytes(st.MemoryUsage), limStr, memPct, st.Pids, humanBytes(st.BlockRead), humanBytes(st.BlockWrite))
		}
		tw.Flush()
		last = now
		if n > 0 && *noStream {
			return 0
		}
		wait := 2 * time.Second
		if n == 0 {
			wait = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(wait):
		}
		if n > 0 {
			fmt.Fprintln(env.stdout)
		}
	}
}

func selected(r *shim.Record, refs []string) bool {
	if len(refs) == 0 {
		return true
	}
	for _, ref := range refs {
		if r.Address == ref || strings.HasPrefix(r.ID, ref) {
			return true
		}
	}
	return false
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func cmdStart(ctx context.Context, env *cliEnv, args []string) int {
	return lifecycle(ctx, env, "start", args)
}

func cmdStop(ctx context.Context, env *cliEnv, args []string) int {
	return lifecycle(ctx, env, "stop", args)
}

func cmdRestart(ctx context.Context, env *cliEnv, args []string) int {
	return lifecycle(ctx, env, "restart", args)
}

// lifecycle starts, stops or restarts containers by hand. A stop by hand
// is drift for the next plan, except for restart = "unless-stopped".
func lifecycle(ctx context.Context, env *cliEnv, verb string, args []string) int {
	c := newHostCmd(env, verb, verb+" ADDR...")
	pos, ok := c.parse(args, 1, -1)
	if !ok {
		return 1
	}
	opts := linuxOptions(env, c.o.resolvedStateDir(env))
	code := 0
	for _, ref := range pos {
		rec, err := c.host.Find(ref)
		if err == nil && verb == "stop" {
			// Out of the rotation of its published ports before it stops.
			err = c.host.Rotate(ctx, rec.ID, false)
		}
		if err == nil && (verb == "stop" || verb == "restart") {
			err = c.host.Stop(ctx, rec, verb == "stop")
		}
		if err == nil && (verb == "start" || verb == "restart") {
			err = c.host.Start(ctx, rec, opts.Exe, opts.ShimArgs(c.host.ContainerDir(rec.ID)))
		}
		if err == nil && (verb == "start" || verb == "restart") {
			err = c.host.Rotate(ctx, rec.ID, true)
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "Error: %s: %s\n", ref, err)
			code = 1
			continue
		}
		fmt.Fprintln(env.stdout, rec.Address)
	}
	return code
}
