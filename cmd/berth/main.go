// Command berth is a declarative GitOps reconciler for container hosts: it
// plans and applies HCL configurations of images, containers, volumes,
// networks and registries.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthhq/berth/providers/linux/runtime"
)

// Version is berth's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// init hands the process to the container runtime when it is the
// re-executed init of a container being started; nothing else of berth
// runs then.
func init() {
	if runtime.IsInit() {
		runtime.Init()
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one berth subcommand.
type command struct {
	name     string
	synopsis string
	hidden   bool
	run      func(ctx context.Context, env *cliEnv, args []string) int
}

func commands() []command {
	return []command{
		{name: "init", synopsis: "Write a small commented example configuration", run: cmdInit},
		{name: "validate", synopsis: "Check a configuration without touching the host", run: cmdValidate},
		{name: "fmt", synopsis: "Rewrite configuration files in canonical format", run: cmdFmt},
		{name: "plan", synopsis: "Show what apply would change on this host", run: cmdPlan},
		{name: "apply", synopsis: "Make the host match the configuration", run: cmdApply},
		{name: "destroy", synopsis: "Delete every object berth owns on this host", run: cmdDestroy},
		{name: "show", synopsis: "Show the live state of owned objects and outputs", run: cmdShow},
		{name: "state", synopsis: "Inspect the inventory (state list)", run: cmdState},
		{name: "import", synopsis: "Adopt an existing object: import ADDR ID", run: cmdImport},
		{name: "ps", synopsis: "List containers: address, state, health, uptime, restarts, image", run: cmdPs},
		{name: "logs", synopsis: "Print a container's output: logs [-f] [-tail N] [-since D] ADDR", run: cmdLogs},
		{name: "exec", synopsis: "Run a command in a running container: exec [-it] ADDR -- CMD...", run: cmdExec},
		{name: "stats", synopsis: "Show containers' CPU, memory, pids and block I/O", run: cmdStats},
		{name: "cp", synopsis: "Copy files between the host and a container: cp ADDR:PATH HOSTPATH", run: cmdCp},
		{name: "commit", synopsis: "Make an image of a container's changes: commit ADDR REF", run: cmdCommit},
		{name: "image", synopsis: "Manage images: image ls | rm | prune | save | load | push", run: cmdImage},
		{name: "start", synopsis: "Start stopped containers", run: cmdStart},
		{name: "stop", synopsis: "Stop running containers", run: cmdStop},
		{name: "restart", synopsis: "Restart containers", run: cmdRestart},
		{name: "agent", synopsis: "Keep this host converged from git and gossip with the fleet", run: cmdAgent},
		{name: "status", synopsis: "Show the fleet as an agent sees it: status [--agent ADDR] [-json]", run: cmdStatus},
		{name: "sync", synopsis: "Make the agent, and the fleet, fetch the repository at once", run: cmdSync},
		{name: "version", synopsis: "Print berth's version", run: cmdVersion},
		{name: providerSubcommand, hidden: true, run: cmdProvider},
		{name: shimSubcommand, hidden: true, run: cmdShim},
		{name: rotateSubcommand, hidden: true, run: cmdRotate},
	}
}

// cliEnv is what every command gets from the process.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	self           string // path of the berth executable
}

func (e *cliEnv) getenv(k string) string {
	for i := len(e.environ) - 1; i >= 0; i-- {
		kv := e.environ[i]
		if len(kv) > len(k) && kv[:len(k)] == k && kv[len(k)] == '=' {
			return kv[len(k)+1:]
		}
	}
	return ""
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	env := &cliEnv{stdin: stdin, stdout: stdout, stderr: stderr, environ: os.Environ(), self: self}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 1
		}
		return 0
	}
	if args[0] == "-version" || args[0] == "--version" {
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(stderr, "berth: unknown command %q. Run `berth help` for the list of commands.\n", args[0])
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: berth COMMAND [options] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(w, "  %-9s %s\n", c.name, c.synopsis)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `berth COMMAND -help` for a command's options. See docs/cli.md.")
}

func cmdVersion(_ context.Context, env *cliEnv, args []string) int {
	fmt.Fprintf(env.stdout, "berth %s (provider protocol %d)\n", Version, protocolVersion())
	return 0
}
