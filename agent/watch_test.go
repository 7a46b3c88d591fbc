package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchContainersSeesAShimRecord(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "providers", "linux", "containers", "c1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	if err := os.WriteFile(state, []byte(`{"status":"running"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan struct{}, 10)
	go watchContainers(ctx, root, 10*time.Millisecond, func() { events <- struct{}{} })

	// Nothing changes: no event.
	select {
	case <-events:
		t.Fatal("an event without a change")
	case <-time.After(100 * time.Millisecond):
	}
	// The shim records an exit, as it does: a new file renamed over the old.
	tmp := state + ".tmp"
	if err := os.WriteFile(tmp, []byte(`{"status":"exited"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Second)
	if err := os.Chtimes(tmp, future, future); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, state); err != nil {
		t.Fatal(err)
	}
	select {
	case <-events:
	case <-time.After(10 * time.Second):
		t.Fatal("no event after the shim recorded an exit")
	}
	// A new container is an event too.
	time.Sleep(50 * time.Millisecond) // past the pause after an event
	dir2 := filepath.Join(root, "providers", "linux", "containers", "c2")
	if err := os.MkdirAll(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "state.json"), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-events:
	case <-time.After(10 * time.Second):
		t.Fatal("no event for a new container")
	}
}
