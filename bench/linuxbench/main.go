// Command linuxbench measures berth's linux provider against its peers:
// the time `berth apply` takes to start one container against `runc run -d`
// and `docker run -d`, the time of a no-op `berth plan` over 100 running
// containers against `docker ps`, and the resident memory of berth's shim
// against containerd's. Every number is printed next to a baseline measured
// in the same run, and the contenders are interleaved.
//
// bench/run prepares the machine (runc, a private dockerd, the busybox
// image, the runc bundle) and runs it; see that script. The subcommands are:
//
//	linuxbench spec -rootfs DIR -etc DIR -id ID -cgroup-parent P -o FILE -- CMD...
//	linuxbench measure [flags]
//
// spec writes the runc bundle's config.json with berth's own runtime.OCISpec,
// so that runc runs exactly what berth would. measure runs the benchmarks.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the subcommand of args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: linuxbench spec|measure [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "spec":
		err = specCommand(args[1:], stderr)
	case "measure":
		err = measureCommand(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "linuxbench: unknown command %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "linuxbench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
