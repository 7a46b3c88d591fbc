package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// config is what measure needs to know about the machine that bench/run
// prepared.
type config struct {
	Berth        string // berth binary
	StateDir     string // BERTH_STATE_DIR of every berth command
	CgroupParent string // BERTH_CGROUP_PARENT of every berth command
	Runc         string // runc binary
	RuncRoot     string // runc --root
	Bundle       string // runc bundle whose config.json runs the same command
	RuncCgroup   string // cgroup parent of the bundle's container
	Docker       string // docker client binary
	DockerHost   string // docker -H
	DockerCgroup string // dockerd's --cgroup-parent
	Image        string // image reference in berth's store and docker's
	Work         string // directory for configurations and the log

	Runs     int           // timed starts of each contender per repetition
	Warmup   int           // untimed starts of each contender first
	PlanRuns int           // timed plans (and docker ps) per repetition
	Count    int           // containers of the plan benchmark
	Reps     int           // repetitions of the whole measurement
	Settle   time.Duration // wait before reading a shim's memory
}

// targets are the goals.
const (
	startVsRunc   = 2.0                    // berth apply at most 2x runc run -d
	dockerVsStart = 3.0                    // docker run -d at least 3x berth apply
	planLimit     = 300 * time.Millisecond // no-op plan over Count containers
	shimLimitKB   = 15_000_000 / 1024      // 15 MB (decimal) in KiB
)

// sleepCmd and sleepArg are the command of every container.
const (
	sleepCmd = "sleep"
	sleepArg = "1000"
)

// measureCommand runs the benchmarks Reps times, printing each
// repetition's tables and then a summary of the targets.
func measureCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Berth, "berth", "", "berth binary")
	fs.StringVar(&c.StateDir, "state-dir", "", "berth state directory")
	fs.StringVar(&c.CgroupParent, "cgroup-parent", "/berth-bench", "berth's cgroup parent")
	fs.StringVar(&c.Runc, "runc", "runc", "runc binary")
	fs.StringVar(&c.RuncRoot, "runc-root", "", "runc state root")
	fs.StringVar(&c.Bundle, "bundle", "", "runc bundle directory")
	fs.StringVar(&c.RuncCgroup, "runc-cgroup", "/berth-bench-runc", "cgroup parent in the bundle's config")
	fs.StringVar(&c.Docker, "docker", "docker", "docker client binary")
	fs.StringVar(&c.DockerHost, "docker-host", "", "docker daemon socket (unix://...)")
	fs.StringVar(&c.DockerCgroup, "docker-cgroup", "/berth-bench-docker", "dockerd's --cgroup-parent")
	fs.StringVar(&c.Image, "image", "busybox:bench", "image reference, local to berth and docker")
	fs.StringVar(&c.Work, "work", "", "work directory")
	fs.IntVar(&c.Runs, "runs", 25, "timed starts of each contender per repetition")
	fs.IntVar(&c.Warmup, "warmup", 2, "untimed starts of each contender first")
	fs.IntVar(&c.PlanRuns, "plan-runs", 10, "timed plans per repetition")
	fs.IntVar(&c.Count, "count", 100, "containers of the plan benchmark")
	fs.IntVar(&c.Reps, "reps", 2, "repetitions of the whole measurement")
	fs.DurationVar(&c.Settle, "settle", 3*time.Second, "wait before reading a shim's memory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Berth == "" || c.StateDir == "" || c.RuncRoot == "" || c.Bundle == "" || c.DockerHost == "" || c.Work == "" {
		return errors.New("need -berth, -state-dir, -runc-root, -bundle, -docker-host and -work")
	}
	if c.Runs < 1 || c.PlanRuns < 1 || c.Count < 1 || c.Reps < 1 {
		return errors.New("-runs, -plan-runs, -count and -reps must be positive")
	}
	log, err := os.OpenFile(filepath.Join(c.Work, "bench.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	b := &bench{cfg: c, log: log, out: stdout}
	if err := b.writeConfigs(); err != nil {
		return err
	}
	var reps []repResult
	for rep := 1; rep <= c.Reps; rep++ {
		fmt.Fprintf(stdout, "\n=== repetition %d of %d ===\n", rep, c.Reps)
		r, err := b.repetition(ctx, rep)
		if err != nil {
			return fmt.Errorf("repetition %d: %w", rep, err)
		}
		reps = append(reps, r)
	}
	printSummary(stdout, reps)
	return nil
}

// bench runs commands for the measurements and logs their output.
type bench struct {
	cfg config
	log *os.File
	out io.Writer
}

// step is one command: a timed start, or the clean-up after it.
type step struct {
	env  []string
	name string
	args []string
}

// contender is one way of starting a container. A contender without stop
// starts none: it is timed for information only.
type contender struct {
	label  string
	cgroup string // the cgroup parent its containers land in
	start  func(id string) step
	stop   func(id string) step
}

// oneDir and manyDir are the berth configurations of the start and the
// plan benchmarks.
func (b *bench) oneDir() string  { return filepath.Join(b.cfg.Work, "berth-one") }
func (b *bench) manyDir() string { return filepath.Join(b.cfg.Work, "berth-many") }

// writeConfigs writes the two berth configurations. The containers stop
// with SIGKILL, like `docker rm -f` and `runc delete -f` (sleep as PID 1
// ignores SIGTERM, so the default would wait stop_timeout at every
// clean-up); that changes nothing in how they start.
func (b *bench) writeConfigs() error {
	body := fmt.Sprintf(`  image        = %q
  command      = [%q, %q]
  network_mode = "none"
  stop_signal  = "SIGKILL"
`, b.cfg.Image, sleepCmd, sleepArg)
	one := "container \"bench\" {\n" + body + "}\n"
	many := fmt.Sprintf("container \"bench\" {\n  count        = %d\n%s}\n", b.cfg.Count, body)
	for dir, text := range map[string]string{b.oneDir(): one, b.manyDir(): many} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// berthEnv is the environment of every berth command: the private state
// directory and cgroup parent.
func (b *bench) berthEnv() []string {
	return []string{"BERTH_STATE_DIR=" + b.cfg.StateDir, "BERTH_CGROUP_PARENT=" + b.cfg.CgroupParent, "NO_COLOR=1"}
}

func (b *bench) berthStep(args ...string) step {
	return step{env: b.berthEnv(), name: b.cfg.Berth, args: args}
}

func (b *bench) dockerStep(args ...string) step {
	return step{name: b.cfg.Docker, args: append([]string{"-H", b.cfg.DockerHost}, args...)}
}

func (b *bench) runcStep(args ...string) step {
	return step{name: b.cfg.Runc, args: append([]string{"--root", b.cfg.RuncRoot}, args...)}
}

// contenders are berth, runc and docker starting the same container, in
// that order, and then the informational fixed cost of a berth command.
func (b *bench) contenders() []contender {
	return []contender{
		{
			label:  "berth apply -auto-approve",
			cgroup: b.cfg.CgroupParent,
			start:  func(string) step { return b.berthStep("apply", "-auto-approve", b.oneDir()) },
			stop:   func(string) step { return b.berthStep("destroy", "-auto-approve", b.oneDir()) },
		},
		{
			label:  "runc run -d",
			cgroup: b.cfg.RuncCgroup,
			start:  func(id string) step { return b.runcStep("run", "-d", "-b", b.cfg.Bundle, id) },
			stop:   func(id string) step { return b.runcStep("delete", "-f", id) },
		},
		{
			label:  "docker run -d --network none",
			cgroup: b.cfg.DockerCgroup,
			start: func(id string) step {
				return b.dockerStep("run", "-d", "--network", "none", "--name", id, b.cfg.Image, sleepCmd, sleepArg)
			},
			stop: func(id string) step { return b.dockerStep("rm", "-f", id) },
		},
		{
			// Not a contender: the fixed cost of a berth command (start,
			// configuration, provider plugins, plan) on the same
			// configuration, to tell it from the cost of the start itself.
			label: "(info) berth plan of the same config",
			start: func(string) step { return b.berthStep("plan", b.oneDir()) },
		},
	}
}

// run runs s from exec to exit and returns its wall time. Its output goes
// to the log file, which the command gets as its own descriptors: nothing
// waits on a pipe that a detached container might keep open.
func (b *bench) run(ctx context.Context, s step) (time.Duration, error) {
	line := s.name + " " + strings.Join(s.args, " ")
	fmt.Fprintf(b.log, "\n$ %s\n", line)
	cmd := exec.CommandContext(ctx, s.name, s.args...)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if s.env != nil {
		cmd.Env = append(os.Environ(), s.env...)
	}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("%s: %w (output in %s)", line, err, b.log.Name())
	}
	return d, nil
}

// output runs s and returns its standard output.
func (b *bench) output(ctx context.Context, s step) (string, error) {
	line := s.name + " " + strings.Join(s.args, " ")
	fmt.Fprintf(b.log, "\n$ %s\n", line)
	cmd := exec.CommandContext(ctx, s.name, s.args...)
	cmd.Stderr = b.log
	if s.env != nil {
		cmd.Env = append(os.Environ(), s.env...)
	}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w (output in %s)", line, err, b.log.Name())
	}
	return string(out), nil
}

// sleepers counts the running containers' processes (sleep 1000) whose
// cgroup lies under parent.
func sleepers(parent string) (int, error) {
	pids, err := findProcs("/proc", func(args []string) bool {
		return len(args) == 2 && args[0] == sleepCmd && args[1] == sleepArg
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pid := range pids {
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err == nil && inCgroup(string(cg), parent) {
			n++
		}
	}
	return n, nil
}

// inCgroup reports whether a /proc/PID/cgroup text puts the process under
// the cgroup parent in some hierarchy.
func inCgroup(text, parent string) bool {
	for _, line := range strings.Split(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && strings.HasPrefix(parts[2], strings.TrimSuffix(parent, "/")+"/") {
			return true
		}
	}
	return false
}

// waitSleepers waits until exactly want containers run under parent: a
// timed start must really have started its container, and a clean-up must
// really have removed it.
func waitSleepers(ctx context.Context, parent string, want int) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := sleepers(parent)
		if err != nil {
			return err
		}
		if n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d containers run under cgroup %s, want %d", n, parent, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
