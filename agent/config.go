package agent

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Config is an agent's configuration, read from agent.hcl and completed
// by flags and defaults.
type Config struct {
	Node       NodeConfig
	StateDir   string
	Repository RepositoryConfig
	Drift      DriftConfig
	Gossip     GossipConfig
	API        APIConfig
	Webhook    WebhookConfig
	Metrics    MetricsConfig
	Variables  map[string]string
	LogFormat  string
}

// NodeConfig names this host and labels it.
type NodeConfig struct {
	Name   string
	Labels map[string]string
}

// RepositoryConfig says where the configuration comes from.
type RepositoryConfig struct {
	URL          string
	Branch       string
	Tag          string
	Commit       string
	Path         string
	PollInterval time.Duration
	// Auth holds secrets read from files or the environment.
	Username, Password, Token string
	SSHKey, KnownHosts        []byte
	// Verification: armored OpenPGP keys and an SSH allowed-signers file.
	OpenPGPKeys       [][]byte
	SSHAllowedSigners []byte
}

// Verifies reports whether only signed commits are applied.
func (r RepositoryConfig) Verifies() bool {
	return len(r.OpenPGPKeys) > 0 || len(r.SSHAllowedSigners) > 0
}

// DriftConfig sets the drift check.
type DriftConfig struct {
	Interval time.Duration
	// Mode is "correct" or "report".
	Mode string
}

// GossipConfig sets membership and gossip.
type GossipConfig struct {
	Bind      string
	Advertise string
	Join      []string
	Key       []byte
	Insecure  bool
}

// APIConfig sets the agent's API listeners.
type APIConfig struct {
	Socket   string
	Listen   []string
	CertFile string
	KeyFile  string
	CAFile   string
	Token    string
}

// WebhookConfig sets the webhook listener.
type WebhookConfig struct {
	Listen string
	Secret []byte
}

// MetricsConfig sets the metrics listener.
type MetricsConfig struct {
	Listen string
}

// The HCL shape of agent.hcl.
type fileConfig struct {
	Node       *fileNode          `hcl:"node,block"`
	StateDir   *string            `hcl:"state_dir"`
	Repository *fileRepository    `hcl:"repository,block"`
	Drift      *fileDrift         `hcl:"drift,block"`
	Gossip     *fileGossip        `hcl:"gossip,block"`
	API        *fileAPI           `hcl:"api,block"`
	Webhook    *fileWebhook       `hcl:"webhook,block"`
	Metrics    *fileMetrics       `hcl:"metrics,block"`
	Variables  *map[string]string `hcl:"variables"`
	LogFormat  *string            `hcl:"log_format"`
}

type fileNode struct {
	Name   *string            `hcl:"name"`
	Labels *map[string]string `hcl:"labels"`
	Range  hcl.Range          `hcl:",def_range"`
}

type fileRepository struct {
	URL          string      `hcl:"url"`
	Branch       *string     `hcl:"branch"`
	Tag          *string     `hcl:"tag"`
	Commit       *string     `hcl:"commit"`
	Path         *string     `hcl:"path"`
	PollInterval *string     `hcl:"poll_interval"`
	Auth         *fileAuth   `hcl:"auth,block"`
	Verify       *fileVerify `hcl:"verify,block"`
	Range        hcl.Range   `hcl:",def_range"`
}

type fileAuth struct {
	Username       *string   `hcl:"username"`
	PasswordFile   *string   `hcl:"password_file"`
	PasswordEnv    *string   `hcl:"password_env"`
	TokenFile      *string   `hcl:"token_file"`
	TokenEnv       *string   `hcl:"token_env"`
	SSHKeyFile     *string   `hcl:"ssh_key_file"`
	KnownHostsFile *string   `hcl:"known_hosts_file"`
	Range          hcl.Range `hcl:",def_range"`
}

type fileVerify struct {
	OpenPGPKeysFile   *string   `hcl:"openpgp_keys_file"`
	SSHAllowedSigners *string   `hcl:"ssh_allowed_signers"`
	Range             hcl.Range `hcl:",def_range"`
}

type fileDrift struct {
	Interval *string   `hcl:"interval"`
	Mode     *string   `hcl:"mode"`
	Range    hcl.Range `hcl:",def_range"`
}

type fileGossip struct {
	Bind      *string   `hcl:"bind"`
	Advertise *string   `hcl:"advertise"`
	Join      *[]string `hcl:"join"`
	KeyFile   *string   `hcl:"key_file"`
	KeyEnv    *string   `hcl:"key_env"`
	Insecure  *bool     `hcl:"insecure_gossip"`
	Range     hcl.Range `hcl:",def_range"`
}

type fileAPI struct {
	Socket    *string   `hcl:"socket"`
	Listen    *[]string `hcl:"listen"`
	CertFile  *string   `hcl:"tls_cert_file"`
	KeyFile   *string   `hcl:"tls_key_file"`
	CAFile    *string   `hcl:"ca_file"`
	TokenFile *string   `hcl:"token_file"`
	TokenEnv  *string   `hcl:"token_env"`
	Range     hcl.Range `hcl:",def_range"`
}

type fileWebhook struct {
	Listen     *string   `hcl:"listen"`
	SecretFile *string   `hcl:"secret_file"`
	SecretEnv  *string   `hcl:"secret_env"`
	Range      hcl.Range `hcl:",def_range"`
}

type fileMetrics struct {
	Listen *string   `hcl:"listen"`
	Range  hcl.Range `hcl:",def_range"`
}

// Overrides are the command-line flags that take precedence over the
// file.
type Overrides struct {
	StateDir       string
	NodeName       string
	Labels         map[string]string
	LogFormat      string
	InsecureGossip bool
}

// LoadConfig reads the agent configuration at path, applies the overrides
// and the defaults, reads the secrets it points at and checks the result.
// Problems come back as diagnostics that name the file and line.
func LoadConfig(path string, ov Overrides, getenv func(string) string) (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCLFile(path)
	if diags.HasErrors() {
		return nil, p.Files(), diags
	}
	var fc fileConfig
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &fc)...)
	if diags.HasErrors() {
		return nil, p.Files(), diags
	}
	c, ds := fc.resolve(path, ov, getenv)
	diags = append(diags, ds...)
	if diags.HasErrors() {
		return nil, p.Files(), diags
	}
	return c, p.Files(), diags
}

// errAt is an error diagnostic about the file at path.
func errAt(path, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos},
	}
}

func (fc *fileConfig) resolve(path string, ov Overrides, getenv func(string) string) (*Config, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	bad := func(rng *hcl.Range, summary, detail string) {
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng}
		if rng == nil {
			d = errAt(path, summary, detail)
		}
		diags = append(diags, d)
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	// secret reads a secret from a file or an environment variable; the
	// value never appears in a diagnostic.
	secret := func(rng *hcl.Range, what string, file, env *string) string {
		switch {
		case file != nil && env != nil:
			bad(rng, "Two sources for "+what, fmt.Sprintf("Set either the file or the environment variable of %s, not both.", what))
		case file != nil:
			b, err := os.ReadFile(abs(*file))
			if err != nil {
				bad(rng, "Cannot read "+what, fmt.Sprintf("Reading %s: %v.", *file, err))
				return ""
			}
			return strings.TrimSpace(string(b))
		case env != nil:
			v := getenv(*env)
			if v == "" {
				bad(rng, "Empty "+what, fmt.Sprintf("The environment variable %s named for %s is empty or unset.", *env, what))
			}
			return v
		}
		return ""
	}
	readFile := func(rng *hcl.Range, what string, p *string) []byte {
		if p == nil {
			return nil
		}
		b, err := os.ReadFile(abs(*p))
		if err != nil {
			bad(rng, "Cannot read "+what, fmt.Sprintf("Reading %s: %v.", *p, err))
			return nil
		}
		return b
	}
	duration := func(rng *hcl.Range, what string, s *string, def time.Duration) time.Duration {
		if s == nil {
			return def
		}
		d, err := time.ParseDuration(*s)
		if err != nil || d <= 0 {
			bad(rng, "Invalid "+what, fmt.Sprintf("%s must be a positive duration such as \"15s\" or \"2m\"; got %q.", what, *s))
			return def
		}
		return d
	}

	c := &Config{StateDir: "/var/lib/berth", LogFormat: "text", Variables: map[string]string{}}
	if fc.StateDir != nil {
		c.StateDir = abs(*fc.StateDir)
	}
	if ov.StateDir != "" {
		c.StateDir = ov.StateDir
	} else if fc.StateDir == nil {
		if d := getenv("BERTH_STATE_DIR"); d != "" {
			c.StateDir = d
		}
	}
	if fc.Node != nil {
		if fc.Node.Name != nil {
			c.Node.Name = *fc.Node.Name
		}
		if fc.Node.Labels != nil {
			c.Node.Labels = *fc.Node.Labels
		}
	}
	if ov.NodeName != "" {
		c.Node.Name = ov.NodeName
	}
	if c.Node.Name == "" {
		n, err := os.Hostname()
		if err != nil {
			bad(nil, "No node name", "The hostname cannot be read; set node { name = \"...\" } or --node-name.")
		}
		c.Node.Name = n
	}
	if c.Node.Labels == nil {
		c.Node.Labels = map[string]string{}
	}
	for k, v := range ov.Labels {
		c.Node.Labels[k] = v
	}
	if fc.Variables != nil {
		c.Variables = *fc.Variables
	}
	if fc.LogFormat != nil {
		c.LogFormat = *fc.LogFormat
	}
	if ov.LogFormat != "" {
		c.LogFormat = ov.LogFormat
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad(nil, "Invalid log_format", fmt.Sprintf("log_format must be \"text\" or \"json\"; got %q.", c.LogFormat))
	}

	// Repository.
	if fc.Repository == nil {
		bad(nil, "Missing repository block", "Say where the configuration comes from:\n\nrepository {\n  url    = \"https://git.example.com/ops/fleet.git\"\n  branch = \"main\"\n}")
	} else {
		r := fc.Repository
		rng := r.Range.Ptr()
		c.Repository.URL = r.URL
		if r.URL == "" {
			bad(rng, "Empty repository url", "Set url to the repository: https://, ssh://, git:// or file://.")
		}
		n := 0
		if r.Branch != nil {
			c.Repository.Branch = *r.Branch
			n++
		}
		if r.Tag != nil {
			c.Repository.Tag = *r.Tag
			n++
		}
		if r.Commit != nil {
			c.Repository.Commit = *r.Commit
			n++
		}
		if n > 1 {
			bad(rng, "Conflicting repository refs", "Track one of branch, tag or commit.")
		}
		if n == 0 {
			c.Repository.Branch = "main"
		}
		if r.Path != nil {
			c.Repository.Path = *r.Path
		}
		c.Repository.PollInterval = duration(rng, "poll_interval", r.PollInterval, 15*time.Second)
		if a := r.Auth; a != nil {
			if a.Username != nil {
				c.Repository.Username = *a.Username
			}
			c.Repository.Password = secret(a.Range.Ptr(), "the git password", a.PasswordFile, a.PasswordEnv)
			c.Repository.Token = secret(a.Range.Ptr(), "the git token", a.TokenFile, a.TokenEnv)
			c.Repository.SSHKey = readFile(a.Range.Ptr(), "the ssh key", a.SSHKeyFile)
			c.Repository.KnownHosts = readFile(a.Range.Ptr(), "known_hosts", a.KnownHostsFile)
		}
		if v := r.Verify; v != nil {
			if k := readFile(v.Range.Ptr(), "the OpenPGP keys", v.OpenPGPKeysFile); k != nil {
				c.Repository.OpenPGPKeys = [][]byte{k}
			}
			c.Repository.SSHAllowedSigners = readFile(v.Range.Ptr(), "the SSH allowed signers", v.SSHAllowedSigners)
			if !c.Repository.Verifies() && !diags.HasErrors() {
				bad(rng, "Empty verify block", "A verify block needs openpgp_keys_file or ssh_allowed_signers (or both); remove the block to apply unsigned commits.")
			}
		}
	}

	// Drift.
	c.Drift = DriftConfig{Interval: 60 * time.Second, Mode: "correct"}
	if fc.Drift != nil {
		c.Drift.Interval = duration(fc.Drift.Range.Ptr(), "drift interval", fc.Drift.Interval, c.Drift.Interval)
		if fc.Drift.Mode != nil {
			c.Drift.Mode = *fc.Drift.Mode
		}
	}
	if c.Drift.Mode != "correct" && c.Drift.Mode != "report" {
		bad(nil, "Invalid drift mode", fmt.Sprintf("drift mode must be \"correct\" or \"report\"; got %q.", c.Drift.Mode))
	}

	// Gossip.
	var gossipRng, apiRng *hcl.Range
	if fc.Gossip != nil {
		gossipRng = fc.Gossip.Range.Ptr()
	}
	if fc.API != nil {
		apiRng = fc.API.Range.Ptr()
	}
	c.Gossip = GossipConfig{Bind: "0.0.0.0:7946"}
	if g := fc.Gossip; g != nil {
		if g.Bind != nil {
			c.Gossip.Bind = *g.Bind
		}
		if g.Advertise != nil {
			c.Gossip.Advertise = *g.Advertise
		}
		if g.Join != nil {
			c.Gossip.Join = *g.Join
		}
		if g.Insecure != nil {
			c.Gossip.Insecure = *g.Insecure
		}
		if k := secret(g.Range.Ptr(), "the gossip key", g.KeyFile, g.KeyEnv); k != "" {
			key, err := base64.StdEncoding.DecodeString(k)
			if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
				bad(g.Range.Ptr(), "Invalid gossip key", "The gossip key must be the base64 of 16, 24 or 32 random bytes; make one with: head -c 32 /dev/urandom | base64")
			}
			c.Gossip.Key = key
		}
	}
	if ov.InsecureGossip {
		c.Gossip.Insecure = true
	}
	for _, a := range append([]string{c.Gossip.Bind, c.Gossip.Advertise}, c.Gossip.Join...) {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(gossipRng, "Invalid gossip address", fmt.Sprintf("%q is not host:port.", a))
		}
	}
	if len(c.Gossip.Key) == 0 && !c.Gossip.Insecure {
		bad(gossipRng, "No gossip key", "Gossip is encrypted: set gossip { key_file = \"...\" } (the base64 of 32 random bytes: head -c 32 /dev/urandom | base64), shared by every agent of the fleet. Only for tests, insecure_gossip = true runs without one.")
	}

	// API.
	c.API.Socket = filepath.Join(c.StateDir, "agent.sock")
	if a := fc.API; a != nil {
		if a.Socket != nil {
			c.API.Socket = abs(*a.Socket)
		}
		if a.Listen != nil {
			c.API.Listen = *a.Listen
		}
		if a.CertFile != nil {
			c.API.CertFile = abs(*a.CertFile)
		}
		if a.KeyFile != nil {
			c.API.KeyFile = abs(*a.KeyFile)
		}
		if a.CAFile != nil {
			c.API.CAFile = abs(*a.CAFile)
		}
		c.API.Token = secret(a.Range.Ptr(), "the API token", a.TokenFile, a.TokenEnv)
	}
	if len(c.API.Listen) > 0 {
		if c.API.CertFile == "" || c.API.KeyFile == "" {
			bad(apiRng, "TCP API without TLS", "api listen needs tls_cert_file and tls_key_file: berth never serves its control API in clear over TCP.")
		}
		if len(c.API.Token) < 16 {
			bad(apiRng, "TCP API without a token", "api listen needs token_file (or token_env) with a bearer token of 16 characters or more: berth never serves an unauthenticated control endpoint over TCP.")
		}
		for _, a := range c.API.Listen {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(apiRng, "Invalid api listen address", fmt.Sprintf("%q is not host:port.", a))
			}
		}
	}

	// Webhook and metrics.
	if w := fc.Webhook; w != nil {
		if w.Listen != nil {
			c.Webhook.Listen = *w.Listen
		}
		c.Webhook.Secret = []byte(secret(w.Range.Ptr(), "the webhook secret", w.SecretFile, w.SecretEnv))
		if len(c.Webhook.Secret) == 0 && !diags.HasErrors() {
			bad(nil, "Webhook without a secret", "A webhook block needs secret_file or secret_env: berth accepts only signed webhooks.")
		}
	}
	if m := fc.Metrics; m != nil && m.Listen != nil {
		c.Metrics.Listen = *m.Listen
	}
	return c, diags
}
