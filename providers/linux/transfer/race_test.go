package transfer

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// swapper exchanges two entries of a directory over and over, as a
// container process attacking docker cp did (CVE-2018-15664), until stop
// is called. It holds dir open, so that it keeps swapping in the same
// directory when dir itself is renamed.
func swapper(t *testing.T, dir, a, b string) (stop func()) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(d.Fd())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			_ = unix.Renameat2(fd, a, fd, b, unix.RENAME_EXCHANGE)
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			d.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestSymlinkExchangeRace copies in and out while a directory on the path
// and a directory inside the copied tree keep being exchanged with links
// that lead outside the root. Copies may fail; none may read or write
// outside the root.
func TestSymlinkExchangeRace(t *testing.T) {
	for _, nr := range resolvers() {
		t.Run(nr.name, func(t *testing.T) {
			w := newWorld(t)
			w.guard(t)
			build(t, w.root,
				// /d and /evil swap: the path of every copy below.
				file("d/f", "inside"),
				dir("d/tree/sub"),
				file("d/tree/sub/f", "inside"),
				link("evil", w.outside),
				// /d/tree/sub and /d/tree/evil swap too, inside the tree.
				link("d/tree/evil", "../../../../../../../"+w.outside),
			)
			build(t, w.host, file("payload", "PAYLOAD"), dir("out"))
			stopInner := swapper(t, filepath.Join(w.root, "d/tree"), "sub", "evil")
			stopOuter := swapper(t, w.root, "d", "evil")
			iterations := 300
			if testing.Short() {
				iterations = 50
			}
			var ok, failed int
			for i := range iterations {
				out := filepath.Join(w.host, "out", fmt.Sprint(i))
				steps := []error{
					copyIn(nr.r, w.root, fmt.Sprintf("/d/in-%d", i), filepath.Join(w.host, "payload")),
					copyIn(nr.r, w.root, "/d/tree/sub/", filepath.Join(w.host, "payload")),
					copyOut(nr.r, w.root, "/d/f", out+"-f"),
					copyOut(nr.r, w.root, "/d/", out+"-d"),
					copyOut(nr.r, w.root, "/d/tree", out+"-tree"),
				}
				for _, err := range steps {
					if err != nil {
						failed++
					} else {
						ok++
					}
				}
			}
			stopInner()
			stopOuter()
			noSecret(t, w.host)
			t.Logf("%d copies succeeded, %d failed under the race", ok, failed)
		})
	}
}

// TestCopyUnderRaceStillCopies checks the race test is not vacuous: without
// the swapper running, the same copies all succeed and write inside.
func TestCopyUnderRaceStillCopies(t *testing.T) {
	w := newWorld(t)
	w.guard(t)
	build(t, w.root, file("d/f", "inside"), dir("d/tree/sub"))
	build(t, w.host, file("payload", "PAYLOAD"))
	if err := copyIn(resolver{}, w.root, "/d/in", filepath.Join(w.host, "payload")); err != nil {
		t.Fatal(err)
	}
	if err := copyOut(resolver{}, w.root, "/d/", filepath.Join(w.host, "out")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(w.host, "out/in")); got != "PAYLOAD" {
		t.Errorf("out/in = %q", got)
	}
}

// TestTreeWalkRace copies a tree out and in while one of its directories
// keeps being exchanged with a link that leads outside the root: the walk
// below the top must not follow it either.
func TestTreeWalkRace(t *testing.T) {
	w := newWorld(t)
	w.guard(t)
	build(t, w.root,
		file("t/sub/f", "inside"),
		link("t/evil", "../../../../../../../.."+w.outside),
	)
	build(t, w.host, file("in/sub/f", "PAYLOAD"), dir("out"))
	stop := swapper(t, filepath.Join(w.root, "t"), "sub", "evil")
	iterations := 2000
	if testing.Short() {
		iterations = 300
	}
	var ok int
	for i := range iterations {
		if copyOut(resolver{}, w.root, "/t", filepath.Join(w.host, "out", fmt.Sprint(i))) == nil {
			ok++
		}
		if copyIn(resolver{}, w.root, "/t", filepath.Join(w.host, "in/.")) == nil {
			ok++
		}
	}
	stop()
	noSecret(t, w.host)
	t.Logf("%d of %d copies succeeded under the race", ok, 2*iterations)
}
