package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/crypto/ssh/knownhosts"
)

// transport is one way of serving a test repository.
type transportCase struct {
	name  string
	serve func(t *testing.T, r *testRepo) Options
}

func transports() []transportCase {
	return []transportCase{
		{"file", func(t *testing.T, r *testRepo) Options { return Options{URL: r.fileURL()} }},
		{"path", func(t *testing.T, r *testRepo) Options { return Options{URL: r.bare()} }},
		{"git-daemon", func(t *testing.T, r *testRepo) Options { return Options{URL: startDaemon(t, r)} }},
		{"http", func(t *testing.T, r *testRepo) Options {
			u, _ := startHTTP(t, r, "alice", "s3cret-pass", false)
			return Options{URL: u, Auth: Auth{Username: "alice", Password: "s3cret-pass"}}
		}},
		{"https-token", func(t *testing.T, r *testRepo) Options {
			u, ca := startHTTP(t, r, "git", "tok-123456", true)
			return Options{URL: u, CABundle: ca, Auth: Auth{Token: "tok-123456"}}
		}},
		{"ssh", func(t *testing.T, r *testRepo) Options {
			key, pub, _ := newSSHKey(t, "")
			srv := startSSH(t, r, pub)
			return Options{URL: "ssh://git@" + srv.addr + "/" + r.name,
				Auth: Auth{SSHKey: key, KnownHosts: srv.knownHosts()}}
		}},
	}
}

// newSyncer makes a Syncer from base with the given ref options.
func newSyncer(t *testing.T, base Options, edit func(*Options)) *Syncer {
	t.Helper()
	o := base
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	o.Logger = testLogger(t)
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestFetchOverTransports(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := newTestRepo(t)
			first := r.commit("first commit\n\nbody", map[string]string{"main.hcl": "v = 1\n", "tool.sh*": "#!/bin/sh\n"})
			r.tag("v1", "")
			second := r.commit("second", map[string]string{"main.hcl": "v = 2\n", "conf/web.hcl": "web\n"})
			r.tag("v2", "release 2")
			base := tc.serve(t, r)

			// The tip of the branch, fetched shallow.
			s := newSyncer(t, base, nil)
			rev, err := s.Fetch(ctx)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if rev.Hash != second || rev.Ref != "main" || rev.String() != "main@sha1:"+second {
				t.Fatalf("revision = %+v (%s), want main@sha1:%s", rev, rev, second)
			}
			if rev.Subject != "second" || rev.Author != "Ada Author <ada@example.com>" || rev.Time.Unix() != 1700000000+2*60 {
				t.Errorf("revision details = %+v", rev)
			}
			if s.hasCommit(plumbing.NewHash(first)) {
				t.Errorf("the parent commit was fetched: the fetch is not shallow")
			}
			dir, err := s.Checkout(ctx, rev)
			if err != nil {
				t.Fatalf("Checkout: %v", err)
			}
			want := map[string]string{"main.hcl": "v = 2\n", "tool.sh": "#!/bin/sh\n (x)", "conf": "/", "conf/web.hcl": "web\n"}
			if got := readTree(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("snapshot = %v, want %v", got, want)
			}

			// A new commit gives a new revision.
			third := r.commit("third", map[string]string{"main.hcl": "v = 3\n"})
			rev, err = s.Fetch(ctx)
			if err != nil || rev.Hash != third {
				t.Fatalf("Fetch after a push = %v, %v; want %s", rev, err, third)
			}
			// Fetching again with nothing new is no error.
			if again, err := s.Fetch(ctx); err != nil || again.Hash != third {
				t.Fatalf("Fetch again = %v, %v", again, err)
			}

			// Tags, lightweight and annotated.
			for tag, hash := range map[string]string{"v1": first, "v2": second} {
				ts := newSyncer(t, base, func(o *Options) { o.Tag = tag })
				rev, err := ts.Fetch(ctx)
				if err != nil {
					t.Fatalf("Fetch tag %s: %v", tag, err)
				}
				if rev.String() != tag+"@sha1:"+hash {
					t.Errorf("tag %s revision = %s, want %s@sha1:%s", tag, rev, tag, hash)
				}
			}

			// A pinned commit that is no tip.
			ps := newSyncer(t, base, func(o *Options) { o.Commit = first })
			rev, err = ps.Fetch(ctx)
			if err != nil {
				t.Fatalf("Fetch pinned: %v", err)
			}
			if rev.String() != "sha1:"+first {
				t.Errorf("pinned revision = %s, want sha1:%s", rev, first)
			}
			dir, err = ps.Checkout(ctx, rev)
			if err != nil {
				t.Fatal(err)
			}
			want = map[string]string{"main.hcl": "v = 1\n", "tool.sh": "#!/bin/sh\n (x)"}
			if got := readTree(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("pinned snapshot = %v, want %v", got, want)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "a"})
	daemon := startDaemon(t, r)
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"missing branch", Options{URL: daemon, Branch: "nope"}, []string{`branch "nope"`, daemon, "not found"}},
		{"missing tag", Options{URL: r.fileURL(), Tag: "v9"}, []string{`tag "v9"`, "not found"}},
		{"missing commit", Options{URL: daemon, Commit: strings.Repeat("ab", 20)}, []string{"commit abab", daemon, "not found"}},
		{"missing repository", Options{URL: "file:///nonexistent/repo.git"}, []string{"/nonexistent/repo.git"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSyncer(t, tc.opts, nil)
			_, err := s.Fetch(ctx)
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestHTTPAuth(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	hash := r.commit("one", map[string]string{"a.hcl": "a"})
	const pass = "correct-horse-battery"
	u, _ := startHTTP(t, r, "alice", pass, false)
	tests := []struct {
		name string
		url  string
		auth Auth
		ok   bool
	}{
		{"basic", u, Auth{Username: "alice", Password: pass}, true},
		{"in the URL", strings.Replace(u, "http://", "http://alice:"+pass+"@", 1), Auth{}, true},
		{"wrong password", u, Auth{Username: "alice", Password: "wrong-password-xyz"}, false},
		{"wrong password in the URL", strings.Replace(u, "http://", "http://alice:wrong-password-xyz@", 1), Auth{}, false},
		{"wrong token", u, Auth{Username: "alice", Token: "wrong-password-xyz"}, false},
		{"none", u, Auth{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSyncer(t, Options{URL: tc.url, Auth: tc.auth}, nil)
			rev, err := s.Fetch(ctx)
			if tc.ok {
				if err != nil || rev.Hash != hash {
					t.Fatalf("Fetch = %v, %v", rev, err)
				}
				return
			}
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if strings.Contains(msg, "wrong-password-xyz") || strings.Contains(msg, pass) {
				t.Errorf("error shows the secret: %s", msg)
			}
			if !strings.Contains(msg, u) || !strings.Contains(msg, "authentication required") {
				t.Errorf("error %q should name %s and the failure", msg, u)
			}
		})
	}
}

func TestSSHTransport(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	hash := r.commit("one", map[string]string{"a.hcl": "a"})
	key, pub, _ := newSSHKey(t, "pass-phrase-42")
	srv := startSSH(t, r, pub)
	url := "ssh://git@" + srv.addr + "/" + r.name

	s := newSyncer(t, Options{URL: url, Auth: Auth{SSHKey: key, SSHKeyPassphrase: "pass-phrase-42", KnownHosts: srv.knownHosts()}}, nil)
	if rev, err := s.Fetch(ctx); err != nil || rev.Hash != hash {
		t.Fatalf("Fetch with an encrypted key = %v, %v", rev, err)
	}

	// Another host key for the address: refused.
	_, otherHost, _ := newSSHKey(t, "")
	wrong := []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, otherHost) + "\n")
	s = newSyncer(t, Options{URL: url, Auth: Auth{SSHKey: key, SSHKeyPassphrase: "pass-phrase-42", KnownHosts: wrong}}, nil)
	_, err := s.Fetch(ctx)
	if err == nil || !strings.Contains(err.Error(), "knownhosts") {
		t.Fatalf("Fetch with a wrong host key = %v, want a knownhosts error", err)
	}
	t.Logf("wrong host key: %v", err)
	if strings.Contains(err.Error(), "pass-phrase-42") {
		t.Errorf("error shows the passphrase: %v", err)
	}

	// A key the server does not allow.
	otherKey, _, _ := newSSHKey(t, "")
	s = newSyncer(t, Options{URL: url, Auth: Auth{SSHKey: otherKey, KnownHosts: srv.knownHosts()}}, nil)
	if _, err := s.Fetch(ctx); err == nil {
		t.Fatal("Fetch with a key the server refuses succeeded")
	}

	// A wrong passphrase is caught by New.
	_, err = New(Options{URL: url, Dir: t.TempDir(), Auth: Auth{SSHKey: key, SSHKeyPassphrase: "nope-nope", KnownHosts: srv.knownHosts()}})
	if err == nil || !strings.Contains(err.Error(), "auth.SSHKey") || strings.Contains(err.Error(), "nope-nope") {
		t.Fatalf("New with a wrong passphrase = %v", err)
	}
}

func TestPinnedCommitFetch(t *testing.T) {
	ctx := context.Background()
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("allowReachableSHA1InWant=%v", exact), func(t *testing.T) {
			r := newTestRepo(t)
			var hashes []string
			for i := range 5 {
				hashes = append(hashes, r.commit(fmt.Sprint("c", i), map[string]string{"a.hcl": fmt.Sprint(i)}))
			}
			r.git(r.bare(), "config", "uploadpack.allowReachableSHA1InWant", fmt.Sprint(exact))
			s := newSyncer(t, Options{URL: startDaemon(t, r), Commit: strings.ToUpper(hashes[1])}, nil)
			rev, err := s.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rev.Hash != hashes[1] || rev.Ref != "" {
				t.Fatalf("revision = %s, want sha1:%s", rev, hashes[1])
			}
			// Asked by hash, the server sends that commit alone; else
			// the branches come, deep enough.
			_, err = s.repo.Reference(plumbing.NewRemoteReferenceName("origin", "main"), true)
			if exact != errors.Is(err, plumbing.ErrReferenceNotFound) {
				t.Errorf("exact fetch %v, but the branch ref lookup gave %v", exact, err)
			}
		})
	}
}

func TestPinnedCommitNeedsNoNetwork(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	hash := r.commit("one", map[string]string{"a.hcl": "a"})
	dir := t.TempDir()
	s := newSyncer(t, Options{URL: r.fileURL(), Commit: hash, Dir: dir}, nil)
	if _, err := s.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(r.bare()); err != nil {
		t.Fatal(err)
	}
	s = newSyncer(t, Options{URL: r.fileURL(), Commit: hash, Dir: dir}, nil)
	if rev, err := s.Fetch(ctx); err != nil || rev.Hash != hash {
		t.Fatalf("Fetch of a cached pinned commit with the remote gone = %v, %v", rev, err)
	}
}

func TestCacheSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	one := r.commit("one", map[string]string{"a.hcl": "1"})
	dir := t.TempDir()
	s1 := newSyncer(t, Options{URL: r.fileURL(), Dir: dir}, nil)
	rev1, err := s1.Fetch(ctx)
	if err != nil || rev1.Hash != one {
		t.Fatal(rev1, err)
	}
	two := r.commit("two", map[string]string{"a.hcl": "2"})

	// A new Syncer on the same directory, as after a restart.
	s2 := newSyncer(t, Options{URL: r.fileURL(), Dir: dir}, nil)
	snap, err := s2.Checkout(ctx, rev1)
	if err != nil {
		t.Fatalf("Checkout of a revision fetched before the restart: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(snap, "a.hcl")); string(b) != "1" {
		t.Errorf("a.hcl = %q", b)
	}
	rev2, err := s2.Fetch(ctx)
	if err != nil || rev2.Hash != two {
		t.Fatalf("Fetch after restart = %v, %v", rev2, err)
	}
	if _, err := git.PlainOpen(filepath.Join(dir, "repo.git")); err != nil {
		t.Errorf("cache repository: %v", err)
	}
}

func TestCacheStartsAfreshWhenCorrupt(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	hash := r.commit("one", map[string]string{"a.hcl": "1"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "repo.git"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSyncer(t, Options{URL: r.fileURL(), Dir: dir}, nil)
	if rev, err := s.Fetch(ctx); err != nil || rev.Hash != hash {
		t.Fatalf("Fetch = %v, %v", rev, err)
	}
}

func TestManyPacksResetTheCache(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "1"})
	s := newSyncer(t, Options{URL: r.fileURL()}, nil)
	if _, err := s.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	packDir := filepath.Join(s.repoDir(), "objects", "pack")
	for i := range maxPacks + 1 {
		if err := os.WriteFile(filepath.Join(packDir, fmt.Sprintf("pack-fake%d.pack", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hash := r.commit("two", map[string]string{"a.hcl": "2"})
	rev, err := s.Fetch(ctx)
	if err != nil || rev.Hash != hash {
		t.Fatalf("Fetch = %v, %v", rev, err)
	}
	if n, _ := countPacks(s.repoDir()); n > 2 {
		t.Errorf("%d packs after the reset", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "1"})
	s := newSyncer(t, Options{URL: startDaemon(t, r)}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rev, err := s.Fetch(ctx)
			if err == nil {
				_, err = s.Checkout(ctx, rev)
			}
			if err == nil {
				err = s.Verify(ctx, rev)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestFetchCancelled(t *testing.T) {
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "1"})
	u, _ := startHTTP(t, r, "", "", false)
	s := newSyncer(t, Options{URL: u}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with a cancelled context = %v", err)
	}
}

func TestFetchRewrittenHistory(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.hcl": "1"})
	two := r.commit("two", map[string]string{"a.hcl": "2"})
	r.tag("v1", "first v1")
	url := startDaemon(t, r)
	s := newSyncer(t, Options{URL: url}, nil)
	ts := newSyncer(t, Options{URL: url, Tag: "v1"}, nil)
	for _, sy := range []*Syncer{s, ts} {
		if rev, err := sy.Fetch(ctx); err != nil || rev.Hash != two {
			t.Fatalf("Fetch = %v, %v", rev, err)
		}
	}
	// The branch is rewritten and the tag moved: the fetches follow.
	r.git(r.work, "reset", "-q", "--hard", "HEAD~1")
	rewritten := r.commit("two, rewritten", map[string]string{"a.hcl": "2b"})
	r.tag("v1", "second v1")
	for _, sy := range []*Syncer{s, ts} {
		rev, err := sy.Fetch(ctx)
		if err != nil || rev.Hash != rewritten {
			t.Fatalf("Fetch after a force push = %v, %v; want %s", rev, err, rewritten)
		}
		dir, err := sy.Checkout(ctx, rev)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "a.hcl")); string(b) != "2b" {
			t.Errorf("a.hcl = %q", b)
		}
	}
}
