package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewValidation(t *testing.T) {
	key, _, _ := newSSHKey(t, "")
	kh := hostLine(t, "[127.0.0.1]:2222")
	hash := strings.Repeat("a", 40)
	tests := []struct {
		name string
		opts Options
		want string // "" when New must succeed
	}{
		{"ok https", Options{URL: "https://example.com/r.git"}, ""},
		{"ok http with token", Options{URL: "http://example.com/r.git", Auth: Auth{Token: "t"}}, ""},
		{"ok scp", Options{URL: "git@example.com:org/r.git", Auth: Auth{SSHKey: key, KnownHosts: kh}}, ""},
		{"ok ssh", Options{URL: "ssh://example.com:2222/r.git", Auth: Auth{SSHKey: key, KnownHosts: kh, SSHUser: "deploy"}}, ""},
		{"ok git", Options{URL: "git://example.com/r.git", Tag: "v1.2"}, ""},
		{"ok path", Options{URL: "/srv/git/r.git", Commit: strings.ToUpper(hash)}, ""},
		{"ok file", Options{URL: "file:///srv/git/r.git", Branch: "refs/heads/release/1"}, ""},
		{"ok path option", Options{URL: "/r", Path: "fleet/hosts/"}, ""},
		{"no url", Options{}, "url:"},
		{"relative path", Options{URL: "repo"}, "url:"},
		{"scheme", Options{URL: "ftp://example.com/r"}, `url: unsupported scheme "ftp"`},
		{"no dir", Options{URL: "/r", Dir: "-"}, "dir:"},
		{"branch and tag", Options{URL: "/r", Branch: "main", Tag: "v1"}, "only one"},
		{"tag and commit", Options{URL: "/r", Tag: "v1", Commit: hash}, "only one"},
		{"short commit", Options{URL: "/r", Commit: "abc123"}, "commit:"},
		{"bad branch", Options{URL: "/r", Branch: "a..b"}, "branch:"},
		{"bad tag", Options{URL: "/r", Tag: "v1~"}, "tag:"},
		{"absolute path", Options{URL: "/r", Path: "/etc"}, "path:"},
		{"dotdot path", Options{URL: "/r", Path: "a/../../b"}, "path:"},
		{".git path", Options{URL: "/r", Path: ".git/hooks"}, "path:"},
		{"password and token", Options{URL: "https://e/r", Auth: Auth{Password: "p", Token: "t"}}, "auth:"},
		{"url and auth creds", Options{URL: "https://u:p@e/r", Auth: Auth{Token: "t"}}, "url:"},
		{"ssh creds on https", Options{URL: "https://e/r", Auth: Auth{SSHKey: key}}, "auth:"},
		{"token on ssh", Options{URL: "ssh://e/r", Auth: Auth{Token: "t", SSHKey: key, KnownHosts: kh}}, "auth:"},
		{"ssh without key", Options{URL: "ssh://e/r", Auth: Auth{KnownHosts: kh}}, "auth.SSHKey"},
		{"ssh without known hosts", Options{URL: "git@e:r", Auth: Auth{SSHKey: key}}, "auth.KnownHosts"},
		{"bad known hosts", Options{URL: "git@e:r", Auth: Auth{SSHKey: key, KnownHosts: []byte("# c\nhost ssh-ed25519 !!!\n")}}, "auth.KnownHosts: line 2"},
		{"bad key", Options{URL: "git@e:r", Auth: Auth{SSHKey: []byte("nope"), KnownHosts: kh}}, "auth.SSHKey"},
		{"creds on git://", Options{URL: "git://e/r", Auth: Auth{Token: "t"}}, "auth:"},
		{"creds on a path", Options{URL: "/r", Auth: Auth{Username: "u"}}, "auth:"},
		{"ssh password", Options{URL: "ssh://u:p@e/r", Auth: Auth{SSHKey: key, KnownHosts: kh}}, "url:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			switch o.Dir {
			case "":
				o.Dir = t.TempDir()
			case "-":
				o.Dir = ""
			}
			_, err := New(o)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestNewNormalises(t *testing.T) {
	s, err := New(Options{URL: "https://bob:pa55@example.com/r.git", Dir: t.TempDir(), Path: "./a/b/", Branch: "refs/heads/dev"})
	if err != nil {
		t.Fatal(err)
	}
	if s.url != "https://example.com/r.git" || s.display != "https://example.com/r.git" {
		t.Errorf("url = %q, display = %q", s.url, s.display)
	}
	if s.subdir != "a/b" || s.ref != "dev" {
		t.Errorf("subdir = %q, ref = %q", s.subdir, s.ref)
	}
	if len(s.auth.secrets) == 0 || s.auth.secrets[0] != "pa55" {
		t.Errorf("the URL's password is not kept as a secret")
	}
	s, err = New(Options{URL: "git@example.com:org/r.git", Dir: t.TempDir(),
		Auth: Auth{SSHKey: mustKey(t), KnownHosts: hostLine(t, "example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	if s.auth.ssh.User != "git" || s.auth.hostPort != "example.com:22" {
		t.Errorf("ssh user %q, host %q", s.auth.ssh.User, s.auth.hostPort)
	}
}

// hostLine returns a known_hosts line of a new key for hosts.
func hostLine(t *testing.T, hosts string) []byte {
	_, pub, _ := newSSHKey(t, "")
	return []byte(hosts + " " + authorizedKey(pub) + "\n")
}

func mustKey(t *testing.T) []byte {
	k, _, _ := newSSHKey(t, "")
	return k
}

func TestAuthShowsNoSecret(t *testing.T) {
	key, _, _ := newSSHKey(t, "")
	a := Auth{Username: "bob", Password: "pw-secret-1", Token: "tok-secret-2", SSHKey: key,
		SSHKeyPassphrase: "pp-secret-3", KnownHosts: []byte("h ssh-ed25519 AAAA"), SSHUser: "git"}
	o := Options{URL: "https://e/r", Auth: a}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "auth", a)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "auth", a)
	outs := []string{
		a.String(), fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a),
		fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), logged.String(),
	}
	for _, out := range outs {
		for _, secret := range []string{"pw-secret-1", "tok-secret-2", "pp-secret-3", "PRIVATE KEY", string(key[40:60])} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows a secret", out)
			}
		}
	}
	if want := "Auth{username=bob password=REDACTED token=REDACTED ssh_key=REDACTED ssh_key_passphrase=REDACTED known_hosts=set ssh_user=git}"; a.String() != want {
		t.Errorf("String() = %s, want %s", a, want)
	}
}

func TestRevisionString(t *testing.T) {
	h := strings.Repeat("0123456789abcdef", 3)[:40]
	tests := []struct {
		rev  Revision
		want string
	}{
		{Revision{Ref: "main", Hash: h}, "main@sha1:" + h},
		{Revision{Ref: "v1.2", Hash: h}, "v1.2@sha1:" + h},
		{Revision{Hash: h}, "sha1:" + h},
		{Revision{Ref: "user@feature", Hash: h}, "user@feature@sha1:" + h},
	}
	for _, tc := range tests {
		if got := tc.rev.String(); got != tc.want {
			t.Errorf("String() = %s, want %s", got, tc.want)
		}
		back, err := ParseRevision(tc.want)
		if err != nil || back != tc.rev {
			t.Errorf("ParseRevision(%s) = %+v, %v", tc.want, back, err)
		}
	}
	for _, bad := range []string{"", "main", "main@" + h, "sha1:" + h[:39], "main@sha1:" + strings.ToUpper(h), "@sha1:" + h, "mainsha1:" + h, "sha1:" + h + "x"} {
		if _, err := ParseRevision(bad); err == nil {
			t.Errorf("ParseRevision(%q) succeeded", bad)
		}
	}
}

func TestRedactErr(t *testing.T) {
	base := fmt.Errorf("get https://u:p%%40ss@host/r?token=t%%2Bk: refused (p@ss, t+k)")
	err := redactErr(base, []string{"p@ss", "p%40ss", "t+k", "t%2Bk"})
	if got := err.Error(); strings.Contains(got, "ss") || strings.Contains(got, "t+k") || strings.Contains(got, "t%2Bk") {
		t.Errorf("redacted error = %q", got)
	}
	if !errors.Is(err, base) {
		t.Error("the redacted error does not wrap the original")
	}
	s, err := New(Options{URL: "https://e/r", Dir: t.TempDir(), Auth: Auth{Token: "t+k"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := redactErr(errors.New("x t+k t%2Bk t%2Bk"), s.auth.secrets).Error(); got != "x REDACTED REDACTED REDACTED" {
		t.Errorf("redacted with the Syncer's secrets = %q", got)
	}
}
