// Command berth-shim supervises one container of berth's linux provider.
// The provider starts it, one per container, as `berth-shim DIR`; it is
// berth's shim role in a program of its own, which links nothing but the
// shim, the layer store and the container runtime, so that the process
// that stays beside every container, and the container's init that it
// starts, are small and quick to start. berth runs itself in the shim role
// (`berth __shim DIR`) when no berth-shim sits beside it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/berthhq/berth/providers/linux/runtime"
	"github.com/berthhq/berth/providers/linux/shim"
)

// init hands the process to the container runtime when it is the
// re-executed init of a container being started.
func init() {
	if runtime.IsInit() {
		runtime.Init()
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "berth-shim: this program is started by berth to supervise a container")
		os.Exit(2)
	}
	if err := shim.Serve(context.Background(), os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "berth-shim: %v\n", err)
		os.Exit(1)
	}
}
