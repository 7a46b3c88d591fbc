package gitsync

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// gitEnv is the environment of the git commands of the tests: no user or
// system configuration, a fixed identity.
func gitEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	return append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, "gitconfig"),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ada Author",
		"GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Cid Committer",
		"GIT_COMMITTER_EMAIL=cid@example.com",
	)
}

// testRepo is a work repository that pushes to a bare repository under
// base, which the servers of the tests serve.
type testRepo struct {
	t    *testing.T
	env  []string
	base string // directory holding the bare repository
	name string // bare repository's name under base, "repo.git"
	work string
	n    int
}

func (r *testRepo) bare() string { return filepath.Join(r.base, r.name) }

// newTestRepo makes an empty bare repository and a work repository whose
// origin it is.
func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	r := &testRepo{t: t, env: gitEnv(t), base: t.TempDir(), name: "repo.git", work: t.TempDir()}
	r.git(r.base, "init", "-q", "--bare", "-b", "main", r.name)
	r.git(r.work, "init", "-q", "-b", "main")
	r.git(r.work, "remote", "add", "origin", r.bare())
	return r
}

// git runs git in dir and returns its trimmed output.
func (r *testRepo) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// write sets files of the work tree: content "" removes the file, a
// content starting with "->" makes a symlink, a name ending in "*" is made
// executable.
func (r *testRepo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		exe := strings.HasSuffix(name, "*")
		name = strings.TrimSuffix(name, "*")
		p := filepath.Join(r.work, name)
		if content == "" {
			if err := os.RemoveAll(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		os.Remove(p)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		mode := os.FileMode(0o644)
		if exe {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			r.t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit writes files, commits them with message and pushes main; it
// returns the new commit's hash.
func (r *testRepo) commit(message string, files map[string]string, extra ...string) string {
	r.t.Helper()
	r.write(files)
	r.n++
	r.git(r.work, "add", "-A")
	args := append([]string{"-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", message}, extra...)
	cmd := exec.Command("git", args...)
	cmd.Dir = r.work
	// Distinct, increasing commit times.
	date := fmt.Sprintf("GIT_COMMITTER_DATE=%d +0000", 1700000000+r.n*60)
	cmd.Env = append(append([]string(nil), r.env...), date, "GIT_AUTHOR_DATE="+strings.TrimPrefix(date, "GIT_COMMITTER_DATE="))
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git commit: %v\n%s", err, out)
	}
	r.git(r.work, "push", "-q", "-f", "origin", "HEAD:main")
	return r.git(r.work, "rev-parse", "HEAD")
}

// tag makes a lightweight (message "") or annotated tag of HEAD and
// pushes it.
func (r *testRepo) tag(name, message string) {
	r.t.Helper()
	if message == "" {
		r.git(r.work, "tag", "-f", name)
	} else {
		r.git(r.work, "tag", "-f", "-a", "-m", message, name)
	}
	r.git(r.work, "push", "-q", "-f", "origin", "refs/tags/"+name)
}

// fileURL is the file:// URL of the bare repository.
func (r *testRepo) fileURL() string { return "file://" + r.bare() }

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDaemon serves base with git daemon and returns the git:// URL of
// the repository name.
func startDaemon(t *testing.T, r *testRepo) string {
	t.Helper()
	port := freePort(t)
	var stderr bytes.Buffer
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--base-path="+r.base, "--export-all",
		"--enable=receive-pack", "--port="+strconv.Itoa(port), "--listen=127.0.0.1")
	cmd.Env = r.env
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("git daemon: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// The daemon leads its own process group: end it and the
		// children it forked for connections.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("git daemon exited: %s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon does not listen on %s", addr)
		}
	}
	return "git://" + addr + "/" + r.name
}

// startHTTP serves base with git http-backend behind net/http/cgi and
// returns the URL of the repository and, with TLS, the server's
// certificate in PEM. A non-empty user turns basic auth on.
func startHTTP(t *testing.T, r *testRepo, user, pass string, useTLS bool) (string, []byte) {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Root: "/git",
		Env: []string{
			"GIT_PROJECT_ROOT=" + r.base,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, req)
	})
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	var ca []byte
	if useTLS {
		ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	}
	return srv.URL + "/git/" + r.name, ca
}

// sshServer is a minimal ssh server running git upload-pack for the key
// it allows.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
}

// knownHosts returns a known_hosts line for the server.
func (s *sshServer) knownHosts() []byte {
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, s.hostKey) + "\n")
}

// startSSH serves the repositories of r.base over ssh to the user "git"
// with the key allowed.
func startSSH(t *testing.T, r *testRepo, allowed ssh.PublicKey) *sshServer {
	t.Helper()
	_, hpriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := ssh.NewSignerFromKey(hpriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == "git" && bytes.Equal(k.Marshal(), allowed.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not allowed")
		},
	}
	cfg.AddHostKey(hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSH(c, cfg, r)
			}()
		}
	}()
	return &sshServer{addr: ln.Addr().String(), hostKey: hs.PublicKey()}
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig, r *testRepo) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var p struct{ Command string }
				if ssh.Unmarshal(req.Payload, &p) != nil {
					req.Reply(false, nil)
					return
				}
				name, arg, _ := strings.Cut(p.Command, " ")
				if name != "git-upload-pack" {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				repo := filepath.Join(r.base, filepath.Clean("/"+strings.Trim(arg, "'")))
				status := runUploadPack(ch, repo, r.env)
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
				return
			}
		}()
	}
}

// runUploadPack runs git upload-pack on repo with the channel as its
// stdin and stdout, and returns its exit status.
func runUploadPack(ch ssh.Channel, repo string, env []string) uint32 {
	cmd := exec.Command("git", "upload-pack", repo)
	cmd.Env = env
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 1
	}
	if err := cmd.Start(); err != nil {
		return 1
	}
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return uint32(ee.ExitCode())
		}
		return 1
	}
	return 0
}

// newSSHKey returns a new ed25519 key as PEM (encrypted when passphrase
// is set) and its public key.
func newSSHKey(t *testing.T, passphrase string) ([]byte, ssh.PublicKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), signer.PublicKey(), signer
}

// testLogger returns a logger writing to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// readTree returns the files below dir: regular files as their content
// (with " (x)" appended when executable), directories as "/", symlinks as
// "-> target".
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case fi.IsDir():
			out[rel] = "/"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := string(b)
			if fi.Mode().Perm()&0o111 != 0 {
				s += " (x)"
			}
			out[rel] = s
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
