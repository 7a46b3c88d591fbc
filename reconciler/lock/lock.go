// Package lock is the exclusive lock on a state directory that commands
// which write take. It is an flock(2) on <state-dir>/lock, so a holder that is
// killed releases it with its process; the holder describes itself in
// <state-dir>/lock.info for the message others get.
package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Info describes the holder of a lock.
type Info struct {
	// PID is the holder's process id.
	PID int
	// Command is what the holder runs, such as "berth apply".
	Command string
	// Host is the name of the holder's host.
	Host string
	// Since is when the holder took the lock.
	Since time.Time
}

// HeldError is returned when another process holds the lock. Info is zero
// when the holder could not be told.
type HeldError struct {
	Dir  string
	Info Info
}

// Error says who holds the lock and what to do.
func (e *HeldError) Error() string {
	who := "another process"
	if e.Info.PID > 0 {
		where := ""
		if host, err := os.Hostname(); err == nil && e.Info.Host != "" && e.Info.Host != host {
			where = " on host " + e.Info.Host
		}
		what := e.Info.Command
		if what == "" {
			what = "unknown command"
		}
		if !e.Info.Since.IsZero() {
			what += ", since " + formatSince(e.Info.Since, time.Now())
		}
		who = fmt.Sprintf("pid %d%s (%s)", e.Info.PID, where, what)
	}
	return fmt.Sprintf("state directory %s is locked by %s; wait for it to finish or use -lock-timeout to wait", e.Dir, who)
}

// formatSince formats since as a time of day, with the date too when it is
// not the day of now.
func formatSince(since, now time.Time) string {
	since, now = since.Local(), now.Local()
	if y, m, d := since.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return since.Format("15:04:05")
	}
	return since.Format("2006-01-02 15:04:05")
}

// Lock is a held lock.
type Lock struct {
	f    *os.File
	info string
}

// retryInterval is how often Acquire tries again while it waits.
const retryInterval = 100 * time.Millisecond

// Acquire takes the lock on stateDir, creating the directory (mode 0700)
// when it is missing, for command, which lock.info records. With a timeout
// of zero or less it tries once; otherwise it tries every 100ms until the
// timeout passes or ctx is done. When another process holds the lock, the
// error is a *HeldError.
func Acquire(ctx context.Context, stateDir string, timeout time.Duration, command string) (*Lock, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock %s: %w", stateDir, err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fileError(stateDir, err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fileError(stateDir, err)
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
		if timeout <= 0 || !time.Now().Before(deadline) {
			f.Close()
			return nil, &HeldError{Dir: stateDir, Info: readInfo(stateDir)}
		}
		timer := time.NewTimer(min(retryInterval, time.Until(deadline)))
		select {
		case <-ctx.Done():
			timer.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", stateDir, ctx.Err())
		case <-timer.C:
		}
	}
	host, _ := os.Hostname()
	info := Info{PID: os.Getpid(), Command: command, Host: host, Since: time.Now()}
	// The record only serves the message others get: failing to write it
	// does not fail the lock.
	b, _ := json.Marshal(info)
	p := filepath.Join(stateDir, "lock.info")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		if err := os.Rename(tmp, p); err != nil {
			_ = os.Remove(tmp)
		}
	}
	return &Lock{f: f, info: p}, nil
}

// fileError explains why the lock file under stateDir cannot be opened.
func fileError(stateDir string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("lock %s: %w; run berth as a user that may write there, or choose another state directory with -state-dir or BERTH_STATE_DIR", stateDir, err)
	}
	return fmt.Errorf("lock %s: %w", stateDir, err)
}

// readInfo returns what the holder of the lock on stateDir recorded, or a
// zero Info when that cannot be read or names a process of this host that
// is gone (a holder killed before it released, whose successor has not yet
// written its own record).
func readInfo(stateDir string) Info {
	var info Info
	b, err := os.ReadFile(filepath.Join(stateDir, "lock.info"))
	if err != nil || json.Unmarshal(b, &info) != nil || info.PID <= 0 {
		return Info{}
	}
	if host, err := os.Hostname(); err == nil && info.Host == host {
		if err := unix.Kill(info.PID, 0); errors.Is(err, unix.ESRCH) {
			return Info{}
		}
	}
	return info
}

// Release releases the lock. Releasing a lock twice, or a nil lock, does
// nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Remove the record while still holding the lock, so that it never
	// describes a holder that has gone.
	_ = os.Remove(l.info)
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return nil
}
