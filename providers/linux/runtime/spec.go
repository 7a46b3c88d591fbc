package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Spec describes one container: its root filesystem, its first process,
// its namespaces, mounts and resource limits.
type Spec struct {
	// ID names the container; it is also its hostname unless Hostname is set.
	ID string
	// Rootfs is the absolute path of the mounted root filesystem.
	Rootfs string
	// Args, Env and Cwd describe the container's first process.
	Args []string
	Env  []string
	Cwd  string
	// User is "user", "uid", "user:group" or "uid:gid", resolved with the
	// container's own /etc/passwd and /etc/group; empty means root.
	User     string
	Hostname string
	// ReadOnly mounts the root filesystem read-only.
	ReadOnly bool
	// HostNetwork shares the host's network namespace; otherwise the
	// container gets its own with only a loopback interface.
	HostNetwork bool
	// NetNS, when set, is the path of a network namespace (bind-mounted
	// by berth) that the container joins instead of getting a new one.
	NetNS     string
	Mounts    []Mount
	Resources Resources
	// CgroupParent is the cgroup under which the container's cgroup is
	// made, e.g. "/berth".
	CgroupParent string
	// EtcDir holds the hosts, hostname and resolv.conf files that are
	// bound into the container; empty leaves the image's own.
	EtcDir string
}

// Mount is a bind or tmpfs mount of a container.
type Mount struct {
	// Type is "bind" or "tmpfs".
	Type string
	// Source is the host path of a bind mount.
	Source   string
	Target   string
	ReadOnly bool
	// Size limits a tmpfs mount, in bytes; 0 means the kernel's default.
	Size int64
}

// Resources are the cgroup limits of a container; zero values mean no
// limit.
type Resources struct {
	// CPUQuota and CPUPeriod are in microseconds: 50000/100000 is half a
	// core.
	CPUQuota  int64
	CPUPeriod uint64
	// Memory and MemorySwap are in bytes; MemorySwap counts memory plus
	// swap, as with Docker, and -1 means unlimited swap.
	Memory     int64
	MemorySwap int64
	PidsLimit  int64
}

// defaultCaps are the capabilities Docker gives a container by default.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// OCISpec returns the OCI runtime spec of s. It reads the container's
// /etc/passwd and /etc/group, inside the root filesystem, to resolve User.
func OCISpec(s Spec) (*specs.Spec, error) {
	if s.ID == "" || !filepath.IsAbs(s.Rootfs) {
		return nil, errors.New("a container needs an ID and an absolute root filesystem path")
	}
	if len(s.Args) == 0 {
		return nil, errors.New("the container has no command: set command or entrypoint, or use an image that has one")
	}
	u, err := resolveUser(s.Rootfs, s.User)
	if err != nil {
		return nil, err
	}
	sp := specconv.Example()
	sp.Root = &specs.Root{Path: s.Rootfs, Readonly: s.ReadOnly}
	sp.Hostname = s.Hostname
	if sp.Hostname == "" {
		sp.Hostname = s.ID
	}
	cwd := s.Cwd
	if cwd == "" {
		cwd = "/"
	}
	caps := append([]string(nil), defaultCaps...)
	sp.Process = &specs.Process{
		Args: s.Args,
		Env:  withPath(s.Env),
		Cwd:  cwd,
		User: specs.User{UID: uint32(u.Uid), GID: uint32(u.Gid), AdditionalGids: toUint32(u.Sgids)},
		Capabilities: &specs.LinuxCapabilities{
			Bounding: caps, Effective: caps, Permitted: caps,
		},
	}
	var ns []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace} {
		ns = append(ns, specs.LinuxNamespace{Type: t})
	}
	if !s.HostNetwork {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNS})
	}
	sp.Linux.Namespaces = ns
	parent := s.CgroupParent
	if parent == "" {
		parent = "/berth"
	}
	sp.Linux.CgroupsPath = filepath.Join("/", parent, s.ID)
	sp.Linux.Resources = ociResources(s.Resources, sp.Linux.Resources.Devices)
	if s.EtcDir != "" {
		for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
			sp.Mounts = append(sp.Mounts, specs.Mount{
				Type: "bind", Source: filepath.Join(s.EtcDir, f), Destination: "/etc/" + f,
				Options: []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"},
			})
		}
	}
	for _, m := range s.Mounts {
		om, err := ociMount(m)
		if err != nil {
			return nil, err
		}
		sp.Mounts = append(sp.Mounts, om)
	}
	return sp, nil
}

// ociResources converts r, keeping the device rules of the example spec.
func ociResources(r Resources, devices []specs.LinuxDeviceCgroup) *specs.LinuxResources {
	out := &specs.LinuxResources{Devices: devices}
	if r.Memory > 0 {
		lim := r.Memory
		out.Memory = &specs.LinuxMemory{Limit: &lim}
		if r.MemorySwap != 0 {
			sw := r.MemorySwap
			out.Memory.Swap = &sw
		}
	}
	if r.CPUQuota > 0 {
		q, p := r.CPUQuota, r.CPUPeriod
		if p == 0 {
			p = 100000
		}
		out.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if r.PidsLimit > 0 {
		l := r.PidsLimit
		out.Pids = &specs.LinuxPids{Limit: &l}
	}
	return out
}

// ociMount converts one mount of a container.
func ociMount(m Mount) (specs.Mount, error) {
	if !filepath.IsAbs(m.Target) {
		return specs.Mount{}, fmt.Errorf("mount target %q is not an absolute path", m.Target)
	}
	target := filepath.Clean(m.Target)
	switch m.Type {
	case "bind":
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		return specs.Mount{Type: "bind", Source: m.Source, Destination: target, Options: opts}, nil
	case "tmpfs":
		opts := []string{"nosuid", "nodev", "mode=1777"}
		if m.Size > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", m.Size))
		}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		return specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: target, Options: opts}, nil
	}
	return specs.Mount{}, fmt.Errorf("unknown mount type %q", m.Type)
}

// resolveUser finds the uid, gid and groups of spec in the root filesystem
// at root, never following a link out of it.
func resolveUser(root, spec string) (*user.ExecUser, error) {
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	if spec == "" {
		spec = "0:0"
	}
	passwd, err := securejoin.SecureJoin(root, "/etc/passwd")
	if err != nil {
		return nil, fmt.Errorf("resolve user %q: %w", spec, err)
	}
	group, err := securejoin.SecureJoin(root, "/etc/group")
	if err != nil {
		return nil, fmt.Errorf("resolve user %q: %w", spec, err)
	}
	u, err := user.GetExecUserPath(spec, defaults, passwd, group)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	return u, nil
}

// withPath adds Docker's default PATH when env has none.
func withPath(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	return append(append([]string(nil), env...), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

func toUint32(in []int) []uint32 {
	if len(in) == 0 {
		return nil
	}
	out := make([]uint32, len(in))
	for i, v := range in {
		out[i] = uint32(v)
	}
	return out
}

// WriteEtc writes the hosts, hostname and resolv.conf files of a container
// with the given hostname into dir. A container on the host's network gets
// the host's resolv.conf; one without a network gets an empty one. For a
// container on berth's networks (managed), the provider writes hosts and
// resolv.conf and keeps them current: WriteEtc then leaves them as they
// are, unless they are missing.
func WriteEtc(dir, hostname string, hostNetwork, managed bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write container files: %w", err)
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n"
	resolv := ""
	if hostNetwork {
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			resolv = string(b)
		}
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	}
	files := map[string]string{"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv}
	for name, content := range files {
		if managed && name != "hostname" {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				continue
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write container files: %w", err)
		}
	}
	return nil
}
