package shim

import (
	"bytes"
	"context"
	"io"
	"os"
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
		if ctx.Err() != nil {
			return
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
	// The check's output goes through a pipe of the shim's own, so that
	// waiting for the check does not wait for processes it left behind
	// holding the pipe.
	pr, pw, err := os.Pipe()
	if err != nil {
		return false, err.Error()
	}
	defer pr.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(w, pr)
	}()
	p, err := s.rt.Exec(s.rec.ID, runtime.ExecSpec{Args: h.Command, Env: s.rec.Spec.Env, Cwd: s.rec.Spec.Cwd, User: s.rec.Spec.User},
		runtime.Stdio{Stdout: pw, Stderr: pw})
	pw.Close()
	if err != nil {
		return false, err.Error()
	}
	done := make(chan int, 1)
	go func() {
		code, _ := p.Wait()
		done <- code
	}()
	result := func(ok bool, msg string) (bool, string) {
		_ = pr.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		<-copied
		if msg == "" {
			w.mu.Lock()
			msg = strings.TrimSpace(out.String())
			w.mu.Unlock()
		}
		return ok, msg
	}
	select {
	case code := <-done:
		return result(code == 0, "")
	case <-time.After(timeout):
		_ = p.Signal(unix.SIGKILL)
		<-done
		return result(false, "healthcheck timed out after "+timeout.String())
	case <-ctx.Done():
		_ = p.Signal(unix.SIGKILL)
		<-done
		return result(false, "cancelled")
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
