package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// repResult is what one repetition measured.
type repResult struct {
	// Start holds the start times of the contenders, in contenders' order.
	Start []namedSummary
	// Plan and DockerPS are the no-op plan and `docker ps` over Count
	// running containers; ApplyMany and DockerMany are the (untimed by
	// the targets) times to start them.
	Plan, DockerPS        summary
	ApplyMany, DockerMany time.Duration
	// Shim and DockerShim are one shim of a lone container;
	// ShimMany and DockerShimMany are the medians over Count containers.
	Shim, DockerShim         memUsage
	ShimMany, DockerShimMany memUsage
}

// namedSummary is one contender's summary.
type namedSummary struct {
	Label string
	summary
}

// repetition runs the three benchmarks once and prints their tables.
func (b *bench) repetition(ctx context.Context, rep int) (repResult, error) {
	var r repResult
	var err error
	if r.Start, err = b.startBench(ctx, rep); err != nil {
		return r, fmt.Errorf("start benchmark: %w", err)
	}
	printStart(b.out, b.cfg, r.Start)
	if r.Shim, r.DockerShim, err = b.memLone(ctx, rep); err != nil {
		return r, fmt.Errorf("shim memory: %w", err)
	}
	if err := b.planBench(ctx, rep, &r); err != nil {
		return r, fmt.Errorf("plan benchmark: %w", err)
	}
	printPlan(b.out, b.cfg, r)
	printMem(b.out, b.cfg, r)
	return r, nil
}

// startBench times each contender starting one container, interleaved:
// every round runs each contender once, in an order that rotates from
// round to round, and removes each container (untimed) before the next
// command. The first Warmup rounds are not counted.
func (b *bench) startBench(ctx context.Context, rep int) ([]namedSummary, error) {
	cs := b.contenders()
	times := make([][]time.Duration, len(cs))
	rounds := b.cfg.Warmup + b.cfg.Runs
	for i := 0; i < rounds; i++ {
		fmt.Fprintf(os.Stderr, "\r(a) round %d/%d ", i+1, rounds)
		for k := range cs {
			n := (i + k) % len(cs)
			c := cs[n]
			id := fmt.Sprintf("bench-%d-%d", rep, i)
			d, err := b.startOne(ctx, c, id)
			if err != nil {
				return nil, err
			}
			if i >= b.cfg.Warmup {
				times[n] = append(times[n], d)
			}
		}
	}
	fmt.Fprintln(os.Stderr)
	out := make([]namedSummary, len(cs))
	for n, c := range cs {
		out[n] = namedSummary{Label: c.label, summary: summarize(times[n])}
	}
	return out, nil
}

// startOne times c starting container id, checks that its process runs
// and removes it again.
func (b *bench) startOne(ctx context.Context, c contender, id string) (time.Duration, error) {
	d, err := b.run(ctx, c.start(id))
	if c.stop == nil {
		return d, err
	}
	if err == nil {
		err = waitSleepers(ctx, c.cgroup, 1)
	}
	if _, serr := b.run(ctx, c.stop(id)); serr != nil && err == nil {
		err = serr
	}
	if err == nil {
		err = waitSleepers(ctx, c.cgroup, 0)
	}
	return d, err
}

// isBerthShim reports whether args are those of a shim of the berth state
// directory stateDir: `berth-shim DIR`, or `berth __shim DIR` when berth
// runs itself in the shim role.
func isBerthShim(stateDir string) func([]string) bool {
	prefix := filepath.Clean(stateDir) + "/"
	return func(args []string) bool {
		switch {
		case len(args) == 2 && filepath.Base(args[0]) == "berth-shim":
			return strings.HasPrefix(args[1], prefix)
		case len(args) >= 3 && args[1] == "__shim":
			return strings.HasPrefix(args[2], prefix)
		}
		return false
	}
}

// isDockerShim reports whether args are those of containerd's shim of one
// of the containers ids.
func isDockerShim(ids []string) func([]string) bool {
	return func(args []string) bool {
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			return false
		}
		i := slices.Index(args, "-id")
		return i >= 0 && i+1 < len(args) && slices.Contains(ids, args[i+1])
	}
}

// shimMem reads the memory of the processes match accepts; there must be
// want of them.
func shimMem(match func([]string) bool, want int) ([]memUsage, error) {
	pids, err := findProcs("/proc", match)
	if err != nil {
		return nil, err
	}
	if len(pids) != want {
		return nil, fmt.Errorf("found %d shims, want %d", len(pids), want)
	}
	out := make([]memUsage, 0, len(pids))
	for _, pid := range pids {
		m, err := readMem("/proc", pid)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// medianMem returns the field-wise medians of ms.
func medianMem(ms []memUsage) memUsage {
	var rss, anon, file, pss []int64
	for _, m := range ms {
		rss, anon, file, pss = append(rss, m.RSS), append(anon, m.Anon), append(file, m.File), append(pss, m.PSS)
	}
	return memUsage{RSS: medianInt64(rss), Anon: medianInt64(anon), File: medianInt64(file), PSS: medianInt64(pss)}
}

// memLone starts one container with berth and one with docker, waits
// Settle and reads the memory of their shims.
func (b *bench) memLone(ctx context.Context, rep int) (berth, docker memUsage, err error) {
	name := fmt.Sprintf("bench-mem-%d", rep)
	defer func() {
		_, _ = b.run(context.WithoutCancel(ctx), b.berthStep("destroy", "-auto-approve", b.oneDir()))
		_, _ = b.run(context.WithoutCancel(ctx), b.dockerStep("rm", "-f", name))
	}()
	if _, err = b.run(ctx, b.berthStep("apply", "-auto-approve", b.oneDir())); err != nil {
		return berth, docker, err
	}
	out, err := b.output(ctx, b.dockerStep("run", "-d", "--network", "none", "--name", name, b.cfg.Image, sleepCmd, sleepArg))
	if err != nil {
		return berth, docker, err
	}
	id := strings.TrimSpace(out)
	if err = waitSleepers(ctx, b.cfg.CgroupParent, 1); err != nil {
		return berth, docker, err
	}
	if err = waitSleepers(ctx, b.cfg.DockerCgroup, 1); err != nil {
		return berth, docker, err
	}
	select {
	case <-ctx.Done():
		return berth, docker, ctx.Err()
	case <-time.After(b.cfg.Settle):
	}
	bs, err := shimMem(isBerthShim(b.cfg.StateDir), 1)
	if err != nil {
		return berth, docker, fmt.Errorf("berth: %w", err)
	}
	ds, err := shimMem(isDockerShim([]string{id}), 1)
	if err != nil {
		return berth, docker, fmt.Errorf("docker: %w", err)
	}
	return bs[0], ds[0], nil
}

// planBench starts Count containers with berth and as many with docker
// (untimed by the targets), then times a no-op `berth plan` against
// `docker ps`, interleaved, and reads the memory of all the shims.
func (b *bench) planBench(ctx context.Context, rep int, r *repResult) (err error) {
	names := make([]string, b.cfg.Count)
	for i := range names {
		names[i] = fmt.Sprintf("bench-many-%d-%d", rep, i)
	}
	defer func() {
		cctx := context.WithoutCancel(ctx)
		_, derr := b.run(cctx, b.berthStep("destroy", "-auto-approve", b.manyDir()))
		_, rerr := b.run(cctx, b.dockerStep(append([]string{"rm", "-f"}, names...)...))
		if err == nil {
			err = errors.Join(derr, rerr, waitSleepers(cctx, b.cfg.CgroupParent, 0), waitSleepers(cctx, b.cfg.DockerCgroup, 0))
		}
	}()
	fmt.Fprintf(os.Stderr, "(b) berth apply of %d containers\n", b.cfg.Count)
	if r.ApplyMany, err = b.run(ctx, b.berthStep("apply", "-auto-approve", b.manyDir())); err != nil {
		return err
	}
	if err = waitSleepers(ctx, b.cfg.CgroupParent, b.cfg.Count); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "(b) docker run of %d containers\n", b.cfg.Count)
	t0 := time.Now()
	for _, name := range names {
		if _, err = b.run(ctx, b.dockerStep("run", "-d", "--network", "none", "--name", name, b.cfg.Image, sleepCmd, sleepArg)); err != nil {
			return err
		}
	}
	r.DockerMany = time.Since(t0)
	if err = waitSleepers(ctx, b.cfg.DockerCgroup, b.cfg.Count); err != nil {
		return err
	}

	// -detailed-exitcode fails the run unless the plan is a no-op.
	plan := b.berthStep("plan", "-detailed-exitcode", b.manyDir())
	ps := b.dockerStep("ps")
	steps := []step{plan, ps}
	times := make([][]time.Duration, len(steps))
	for i := 0; i < 1+b.cfg.PlanRuns; i++ { // round 0 warms up
		fmt.Fprintf(os.Stderr, "\r(b) round %d/%d ", i+1, 1+b.cfg.PlanRuns)
		for k := range steps {
			n := (i + k) % len(steps)
			d, err := b.run(ctx, steps[n])
			if err != nil {
				return err
			}
			if i > 0 {
				times[n] = append(times[n], d)
			}
		}
	}
	fmt.Fprintln(os.Stderr)
	r.Plan, r.DockerPS = summarize(times[0]), summarize(times[1])

	bs, err := shimMem(isBerthShim(b.cfg.StateDir), b.cfg.Count)
	if err != nil {
		return fmt.Errorf("berth: %w", err)
	}
	out, err := b.output(ctx, b.dockerStep("ps", "-q", "--no-trunc"))
	if err != nil {
		return err
	}
	ds, err := shimMem(isDockerShim(strings.Fields(out)), b.cfg.Count)
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	r.ShimMany, r.DockerShimMany = medianMem(bs), medianMem(ds)
	return nil
}
