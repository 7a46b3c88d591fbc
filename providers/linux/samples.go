package linux

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sample is one container's figures, read from its cgroup and its network
// namespace.
type Sample struct {
	Address, ID, Image string
	// Running reports whether the container's init runs; the figures
	// below are zero when it does not.
	Running bool
	// CPUUsage is the CPU time the container used since it started.
	CPUUsage time.Duration
	// MemoryUsage and MemoryLimit are in bytes; a limit of 0 means none.
	MemoryUsage, MemoryLimit uint64
	Pids                     uint64
	// NetRx and NetTx are the bytes received and sent on every interface
	// of the container's network namespace but lo; 0 for a container on
	// the host's network, whose traffic is the host's.
	NetRx, NetTx uint64
	// BlockRead and BlockWrite are the bytes read and written on block
	// devices.
	BlockRead, BlockWrite uint64
	// Restarts counts the restarts of the container by its shim.
	Restarts int
}

// Samples reads the figures of every container, sorted by address. A
// container that stops or goes away while it is read is left out rather
// than failing the call.
func (h *Host) Samples() ([]Sample, error) {
	sts, err := h.Statuses()
	if err != nil {
		return nil, fmt.Errorf("container samples: %w", err)
	}
	self, selfErr := netnsOf("/proc/self/ns/net")
	out := make([]Sample, 0, len(sts))
	for _, s := range sts {
		r := s.Record
		smp := Sample{Address: r.Address, ID: r.ID, Image: r.Image, Restarts: s.Restarts}
		if !strings.HasPrefix(s.State, "running") || s.Pid <= 0 {
			if _, err := os.Stat(h.ContainerDir(r.ID)); err != nil {
				continue // deleted since it was listed
			}
			out = append(out, smp)
			continue
		}
		st, err := h.Runtime.Stats(r.ID)
		if err != nil {
			continue // stopped or deleted since it was listed
		}
		smp.Running = true
		smp.CPUUsage = time.Duration(st.CPUUsage)
		smp.MemoryUsage = st.MemoryUsage
		smp.MemoryLimit = uint64(max(st.Resources.Memory, 0))
		smp.Pids = st.Pids
		smp.BlockRead, smp.BlockWrite = st.BlockRead, st.BlockWrite
		if !r.Spec.HostNetwork {
			host := netns{}
			if selfErr == nil {
				host = self
			}
			if smp.NetRx, smp.NetTx, err = netTraffic(s.Pid, host); err != nil {
				continue // its init is gone
			}
		}
		out = append(out, smp)
	}
	return out, nil
}

// netns identifies a network namespace: the device and inode of its
// nsfs file.
type netns struct{ dev, ino uint64 }

// netnsOf returns the network namespace that path (/proc/PID/ns/net)
// designates.
func netnsOf(path string) (netns, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return netns{}, fmt.Errorf("network namespace: %w", err)
	}
	return netns{dev: st.Dev, ino: st.Ino}, nil
}

// netTraffic returns the bytes received and sent on every interface but lo
// of the network namespace of process pid; 0 when that namespace is host,
// the agent's own. It fails when the process is gone or changed namespace
// while it was read, which a reused PID would do.
func netTraffic(pid int, host netns) (rx, tx uint64, err error) {
	nsPath := fmt.Sprintf("/proc/%d/ns/net", pid)
	before, err := netnsOf(nsPath)
	if err != nil {
		return 0, 0, err
	}
	if before == host {
		return 0, 0, nil
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("network counters: %w", err)
	}
	ifs, err := parseNetDev(f)
	f.Close()
	if err != nil {
		return 0, 0, err
	}
	if after, err := netnsOf(nsPath); err != nil || after != before {
		return 0, 0, fmt.Errorf("process %d left its network namespace while it was read", pid)
	}
	for name, c := range ifs {
		if name == "lo" {
			continue
		}
		rx += c.rxBytes
		tx += c.txBytes
	}
	return rx, tx, nil
}

// ifCounters are the byte counters of a network interface.
type ifCounters struct{ rxBytes, txBytes uint64 }

// parseNetDev parses the format of /proc/net/dev: two header lines, then
// one line per interface, "NAME: " and 16 counters, the receive ones
// (bytes first) then the transmit ones (bytes first).
func parseNetDev(r io.Reader) (map[string]ifCounters, error) {
	out := map[string]ifCounters{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.Contains(line, "|") {
			continue // the header lines
		}
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("net/dev line %d: no interface name", n)
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("net/dev line %d: %d counters, want 16", n, len(f))
		}
		rx, err1 := strconv.ParseUint(f[0], 10, 64)
		tx, err2 := strconv.ParseUint(f[8], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("net/dev line %d: %w", n, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("net/dev line %d: interface %q listed twice", n, name)
		}
		out[name] = ifCounters{rxBytes: rx, txBytes: tx}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("net/dev: %w", err)
	}
	return out, nil
}
