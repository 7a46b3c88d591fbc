package testenv

// A real git server: a bare repository served by `git daemon` over
// git://, with pushes allowed, and signing keys (OpenPGP with gpg, SSH
// with ssh-keygen) that sign the commits the tests push. It needs these
// Debian packages: git (git and git daemon), gnupg (gpg, gpgconf and
// gpg-agent, for NewOpenPGPKey) and openssh-client (ssh-keygen, for
// NewSSHKey); a test that needs a missing one is skipped with a message
// naming it.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gitBranch is the branch every GitServer pushes to.
const gitBranch = "main"

// GitServer is a bare git repository served read-write by git daemon,
// either on 127.0.0.1 or on the LAN address of a simulated host. The
// test's cleanup kills the daemon (and the processes it forked) and
// removes the repository.
type GitServer struct {
	// Dir holds the bare repository (repo.git), the work tree commits
	// are made in (work) and the daemon's log (daemon.log).
	Dir string
	// Addr is the daemon's "IP:port".
	Addr string
	// Branch is the branch Commit pushes to ("main").
	Branch string

	host *SimHost
	work string
	cmd  *exec.Cmd
	done chan struct{}
	// mu serializes commits: they share the work tree.
	mu sync.Mutex
}

// requireGit skips the test unless git and git daemon are installed.
func requireGit(t testing.TB) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is missing (Debian package git)")
	}
	out, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		t.Skipf("git --exec-path: %v", err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(out)), "git-daemon")); err != nil {
		t.Skip("git daemon is missing (Debian package git)")
	}
	return git
}

// NewGitServer makes an empty bare repository whose default branch is
// "main" and serves it with git daemon, receive-pack enabled, until the
// test ends. Given a simulated host, the daemon runs in its network
// namespace and listens on its LAN address, so that the other hosts of
// the LAN reach it (the test's own namespace does not); given nil, it
// listens on 127.0.0.1. The test is skipped when git is missing.
func NewGitServer(t testing.TB, host *SimHost) *GitServer {
	t.Helper()
	git := requireGit(t)
	g := &GitServer{Dir: t.TempDir(), Branch: gitBranch, host: host}
	g.work = filepath.Join(g.Dir, "work")
	bare := filepath.Join(g.Dir, "repo.git")
	g.git(t, g.Dir, "init", "--quiet", "--bare", "--initial-branch="+gitBranch, bare)
	g.git(t, g.Dir, "init", "--quiet", "--initial-branch="+gitBranch, g.work)

	ip := "127.0.0.1"
	if host != nil {
		ip = host.IP().String()
	}
	logPath := filepath.Join(g.Dir, "daemon.log")
	// A free port can be taken by someone else between the probe and
	// the daemon's listen: try a few ports.
	for attempt := 0; ; attempt++ {
		port := g.freePort(t, ip)
		g.Addr = net.JoinHostPort(ip, strconv.Itoa(port))
		args := []string{"daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--informative-errors",
			"--base-path=" + g.Dir, "--listen=" + ip, "--port=" + strconv.Itoa(port), g.Dir}
		var cmd *exec.Cmd
		if host != nil {
			cmd = host.Cmd(git, args...)
		} else {
			cmd = exec.Command(git, args...)
		}
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = gitEnv(g.Dir)
		// The daemon forks a process per connection: a process group
		// of their own lets the cleanup kill them all.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start git daemon: %v", err)
		}
		logf.Close()
		g.cmd, g.done = cmd, make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) {
			cmd.Wait()
			close(done)
		}(cmd, g.done)
		err = g.waitReady()
		if err == nil {
			t.Cleanup(g.stop)
			break
		}
		g.stop()
		log, _ := os.ReadFile(logPath)
		if attempt < 4 && bytes.Contains(log, []byte("in use")) {
			continue
		}
		t.Fatalf("git daemon did not start: %v\nlog:\n%s", err, log)
	}
	g.git(t, g.work, "remote", "add", "origin", g.URL())
	return g
}

// URL returns the repository's URL, "git://IP:port/repo.git".
func (g *GitServer) URL() string {
	return "git://" + g.Addr + "/repo.git"
}

// Revision returns how berth writes the revision of commit hash on the
// server's branch: "main@sha1:HASH".
func (g *GitServer) Revision(hash string) string {
	return g.Branch + "@sha1:" + hash
}

// PID returns the process ID of the daemon.
func (g *GitServer) PID() int { return g.cmd.Process.Pid }

// Commit makes the repository's tree exactly files (path relative to the
// repository's root, with slashes, to content; every other file is
// removed), commits it with msg on top of the branch, pushes it to the
// server over git:// (from the simulated host's namespace when there is
// one) and returns the commit's full hash. An unchanged tree still makes
// a new commit.
func (g *GitServer) Commit(t testing.TB, files map[string]string, msg string) string {
	t.Helper()
	return g.commit(t, nil, files, msg)
}

// CommitSigned is Commit with the commit signed by key (gpg for an
// OpenPGP key, ssh-keygen for an SSH key, as `git commit -S` does).
func (g *GitServer) CommitSigned(t testing.TB, key *SigningKey, files map[string]string, msg string) string {
	t.Helper()
	if key == nil {
		t.Fatal("CommitSigned: no key")
	}
	return g.commit(t, key, files, msg)
}

func (g *GitServer) commit(t testing.TB, key *SigningKey, files map[string]string, msg string) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	ents, err := os.ReadDir(g.work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(g.work, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		clean := filepath.Clean(filepath.FromSlash(name))
		if filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "..") || strings.HasPrefix(clean, ".git") {
			t.Fatalf("Commit: %q is not a path inside the repository", name)
		}
		path := filepath.Join(g.work, clean)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, []byte(files[name]), 0o644)
	}
	g.git(t, g.work, "add", "--all")
	args := []string{"commit", "--quiet", "--allow-empty", "--no-verify", "-m", msg}
	var env []string
	if key != nil {
		args = append([]string{"-c", "gpg.format=" + key.Format, "-c", "user.signingkey=" + key.signingKey},
			append(args, "--gpg-sign")...)
		if key.gnupgHome != "" {
			env = append(env, "GNUPGHOME="+key.gnupgHome)
		}
	} else {
		args = append(args, "--no-gpg-sign")
	}
	g.gitEnv(t, g.work, env, args...)
	hash := strings.TrimSpace(g.git(t, g.work, "rev-parse", "HEAD"))
	g.push(t, "push", "--quiet", "origin", "HEAD:refs/heads/"+g.Branch)
	return hash
}

// Head returns the hash the server's branch points to, read from the
// bare repository.
func (g *GitServer) Head(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(g.git(t, filepath.Join(g.Dir, "repo.git"), "rev-parse", "refs/heads/"+g.Branch))
}

// push runs git with args in the work tree, in the simulated host's
// network namespace when there is one, so that it talks to the daemon
// over the network.
func (g *GitServer) push(t testing.TB, args ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if g.host != nil {
		cmd = g.host.Cmd("git", args...)
	} else {
		cmd = exec.Command("git", args...)
	}
	cmd.Dir = g.work
	cmd.Env = gitEnv(g.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(g.Dir, "daemon.log"))
		t.Fatalf("git %s: %v\n%s\ndaemon log:\n%s", strings.Join(args, " "), err, out, log)
	}
}

// git runs git with args in dir (in the test's namespace) and returns
// its standard output.
func (g *GitServer) git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return g.gitEnv(t, dir, nil, args...)
}

func (g *GitServer) gitEnv(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(gitEnv(g.Dir), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// gitEnv is the environment of every git command: the test's without
// its GIT_ variables, with no system or global configuration (so that
// the machine's settings, such as commit.gpgsign, change nothing), a
// fixed identity and no prompts.
func gitEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "GNUPGHOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=berth test", "GIT_AUTHOR_EMAIL=test@example.test",
		"GIT_COMMITTER_NAME=berth test", "GIT_COMMITTER_EMAIL=test@example.test")
}

// freePort returns a TCP port of ip that was free a moment ago, in the
// simulated host's namespace when there is one.
func (g *GitServer) freePort(t testing.TB, ip string) int {
	t.Helper()
	var l net.Listener
	var err error
	if g.host != nil {
		l, err = g.host.Listen("tcp", net.JoinHostPort(ip, "0"))
	} else {
		l, err = net.Listen("tcp", net.JoinHostPort(ip, "0"))
	}
	if err != nil {
		t.Fatalf("find a free port on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady waits until the daemon accepts connections, or exits.
func (g *GitServer) waitReady() error {
	// A safety net for a daemon that hangs, not a speed requirement.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last error
	for {
		var c net.Conn
		var err error
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		if g.host != nil {
			c, err = g.host.DialContext(dctx, "tcp", g.Addr)
		} else {
			var d net.Dialer
			c, err = d.DialContext(dctx, "tcp", g.Addr)
		}
		dcancel()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		select {
		case <-g.done:
			return fmt.Errorf("git daemon exited: %v", g.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s: %w", g.Addr, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop kills the daemon's process group and waits for the daemon and
// for every process of the group to be gone.
func (g *GitServer) stop() {
	syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.done
	deadline := time.Now().Add(10 * time.Second)
	for GroupAlive(g.cmd.Process.Pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// GroupAlive reports whether a process of the process group pgid still
// runs. Zombies do not count: a killed child of a killed daemon is
// reparented to PID 1, which may be slow to reap it, or (in some
// containers) never does.
func GroupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so
		// the fields are counted from the last parenthesis.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b)[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// SigningKey is a key that signs commits: an OpenPGP key in a GnuPG home
// of its own, or an SSH key. The test's cleanup stops the GnuPG agent and
// removes the key.
type SigningKey struct {
	// Format is git's gpg.format for the key: "openpgp" or "ssh".
	Format string
	// Email is the identity of the key (the OpenPGP user ID's address,
	// the SSH allowed signers' principal).
	Email string
	// PublicFile is what a verifier that trusts the key is given: the
	// ASCII-armored public key for OpenPGP (berth's verify {
	// openpgp_keys_file }), a file in ssh-keygen's ALLOWED SIGNERS format
	// for SSH (berth's verify { ssh_allowed_signers }).
	PublicFile string
	// Fingerprint is the OpenPGP key's fingerprint, or the SSH key's
	// (SHA256:...).
	Fingerprint string

	// signingKey is git's user.signingkey: the fingerprint, or the
	// private key's file.
	signingKey string
	// gnupgHome is the GnuPG home holding an OpenPGP key.
	gnupgHome string
}

// NewOpenPGPKey generates an ed25519 OpenPGP signing key without a
// passphrase for "name <email>" in a GnuPG home of its own. The test is
// skipped when gpg is missing.
func NewOpenPGPKey(t testing.TB, name, email string) *SigningKey {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Skip("gpg is missing (Debian package gnupg)")
	}
	if _, err := exec.LookPath("gpg-agent"); err != nil {
		t.Skip("gpg-agent is missing (Debian package gnupg)")
	}
	// The agent's socket lives in the home: keep its path short, under
	// the 108 bytes of a unix socket's name.
	home, err := os.MkdirTemp("", "berth-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// gpg starts an agent (a daemon) for the home: stop it.
		if out, err := exec.Command("gpgconf", "--homedir", home, "--kill", "all").CombinedOutput(); err != nil {
			t.Errorf("cleanup: gpgconf --kill all: %v\n%s", err, out)
		}
		os.RemoveAll(home)
	})
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--batch", "--no-tty", "--homedir", home}, args...)...)
		cmd.Env = append(gitEnv(home), "GNUPGHOME="+home)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	run("--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", name+" <"+email+">", "ed25519", "sign", "never")
	fpr := ""
	for _, l := range strings.Split(run("--with-colons", "--list-secret-keys"), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatal("gpg: no fingerprint for the new key")
	}
	pub := filepath.Join(home, "public.asc")
	writeFile(t, pub, []byte(run("--armor", "--export", fpr)), 0o644)
	return &SigningKey{Format: "openpgp", Email: email, PublicFile: pub, Fingerprint: fpr, signingKey: fpr, gnupgHome: home}
}

// NewSSHKey generates an ed25519 SSH key without a passphrase and an
// allowed signers file that trusts it for email in the "git" namespace.
// The test is skipped when ssh-keygen is missing.
func NewSSHKey(t testing.TB, email string) *SigningKey {
	t.Helper()
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen is missing (Debian package openssh-client)")
	}
	dir := t.TempDir()
	priv := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", priv).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pubKey, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pubKey))
	if len(f) < 2 {
		t.Fatalf("ssh-keygen wrote an odd public key: %q", pubKey)
	}
	out, err := exec.Command(keygen, "-l", "-E", "sha256", "-f", priv+".pub").Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	fp := ""
	if lf := strings.Fields(string(out)); len(lf) > 1 {
		fp = lf[1]
	}
	allowed := filepath.Join(dir, "allowed_signers")
	writeFile(t, allowed, []byte(fmt.Sprintf("%s namespaces=\"git\" %s %s\n", email, f[0], f[1])), 0o644)
	return &SigningKey{Format: "ssh", Email: email, PublicFile: allowed, Fingerprint: fp, signingKey: priv}
}
