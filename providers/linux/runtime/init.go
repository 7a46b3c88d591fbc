package runtime

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	// The nsenter constructor joins or creates namespaces before the Go
	// runtime starts in the re-executed init.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// IsInit reports whether this process is the re-executed init of a container
// being started, rather than a command of the program.
func IsInit() bool {
	return len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_INITPIPE") != ""
}

// Init runs the container init half of libcontainer. It never returns.
func Init() {
	libcontainer.Init()
}
