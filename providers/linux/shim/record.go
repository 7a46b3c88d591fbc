package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/providers/linux/jsonfile"
	"github.com/berthhq/berth/providers/linux/runtime"
	"golang.org/x/sys/unix"
)

// Files of a container directory.
const (
	recordFile = "container.json"
	stateFile  = "state.json"
	stopFile   = "stop.json"
	lockFile   = "shim.lock"
	shimLog    = "shim.log"
	logDir     = "logs"
)

// Record is the declared container that a shim runs: everything it needs to
// start it again after a crash or a reboot. The provider writes it before it
// launches the shim; the shim reads it at every start.
type Record struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Owner   string `json:"owner"`
	// Image is the image reference and digest, for display.
	Image       string       `json:"image"`
	ImageDigest string       `json:"image_digest"`
	Spec        runtime.Spec `json:"spec"`
	// Lowers are the image's layer directories, top first, mounted with
	// overlayfs at Spec.Rootfs before every start.
	Lowers      []string      `json:"lowers"`
	Restart     Restart       `json:"restart"`
	StopSignal  string        `json:"stop_signal"`
	StopTimeout time.Duration `json:"stop_timeout"`
	Health      *Health       `json:"health,omitempty"`
	Log         LogConfig     `json:"log"`
	RuntimeRoot string        `json:"runtime_root"`
	Created     time.Time     `json:"created"`
	// Entrypoint and Cmd are the container's, as Docker combines them
	// from the image and the configuration; Spec.Args is their sum.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	// Volumes are the named volumes the container uses.
	Volumes []string `json:"volumes,omitempty"`
	// Notify, when set, is a command (no shell) the shim runs with one
	// more argument, "in" or "out", whenever the container starts or stops
	// serving: running and not unhealthy. berth uses it to take a replica
	// in and out of the rotation of its published ports.
	Notify []string `json:"notify,omitempty"`
}

// Restart is a restart policy: "no", "always", "unless-stopped" or
// "on-failure" with at most MaxRetries restarts (0: no limit).
type Restart struct {
	Policy     string `json:"policy"`
	MaxRetries int    `json:"max_retries"`
}

// Health is a healthcheck: Command runs in the container every Interval;
// Retries failures in a row make the container unhealthy.
type Health struct {
	Command     []string      `json:"command"`
	Interval    time.Duration `json:"interval"`
	Timeout     time.Duration `json:"timeout"`
	StartPeriod time.Duration `json:"start_period"`
	Retries     int           `json:"retries"`
}

// LogConfig caps the log files of a container: MaxFiles files of at most
// MaxSize bytes.
type LogConfig struct {
	MaxSize  int64 `json:"max_size"`
	MaxFiles int   `json:"max_files"`
}

// Status values of a State.
const (
	StatusStarting   = "starting"
	StatusRunning    = "running"
	StatusRestarting = "restarting"
	StatusExited     = "exited"
	StatusStopped    = "stopped"
)

// State is what the shim reports about its container, written atomically
// to the container directory at every change.
type State struct {
	ShimPid int `json:"shim_pid"`
	// ShimStart is the shim's start time in clock ticks since boot, which
	// tells the shim from an unrelated process that got its PID later.
	ShimStart  uint64    `json:"shim_start"`
	Status     string    `json:"status"`
	Pid        int       `json:"pid,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ExitCode is the last exit code; nil before the first exit.
	ExitCode *int `json:"exit_code,omitempty"`
	Restarts int  `json:"restarts"`
	// StoppedByUser is set when `berth stop` stopped the container, which
	// the "unless-stopped" policy respects.
	StoppedByUser bool   `json:"stopped_by_user,omitempty"`
	Error         string `json:"error,omitempty"`
	Health        string `json:"health,omitempty"`
	HealthLog     string `json:"health_log,omitempty"`
	FailingStreak int    `json:"failing_streak,omitempty"`
}

// stopRequest is written by a client before it asks a shim to stop.
type stopRequest struct {
	ByUser bool `json:"by_user"`
}

// Dir is the directory of one container.
type Dir string

// Record reads the container's record.
func (d Dir) Record() (*Record, error) {
	var r Record
	if err := jsonfile.Read(filepath.Join(string(d), recordFile), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// WriteRecord writes the container's record atomically.
func (d Dir) WriteRecord(r *Record) error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("container directory: %w", err)
	}
	return jsonfile.Write(filepath.Join(string(d), recordFile), r)
}

// State reads what the shim last reported; a container never started has
// an empty State and no error.
func (d Dir) State() (State, error) {
	var s State
	err := jsonfile.Read(filepath.Join(string(d), stateFile), &s)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	return s, err
}

func (d Dir) writeState(s State) error {
	return jsonfile.Write(filepath.Join(string(d), stateFile), s)
}

// LogPath is the current log file of the container; older ones have the
// suffixes .1, .2, ...
func (d Dir) LogPath() string { return filepath.Join(string(d), logDir, "container.log") }

// ShimLog is the shim's own log, where start failures are told.
func (d Dir) ShimLog() string { return filepath.Join(string(d), shimLog) }

// ShimAlive reports whether the shim that wrote s is still running: its PID
// exists and has the same start time.
func ShimAlive(s State) bool {
	if s.ShimPid <= 0 {
		return false
	}
	st, err := processStart(s.ShimPid)
	return err == nil && st == s.ShimStart
}

// processStart returns the start time of process pid, in clock ticks since
// boot (field 22 of /proc/PID/stat).
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat of %d", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("bad stat of %d", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// signalNumber parses a signal name such as "SIGTERM", "TERM" or "15".
func signalNumber(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// SignalNumber parses a signal name such as "SIGTERM", "TERM" or "15";
// empty means SIGTERM.
func SignalNumber(s string) (unix.Signal, error) { return signalNumber(s) }

// ParseSignal checks a stop signal name.
func ParseSignal(s string) error {
	_, err := signalNumber(s)
	return err
}
