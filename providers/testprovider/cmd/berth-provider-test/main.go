// Command berth-provider-test serves the test provider (package testprovider)
// over berth's plugin protocol. It keeps its objects in
// $BERTH_TESTPROVIDER_DIR, else in $BERTH_STATE_DIR/testprovider, and
// injects the faults and delays that BERTH_TESTPROVIDER_FAULT and
// BERTH_TESTPROVIDER_DELAY ask for.
package main

import (
	"fmt"
	"os"

	"github.com/berthhq/berth/providers/plugin"
	"github.com/berthhq/berth/providers/testprovider"
)

func main() {
	dir := testprovider.DirFromEnv(os.Getenv)
	if dir == "" {
		fmt.Fprintf(os.Stderr, "berth-provider-test: set %s or BERTH_STATE_DIR to the directory that holds the objects\n", testprovider.EnvDir)
		os.Exit(1)
	}
	opts, err := testprovider.OptionsFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-provider-test: %v\n", err)
		os.Exit(1)
	}
	plugin.Serve(testprovider.New(dir, opts...))
}
