// Package runtime runs containers on the host kernel through an embedded
// libcontainer (from runc). It is the only package of berth that imports
// libcontainer, whose Go API is outside runc's semantic versioning: a runc
// upgrade touches this package and nothing else.
//
// A container is described by a Spec, turned into an OCI runtime spec (the
// same document `runc run` reads, which the benchmarks use as a baseline) and
// then into libcontainer's configuration. The process that calls Start is the
// parent of the container's init and must wait for it: in berth that is the
// container's shim. Every other call (Status, Stats, Update, Signal, Exec,
// Destroy) works from any process, through the state that libcontainer keeps
// under the runtime's root directory.
//
// libcontainer starts a container by executing the running binary again with
// the argument "init" and the environment variable _LIBCONTAINER_INITPIPE set.
// A program that embeds the runtime calls IsInit and Init before anything
// else in main.
package runtime
