package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berthhq/berth/internal/fsync"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// Auth holds the credentials for a remote. Its String, GoString and
// LogValue methods never show a secret.
//
// Over http(s) a Token is sent as the basic-auth password with Username,
// or "git" when Username is empty, which GitHub, Gitea and GitLab accept
// for personal and deploy tokens. Over ssh, SSHKey and KnownHosts are
// required: host keys are always checked.
type Auth struct {
	// Username is the http(s) basic-auth user; over ssh it stands for
	// SSHUser when that is empty.
	Username string
	// Password is the http(s) basic-auth password.
	Password string
	// Token is an http(s) access token.
	Token string
	// SSHKey is a PEM private key (OpenSSH, PKCS#1, PKCS#8 or EC).
	SSHKey []byte
	// SSHKeyPassphrase decrypts SSHKey when it is encrypted.
	SSHKeyPassphrase string
	// KnownHosts is the content of a known_hosts file holding the
	// server's host key.
	KnownHosts []byte
	// SSHUser is the ssh user, by default the URL's user or "git".
	SSHUser string
}

// String describes a without its secrets.
func (a Auth) String() string {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, name+"="+v)
		}
	}
	set := func(name string, ok bool) {
		if ok {
			parts = append(parts, name+"=REDACTED")
		}
	}
	add("username", a.Username)
	set("password", a.Password != "")
	set("token", a.Token != "")
	set("ssh_key", len(a.SSHKey) > 0)
	set("ssh_key_passphrase", a.SSHKeyPassphrase != "")
	if len(a.KnownHosts) > 0 {
		parts = append(parts, "known_hosts=set")
	}
	add("ssh_user", a.SSHUser)
	return "Auth{" + strings.Join(parts, " ") + "}"
}

// GoString is String, so that %#v shows no secret either.
func (a Auth) GoString() string { return a.String() }

// LogValue makes slog print String.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// remoteAuth is the go-git form of Auth for one endpoint.
type remoteAuth struct {
	method  transport.AuthMethod
	secrets []string

	// ssh only
	ssh            *gitssh.PublicKeys
	knownHosts     []byte
	knownHostsPath string
	hostPort       string
}

func newRemoteAuth(ep *transport.Endpoint, a Auth, dir string) (*remoteAuth, error) {
	r := &remoteAuth{}
	for _, s := range []string{a.Password, a.Token, a.SSHKeyPassphrase} {
		if s != "" {
			r.secrets = append(r.secrets, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	httpSet := a.Password != "" || a.Token != ""
	sshSet := len(a.SSHKey) > 0 || len(a.KnownHosts) > 0 || a.SSHKeyPassphrase != "" || a.SSHUser != ""
	switch ep.Protocol {
	case "https", "http":
		if sshSet {
			return nil, fmt.Errorf("auth: ssh credentials (SSHKey, KnownHosts, SSHUser) are set but the URL is %s", ep.Protocol)
		}
		if a.Password != "" && a.Token != "" {
			return nil, errors.New("auth: set Password or Token, not both")
		}
		if !httpSet && a.Username == "" {
			return r, nil
		}
		user, pass := a.Username, a.Password
		if a.Token != "" {
			pass = a.Token
		}
		if user == "" {
			user = "git"
		}
		r.method = &githttp.BasicAuth{Username: user, Password: pass}
	case "ssh":
		if httpSet {
			return nil, errors.New("auth: Password and Token are for http(s) URLs; ssh needs SSHKey")
		}
		if len(a.SSHKey) == 0 {
			return nil, errors.New("auth.SSHKey: required for an ssh URL")
		}
		if len(a.KnownHosts) == 0 {
			return nil, errors.New("auth.KnownHosts: required for an ssh URL (host keys are always checked)")
		}
		if err := checkKnownHosts(a.KnownHosts); err != nil {
			return nil, err
		}
		user := a.SSHUser
		if user == "" {
			user = a.Username
		}
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, a.SSHKey, a.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("auth.SSHKey: %w", redactErr(err, r.secrets))
		}
		port := ep.Port
		if port <= 0 {
			port = gitssh.DefaultPort
		}
		host := strings.TrimSuffix(strings.TrimPrefix(ep.Host, "["), "]")
		r.ssh, r.method = keys, keys
		r.knownHosts = bytes.Clone(a.KnownHosts)
		r.knownHostsPath = filepath.Join(dir, "known_hosts")
		r.hostPort = net.JoinHostPort(host, strconv.Itoa(port))
	default:
		if httpSet || sshSet || a.Username != "" {
			return nil, fmt.Errorf("auth: a %s URL takes no credentials", ep.Protocol)
		}
	}
	return r, nil
}

// checkKnownHosts parses known_hosts content, naming the first bad line.
func checkKnownHosts(b []byte) error {
	n := 0
	for i, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if _, _, _, _, _, err := ssh.ParseKnownHosts([]byte(t)); err != nil {
			return fmt.Errorf("auth.KnownHosts: line %d: %w", i+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("auth.KnownHosts: no host key in it")
	}
	return nil
}

// prepare writes the known_hosts file and sets the host key check; it is
// a no-op except for ssh.
func (r *remoteAuth) prepare() error {
	if r.ssh == nil || r.ssh.HostKeyCallback != nil {
		return nil
	}
	if err := fsync.WriteFile(r.knownHostsPath, r.knownHosts, 0o600); err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	db, err := gitssh.NewKnownHostsDb(r.knownHostsPath)
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	r.ssh.HostKeyCallback = db.HostKeyCallback()
	r.ssh.HostKeyAlgorithms = db.HostKeyAlgorithms(r.hostPort)
	return nil
}

// urlSecrets returns the password of a URL, if any, for redaction.
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	p, ok := u.User.Password()
	if !ok || p == "" {
		return nil
	}
	return []string{p, url.QueryEscape(p), url.PathEscape(p)}
}

// redactedError hides secrets from the text of the error it wraps.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	return msg
}

func (e *redactedError) Unwrap() error { return e.err }

// redactErr wraps err so that its text shows none of secrets.
func redactErr(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	return &redactedError{err: err, secrets: secrets}
}
