package gitsync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// fetched makes a Syncer for r with edit applied and fetches main.
func fetched(t *testing.T, r *testRepo, edit func(*Options)) (*Syncer, Revision) {
	t.Helper()
	s := newSyncer(t, Options{URL: r.fileURL()}, edit)
	rev, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return s, rev
}

// snapshotEntries lists the snapshots directory of s.
func snapshotEntries(t *testing.T, s *Syncer) []string {
	t.Helper()
	es, err := os.ReadDir(s.snapshotsDir())
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCheckoutPathAndLinks(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	hash := r.commit("files", map[string]string{
		"infra/hosts/web.hcl": "web\n",
		"infra/run.sh*":       "#!/bin/sh\necho hi\n",
		"infra/link.hcl":      "->hosts/web.hcl",
		"infra/dirlink":       "->hosts",
		"infra/chain.hcl":     "->dirlink/web.hcl",
		"infra/dangling":      "->missing/file",
		"infra/hosts/up.hcl":  "->../link.hcl",
		"other/x.hcl":         "x\n",
		"top.hcl":             "top\n",
	})
	want := map[string]string{
		"hosts":         "/",
		"hosts/web.hcl": "web\n",
		"hosts/up.hcl":  "-> ../link.hcl",
		"run.sh":        "#!/bin/sh\necho hi\n (x)",
		"link.hcl":      "-> hosts/web.hcl",
		"dirlink":       "-> hosts",
		"chain.hcl":     "-> dirlink/web.hcl",
		"dangling":      "-> missing/file",
	}
	for _, p := range []string{"infra", "infra/", "./infra", "infra/./"} {
		t.Run(p, func(t *testing.T) {
			s, rev := fetched(t, r, func(o *Options) { o.Path = p })
			dir, err := s.Checkout(ctx, rev)
			if err != nil {
				t.Fatalf("Checkout: %v", err)
			}
			if dir != filepath.Join(s.dir, "snapshots", hash) {
				t.Errorf("snapshot dir = %s", dir)
			}
			if got := readTree(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("snapshot =\n%v\nwant\n%v", got, want)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "chain.hcl")); err != nil || string(b) != "web\n" {
				t.Errorf("chain.hcl through the symlinks = %q, %v", b, err)
			}
			fi, err := os.Stat(filepath.Join(dir, "hosts", "web.hcl"))
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("hosts/web.hcl mode = %v, %v", fi.Mode(), err)
			}
		})
	}
}

func TestCheckoutReusesSnapshot(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "a"})
	s, rev := fetched(t, r, nil)
	dir, err := s.Checkout(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := s.Checkout(ctx, rev)
	if err != nil || again != dir {
		t.Fatalf("second Checkout = %s, %v", again, err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the snapshot was written again: %v", err)
	}
}

func TestCheckoutRejects(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"dotdot out of Path", map[string]string{"infra/a.hcl": "a", "infra/esc": "->../secret.hcl", "secret.hcl": "s"}, "points outside the snapshot"},
		{"dotdot out of the repository", map[string]string{"infra/esc": "->../../../etc/passwd"}, "points outside the snapshot"},
		{"absolute", map[string]string{"infra/esc": "->/etc/passwd"}, "points outside the snapshot"},
		{"through a link to the root", map[string]string{"infra/self": "->.", "infra/esc": "->self/../x"}, "points outside the snapshot"},
		{"through a link to a link", map[string]string{"infra/d/up": "->..", "infra/l": "->d/up", "infra/esc": "->l/../y"}, "points outside the snapshot"},
		{"deep", map[string]string{"infra/a/b/c/esc": "->../../../../z"}, "points outside the snapshot"},
		{"loop", map[string]string{"infra/a": "->b", "infra/b": "->a"}, "too many levels of symlinks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t)
			r.commit("bad", tc.files)
			s, rev := fetched(t, r, func(o *Options) { o.Path = "infra" })
			_, err := s.Checkout(context.Background(), rev)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Checkout = %v, want an error with %q", err, tc.want)
			}
			t.Logf("error: %v", err)
			if names := snapshotEntries(t, s); len(names) != 0 {
				t.Errorf("snapshots left after a failed checkout: %v", names)
			}
		})
	}
}

func TestCheckoutPathErrors(t *testing.T) {
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "a", "dir/b.hcl": "b"})
	for p, want := range map[string]string{"missing": "not found", "a.hcl": "not a directory", "dir/missing": "not found"} {
		s, rev := fetched(t, r, func(o *Options) { o.Path = p })
		_, err := s.Checkout(context.Background(), rev)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("Checkout with Path %q = %v, want %q", p, err, want)
		}
	}
}

func TestCheckoutSkipsSubmodules(t *testing.T) {
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "a"})
	r.git(r.work, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",sub")
	r.commit("with a submodule", nil)
	s, rev := fetched(t, r, nil)
	dir, err := s.Checkout(context.Background(), rev)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.hcl": "a"}
	if got := readTree(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("snapshot = %v, want %v", got, want)
	}
}

func TestCheckoutAfterPathChange(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.commit("one", map[string]string{"infra/a.hcl": "a", "b.hcl": "b"})
	dir := t.TempDir()
	s, rev := fetched(t, r, func(o *Options) { o.Path = "infra"; o.Dir = dir })
	snap, err := s.Checkout(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, snap); fmt.Sprint(got) != fmt.Sprint(map[string]string{"a.hcl": "a"}) {
		t.Fatalf("snapshot = %v", got)
	}
	// Restarted with another Path: the snapshot of the same commit must
	// not be reused.
	s2 := newSyncer(t, Options{URL: r.fileURL(), Dir: dir}, nil)
	snap, err = s2.Checkout(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"infra": "/", "infra/a.hcl": "a", "b.hcl": "b"}
	if got := readTree(t, snap); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("snapshot after the Path change = %v, want %v", got, want)
	}
}

// rawCommit writes a commit of the given root tree entries (built with
// go-git, so that names git itself refuses can be made) on main of r's
// bare repository.
func rawCommit(t *testing.T, r *testRepo, build func(repo *git.Repository) []object.TreeEntry) {
	t.Helper()
	repo, err := git.PlainOpen(r.bare())
	if err != nil {
		t.Fatal(err)
	}
	tree := &object.Tree{Entries: build(repo)}
	th := storeObject(t, repo, tree)
	sig := object.Signature{Name: "x", Email: "x@example.com"}
	c := &object.Commit{Author: sig, Committer: sig, Message: "raw\n", TreeHash: th}
	ch := storeObject(t, repo, c)
	if err := repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/main", ch)); err != nil {
		t.Fatal(err)
	}
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func storeObject(t *testing.T, repo *git.Repository, o encoder) plumbing.Hash {
	t.Helper()
	obj := repo.Storer.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func blob(t *testing.T, repo *git.Repository, content string) plumbing.Hash {
	t.Helper()
	obj := repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(content))
	w.Close()
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCheckoutRejectsHostileTrees(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T, repo *git.Repository) []object.TreeEntry
	}{
		{"dotdot name", func(t *testing.T, repo *git.Repository) []object.TreeEntry {
			return []object.TreeEntry{{Name: "..", Mode: filemode.Regular, Hash: blob(t, repo, "x")}}
		}},
		{"slash in name", func(t *testing.T, repo *git.Repository) []object.TreeEntry {
			return []object.TreeEntry{{Name: "a/../../x", Mode: filemode.Regular, Hash: blob(t, repo, "x")}}
		}},
		{".git", func(t *testing.T, repo *git.Repository) []object.TreeEntry {
			return []object.TreeEntry{{Name: ".GIT", Mode: filemode.Regular, Hash: blob(t, repo, "x")}}
		}},
		{"symlink and directory of one name", func(t *testing.T, repo *git.Repository) []object.TreeEntry {
			sub := storeObject(t, repo, &object.Tree{Entries: []object.TreeEntry{
				{Name: "f", Mode: filemode.Regular, Hash: blob(t, repo, "x")}}})
			return []object.TreeEntry{
				{Name: "x", Mode: filemode.Symlink, Hash: blob(t, repo, "y")},
				{Name: "x", Mode: filemode.Dir, Hash: sub},
			}
		}},
		{"two files of one name", func(t *testing.T, repo *git.Repository) []object.TreeEntry {
			return []object.TreeEntry{
				{Name: "x", Mode: filemode.Regular, Hash: blob(t, repo, "1")},
				{Name: "x", Mode: filemode.Regular, Hash: blob(t, repo, "2")},
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t)
			rawCommit(t, r, func(repo *git.Repository) []object.TreeEntry { return tc.build(t, repo) })
			s, rev := fetched(t, r, nil)
			_, err := s.Checkout(context.Background(), rev)
			if err == nil {
				t.Fatal("Checkout succeeded")
			}
			t.Logf("error: %v", err)
			if names := snapshotEntries(t, s); len(names) != 0 {
				t.Errorf("snapshots left after a failed checkout: %v", names)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "1"})
	s, rev1 := fetched(t, r, nil)
	if _, err := s.Checkout(ctx, rev1); err != nil {
		t.Fatal(err)
	}
	r.commit("two", map[string]string{"a.hcl": "2"})
	rev2, err := s.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Checkout(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.snapshotsDir(), ".tmp-leftover"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Prune(rev2.String()); err != nil {
		t.Fatal(err)
	}
	if got := snapshotEntries(t, s); fmt.Sprint(got) != fmt.Sprint([]string{rev2.Hash}) {
		t.Errorf("snapshots after Prune = %v, want [%s]", got, rev2.Hash)
	}
	if err := s.Prune(rev1.Hash, rev2.Hash); err != nil {
		t.Fatal(err)
	}
	if got := snapshotEntries(t, s); len(got) != 1 {
		t.Errorf("snapshots = %v", got)
	}
	if err := s.Prune("not-a-hash"); err == nil {
		t.Error("Prune with a bad hash succeeded")
	}
	if got := snapshotEntries(t, s); len(got) != 1 {
		t.Errorf("a failed Prune removed snapshots: %v", got)
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if got := snapshotEntries(t, s); len(got) != 0 {
		t.Errorf("snapshots after Prune() = %v", got)
	}
	fresh := newSyncer(t, Options{URL: r.fileURL()}, nil)
	if err := fresh.Prune(); err != nil {
		t.Errorf("Prune of a new cache = %v", err)
	}
}

func TestCheckoutUnknownRevision(t *testing.T) {
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "1"})
	s, _ := fetched(t, r, nil)
	_, err := s.Checkout(context.Background(), Revision{Ref: "main", Hash: strings.Repeat("cd", 20)})
	if err == nil || !strings.Contains(err.Error(), "not in the git cache") {
		t.Fatalf("Checkout of an unknown commit = %v", err)
	}
	if _, err := s.Checkout(context.Background(), Revision{Hash: "../../etc"}); err == nil {
		t.Fatal("Checkout of a bad hash succeeded")
	}
}
