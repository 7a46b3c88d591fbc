// Package acceptance holds berth's end-to-end tests: they build the real
// binaries and run them against real objects, kill them at every step, and
// check that the next run converges with nothing lost or orphaned.
package acceptance
