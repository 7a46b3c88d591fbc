// Package shim supervises one container from a small process of its own,
// so that containers keep running and keep being supervised when berth's
// CLI, provider or agent exits, crashes or is upgraded.
//
// A container has a directory (Dir) holding its Record (written by the
// provider before the shim starts), the State the shim writes atomically at
// every change (status, PID, exit code, restarts, health), the container's
// output as rotated JSON-lines log files, and the shim's own log. The shim
// is a session leader and a child subreaper; it writes the exit code to
// disk before anything else happens, applies the restart policy with
// exponential backoff, and runs the healthcheck.
//
// Clients never talk to a shim over a socket: they read its State, verify
// its identity by PID and start time, and send it SIGTERM to stop.
package shim
