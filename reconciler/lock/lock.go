// Package lock is the exclusive lock on a state directory that commands
// which write take. It is an flock(2) on <state-dir>/lock, so a holder that is
// killed releases it with its process.
package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Info describes the holder of a lock.
type Info struct {
	PID     int
	Command string
	Host    string
	Since   time.Time
}

// HeldError is returned when another process holds the lock.
type HeldError struct {
	Dir  string
	Info Info
}

func (e *HeldError) Error() string {
	who := "another process"
	if e.Info.PID > 0 {
		who = fmt.Sprintf("pid %d (%s, since %s)", e.Info.PID, e.Info.Command, e.Info.Since.Local().Format("15:04:05"))
	}
	return fmt.Sprintf("state directory %s is locked by %s; wait for it to finish or use -lock-timeout to wait", e.Dir, who)
}

// Lock is a held lock.
type Lock struct {
	f    *os.File
	info string
}

// retryInterval is how often Acquire tries again while it waits.
const retryInterval = 100 * time.Millisecond

// Acquire takes the lock on stateDir, trying until timeout (0: once).
func Acquire(ctx context.Context, stateDir string, timeout time.Duration, command string) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", stateDir, err)
		}
		if timeout <= 0 || time.Now().After(deadline) {
			f.Close()
			return nil, &HeldError{Dir: stateDir, Info: readInfo(stateDir)}
		}
		wait := min(retryInterval, time.Until(deadline))
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	host, _ := os.Hostname()
	info := Info{PID: os.Getpid(), Command: command, Host: host, Since: time.Now()}
	b, _ := json.Marshal(info)
	p := filepath.Join(stateDir, "lock.info")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		_ = os.Rename(tmp, p)
	}
	return &Lock{f: f, info: p}, nil
}

func readInfo(stateDir string) Info {
	var info Info
	b, err := os.ReadFile(filepath.Join(stateDir, "lock.info"))
	if err == nil {
		_ = json.Unmarshal(b, &info)
	}
	return info
}

// Release releases the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = os.Remove(l.info)
	err := l.f.Close()
	l.f = nil
	return err
}
