package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"github.com/berthhq/berth/providers/linux/jsonfile"
	"github.com/berthhq/berth/providers/linux/runtime"
	"golang.org/x/sys/unix"
)

// Options are what the program embedding the shim provides.
type Options struct {
	// Mount mounts the container's root filesystem before every start;
	// it must be idempotent.
	Mount func(ctx context.Context, r *Record) error
	// Ready, when set, receives one JSON line after the first start: the
	// launcher waits for it.
	Ready io.WriteCloser
}

// readyMsg is what the shim tells its launcher after the first start.
type readyMsg struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	// Supervised tells that another shim supervises the container.
	Supervised bool `json:"supervised,omitempty"`
}

// errSupervised is the answer of a shim started for a container that
// another shim supervises.
var errSupervised = errors.New("another shim supervises this container")

// ErrSupervised is returned by Launch when another shim supervises the
// container already.
var ErrSupervised = errSupervised

// Backoff bounds of restarts: the delay starts at minBackoff and doubles
// up to maxBackoff; a run longer than resetAfter starts over.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
	resetAfter = 10 * time.Second
)

// shim supervises one container.
type shim struct {
	dir  Dir
	rec  *Record
	opts Options
	rt   *runtime.Runtime
	log  *log.Logger

	mu    sync.Mutex
	wmu   sync.Mutex // serialises writes of the state file
	state State

	nmu      sync.Mutex    // guards served, events and notified
	served   *bool         // last serving state told to Notify; nil before the first start
	events   chan string   // pending Notify events
	notified chan struct{} // closed when the Notify goroutine is done
}

// Run is the shim: it starts the container of dir, writes its logs, waits
// for it, records every exit and restarts it as its policy says, until the
// policy says no more or a client asks it to stop (SIGTERM). The caller
// should have made the process a session leader.
func Run(ctx context.Context, dir Dir, opts Options) error {
	lf, err := os.OpenFile(dir.ShimLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("shim log: %w", err)
	}
	defer lf.Close()
	s := &shim{dir: dir, opts: opts, log: log.New(lf, "", log.LstdFlags|log.Lmicroseconds)}
	err = s.run(ctx)
	s.flushNotify()
	if err != nil {
		s.log.Printf("shim ends: %v", err)
	}
	return err
}

func (s *shim) run(ctx context.Context) error {
	// Orphans of the container's start (and its exec'd processes) come to
	// the shim rather than to the host's init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.log.Printf("subreaper: %v", err)
	}
	// One shim per container, for the shim's whole life: a second one
	// (two starts racing) goes away before it touches anything.
	lock, err := os.OpenFile(filepath.Join(string(s.dir), lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.ready(readyMsg{Error: err.Error()})
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		s.ready(readyMsg{Error: errSupervised.Error(), Supervised: true})
		return errSupervised
	}
	rec, err := s.dir.Record()
	if err != nil {
		s.ready(readyMsg{Error: err.Error()})
		return err
	}
	s.rec = rec
	s.rt = runtime.New(rec.RuntimeRoot)
	prev, _ := s.dir.State()
	start, err := processStart(os.Getpid())
	if err != nil {
		s.ready(readyMsg{Error: err.Error()})
		return err
	}
	adopt := s.adoptable(prev)
	// The count of restarts goes on only for a container adopted while it
	// runs; a start by hand or by apply begins afresh, as with Docker.
	restarts, prevPid := 0, 0
	if adopt > 0 {
		restarts, prevPid = prev.Restarts, prev.Pid
	}
	s.state = State{ShimPid: os.Getpid(), ShimStart: start, Status: StatusStarting, Restarts: restarts, ExitCode: prev.ExitCode, Pid: prevPid}
	_ = os.Remove(filepath.Join(string(s.dir), stopFile))
	s.save()

	logs, err := openLog(s.dir.LogPath(), rec.Log)
	if err != nil {
		s.fail(err)
		return err
	}
	defer logs.Close()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(stop)

	backoff := minBackoff
	first := true
	for {
		started := time.Now()
		var code int
		first0 := first
		if adopt > 0 {
			code, err = s.adopt(ctx, logs, adopt, prev.StartedAt, stop)
			adopt = 0
		} else {
			code, err = s.once(ctx, logs, first, stop)
		}
		first = false
		if errors.Is(err, errStopped) {
			return nil
		}
		if err != nil && code < 0 {
			s.log.Printf("start failed: %v", err)
			if first0 {
				// The first start failed: the launcher reports it, and
				// no policy retries a container that never ran.
				s.update(func(st *State) { st.Status = StatusExited })
				return err
			}
			// A restart failed: the policy decides, as for an exit with
			// a failure code.
			code = 127
		}
		if !s.shouldRestart(code) {
			s.update(func(st *State) { st.Status = StatusExited })
			return nil
		}
		if time.Since(started) > resetAfter {
			backoff = minBackoff
		}
		s.update(func(st *State) { st.Status = StatusRestarting; st.Restarts++ })
		s.log.Printf("restarting in %s", backoff)
		select {
		case <-stop:
			s.stopped()
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// errStopped tells that a client stopped the container.
var errStopped = errors.New("stopped on request")

// once starts the container and waits for it. It returns the exit code,
// or -1 and an error when the container could not start.
func (s *shim) once(ctx context.Context, logs *logFile, first bool, stop <-chan os.Signal) (int, error) {
	// The record may have changed since the last start (limits updated in
	// place): every start uses the current one.
	if rec, err := s.dir.Record(); err == nil {
		s.rec = rec
	}
	if s.opts.Mount != nil {
		if err := s.opts.Mount(ctx, s.rec); err != nil {
			s.fail(err)
			if first {
				s.ready(readyMsg{Error: err.Error()})
			}
			return -1, err
		}
	}
	if err := runtime.WriteEtc(s.rec.Spec.EtcDir, hostnameOf(s.rec), s.rec.Spec.HostNetwork, s.rec.Spec.NetNS != ""); s.rec.Spec.EtcDir != "" && err != nil {
		s.fail(err)
		return -1, err
	}
	out, err := openOutput(s.dir, logs, true)
	if err != nil {
		s.fail(err)
		if first {
			s.ready(readyMsg{Error: err.Error()})
		}
		return -1, err
	}
	p, err := s.rt.Start(s.rec.Spec, runtime.Stdio{Stdout: out.Stdout, Stderr: out.Stderr})
	out.closeWriters()
	if err != nil {
		out.drain()
		s.fail(err)
		if first {
			s.ready(readyMsg{Error: err.Error()})
		}
		return -1, err
	}
	return s.supervise(ctx, p, out, first, time.Now().UTC(), stop)
}

// proc is a container's first process: started by this shim, or adopted
// from a shim that died.
type proc interface {
	Wait() (int, error)
	Signal(os.Signal) error
}

// supervise records that p runs, runs the healthcheck, waits for p to exit
// (stopping it when asked) and records the exit.
func (s *shim) supervise(ctx context.Context, p proc, out *output, first bool, started time.Time, stop <-chan os.Signal) (int, error) {
	pid := 0
	if pp, ok := p.(interface{ PID() int }); ok {
		pid = pp.PID()
	}
	s.update(func(st *State) {
		st.Status, st.Pid, st.StartedAt, st.Error = StatusRunning, pid, started, ""
		st.FinishedAt = time.Time{}
		if s.rec.Health != nil {
			st.Health, st.FailingStreak, st.HealthLog = "starting", 0, ""
		}
	})
	if first {
		s.ready(readyMsg{Pid: pid})
		before := vmRSS()
		Trim()
		s.log.Printf("trimmed resident memory from %s to %s", before, vmRSS())
	}
	hctx, hcancel := context.WithCancel(ctx)
	var hwg sync.WaitGroup
	if s.rec.Health != nil && len(s.rec.Health.Command) > 0 {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			s.healthLoop(hctx, started)
		}()
	}
	exited := make(chan int, 1)
	go func() {
		code, _ := p.Wait()
		exited <- code
	}()
	var code int
	stopping := false
	for done := false; !done; {
		select {
		case code = <-exited:
			done = true
		case <-stop:
			if !stopping {
				stopping = true
				go s.terminate(p)
			}
		}
	}
	hcancel()
	// A check caught in the container's death must not hold the shim:
	// give it a moment, then go on without it.
	hdone := make(chan struct{})
	go func() {
		hwg.Wait()
		close(hdone)
	}()
	select {
	case <-hdone:
	case <-time.After(3 * time.Second):
		s.log.Printf("the healthcheck did not end with the container; going on without it")
	}
	out.drain()
	if err := s.rt.Destroy(s.rec.ID); err != nil {
		s.log.Printf("cleanup: %v", err)
	}
	finished := time.Now().UTC()
	s.log.Printf("container exited with code %d", code)
	s.update(func(st *State) {
		st.FinishedAt, st.Pid = finished, 0
		st.ExitCode = nil
		if code >= 0 {
			c := code
			st.ExitCode = &c
		}
	})
	if stopping {
		s.stopped()
		return code, errStopped
	}
	return code, nil
}

// terminate sends the stop signal, then SIGKILL to every process of the
// container after the stop timeout.
func (s *shim) terminate(p proc) {
	sig, err := signalNumber(s.rec.StopSignal)
	if err != nil {
		sig = unix.SIGTERM
	}
	_ = p.Signal(sig)
	timeout := s.rec.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	time.Sleep(timeout)
	_ = s.rt.SignalAll(s.rec.ID, unix.SIGKILL)
	_ = p.Signal(unix.SIGKILL)
}

// stopped records that a client stopped the container.
func (s *shim) stopped() {
	var req stopRequest
	_ = jsonfile.Read(filepath.Join(string(s.dir), stopFile), &req)
	s.update(func(st *State) {
		st.Status = StatusStopped
		st.StoppedByUser = req.ByUser
		st.Health = ""
	})
}

// shouldRestart applies the restart policy to an exit code.
func (s *shim) shouldRestart(code int) bool {
	switch s.rec.Restart.Policy {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		if code == 0 {
			return false
		}
		s.mu.Lock()
		n := s.state.Restarts
		s.mu.Unlock()
		return s.rec.Restart.MaxRetries <= 0 || n < s.rec.Restart.MaxRetries
	}
	return false
}

func (s *shim) fail(err error) {
	s.update(func(st *State) { st.Error = err.Error() })
}

func (s *shim) ready(m readyMsg) {
	if s.opts.Ready == nil {
		return
	}
	b, _ := json.Marshal(m)
	_, _ = s.opts.Ready.Write(append(b, '\n'))
	_ = s.opts.Ready.Close()
	s.opts.Ready = nil
}

func (s *shim) update(f func(*State)) {
	s.mu.Lock()
	f(&s.state)
	serving := s.state.Status == StatusRunning && s.state.Health != HealthUnhealthy
	s.mu.Unlock()
	s.save()
	s.notify(serving)
}

// notify tells Record.Notify when the container starts or stops serving.
// The first start does not count: the launcher put the container in
// service. Commands run one at a time, in order, off the caller's path.
func (s *shim) notify(serving bool) {
	if s.rec == nil || len(s.rec.Notify) == 0 {
		return
	}
	s.nmu.Lock()
	defer s.nmu.Unlock()
	if s.served == nil {
		if !serving {
			return
		}
		// The first start: in service already, unless the container was
		// taken out (stopped, or it died) and nothing put it back.
		was := !outOfRotation(s.dir)
		s.served = &was
	}
	if *s.served == serving {
		return
	}
	*s.served = serving
	event := "out"
	if serving {
		event = "in"
	}
	if s.events == nil {
		s.events = make(chan string, 16)
		s.notified = make(chan struct{})
		go s.runNotify(s.events)
	}
	select {
	case s.events <- event:
	default:
		s.log.Printf("notify: %s dropped, too many pending", event)
	}
}

// flushNotify waits, a bounded time, for the pending notifications: the
// last one of a container that ends is that it stopped serving.
func (s *shim) flushNotify() {
	s.nmu.Lock()
	events, done := s.events, s.notified
	s.events = nil
	s.nmu.Unlock()
	if events == nil {
		return
	}
	close(events)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
	}
}

// runNotify runs the notify command for each event.
func (s *shim) runNotify(events <-chan string) {
	defer close(s.notified)
	for ev := range events {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, s.rec.Notify[0], append(append([]string(nil), s.rec.Notify[1:]...), ev)...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			s.log.Printf("notify %s: %v: %s", ev, err, bytes.TrimSpace(out))
		}
	}
}

func (s *shim) save() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if err := s.dir.writeState(st); err != nil {
		s.log.Printf("state: %v", err)
	}
}

func hostnameOf(r *Record) string {
	if r.Spec.Hostname != "" {
		return r.Spec.Hostname
	}
	return r.ID
}

// outOfRotation reports whether the networking record that the provider
// keeps beside the shim's (network.json) says the container is out of the
// rotation of its published ports.
func outOfRotation(d Dir) bool {
	var r struct {
		Stopped bool `json:"stopped"`
	}
	b, err := os.ReadFile(filepath.Join(string(d), "network.json"))
	if err != nil || json.Unmarshal(b, &r) != nil {
		return false
	}
	return r.Stopped
}
