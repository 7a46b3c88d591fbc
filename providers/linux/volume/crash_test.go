package volume

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCopyUpChild is the child of TestCopyUpKilled: it copies up and is
// killed somewhere along the way.
func TestCopyUpChild(t *testing.T) {
	store, img := os.Getenv("BERTH_VOLUME_CHILD_STORE"), os.Getenv("BERTH_VOLUME_CHILD_IMAGE")
	if store == "" {
		t.Skip("helper process of TestCopyUpKilled")
	}
	s, err := Open(store)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	start := time.Now()
	if _, err := s.CopyUp(context.Background(), "db", img, "/data"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("took", int64(time.Since(start)))
}

// TestCopyUpKilled kills a process that copies an image directory into a
// volume at random moments, and checks after each kill that the volume is
// either untouched and undecided or complete, never partial, and that the
// next CopyUp ends with the complete copy.
func TestCopyUpKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	base := t.TempDir()
	img := filepath.Join(base, "image")
	want := map[string]string{}
	for i := range 600 {
		rel := fmt.Sprintf("dir%02d/file%04d", i%40, i)
		c := strings.Repeat(fmt.Sprint(i), 2000)
		write(t, filepath.Join(img, "data", rel), c)
		want[rel] = c
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// How long one whole copy takes, to spread the kills over it.
	full := func() time.Duration {
		store := filepath.Join(base, "timing")
		s := open(t, store)
		if _, err := s.Create(context.Background(), "db", "o", nil); err != nil {
			t.Fatal(err)
		}
		out, err := child(exe, store, img).CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		var ns int64
		for line := range strings.Lines(string(out)) {
			if _, err := fmt.Sscanf(line, "took %d", &ns); err == nil {
				return time.Duration(ns)
			}
		}
		t.Fatalf("child did not say how long it took:\n%s", out)
		return 0
	}()
	var partialSeen, doneSeen, emptySeen int
	for i := range 8 {
		store := filepath.Join(base, fmt.Sprint("store", i))
		s := open(t, store)
		v, err := s.Create(context.Background(), "db", "o", nil)
		if err != nil {
			t.Fatal(err)
		}
		cmd := child(exe, store, img)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill somewhere between the start of the copy and a little after
		// its end.
		if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child did not get ready: %v", err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(full)*6/5 + 1)))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()

		s = open(t, store) // recovers as berth would after the crash
		got := contents(t, v.Path)
		vol, err := s.Get("db")
		if err != nil {
			t.Fatalf("kill %d: volume unreadable after the crash: %v", i, err)
		}
		switch {
		case len(got) == 0 && !vol.CopiedUp:
			emptySeen++
		case equalMaps(got, want):
			doneSeen++
		default:
			partialSeen++
			t.Errorf("kill %d: the volume holds a partial copy (%d of %d files), copied_up=%v", i, len(got), len(want), vol.CopiedUp)
		}
		if _, err := s.CopyUp(context.Background(), "db", img, "/data"); err != nil {
			t.Fatalf("kill %d: CopyUp after the crash: %v", i, err)
		}
		if got := contents(t, v.Path); !equalMaps(got, want) {
			t.Errorf("kill %d: after the next CopyUp the volume holds %d of %d files", i, len(got), len(want))
		}
		if ents, _ := os.ReadDir(filepath.Join(store, "db")); len(ents) != 2 {
			t.Errorf("kill %d: volume directory holds %v", i, ents)
		}
	}
	t.Logf("one copy took %v; after the kills: %d empty, %d complete, %d partial", full, emptySeen, doneSeen, partialSeen)
}

func child(exe, store, img string) *exec.Cmd {
	cmd := exec.Command(exe, "-test.run=^TestCopyUpChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BERTH_VOLUME_CHILD_STORE="+store, "BERTH_VOLUME_CHILD_IMAGE="+img)
	return cmd
}
