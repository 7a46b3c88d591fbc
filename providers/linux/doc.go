// Package linux is berth's built-in provider "linux": it pulls images from
// registries into a content store, unpacks their layers once, mounts
// container root filesystems with overlayfs and runs containers with an
// embedded runtime, each under a shim of its own, with no container daemon.
//
// Kinds: registry (credentials and transport of a registry), image (pulled
// or loaded from an archive; its id is ref@digest, so containers follow a
// moved tag), volume (a named directory under the state directory) and
// container. The provider keeps, per owner token, the configuration each
// object was last applied with; Read returns it with what the kernel says
// laid over it (running or not, the live cgroup limits), so drift shows in
// the plan with the live values.
//
// Everything lives under one root directory (Options.Root): content/,
// rootfs/, volumes/, containers/<id>/ (the shim's record, state and logs),
// runtime/ (libcontainer's state) and objects/ (what berth owns).
package linux
