package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berthhq/berth/providers/linux/jsonfile"
	"golang.org/x/sys/unix"
)

// Launch starts a shim for the container of d by running exe with args (the
// program's shim entry point, which calls Run with the pipe it gets as file
// descriptor 3 as Options.Ready). The shim gets its own session, so that
// neither a signal to the launcher's process group nor the launcher's death
// reaches it. Launch waits until the container's first process started and
// returns its PID, or the error that stopped it.
func Launch(ctx context.Context, d Dir, exe string, args []string) (int, error) {
	if st, err := d.State(); err == nil && ShimAlive(st) {
		return 0, ErrSupervised
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("launch shim: %w", err)
	}
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return 0, fmt.Errorf("launch shim: %w", err)
	}
	defer null.Close()
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = shimEnv()
	// No transparent huge pages for the shim, which inherits the flag: a
	// small process that maps its program in 2 MiB pages would be charged
	// megabytes for the few functions it runs. The flag also holds for
	// this process (berth's command or a provider process), for the pages
	// it maps from now on only.
	_ = unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("launch shim: %w", err)
	}
	w.Close()
	// Reap the shim if it ends while this process still runs.
	go func() { _ = cmd.Wait() }()

	type result struct {
		msg readyMsg
		err error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadBytes('\n')
		if len(line) == 0 {
			got <- result{err: fmt.Errorf("the shim ended before it started the container: %w", err)}
			return
		}
		var m readyMsg
		if err := json.Unmarshal(line, &m); err != nil {
			got <- result{err: fmt.Errorf("the shim said %q: %w", line, err)}
			return
		}
		got <- result{msg: m}
	}()
	select {
	case res := <-got:
		if res.err != nil {
			return 0, fmt.Errorf("%w%s", res.err, shimLogTail(d))
		}
		if res.msg.Supervised {
			return 0, ErrSupervised
		}
		if res.msg.Error != "" {
			return 0, errors.New(res.msg.Error)
		}
		return res.msg.Pid, nil
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return 0, fmt.Errorf("the container did not start in time: %w", ctx.Err())
	}
}

// shimEnv is the environment of a shim: only what it needs. The
// launcher's environment may hold secrets (BERTH_VAR_*) that must not live
// on in a process that runs for as long as its container.
func shimEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, k := range []string{"LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func shimLogTail(d Dir) string {
	b, err := os.ReadFile(d.ShimLog())
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "; shim log: " + strings.Join(lines, " | ")
}

// Stop asks the shim of d to stop its container and waits until it has,
// at most until ctx ends. byUser records a stop by `berth stop`, which the
// "unless-stopped" policy respects. Stopping a container whose shim is
// gone succeeds; the caller cleans up what the shim left.
func Stop(ctx context.Context, d Dir, byUser bool) error {
	st, err := d.State()
	if err != nil {
		return err
	}
	if !ShimAlive(st) {
		return nil
	}
	if err := jsonfile.Write(filepath.Join(string(d), stopFile), stopRequest{ByUser: byUser}); err != nil {
		return err
	}
	if err := syscall.Kill(st.ShimPid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop container: %w", err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ShimAlive(st) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the container's shim (pid %d) did not stop in time: %w", st.ShimPid, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// Kill ends the shim of d at once with SIGKILL, leaving its container
// running unsupervised; Destroy follows.
func Kill(d Dir) {
	if st, err := d.State(); err == nil && ShimAlive(st) {
		_ = syscall.Kill(st.ShimPid, syscall.SIGKILL)
	}
}
