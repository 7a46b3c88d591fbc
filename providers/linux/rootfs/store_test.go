package rootfs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts, whiteouts and trusted.* extended attributes")
	}
}

// mountPoints returns the mount points in /proc/self/mountinfo below dir.
func mountPoints(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// newStore opens a store in a temporary directory and makes sure no mount
// below it survives the test.
func newStore(t *testing.T) *Store {
	t.Helper()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mps := mountPoints(t, s.root)
		for i := len(mps) - 1; i >= 0; i-- {
			_ = unix.Unmount(mps[i], unix.MNT_DETACH)
		}
	})
	return s
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestChainIDs(t *testing.T) {
	a := "sha256:" + strings.Repeat("a", 64)
	b := "sha256:" + strings.Repeat("b", 64)
	c := "sha256:" + strings.Repeat("c", 64)
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(h[:])
	}
	ab := sum(a + " " + b)
	tests := []struct {
		name    string
		diffIDs []string
		want    []string
		wantErr string
	}{
		{"none", nil, []string{}, ""},
		{"one", []string{a}, []string{a}, ""},
		{"three", []string{a, b, c}, []string{a, ab, sum(ab + " " + c)}, ""},
		{"not a digest", []string{a, "sha256:xyz"}, nil, `layer 2: diffID "sha256:xyz" is not a sha256 digest`},
		{"other algorithm", []string{"sha512:" + strings.Repeat("a", 64)}, nil, "not a sha256 digest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChainIDs(tc.diffIDs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ChainIDs error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ChainIDs = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func threeLayers(t *testing.T) []*testLayer {
	return []*testLayer{
		newTestLayer(t, dir("etc/"), file("etc/keep", "k"), file("gone", "g"), dir("opq/"), file("opq/a", "a"), file("shadowed", "1")),
		newTestLayer(t, whiteout(".wh.gone"), dir("opq/"), whiteout("opq/.wh..wh..opq"), file("opq/b", "b"), file("shadowed", "2")),
		newTestLayer(t, file("new", "n"), file("shadowed", "3")),
	}
}

func layersOf(ls []*testLayer) []Layer {
	var out []Layer
	for _, l := range ls {
		out = append(out, l.layer())
	}
	return out
}

func TestPrepareMountUnmount(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	ls := threeLayers(t)
	ctx := context.Background()
	lowers, err := s.Prepare(ctx, layersOf(ls))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	chain, _ := ChainIDs([]string{ls[0].diffID(), ls[1].diffID(), ls[2].diffID()})
	for i, l := range lowers {
		if want := filepath.Join(s.root, "layers", strings.TrimPrefix(chain[2-i], "sha256:")); l != want {
			t.Errorf("lowers[%d] = %s, want %s (top first)", i, l, want)
		}
	}
	if got, _ := s.Layers(); !slices.Equal(got, slices.Sorted(slices.Values(chain))) {
		t.Errorf("Layers() = %v, want %v", got, chain)
	}

	merged, err := s.Mount(ctx, "c1", lowers)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	if got := mountPoints(t, s.root); !slices.Equal(got, []string{merged}) {
		t.Fatalf("mounts %v, want [%s]", got, merged)
	}
	if got := readFile(t, merged+"/etc/keep"); got != "k" {
		t.Errorf("etc/keep = %q", got)
	}
	if _, err := os.Lstat(merged + "/gone"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gone is visible through its whiteout (%v)", err)
	}
	if got := names(t, merged+"/opq"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("opaque dir lists %v, want [b]", got)
	}
	if got := readFile(t, merged+"/shadowed"); got != "3" {
		t.Errorf("shadowed = %q, want the top layer's 3", got)
	}
	if got := readFile(t, merged+"/new"); got != "n" {
		t.Errorf("new = %q", got)
	}

	if err := os.WriteFile(merged+"/written", []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(merged + "/etc/keep"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(s.Upper("c1"), "written")); got != "w" {
		t.Errorf("upper/written = %q", got)
	}
	for _, l := range lowers {
		if _, err := os.Lstat(l + "/written"); err == nil {
			t.Errorf("a write through merged landed in lower %s", l)
		}
	}
	if got := readFile(t, lowers[2]+"/etc/keep"); got != "k" {
		t.Errorf("deleting through merged changed the lower layer: %q", got)
	}

	if m, err := s.Mounted("c1"); err != nil || !m {
		t.Errorf("Mounted = %v, %v; want true", m, err)
	}
	if again, err := s.Mount(ctx, "c1", lowers); err != nil || again != merged {
		t.Errorf("second Mount = %q, %v; want %q", again, err, merged)
	}
	if got := mountPoints(t, s.root); len(got) != 1 {
		t.Errorf("after a second Mount, mounts %v, want one", got)
	}
	if _, err := s.Mount(ctx, "c1", lowers[1:]); err == nil || !strings.Contains(err.Error(), "other layers") {
		t.Errorf("Mount with other layers: %v, want an error", err)
	}

	if err := s.Unmount("c1"); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if got := mountPoints(t, s.root); len(got) != 0 {
		t.Errorf("after Unmount, mounts %v", got)
	}
	if m, err := s.Mounted("c1"); err != nil || m {
		t.Errorf("Mounted after Unmount = %v, %v", m, err)
	}
	if err := s.Unmount("c1"); err != nil {
		t.Errorf("second Unmount: %v", err)
	}
	if got := readFile(t, filepath.Join(s.Upper("c1"), "written")); got != "w" {
		t.Errorf("Unmount lost the upper dir: %q", got)
	}

	// Remounting shows the container's changes again; Remove drops them.
	if _, err := s.Mount(ctx, "c1", lowers); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(merged + "/etc/keep"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deletion did not survive a remount (%v)", err)
	}
	if err := s.Remove("c1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := mountPoints(t, s.root); len(got) != 0 {
		t.Errorf("after Remove, mounts %v", got)
	}
	if _, err := os.Lstat(filepath.Join(s.root, "containers", "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove left the container directory (%v)", err)
	}
	if err := s.Remove("c1"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if n := ls[0].opens.Load() + ls[1].opens.Load() + ls[2].opens.Load(); n != 3 {
		t.Errorf("layers opened %d times, want 3", n)
	}
}

func TestPrepareDiffIDMismatch(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	good := newTestLayer(t, file("a", "a"))
	bad := newTestLayer(t, file("b", "b"))
	other := newTestLayer(t, file("c", "c"))
	wrong := bad.layer()
	wrong.DiffID = other.diffID()
	_, err := s.Prepare(context.Background(), []Layer{good.layer(), wrong})
	if err == nil {
		t.Fatal("Prepare accepted a layer whose content does not match its DiffID")
	}
	for _, want := range []string{"layer 2 of 2", bad.diffID(), other.diffID()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got, _ := s.Layers(); !slices.Equal(got, []string{good.diffID()}) {
		t.Errorf("Layers() = %v, want only the good layer %s", got, good.diffID())
	}
	if got := names(t, filepath.Join(s.root, "layers")); len(got) != 1 {
		t.Errorf("layers dir holds %v, want only the good layer", got)
	}
}

func TestPrepareFailures(t *testing.T) {
	needRoot(t)
	good := newTestLayer(t, file("a", "a"))
	tests := []struct {
		name  string
		layer Layer
		want  string
	}{
		{"open fails", Layer{DiffID: good.diffID(), Open: func(context.Context) (io.ReadCloser, error) {
			return nil, errors.New("registry down")
		}}, "registry down"},
		{"stream fails", Layer{DiffID: good.diffID(), Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(strings.NewReader(string(good.data[:600])), errReader{})), nil
		}}, "digest mismatch on read"},
		{"hostile", newTestLayer(t, file("../escape", "x")).layer(), "climbs out of the root"},
		{"no opener", Layer{DiffID: good.diffID()}, "no content"},
		{"bad diffID", Layer{DiffID: "md5:00"}, "not a sha256 digest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.Prepare(context.Background(), []Layer{tc.layer})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare error %v, want %q", err, tc.want)
			}
			if got := names(t, filepath.Join(s.root, "layers")); len(got) != 0 {
				t.Errorf("a failed Prepare left %v", got)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("digest mismatch on read") }

func TestPrepareConcurrent(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	ls := threeLayers(t)
	// Separate Stores on one root stand for separate processes: each takes
	// the chain lock on its own open file, as another process would.
	stores := []*Store{s}
	for range 3 {
		o, err := Open(s.root)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, o)
	}
	var wg sync.WaitGroup
	results := make([][]string, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = stores[i%len(stores)].Prepare(context.Background(), layersOf(ls))
		})
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || !slices.Equal(results[i], results[0]) {
			t.Errorf("Prepare %d = %v, %v; want %v", i, results[i], errs[i], results[0])
		}
	}
	for i, l := range ls {
		if n := l.opens.Load(); n != 1 {
			t.Errorf("layer %d unpacked %d times, want once", i+1, n)
		}
	}
	if got := names(t, filepath.Join(s.root, "layers")); len(got) != 3 {
		t.Errorf("layers dir holds %v, want the 3 layers", got)
	}
}

func TestPrepareWaitHonoursContext(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	l := newTestLayer(t, file("a", "a"))
	unlock, err := s.lock(strings.TrimPrefix(l.diffID(), "sha256:"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Prepare(ctx, []Layer{l.layer()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Prepare while another holds the lock, with a cancelled context: %v", err)
	}
}

func TestMountManyLayers(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	const n = 70
	var layers []Layer
	for i := range n {
		layers = append(layers, newTestLayer(t, file(fmt.Sprintf("f%d", i), "x"), file("shared", fmt.Sprint(i))).layer())
	}
	lowers, err := s.Prepare(context.Background(), layers)
	if err != nil {
		t.Fatal(err)
	}
	if l := len(strings.Join(lowers, ":")); l <= legacyMountDataMax {
		t.Fatalf("the lower dirs take %d bytes: too few for the test to exceed one page", l)
	}
	merged, err := s.Mount(context.Background(), "many", lowers)
	if err != nil {
		t.Fatalf("Mount of %d layers: %v", n, err)
	}
	for i := range n {
		if _, err := os.Lstat(fmt.Sprintf("%s/f%d", merged, i)); err != nil {
			t.Errorf("layer %d's file: %v", i, err)
		}
	}
	if got := readFile(t, merged+"/shared"); got != fmt.Sprint(n-1) {
		t.Errorf("shared = %q, want the top layer's %d", got, n-1)
	}
	if m, err := s.Mounted("many"); err != nil || !m {
		t.Errorf("Mounted = %v, %v", m, err)
	}
	if again, err := s.Mount(context.Background(), "many", lowers); err != nil || again != merged {
		t.Errorf("second Mount of %d layers = %q, %v (the mountinfo comparison failed)", n, again, err)
	}
	if err := s.Remove("many"); err != nil {
		t.Fatal(err)
	}
	if got := mountPoints(t, s.root); len(got) != 0 {
		t.Errorf("after Remove, mounts %v", got)
	}
}

func TestMountNoLayers(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	lowers, err := s.Prepare(context.Background(), nil)
	if err != nil || len(lowers) != 0 {
		t.Fatalf("Prepare(nil) = %v, %v", lowers, err)
	}
	merged, err := s.Mount(context.Background(), "scratch", lowers)
	if err != nil {
		t.Fatalf("Mount without layers: %v", err)
	}
	if got := names(t, merged); len(got) != 0 {
		t.Errorf("merged of an empty image lists %v", got)
	}
	if err := os.WriteFile(merged+"/f", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(s.root, "empty")); len(got) != 0 {
		t.Errorf("a write reached the shared empty lower dir: %v", got)
	}
	if err := s.Remove("scratch"); err != nil {
		t.Fatal(err)
	}
}

func TestMountLegacy(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	lowers, err := s.Prepare(context.Background(), layersOf(threeLayers(t)))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	upper, work, merged := base+"/upper", base+"/work", base+"/merged"
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := mountLegacy(lowers, upper, work, merged); err != nil {
		t.Fatalf("mountLegacy: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	got, mounted, err := mountedLowers(merged)
	if err != nil || !mounted || !slices.Equal(got, lowers) {
		t.Errorf("mountedLowers = %v, %v, %v; want %v", got, mounted, err, lowers)
	}
	if got := readFile(t, merged+"/shadowed"); got != "3" {
		t.Errorf("shadowed = %q", got)
	}
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}
	long := slices.Repeat(lowers, 20)
	err = mountLegacy(long, upper, work, merged)
	if err == nil || !strings.Contains(err.Error(), "more than the 4095") {
		t.Errorf("mountLegacy with %d layers: %v, want a length error", len(long), err)
	}
}

func TestUnmountBusy(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	merged, err := s.Mount(context.Background(), "busy", nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(merged + "/held")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Unmount("busy")
	if err == nil || !errors.Is(err, unix.EBUSY) {
		t.Errorf("Unmount of a busy mount: %v, want EBUSY", err)
	}
	if err := s.Remove("busy"); err == nil {
		t.Errorf("Remove of a busy mount succeeded")
	}
	if m, _ := s.Mounted("busy"); !m {
		t.Errorf("the busy mount was detached")
	}
	f.Close()
	if err := s.Remove("busy"); err != nil {
		t.Fatalf("Remove after release: %v", err)
	}
	if got := mountPoints(t, s.root); len(got) != 0 {
		t.Errorf("mounts left: %v", got)
	}
}

func TestInvalidIDs(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", ".", "..", "../x", "a/b", "-a", ".hidden", strings.Repeat("a", 129), "a b", "a\x00"} {
		if _, err := s.Mount(context.Background(), id, nil); err == nil {
			t.Errorf("Mount(%q) succeeded", id)
		}
		if err := s.Remove(id); err == nil {
			t.Errorf("Remove(%q) succeeded", id)
		}
		if err := s.Unmount(id); err == nil {
			t.Errorf("Unmount(%q) succeeded", id)
		}
		if _, err := s.Mounted(id); err == nil {
			t.Errorf("Mounted(%q) succeeded", id)
		}
		if u := s.Upper(id); u != "" {
			t.Errorf("Upper(%q) = %q, want empty", id, u)
		}
	}
	if u := s.Upper("web-1.blue_2"); u != filepath.Join(s.root, "containers", "web-1.blue_2", "upper") {
		t.Errorf("Upper of a valid id = %q", u)
	}
}

func TestOpenRejectsUnmountablePaths(t *testing.T) {
	for _, name := range []string{"a,b", "a:b", "a b", `a\b`} {
		if _, err := Open(filepath.Join(t.TempDir(), name)); err == nil {
			t.Errorf("Open of a path with %q succeeded", name)
		}
	}
}

func TestOpenSweepsLeftovers(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	hexA, hexB := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, d := range []string{".tmp-" + hexA + "-1/half", ".rm-" + hexA + "-2/x", ".tmp-" + hexB + "-3/busy", "unrelated"} {
		if err := os.MkdirAll(filepath.Join(s.layers, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := s.lock(hexB, true) // an unpack in progress elsewhere
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Layers(); len(got) != 0 {
		t.Errorf("Layers() lists leftovers: %v", got)
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	unlock()
	if got := names(t, s.layers); !slices.Equal(got, []string{".tmp-" + hexB + "-3", "unrelated"}) {
		t.Errorf("after Open, layers dir holds %v; want the locked unpack and the unrelated dir", got)
	}
}

func TestRemoveLayer(t *testing.T) {
	needRoot(t)
	s := newStore(t)
	l := newTestLayer(t, file("a", "a"))
	lowers, err := s.Prepare(context.Background(), []Layer{l.layer()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(context.Background(), "user", lowers); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveLayer(l.diffID()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("RemoveLayer of a mounted layer: %v, want an in-use error", err)
	}
	if err := s.Remove("user"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveLayer(l.diffID()); err != nil {
		t.Fatalf("RemoveLayer: %v", err)
	}
	if got := names(t, s.layers); len(got) != 0 {
		t.Errorf("after RemoveLayer, layers dir holds %v", got)
	}
	if err := s.RemoveLayer(l.diffID()); err != nil {
		t.Errorf("second RemoveLayer: %v", err)
	}
	if err := s.RemoveLayer("sha256:../../etc"); err == nil {
		t.Errorf("RemoveLayer of a bad chain ID succeeded")
	}
	// Prepare after a removal unpacks again.
	if _, err := s.Prepare(context.Background(), []Layer{l.layer()}); err != nil || l.opens.Load() != 2 {
		t.Errorf("Prepare after RemoveLayer: %v, opens %d, want 2", err, l.opens.Load())
	}
}
