package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func open(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNames(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"data", true},
		{"web_1.data-x", true},
		{"0", true},
		{"A9", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{".hidden", false},
		{"_data", false},
		{"-x", false},
		{"a/b", false},
		{"..", false},
		{"a b", false},
		{"é", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			_, err := s.Create(ctx, tt.name, "o", nil)
			if tt.ok {
				if err != nil {
					t.Fatalf("Create(%q): %v", tt.name, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Create(%q) = %v, want ErrInvalidName", tt.name, err)
			}
			if !strings.Contains(err.Error(), "[a-zA-Z0-9][a-zA-Z0-9_.-]*") {
				t.Errorf("error %q does not say what is allowed", err)
			}
			if _, err := s.Get(tt.name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Get(%q) = %v, want ErrInvalidName", tt.name, err)
			}
		})
	}
}

func TestCreateGetList(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	v, err := s.Create(ctx, "db", "owner-1", map[string]string{"app": "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Path != filepath.Join(root, "db", "_data") {
		t.Errorf("Path = %s", v.Path)
	}
	info, err := os.Stat(v.Path)
	if err != nil || !info.IsDir() || info.Mode().Perm() != 0o755 {
		t.Fatalf("data directory: %v %v", info, err)
	}
	if v.Created.IsZero() || v.Owner != "owner-1" || v.Labels["app"] != "shop" || v.CopiedUp {
		t.Errorf("Create = %+v", v)
	}

	again, err := s.Create(ctx, "db", "owner-1", map[string]string{"app": "shop", "tier": "data"})
	if err != nil {
		t.Fatalf("Create again for the same owner: %v", err)
	}
	if !again.Created.Equal(v.Created) || again.Labels["tier"] != "data" {
		t.Errorf("Create again = %+v, want the same volume with updated labels", again)
	}
	if _, err := s.Create(ctx, "db", "owner-2", nil); !errors.Is(err, ErrOwner) {
		t.Errorf("Create for another owner = %v, want ErrOwner", err)
	}

	got, err := s.Get("db")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "db" || got.Labels["tier"] != "data" || got.Owner != "owner-1" {
		t.Errorf("Get = %+v", got)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing volume = %v, want ErrNotFound", err)
	}

	if _, err := s.Create(ctx, "cache", "owner-1", nil); err != nil {
		t.Fatal(err)
	}
	// Things in the store directory that are not volumes are not listed.
	if err := os.Mkdir(filepath.Join(root, "not a volume"), 0o700); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range list {
		names = append(names, v.Name)
	}
	if !slices.Equal(names, []string{"cache", "db"}) {
		t.Errorf("List = %v, want [cache db]", names)
	}
	if err := os.Mkdir(filepath.Join(root, "stray"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "stray", "o", nil); err == nil {
		t.Error("Create over a directory that is not a volume succeeded")
	}
}

func TestMetadataSurvivesReopen(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	v, err := s.Create(ctx, "db", "owner-1", map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.Use("db", "c2"))
	must(t, s.Use("db", "c1"))
	img := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(img, "var/lib/db"), 0o755))
	must(t, os.WriteFile(filepath.Join(img, "var/lib/db/x"), []byte("x"), 0o644))
	must(t, s.Release("db", "c1"))
	must(t, s.Release("db", "c2"))
	if copied, err := s.CopyUp(ctx, "db", img, "/var/lib/db"); err != nil || !copied {
		t.Fatalf("CopyUp = %v, %v", copied, err)
	}
	must(t, s.Use("db", "c3"))

	s2 := open(t, root)
	got, err := s2.Get("db")
	if err != nil {
		t.Fatal(err)
	}
	v.CopiedUp = true
	if got.Name != v.Name || got.Path != v.Path || got.Owner != v.Owner || !got.Created.Equal(v.Created) ||
		got.Labels["k"] != "v" || !got.CopiedUp {
		t.Errorf("after reopening: %+v, want %+v", got, v)
	}
	users, err := s2.Users("db")
	if err != nil || !slices.Equal(users, []string{"c3"}) {
		t.Errorf("Users after reopening = %v, %v", users, err)
	}
	if copied, err := s2.CopyUp(ctx, "db", img, "/var/lib/db"); err != nil || copied {
		t.Errorf("CopyUp after reopening = %v, %v, want no copy", copied, err)
	}
}

func TestUseReleaseRemove(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	if _, err := s.Create(ctx, "db", "o", nil); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(root, "db/_data/file"), []byte("x"), 0o644))
	must(t, s.Use("db", "b"))
	must(t, s.Use("db", "a"))
	must(t, s.Use("db", "a"))
	users, err := s.Users("db")
	if err != nil || !slices.Equal(users, []string{"a", "b"}) {
		t.Fatalf("Users = %v, %v, want [a b]", users, err)
	}
	err = s.Remove(ctx, "db")
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "a, b") {
		t.Fatalf("Remove of a volume in use = %v, want ErrInUse naming a, b", err)
	}
	must(t, s.Release("db", "a"))
	must(t, s.Release("db", "a"))
	if err := s.Remove(ctx, "db"); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove with one user left = %v, want ErrInUse", err)
	}
	if _, err := os.Stat(filepath.Join(root, "db/_data/file")); err != nil {
		t.Fatalf("a refused Remove touched the data: %v", err)
	}
	must(t, s.Release("db", "b"))
	must(t, s.Remove(ctx, "db"))
	if _, err := s.Get("db"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove = %v", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 || ents[0].Name() != lockFile {
		t.Errorf("store directory after Remove: %v, want only the lock file", ents)
	}
	must(t, s.Remove(ctx, "db"))
	must(t, s.Release("db", "a"))
	if err := s.Use("db", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Use of a missing volume = %v, want ErrNotFound", err)
	}
	if err := s.Use("db", ""); err == nil {
		t.Error("Use with an empty container ID succeeded")
	}
}

// TestConcurrentUse records users from many goroutines and two stores on
// the same directory: the lock must keep every one.
func TestConcurrentUse(t *testing.T) {
	root := t.TempDir()
	stores := []*Store{open(t, root), open(t, root)}
	if _, err := stores[0].Create(context.Background(), "db", "o", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() { errs <- stores[i%2].Use("db", fmt.Sprintf("c%02d", i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	users, err := stores[1].Users("db")
	if err != nil || len(users) != 40 {
		t.Fatalf("Users = %d users, %v; want 40", len(users), err)
	}
}

func TestUsage(t *testing.T) {
	s := open(t, t.TempDir())
	v, err := s.Create(context.Background(), "db", "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(v.Path, "a/b"), 0o755))
	must(t, os.WriteFile(filepath.Join(v.Path, "a/one"), make([]byte, 1000), 0o644))
	must(t, os.WriteFile(filepath.Join(v.Path, "a/b/two"), make([]byte, 234), 0o644))
	must(t, os.Link(filepath.Join(v.Path, "a/one"), filepath.Join(v.Path, "one-again")))
	must(t, os.Symlink("a/one", filepath.Join(v.Path, "link"))) // 5 bytes
	must(t, os.Symlink("/", filepath.Join(v.Path, "root")))     // 1 byte, not followed
	n, err := s.Usage("db")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1000 + 234 + 5 + 1); n != want {
		t.Errorf("Usage = %d, want %d", n, want)
	}
	if _, err := s.Usage("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Usage of a missing volume = %v", err)
	}
}

// TestOpenRecovers checks what Open finishes after a crash: half-created
// and half-removed volumes go, stale copy-ups go, a copy-up that a live
// process holds stays.
func TestOpenRecovers(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	if _, err := s.Create(context.Background(), "db", "o", nil); err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(root, ".new-x-123/_data"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, ".trash-y-456/_data/deep/er"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, ".trash-y-456/_data/deep/er/f"), []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "db/copyup-stale/data/half"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "db/copyup-live/data"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "db/.meta.json-123"), []byte("{half"), 0o600))
	live, err := os.Open(filepath.Join(root, "db/copyup-live"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	must(t, flock(live))

	open(t, root)
	for p, want := range map[string]bool{
		".new-x-123":        false,
		".trash-y-456":      false,
		"db/copyup-stale":   false,
		"db/copyup-live":    true,
		"db/_data":          true,
		"db/meta.json":      true,
		"db/.meta.json-123": false,
	} {
		_, err := os.Lstat(filepath.Join(root, p))
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v after Open, want %v", p, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
