package runtime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// Probe is what the kernel says of a container, read straight from its
// cgroup files: cheap enough to do for every container at every plan.
type Probe struct {
	// Running reports whether the process pid is in the container's
	// cgroup.
	Running bool
	// Limits are the cgroup's limits now (0: none); valid when Running.
	Limits Resources
}

// ProbeCgroup reads the cgroup of container id under parent ("/berth"):
// whether its init process pid is in it, and its limits.
func ProbeCgroup(parent, id string, pid int) Probe {
	if parent == "" {
		parent = "/berth"
	}
	rel := filepath.Join("/", parent, id)
	var p Probe
	if cgroups.IsCgroup2UnifiedMode() {
		dir := filepath.Join("/sys/fs/cgroup", rel)
		if !hasPid(filepath.Join(dir, "cgroup.procs"), pid) {
			return p
		}
		p.Running = true
		p.Limits.Memory = readLimit(filepath.Join(dir, "memory.max"))
		if p.Limits.Memory > 0 {
			if sw := readLimit(filepath.Join(dir, "memory.swap.max")); sw > 0 {
				p.Limits.MemorySwap = p.Limits.Memory + sw
			}
		}
		p.Limits.PidsLimit = readLimit(filepath.Join(dir, "pids.max"))
		p.Limits.CPUQuota, p.Limits.CPUPeriod = cpuLimit(map[string]string{"": dir})
		return p
	}
	mem := filepath.Join("/sys/fs/cgroup/memory", rel)
	if !hasPid(filepath.Join(mem, "cgroup.procs"), pid) {
		return p
	}
	p.Running = true
	p.Limits.Memory = readLimit(filepath.Join(mem, "memory.limit_in_bytes"))
	if p.Limits.Memory > 0 {
		p.Limits.MemorySwap = readLimit(filepath.Join(mem, "memory.memsw.limit_in_bytes"))
	}
	p.Limits.PidsLimit = readLimit(filepath.Join("/sys/fs/cgroup/pids", rel, "pids.max"))
	p.Limits.CPUQuota, p.Limits.CPUPeriod = cpuLimit(map[string]string{"cpu": filepath.Join("/sys/fs/cgroup/cpu", rel)})
	return p
}

// hasPid reports whether the cgroup.procs file lists pid.
func hasPid(procs string, pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(procs)
	if err != nil {
		return false
	}
	want := strconv.Itoa(pid)
	for _, l := range strings.Split(string(b), "\n") {
		if l == want {
			return true
		}
	}
	return false
}

// readLimit reads a limit file; "max" and the kernel's huge "no limit"
// values give 0.
func readLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return limit(n)
}
