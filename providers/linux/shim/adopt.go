package shim

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// adopted is a container process started by a shim that died: it is not
// this shim's child, so its exit is seen through a pidfd and its exit
// code is lost.
type adopted struct {
	pid   int
	pidfd int
}

func adoptPid(pid int) (*adopted, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("adopt process %d: %w", pid, err)
	}
	return &adopted{pid: pid, pidfd: fd}, nil
}

func (a *adopted) PID() int { return a.pid }

// Wait waits until the process exits; its exit code is unknown (-1).
func (a *adopted) Wait() (int, error) {
	defer unix.Close(a.pidfd)
	fds := []unix.PollFd{{Fd: int32(a.pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, err
		}
		if fds[0].Revents != 0 {
			return -1, nil
		}
	}
}

func (a *adopted) Signal(sig os.Signal) error {
	s, ok := sig.(unix.Signal)
	if !ok {
		return fmt.Errorf("unsupported signal %v", sig)
	}
	return unix.PidfdSendSignal(a.pidfd, s, nil, 0)
}

// adoptable returns the PID of the container's first process when a shim
// that died left it running, or 0.
func (s *shim) adoptable(prev State) int {
	if prev.Pid <= 0 {
		return 0
	}
	st, err := s.rt.Status(s.rec.ID)
	if err != nil || !st.Running || st.Pid != prev.Pid {
		return 0
	}
	return prev.Pid
}

// adopt supervises the running container whose first process is pid.
func (s *shim) adopt(ctx context.Context, logs *logFile, pid int, started time.Time, stop <-chan os.Signal) (int, error) {
	out, err := openOutput(s.dir, logs, false)
	if err != nil {
		s.ready(readyMsg{Error: err.Error()})
		return -1, err
	}
	p, err := adoptPid(pid)
	if err != nil {
		out.drain()
		s.ready(readyMsg{Error: err.Error()})
		return -1, err
	}
	s.log.Printf("adopted the running container (pid %d) of a shim that is gone", pid)
	return s.supervise(ctx, p, out, true, started, stop)
}
