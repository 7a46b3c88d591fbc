package shim

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/providers/linux/runtime"
	"golang.org/x/sys/unix"
)

// Health states, as Docker names them.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// healthLoop runs the healthcheck every interval until ctx ends. Failures
// during the start period do not count, as with Docker.
func (s *shim) healthLoop(ctx context.Context, started time.Time) {
	h := s.rec.Health
	interval := h.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	retries := h.Retries
	if retries <= 0 {
		retries = 3
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, out := s.probe(ctx)
		inStart := time.Since(started) < h.StartPeriod
		s.update(func(st *State) {
			st.HealthLog = out
			switch {
			case ok:
				st.Health, st.FailingStreak = HealthHealthy, 0
			case inStart:
			default:
				st.FailingStreak++
				if st.FailingStreak >= retries {
					st.Health = HealthUnhealthy
				}
			}
		})
		t.Reset(interval)
	}
}

// probe runs the healthcheck command once in the container.
func (s *shim) probe(ctx context.Context) (bool, string) {
	h := s.rec.Health
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var out bytes.Buffer
	w := &capWriter{b: &out, max: 4096}
	p, err := s.rt.Exec(s.rec.ID, runtime.ExecSpec{Args: h.Command, Env: s.rec.Spec.Env, Cwd: s.rec.Spec.Cwd, User: s.rec.Spec.User},
		runtime.Stdio{Stdout: w, Stderr: w})
	if err != nil {
		return false, err.Error()
	}
	done := make(chan int, 1)
	go func() {
		code, _ := p.Wait()
		done <- code
	}()
	select {
	case code := <-done:
		w.mu.Lock()
		defer w.mu.Unlock()
		return code == 0, strings.TrimSpace(out.String())
	case <-time.After(timeout):
		_ = p.Signal(unix.SIGKILL)
		<-done
		return false, "healthcheck timed out after " + timeout.String()
	case <-ctx.Done():
		_ = p.Signal(unix.SIGKILL)
		<-done
		return false, "cancelled"
	}
}

// capWriter keeps at most max bytes.
type capWriter struct {
	mu  sync.Mutex
	b   *bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.b.Len(); room > 0 {
		if len(p) > room {
			w.b.Write(p[:room])
		} else {
			w.b.Write(p)
		}
	}
	return len(p), nil
}
