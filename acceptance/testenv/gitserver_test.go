package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// clone clones url into a new directory (in sim's namespace when sim is
// not nil) and returns the directory.
func clone(t *testing.T, sim *SimHost, url string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	args := []string{"clone", "--quiet", "--branch", gitBranch, url, dir}
	var cmd *exec.Cmd
	if sim != nil {
		cmd = sim.Cmd("git", args...)
	} else {
		cmd = exec.Command("git", args...)
	}
	cmd.Env = gitEnv(t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone %s: %v\n%s", url, err, out)
	}
	return dir
}

// gitOut runs git with args in dir and returns its output and error.
func gitOut(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(gitEnv(dir), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// requireTree fails the test unless dir's files (outside .git) are
// exactly want.
func requireTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			got[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	if len(got) != len(want) {
		t.Errorf("the clone holds %v, want %v", got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("the clone's %s is %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

// daemonGone fails the test unless no process of the daemon's process
// group is left.
func daemonGone(t *testing.T, pid int) {
	t.Helper()
	if GroupAlive(pid) {
		t.Errorf("processes of git daemon's group %d are still running after the cleanup", pid)
	}
}

func TestGitServerCommitAndClone(t *testing.T) {
	requireGit(t)
	var pid int
	var dir string
	t.Run("server", func(t *testing.T) {
		g := NewGitServer(t, nil)
		pid, dir = g.PID(), g.Dir
		if !strings.HasPrefix(g.URL(), "git://127.0.0.1:") || !strings.HasSuffix(g.URL(), "/repo.git") {
			t.Errorf("URL = %q", g.URL())
		}
		first := map[string]string{"hosts/main.hcl": "# one\n", "README": "fleet\n"}
		h1 := g.Commit(t, first, "first")
		if len(h1) != 40 {
			t.Fatalf("Commit returned %q, not a full hash", h1)
		}
		if got := g.Head(t); got != h1 {
			t.Errorf("the server's branch is at %s after the push, want %s", got, h1)
		}
		if got, want := g.Revision(h1), "main@sha1:"+h1; got != want {
			t.Errorf("Revision = %q, want %q", got, want)
		}
		c := clone(t, nil, g.URL())
		requireTree(t, c, first)

		// The second commit's tree replaces the first one's: README
		// goes, main.hcl changes, a file appears.
		second := map[string]string{"hosts/main.hcl": "# two\n", "hosts/extra.hcl": "# extra\n"}
		h2 := g.Commit(t, second, "second")
		if h2 == h1 {
			t.Fatal("the second commit has the first one's hash")
		}
		if out, err := gitOut(c, nil, "pull", "--quiet", "--ff-only"); err != nil {
			t.Fatalf("git pull: %v\n%s", err, out)
		}
		requireTree(t, c, second)
		if out, err := gitOut(c, nil, "rev-parse", "HEAD^"); err != nil || strings.TrimSpace(out) != h1 {
			t.Errorf("the parent of the second commit is %q (%v), want %s", out, err, h1)
		}
		// An unchanged tree still makes a commit.
		if h3 := g.Commit(t, second, "again"); h3 == h2 {
			t.Error("an unchanged tree made no new commit")
		}

		// Anyone can push (receive-pack is on).
		if out, err := gitOut(c, nil, "commit", "--quiet", "--allow-empty", "-m", "from a clone"); err != nil {
			t.Fatalf("git commit: %v\n%s", err, out)
		}
		if out, err := gitOut(c, nil, "pull", "--quiet", "--rebase"); err != nil {
			t.Fatalf("git pull: %v\n%s", err, out)
		}
		if out, err := gitOut(c, nil, "push", "--quiet", "origin", "HEAD:main"); err != nil {
			t.Fatalf("a push from a clone: %v\n%s", err, out)
		}
		head, _ := gitOut(c, nil, "rev-parse", "HEAD")
		if got := g.Head(t); got != strings.TrimSpace(head) {
			t.Errorf("the server's branch is at %s after a clone's push, want %s", got, head)
		}
	})
	daemonGone(t, pid)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory %s is still there after the cleanup (%v)", dir, err)
	}
}

func TestGitServerSigned(t *testing.T) {
	requireGit(t)
	g := NewGitServer(t, nil)
	pgp := NewOpenPGPKey(t, "Berth Test", "pgp@example.test")
	otherPGP := NewOpenPGPKey(t, "Someone Else", "other@example.test")
	ssh := NewSSHKey(t, "ssh@example.test")
	otherSSH := NewSSHKey(t, "other@example.test")

	// A verifier's GnuPG home that trusts only pgp's public key, as the
	// agent is given PublicFile.
	verifyHome, err := os.MkdirTemp("", "berth-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", verifyHome, "--kill", "all").Run()
		os.RemoveAll(verifyHome)
	})
	os.Chmod(verifyHome, 0o700)
	if out, err := exec.Command("gpg", "--batch", "--homedir", verifyHome, "--import", pgp.PublicFile).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import %s: %v\n%s", pgp.PublicFile, err, out)
	}
	pub, _ := os.ReadFile(pgp.PublicFile)
	if !bytes.HasPrefix(pub, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Errorf("%s is not an armored public key:\n%s", pgp.PublicFile, pub)
	}
	allowed, _ := os.ReadFile(ssh.PublicFile)
	if !strings.HasPrefix(string(allowed), `ssh@example.test namespaces="git" ssh-ed25519 `) {
		t.Errorf("%s is not an allowed signers line for ssh@example.test: %q", ssh.PublicFile, allowed)
	}

	files := map[string]string{"main.hcl": "# signed\n"}
	hashes := map[string]string{
		"unsigned":  g.Commit(t, files, "unsigned"),
		"pgp":       g.CommitSigned(t, pgp, files, "signed with pgp"),
		"other_pgp": g.CommitSigned(t, otherPGP, files, "signed with another pgp key"),
		"ssh":       g.CommitSigned(t, ssh, files, "signed with ssh"),
		"other_ssh": g.CommitSigned(t, otherSSH, files, "signed with another ssh key"),
	}
	c := clone(t, nil, g.URL())
	if out, err := gitOut(c, nil, "fetch", "--quiet", "origin"); err != nil {
		t.Fatalf("git fetch: %v\n%s", err, out)
	}
	// verify-commit checks whichever format signed the commit, against
	// the verifier's GnuPG home or the allowed signers file.
	for _, tc := range []struct {
		commit string
		ok     bool
		says   string
	}{
		{"unsigned", false, ""},
		{"pgp", true, pgp.Fingerprint},
		{"other_pgp", false, ""},
		{"ssh", true, `Good "git" signature for ssh@example.test`},
		{"other_ssh", false, ""},
	} {
		t.Run(tc.commit, func(t *testing.T) {
			out, err := gitOut(c, []string{"GNUPGHOME=" + verifyHome},
				"-c", "gpg.ssh.allowedSignersFile="+ssh.PublicFile, "verify-commit", "--verbose", hashes[tc.commit])
			if ok := err == nil; ok != tc.ok {
				t.Errorf("git verify-commit %s: ok=%v, want %v\n%s", tc.commit, ok, tc.ok, out)
			}
			if tc.ok && !strings.Contains(out, tc.says) {
				t.Errorf("git verify-commit %s does not say %q:\n%s", tc.commit, tc.says, out)
			}
		})
	}
}

func TestGitServerOnSimHost(t *testing.T) {
	requireGit(t)
	lan := NewLAN(t)
	server := NewSimHost(t, lan, "git")
	client := NewSimHost(t, lan, "client")
	g := NewGitServer(t, server)
	if want := "git://" + server.IP().String() + ":"; !strings.HasPrefix(g.URL(), want) {
		t.Errorf("URL = %q, want it on the host's LAN address (%s...)", g.URL(), want)
	}
	files := map[string]string{"fleet/main.hcl": "# on the LAN\n"}
	h := g.Commit(t, files, "on the LAN")
	// Another host of the LAN clones it over the network.
	c := clone(t, client, g.URL())
	requireTree(t, c, files)
	if out, err := gitOut(c, nil, "rev-parse", "HEAD"); err != nil || strings.TrimSpace(out) != h {
		t.Errorf("the clone is at %q (%v), want %s", out, err, h)
	}
}
