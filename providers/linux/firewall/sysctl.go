package firewall

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnableForwarding turns on IPv4 forwarding (net.ipv4.ip_forward) in the
// network namespace of the calling thread. Containers on a bridge reach
// nothing beyond the host without it. Lock the goroutine to its thread
// (runtime.LockOSThread) when that thread was moved to another namespace.
func EnableForwarding() error {
	return writeSysctl("/proc/sys/net/ipv4/ip_forward", "1")
}

// EnableRouteLocalnet sets net.ipv4.conf.<ifname>.route_localnet to 1 in
// the network namespace of the calling thread, so that the kernel routes
// packets from 127.0.0.0/8 out of ifname: the host reaches a published
// port through 127.0.0.1 only if the bridge of its backend has it. The
// interface must exist; the setting goes with it.
func EnableRouteLocalnet(ifname string) error {
	if err := validIfname(ifname); err != nil {
		return fmt.Errorf("enable route_localnet: %w", err)
	}
	return writeSysctl(filepath.Join("/proc/sys/net/ipv4/conf", ifname, "route_localnet"), "1")
}

func writeSysctl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("sysctl: %w", err)
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("sysctl %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sysctl %s: %w", path, err)
	}
	return nil
}
