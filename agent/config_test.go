package agent

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	files := map[string]string{
		"gossip.key": key,
		"token":      "s3cret-token-0123456789",
		"hook":       "hook-secret",
		"agent.hcl":  body,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "agent.hcl")
}

func noenv(string) string { return "" }

func TestLoadConfig(t *testing.T) {
	p := writeConfig(t, `
node {
  name   = "web-1"
  labels = { role = "web" }
}
state_dir = "/tmp/berth-x"
repository {
  url           = "git://192.0.2.9/fleet.git"
  path          = "hosts"
  poll_interval = "2s"
}
drift {
  interval = "5s"
  mode     = "report"
}
gossip {
  bind     = "192.0.2.1:7946"
  join     = ["192.0.2.2:7946"]
  key_file = "gossip.key"
}
webhook {
  listen      = "0.0.0.0:7948"
  secret_file = "hook"
}
variables = { domain = "example.com" }
`)
	c, _, diags := LoadConfig(p, Overrides{Labels: map[string]string{"zone": "a"}}, noenv)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if c.Node.Name != "web-1" || c.Node.Labels["role"] != "web" || c.Node.Labels["zone"] != "a" {
		t.Fatalf("node = %+v", c.Node)
	}
	if c.Repository.Branch != "main" || c.Repository.Path != "hosts" || c.Repository.PollInterval != 2*time.Second {
		t.Fatalf("repository = %+v", c.Repository)
	}
	if c.Drift.Mode != "report" || c.Drift.Interval != 5*time.Second {
		t.Fatalf("drift = %+v", c.Drift)
	}
	if len(c.Gossip.Key) != 32 || c.Gossip.Join[0] != "192.0.2.2:7946" {
		t.Fatalf("gossip = %+v", c.Gossip)
	}
	if string(c.Webhook.Secret) != "hook-secret" || c.Variables["domain"] != "example.com" {
		t.Fatalf("webhook/variables wrong: %+v", c.Webhook)
	}
	if c.API.Socket != "/tmp/berth-x/agent.sock" {
		t.Fatalf("socket = %q", c.API.Socket)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := []struct {
		name, body, want string
		line             int
	}{
		{"no key", "repository {\n  url = \"file:///r\"\n}\n", "No gossip key", 1},
		{"no repository", "gossip {\n  insecure_gossip = true\n}\n", "Missing repository block", 1},
		{"bad duration", "gossip {\n  insecure_gossip = true\n}\nrepository {\n  url = \"file:///r\"\n  poll_interval = \"soon\"\n}\n", "Invalid poll_interval", 4},
		{"bad mode", "gossip {\n  insecure_gossip = true\n}\nrepository {\n  url = \"file:///r\"\n}\ndrift {\n  mode = \"fix\"\n}\n", "Invalid drift mode", 1},
		{"tcp without tls", "gossip {\n  insecure_gossip = true\n}\nrepository {\n  url = \"file:///r\"\n}\napi {\n  listen = [\"0.0.0.0:7947\"]\n  token_file = \"token\"\n}\n", "TCP API without TLS", 7},
		{"tcp without token", "gossip {\n  insecure_gossip = true\n}\nrepository {\n  url = \"file:///r\"\n}\napi {\n  listen = [\"0.0.0.0:7947\"]\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n}\n", "TCP API without a token", 7},
		{"two refs", "gossip {\n  insecure_gossip = true\n}\nrepository {\n  url = \"file:///r\"\n  branch = \"main\"\n  tag = \"v1\"\n}\n", "Conflicting repository refs", 4},
		{"unknown attribute", "gossip {\n  insecure_gossip = true\n}\nrepository {\n  url = \"file:///r\"\n  brnach = \"main\"\n}\n", "Unsupported argument", 6},
		{"hook without secret", "gossip {\n  insecure_gossip = true\n}\nrepository {\n  url = \"file:///r\"\n}\nwebhook {\n  listen = \"0.0.0.0:1\"\n}\n", "Webhook without a secret", 1},
		{"missing secret file", "gossip {\n  key_file = \"nope\"\n}\nrepository {\n  url = \"file:///r\"\n}\n", "Cannot read the gossip key", 1},
		{"no key in gossip block", "gossip {\n  bind = \"127.0.0.1:7946\"\n}\nrepository {\n  url = \"file:///r\"\n}\n", "No gossip key", 1},
		{"bad gossip address", "repository {\n  url = \"file:///r\"\n}\ngossip {\n  insecure_gossip = true\n  join = [\"nope\"]\n}\n", "Invalid gossip address", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			_, _, diags := LoadConfig(p, Overrides{NodeName: "n"}, noenv)
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			found := false
			for _, d := range diags {
				if strings.Contains(d.Summary, tc.want) {
					found = true
					if d.Subject == nil || d.Subject.Filename != p || d.Subject.Start.Line != tc.line {
						t.Fatalf("%q at %v, want %s line %d", d.Summary, d.Subject, p, tc.line)
					}
				}
			}
			if !found {
				t.Fatalf("diagnostics %v do not say %q", diags.Error(), tc.want)
			}
		})
	}
}

func TestSecretsNeverInDiagnostics(t *testing.T) {
	p := writeConfig(t, "gossip {\n  key_env = \"K\"\n}\nrepository {\n  url = \"file:///r\"\n}\n")
	env := func(k string) string {
		if k == "K" {
			return "not-base64-supersecret!"
		}
		return ""
	}
	_, _, diags := LoadConfig(p, Overrides{NodeName: "n"}, env)
	if !diags.HasErrors() || strings.Contains(diags.Error(), "supersecret") {
		t.Fatalf("diagnostics %q", diags.Error())
	}
}

func TestRequireToken(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	h := RequireToken("right-token-0123456789", inner)
	cases := []struct {
		path, auth string
		want       int
	}{
		{"/v1/status", "", http.StatusUnauthorized},
		{"/v1/status", "Bearer wrong", http.StatusUnauthorized},
		{"/v1/status", "Bearer right-token-0123456789", 299},
		{"/v1/sync", "right-token-0123456789", http.StatusUnauthorized},
		{"/v1/hooks/github", "", 299},
	}
	for _, tc := range cases {
		req := httptest.NewRequest("GET", tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s with %q: %d, want %d", tc.path, tc.auth, rec.Code, tc.want)
		}
	}
	// An empty token never authorises.
	req := httptest.NewRequest("GET", "/v1/status", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	RequireToken("", inner).ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("empty token: %d", rec.Code)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://deploy:s3cret@git.example.com/fleet.git": "https://REDACTED@git.example.com/fleet.git",
		"https://git.example.com/fleet.git":               "https://git.example.com/fleet.git",
		"git@git.example.com:ops/fleet.git":               "git@git.example.com:ops/fleet.git",
		"https://u:s3cret@bad host/%zz":                   "(unparseable URL)",
	} {
		if got := redactURL(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
