package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Registry is a running Debian docker-registry on 127.0.0.1 with a port of
// its own. StartRegistry returns it; the test's cleanup stops it.
type Registry struct {
	// Addr is "127.0.0.1:<port>", the registry part of image references.
	Addr string
	// Username and Password are the one htpasswd account when the registry
	// was started with Auth, and empty otherwise. The password is random.
	Username, Password string
	// CAFile is the PEM file of the CA that signed the registry's
	// certificate when it was started with TLS, and empty otherwise.
	CAFile string
	// TLS reports whether the registry speaks HTTPS (else plain HTTP).
	TLS bool
	// Dir is the registry's directory: config.yml, htpasswd, certificates,
	// the storage under data/ and the log in registry.log.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
}

// RegistryOptions says how StartRegistry configures the registry.
type RegistryOptions struct {
	// Auth turns on htpasswd basic auth with one bcrypt account
	// (Registry.Username, Registry.Password). It needs htpasswd.
	Auth bool
	// TLS serves HTTPS with a certificate for 127.0.0.1, ::1 and localhost,
	// signed by a CA made for this registry (Registry.CAFile).
	TLS bool
}

// Ref returns the full reference of repoTag ("tools/busybox:1.35") on r.
func (r *Registry) Ref(repoTag string) string {
	return r.Addr + "/" + repoTag
}

// Client returns an HTTP client that trusts r's CA; a test uses it to talk
// to the registry API directly.
func (r *Registry) Client(t testing.TB) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.CAFile != "" {
		pool, err := caPool(r.CAFile)
		if err != nil {
			t.Fatalf("registry client: %v", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// URL returns the base URL of r ("https://127.0.0.1:port" or "http://…").
func (r *Registry) URL() string {
	if r.TLS {
		return "https://" + r.Addr
	}
	return "http://" + r.Addr
}

// StartRegistry starts docker-registry in the foreground with its own
// config.yml in a temporary directory, on a free port of 127.0.0.1, waits
// until GET /v2/ answers and stops the process in the test's cleanup. The
// test is skipped when docker-registry (or htpasswd, for Auth) is missing.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed (Debian package docker-registry)")
	}
	dir := t.TempDir()
	r := &Registry{Dir: dir, TLS: opts.TLS}
	auth := ""
	if opts.Auth {
		htpasswd, err := exec.LookPath("htpasswd")
		if err != nil {
			t.Skip("htpasswd is not installed (Debian package apache2-utils)")
		}
		r.Username = "berth-test"
		r.Password = "pw-" + randomHex(t, 12)
		out, err := exec.Command(htpasswd, "-Bbn", r.Username, r.Password).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		path := filepath.Join(dir, "htpasswd")
		writeFile(t, path, out, 0o600)
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %q\n", path)
	}
	tlsConf := ""
	if opts.TLS {
		r.CAFile = filepath.Join(dir, "ca.pem")
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		NewCA(t, "berth test CA", r.CAFile).WriteCert(t, cert, key, CertOptions{
			IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames: []string{"localhost"},
		})
		tlsConf = fmt.Sprintf("  tls:\n    certificate: %q\n    key: %q\n", cert, key)
	}
	logPath := filepath.Join(dir, "registry.log")
	// A free port can be taken by someone else between the probe and
	// the registry's listen: try a few ports.
	for attempt := 0; ; attempt++ {
		r.Addr = freeAddr(t)
		conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"+
			"storage:\n  filesystem:\n    rootdirectory: %q\n  delete:\n    enabled: true\n"+
			"http:\n  addr: %s\n  secret: %s\n%s%s",
			filepath.Join(dir, "data"), r.Addr, randomHex(t, 16), tlsConf, auth)
		confPath := filepath.Join(dir, "config.yml")
		writeFile(t, confPath, []byte(conf), 0o600)
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", confPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		// The registry reads REGISTRY_* variables over its config file:
		// keep the caller's out.
		cmd.Env = cleanEnv()
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start docker-registry: %v", err)
		}
		logf.Close()
		r.cmd, r.done = cmd, make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) {
			cmd.Wait()
			close(done)
		}(cmd, r.done)
		err = r.waitReady()
		if err == nil {
			t.Cleanup(r.stop)
			return r
		}
		r.stop()
		log, _ := os.ReadFile(logPath)
		if attempt < 4 && bytes.Contains(log, []byte("address already in use")) {
			continue
		}
		t.Fatalf("docker-registry did not start: %v\nlog:\n%s", err, log)
	}
}

// waitReady polls GET /v2/ until the registry answers (200, or 401 with
// auth), or the process exits.
func (r *Registry) waitReady() error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	if r.CAFile != "" {
		pool, err := caPool(r.CAFile)
		if err != nil {
			return err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	// A safety net for a registry that hangs, not a speed requirement.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-r.done:
			return fmt.Errorf("docker-registry exited: %v", r.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s: %w", r.Addr, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop kills the registry process and waits for it.
func (r *Registry) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Kill()
	<-r.done
}

// cleanEnv returns the environment without REGISTRY_ variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// freeAddr returns 127.0.0.1:<a port that was free a moment ago>.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// FreeAddr returns "127.0.0.1:<port>" for a port nothing listens on (a
// moment ago): the address of an unreachable registry.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeAddr(t)
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func caPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no certificate in " + caFile)
	}
	return pool, nil
}
