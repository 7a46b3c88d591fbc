package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	// Device rules need the devices cgroup controller registered.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runc/libcontainer/utils"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrNotExist is returned for a container that the runtime does not know.
var ErrNotExist = errors.New("container does not exist")

// Runtime runs containers whose state lives under one root directory.
type Runtime struct {
	root string
}

// New returns a runtime keeping its state under root.
func New(root string) *Runtime { return &Runtime{root: root} }

// Stdio is where a process's standard streams go.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Process is a started container process.
type Process struct {
	p *libcontainer.Process
	// Pid is the host PID of the process.
	Pid int
	// console is the master end of the process's terminal, if it has one;
	// copied is closed when its output has been copied.
	console *os.File
	copied  chan struct{}
}

// Wait waits for the process to exit and returns its exit code; a process
// killed by a signal gets 128 plus the signal's number, as in a shell.
func (p *Process) Wait() (int, error) {
	st, err := p.p.Wait()
	if p.console != nil {
		// The output ends when the last holder of the terminal exits.
		select {
		case <-p.copied:
		case <-time.After(time.Second):
		}
		p.console.Close()
	}
	if st == nil {
		return -1, err
	}
	return exitCode(st), nil
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.p.Signal(sig) }

// PID returns the host PID of the process.
func (p *Process) PID() int { return p.Pid }

func exitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Start creates the container described by s and starts its first process.
// The caller becomes the parent of that process and must Wait for it. A
// container left over from an earlier start with the same ID is destroyed
// first.
func (r *Runtime) Start(s Spec, stdio Stdio) (*Process, error) {
	sp, err := OCISpec(s)
	if err != nil {
		return nil, err
	}
	if err := r.Destroy(s.ID); err != nil {
		return nil, err
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: s.ID, Spec: sp, NoNewKeyring: true})
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	if err := os.MkdirAll(r.root, 0o700); err != nil {
		return nil, fmt.Errorf("runtime state: %w", err)
	}
	c, err := libcontainer.Create(r.root, s.ID, cfg)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", s.ID, err)
	}
	p := newProcess(sp.Process, true, stdio)
	if err := c.Run(p); err != nil {
		_ = c.Destroy()
		return nil, fmt.Errorf("start container %s: %w", s.ID, err)
	}
	pid, err := p.Pid()
	if err != nil {
		_ = c.Destroy()
		return nil, fmt.Errorf("start container %s: %w", s.ID, err)
	}
	return &Process{p: p, Pid: pid}, nil
}

// ExecSpec describes a process started in a running container.
type ExecSpec struct {
	Args []string
	Env  []string
	Cwd  string
	User string
	// TTY gives the process a terminal of Width x Height; Stdin, Stdout
	// and Stderr are then copied to and from it.
	TTY           bool
	Width, Height uint16
}

// Exec starts a process in the namespaces and cgroup of the running
// container id. The caller is its parent and must Wait for it.
func (r *Runtime) Exec(id string, e ExecSpec, stdio Stdio) (*Process, error) {
	c, err := r.load(id)
	if err != nil {
		return nil, err
	}
	st, err := c.Status()
	if err != nil || st != libcontainer.Running {
		return nil, fmt.Errorf("container %s is not running", id)
	}
	cfg := c.Config()
	u, err := resolveUser(cfg.Rootfs, e.User)
	if err != nil {
		return nil, err
	}
	cwd := e.Cwd
	if cwd == "" {
		cwd = "/"
	}
	sp := &specs.Process{
		Args: e.Args, Env: withPath(e.Env), Cwd: cwd,
		User: specs.User{UID: uint32(u.Uid), GID: uint32(u.Gid), AdditionalGids: toUint32(u.Sgids)},
	}
	if e.TTY {
		return r.execTTY(c, sp, e, stdio)
	}
	p := newProcess(sp, false, stdio)
	if err := c.Run(p); err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	pid, err := p.Pid()
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	return &Process{p: p, Pid: pid}, nil
}

// execTTY starts a process with a terminal: libcontainer makes the pty in
// the container and passes its master end back over a socket.
func (r *Runtime) execTTY(c *libcontainer.Container, sp *specs.Process, e ExecSpec, stdio Stdio) (*Process, error) {
	parent, child, err := utils.NewSockPair("console")
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	defer parent.Close()
	defer child.Close()
	p := newProcess(sp, false, Stdio{})
	p.ConsoleSocket = child
	p.ConsoleWidth, p.ConsoleHeight = e.Width, e.Height
	if err := c.Run(p); err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.ID(), err)
	}
	master, err := utils.RecvFile(parent)
	if err != nil {
		_ = p.Signal(syscall.SIGKILL)
		_, _ = p.Wait()
		return nil, fmt.Errorf("exec: receive the terminal: %w", err)
	}
	pid, _ := p.Pid()
	out := &Process{p: p, Pid: pid, console: master}
	if stdio.Stdin != nil {
		go func() { _, _ = io.Copy(master, stdio.Stdin) }()
	}
	out.copied = make(chan struct{})
	go func() {
		defer close(out.copied)
		if stdio.Stdout != nil {
			_, _ = io.Copy(stdio.Stdout, master)
		}
	}()
	return out, nil
}

func newProcess(sp *specs.Process, init bool, stdio Stdio) *libcontainer.Process {
	p := &libcontainer.Process{
		Args:   sp.Args,
		Env:    sp.Env,
		Cwd:    sp.Cwd,
		UID:    int(sp.User.UID),
		GID:    int(sp.User.GID),
		Init:   init,
		Stdin:  stdio.Stdin,
		Stdout: stdio.Stdout,
		Stderr: stdio.Stderr,
	}
	for _, g := range sp.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	return p
}

func (r *Runtime) load(id string) (*libcontainer.Container, error) {
	c, err := libcontainer.Load(r.root, id)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("load container %s: %w", id, err)
	}
	return c, nil
}

// State is what the runtime knows of a container.
type State struct {
	// Running reports whether the container's init is alive.
	Running bool
	// Pid is the host PID of the container's init, 0 when not running.
	Pid int
}

// Status returns the state of container id, or ErrNotExist.
func (r *Runtime) Status(id string) (State, error) {
	c, err := r.load(id)
	if err != nil {
		return State{}, err
	}
	st, err := c.Status()
	if err != nil {
		return State{}, fmt.Errorf("container %s: %w", id, err)
	}
	if st != libcontainer.Running && st != libcontainer.Paused {
		return State{}, nil
	}
	s, err := c.State()
	if err != nil {
		return State{}, fmt.Errorf("container %s: %w", id, err)
	}
	return State{Running: true, Pid: s.InitProcessPid}, nil
}

// Signal sends sig to the init of container id.
func (r *Runtime) Signal(id string, sig os.Signal) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	if err := c.Signal(sig); err != nil {
		return fmt.Errorf("signal container %s: %w", id, err)
	}
	return nil
}

// SignalAll sends sig to every process of container id.
func (r *Runtime) SignalAll(id string, sig os.Signal) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	pids, err := c.Processes()
	if err != nil {
		return fmt.Errorf("signal container %s: %w", id, err)
	}
	s, _ := sig.(syscall.Signal)
	for _, pid := range pids {
		_ = syscall.Kill(pid, s)
	}
	return nil
}

// Update changes the cgroup limits of container id in place.
func (r *Runtime) Update(id string, res Resources) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	cfg := c.Config()
	cr := cfg.Cgroups.Resources
	cr.Memory = res.Memory
	cr.MemorySwap = res.MemorySwap
	if res.Memory == 0 {
		cr.Memory, cr.MemorySwap = -1, -1
	}
	cr.CpuQuota = res.CPUQuota
	cr.CpuPeriod = res.CPUPeriod
	if res.CPUQuota == 0 {
		cr.CpuQuota = -1
	}
	if cr.CpuPeriod == 0 {
		cr.CpuPeriod = 100000
	}
	pids := res.PidsLimit
	if pids == 0 {
		pids = -1
	}
	cr.PidsLimit = &pids
	if err := c.Set(cfg); err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	return nil
}

// Stats are live figures read from a container's cgroups.
type Stats struct {
	// Limits as the kernel has them now (0: none).
	Resources Resources
	// CPUUsage is the CPU time used, in nanoseconds.
	CPUUsage    uint64
	MemoryUsage uint64
	Pids        uint64
	BlockRead   uint64
	BlockWrite  uint64
}

// Stats reads the live cgroup figures of container id.
func (r *Runtime) Stats(id string) (Stats, error) {
	c, err := r.load(id)
	if err != nil {
		return Stats{}, err
	}
	st, err := c.Stats()
	if err != nil || st.CgroupStats == nil {
		return Stats{}, fmt.Errorf("stats of container %s: %w", id, err)
	}
	cs := st.CgroupStats
	out := Stats{
		CPUUsage:    cs.CpuStats.CpuUsage.TotalUsage,
		MemoryUsage: cs.MemoryStats.Usage.Usage,
		Pids:        cs.PidsStats.Current,
	}
	out.Resources.Memory = limit(cs.MemoryStats.Usage.Limit)
	if out.Resources.Memory != 0 {
		out.Resources.MemorySwap = limit(cs.MemoryStats.SwapUsage.Limit)
	}
	out.Resources.PidsLimit = int64(cs.PidsStats.Limit)
	for _, e := range cs.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			out.BlockRead += e.Value
		case "write":
			out.BlockWrite += e.Value
		}
	}
	state, err := c.State()
	if err == nil {
		out.Resources.CPUQuota, out.Resources.CPUPeriod = cpuLimit(state.CgroupPaths)
	}
	return out, nil
}

// limit turns the kernel's "no limit" (a huge number) into 0.
func limit(v uint64) int64 {
	if v == 0 || v >= 1<<62 {
		return 0
	}
	return int64(v)
}

// cpuLimit reads the CFS quota and period of a cgroup, v1 or v2.
func cpuLimit(paths map[string]string) (int64, uint64) {
	if cgroups.IsCgroup2UnifiedMode() {
		b, err := os.ReadFile(filepath.Join(paths[""], "cpu.max"))
		if err != nil {
			return 0, 0
		}
		f := strings.Fields(string(b))
		if len(f) != 2 || f[0] == "max" {
			return 0, 0
		}
		q, _ := strconv.ParseInt(f[0], 10, 64)
		p, _ := strconv.ParseUint(f[1], 10, 64)
		return q, p
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(paths["cpu"], name))
		return strings.TrimSpace(string(b))
	}
	q, _ := strconv.ParseInt(read("cpu.cfs_quota_us"), 10, 64)
	p, _ := strconv.ParseUint(read("cpu.cfs_period_us"), 10, 64)
	if q <= 0 {
		return 0, 0
	}
	return q, p
}

// Destroy kills every process of container id and removes its cgroup and
// runtime state. Destroying a container that does not exist succeeds.
func (r *Runtime) Destroy(id string) error {
	c, err := r.load(id)
	if errors.Is(err, ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st, err := c.Status(); err == nil && st != libcontainer.Stopped {
		_ = c.Signal(syscall.SIGKILL)
		// The process is gone only once the kernel has torn it down.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if st, err := c.Status(); err != nil || st == libcontainer.Stopped {
				break
			}
		}
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", id, err)
	}
	return nil
}
