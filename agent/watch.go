package agent

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// watchContainers calls event when the shim of a container records a new
// state (the container died, was restarted or changed health), so that a
// drift check runs at once instead of at the next interval. Shims write
// state.json atomically in their container's directory; the watch reads
// the modification times of those files every period, which costs one
// stat per container.
func watchContainers(ctx context.Context, root string, period time.Duration, event func()) {
	pattern := filepath.Join(root, "providers", "linux", "containers", "*", "state.json")
	seen := stateTimes(pattern)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stateTimes(pattern)
		changed := false
		for p, m := range now {
			if old, ok := seen[p]; !ok || !old.Equal(m) {
				changed = true
				break
			}
		}
		seen = now
		if changed {
			event()
			// A container that keeps crashing must not keep the host
			// busy planning: at most one check per few periods.
			select {
			case <-ctx.Done():
				return
			case <-time.After(3 * period):
			}
			seen = stateTimes(pattern)
		}
	}
}

func stateTimes(pattern string) map[string]time.Time {
	out := map[string]time.Time{}
	paths, _ := filepath.Glob(pattern)
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			out[p] = fi.ModTime()
		}
	}
	return out
}
