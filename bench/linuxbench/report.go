package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// target is one of the goals, evaluated on one repetition.
type target struct {
	Name  string
	Value string
	Pass  bool
}

// targetsOf evaluates every target on r. The first contenders of r.Start
// are berth, runc and docker, in that order.
func targetsOf(r repResult) []target {
	var ts []target
	if len(r.Start) >= 3 {
		berth, runc, docker := r.Start[0].Median, r.Start[1].Median, r.Start[2].Median
		vsRunc := ratio(berth, runc)
		vsDocker := ratio(docker, berth)
		ts = append(ts,
			target{"(a) berth apply <= 2x runc run -d", fmt.Sprintf("berth/runc = %.2fx", vsRunc), vsRunc <= startVsRunc},
			target{"(a) berth apply >= 3x faster than docker run -d", fmt.Sprintf("docker/berth = %.2fx", vsDocker), vsDocker >= dockerVsStart},
		)
	}
	ts = append(ts,
		target{"(b) no-op berth plan over N containers < 300 ms", ms(r.Plan.Median), r.Plan.N > 0 && r.Plan.Median < planLimit},
		target{"(c) berth shim VmRSS < 15 MB", mb(r.Shim.RSS), r.Shim.RSS > 0 && r.Shim.RSS < shimLimitKB},
		target{"(c) berth shim PSS < 15 MB", mb(r.Shim.PSS), r.Shim.PSS > 0 && r.Shim.PSS < shimLimitKB},
	)
	return ts
}

// ms renders d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// mb renders KiB as decimal megabytes, the unit of the targets.
func mb(kib int64) string { return fmt.Sprintf("%.1f MB", float64(kib)*1024/1e6) }

// passFail renders whether a target holds.
func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// printStart prints the table of the start benchmark.
func printStart(w io.Writer, c config, rows []namedSummary) {
	fmt.Fprintf(w, "\n(a) start one container (image local, network none, sleep 1000): %d interleaved runs each, exec to exit\n", c.Runs)
	t := [][]string{{"contender", "median", "p90", "min", "ratio to berth"}}
	for _, r := range rows {
		t = append(t, []string{r.Label, ms(r.Median), ms(r.P90), ms(r.Min), fmt.Sprintf("%.2fx", ratio(r.Median, rows[0].Median))})
	}
	printTable(w, t)
}

// printPlan prints the table of the plan benchmark.
func printPlan(w io.Writer, c config, r repResult) {
	fmt.Fprintf(w, "\n(b) no-op plan over %d running containers: %d interleaved runs each\n", c.Count, c.PlanRuns)
	t := [][]string{{"contender", "median", "p90", "min", "ratio to berth plan"}}
	for _, row := range []namedSummary{{"berth plan -detailed-exitcode", r.Plan}, {fmt.Sprintf("docker ps (%d running)", c.Count), r.DockerPS}} {
		t = append(t, []string{row.Label, ms(row.Median), ms(row.P90), ms(row.Min), fmt.Sprintf("%.2fx", ratio(row.Median, r.Plan.Median))})
	}
	printTable(w, t)
	fmt.Fprintf(w, "(starting them: berth apply of %d: %s; %d sequential docker run -d: %s)\n",
		c.Count, ms(r.ApplyMany), c.Count, ms(r.DockerMany))
}

// printMem prints the table of the shims' memory and the targets of r.
func printMem(w io.Writer, c config, r repResult) {
	fmt.Fprintf(w, "\n(c) shim memory, %s after start (VmRSS = anon + file; PSS from smaps_rollup)\n", c.Settle)
	t := [][]string{{"process", "VmRSS", "anon", "file", "PSS", "RSS ratio", "PSS ratio"}}
	rows := []struct {
		label string
		m     memUsage
		base  memUsage
	}{
		{"berth-shim, lone container", r.Shim, r.DockerShim},
		{"containerd-shim-runc-v2, lone container", r.DockerShim, r.DockerShim},
		{fmt.Sprintf("berth-shim, median of %d", c.Count), r.ShimMany, r.DockerShimMany},
		{fmt.Sprintf("containerd-shim-runc-v2, median of %d", c.Count), r.DockerShimMany, r.DockerShimMany},
	}
	for _, row := range rows {
		t = append(t, []string{row.label, mb(row.m.RSS), mb(row.m.Anon), mb(row.m.File), mb(row.m.PSS),
			fmt.Sprintf("%.2fx", float64(row.m.RSS)/float64(row.base.RSS)), fmt.Sprintf("%.2fx", float64(row.m.PSS)/float64(row.base.PSS))})
	}
	printTable(w, t)
	fmt.Fprintln(w, "(ratios are to containerd-shim-runc-v2 in the same situation)")
	fmt.Fprintln(w)
	for _, t := range targetsOf(r) {
		fmt.Fprintf(w, "target %-50s %-22s %s\n", t.Name, t.Value, passFail(t.Pass))
	}
}

// printSummary prints every target of every repetition side by side.
func printSummary(w io.Writer, reps []repResult) {
	fmt.Fprintf(w, "\n=== summary: %d repetitions ===\n", len(reps))
	head := []string{"target"}
	var all [][]target
	for i, r := range reps {
		head = append(head, fmt.Sprintf("repetition %d", i+1))
		all = append(all, targetsOf(r))
	}
	t := [][]string{head}
	for i, tg := range all[0] {
		row := []string{tg.Name}
		for _, ts := range all {
			row = append(row, ts[i].Value+" "+passFail(ts[i].Pass))
		}
		t = append(t, row)
	}
	printTable(w, t)
}

// printTable prints rows as columns two spaces apart: the first column
// left-aligned, the others right-aligned.
func printTable(w io.Writer, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, cell := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			if i == 0 {
				fmt.Fprintf(&b, "%-*s", widths[i], cell)
				continue
			}
			fmt.Fprintf(&b, "  %*s", widths[i], cell)
		}
		fmt.Fprintln(w, b.String())
	}
}
