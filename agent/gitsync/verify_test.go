package gitsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// newPGPKey returns a new OpenPGP entity and its armored public key.
func newPGPKey(t *testing.T, email string) (*openpgp.Entity, []byte) {
	t.Helper()
	e, err := openpgp.NewEntity("Test", "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return e, buf.Bytes()
}

func pgpSign(t *testing.T, e *openpgp.Entity) func([]byte) string {
	return func(payload []byte) string {
		var buf bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&buf, e, bytes.NewReader(payload), nil); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
}

func sshSign(t *testing.T, s ssh.Signer, namespace string) func([]byte) string {
	return func(payload []byte) string {
		sig, err := sshsig.Sign(bytes.NewReader(payload), s, sshsig.HashSHA256, namespace)
		if err != nil {
			t.Fatal(err)
		}
		return string(sshsig.Armor(sig))
	}
}

// resign rewrites the tip of main in r's bare repository: signed with
// sign (nil: unsigned), then, with tamper, its message changed after
// signing. It returns the new commit's hash.
func resign(t *testing.T, r *testRepo, sign func([]byte) string, tamper bool) string {
	t.Helper()
	repo, err := git.PlainOpen(r.bare())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName("main"), true)
	if err != nil {
		t.Fatal(err)
	}
	old, err := repo.CommitObject(ref.Hash())
	if err != nil {
		t.Fatal(err)
	}
	c := &object.Commit{Author: old.Author, Committer: old.Committer, Message: old.Message,
		TreeHash: old.TreeHash, ParentHashes: old.ParentHashes}
	if sign != nil {
		o := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(o); err != nil {
			t.Fatal(err)
		}
		rd, _ := o.Reader()
		payload, _ := io.ReadAll(rd)
		c.PGPSignature = sign(payload)
	}
	if tamper {
		c.Message += "tampered\n"
	}
	h := storeObject(t, repo, c)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(ref.Name(), h)); err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func authorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func TestVerify(t *testing.T) {
	alice, alicePub := newPGPKey(t, "alice@example.com")
	mallory, _ := newPGPKey(t, "mallory@example.com")
	_, sshPub, sshKey := newSSHKey(t, "")
	_, _, otherSSH := newSSHKey(t, "")

	signers := fmt.Sprintf("# the team\nalice@example.com namespaces=\"git\" %s alice\n", authorizedKey(sshPub))
	v, err := NewVerifier([][]byte{alicePub}, []byte(signers))
	if err != nil {
		t.Fatal(err)
	}
	fileOnly, err := NewVerifier(nil, []byte("alice@example.com namespaces=\"file\" "+authorizedKey(sshPub)))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := NewVerifier(nil, []byte("alice@example.com valid-before=\"20200101Z\" "+authorizedKey(sshPub)))
	if err != nil {
		t.Fatal(err)
	}
	notYet, err := NewVerifier(nil, []byte("alice@example.com valid-after=\"29990101\" "+authorizedKey(sshPub)))
	if err != nil {
		t.Fatal(err)
	}
	sshOnly, err := NewVerifier(nil, []byte(signers))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		v       *Verifier
		sign    func([]byte) string
		tamper  bool
		failure VerifyFailure
		reason  string
	}{
		{"openpgp good", v, pgpSign(t, alice), false, 0, ""},
		{"unsigned", v, nil, false, NotSigned, "not signed"},
		{"openpgp unknown key", v, pgpSign(t, mallory), false, UnknownKey, fmt.Sprintf("signed by an unknown key %X", mallory.PrimaryKey.Fingerprint)},
		{"openpgp tampered", v, pgpSign(t, alice), true, BadSignature, "bad signature"},
		{"openpgp with only ssh signers", sshOnly, pgpSign(t, alice), false, UnknownKey, "signed by an unknown key"},
		{"ssh good", v, sshSign(t, sshKey, "git"), false, 0, ""},
		{"ssh unknown key", v, sshSign(t, otherSSH, "git"), false, UnknownKey, "signed by an unknown key " + ssh.FingerprintSHA256(otherSSH.PublicKey())},
		{"ssh tampered", v, sshSign(t, sshKey, "git"), true, BadSignature, "bad signature"},
		{"ssh other namespace", v, sshSign(t, sshKey, "file"), false, BadSignature, `namespace "file"`},
		{"ssh namespaces option", fileOnly, sshSign(t, sshKey, "git"), false, KeyNotAllowed, `namespaces="file" does not allow "git"`},
		{"ssh valid-before", expired, sshSign(t, sshKey, "git"), false, KeyNotAllowed, "valid-before"},
		{"ssh valid-after", notYet, sshSign(t, sshKey, "git"), false, KeyNotAllowed, "valid-after"},
		{"ssh with only openpgp keys", mustVerifier(t, [][]byte{alicePub}, nil), sshSign(t, sshKey, "git"), false, UnknownKey, "signed by an unknown key SHA256:"},
		{"garbage", v, func([]byte) string { return "not a signature" }, false, BadSignature, "bad signature"},
		{"x509", v, func([]byte) string { return "-----BEGIN SIGNED MESSAGE-----\nabc\n-----END SIGNED MESSAGE-----" }, false, UnsupportedSignature, "X.509"},
		{"two signatures", v, func(p []byte) string { return pgpSign(t, alice)(p) + sshSign(t, sshKey, "git")(p) }, false, BadSignature, "more than one"},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t)
			r.commit("config", map[string]string{"a.hcl": "a"})
			hash := resign(t, r, tc.sign, tc.tamper)
			s, rev := fetched(t, r, func(o *Options) { o.Verify = tc.v })
			if rev.Hash != hash {
				t.Fatalf("fetched %s, want %s", rev.Hash, hash)
			}
			err := s.Verify(ctx, rev)
			if tc.failure == 0 {
				if err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			t.Logf("error: %v", err)
			if ve.Failure != tc.failure || ve.Commit != hash || !strings.Contains(ve.Error(), tc.reason) {
				t.Errorf("Verify = %v (%v), want %v with %q", ve, ve.Failure, tc.failure, tc.reason)
			}
			// Without a Verifier, nothing is checked.
			plain := newSyncer(t, Options{URL: r.fileURL()}, nil)
			if _, err := plain.Fetch(ctx); err != nil {
				t.Fatal(err)
			}
			if err := plain.Verify(ctx, rev); err != nil {
				t.Errorf("Verify without a Verifier = %v", err)
			}
		})
	}
}

func mustVerifier(t *testing.T, pgp [][]byte, signers []byte) *Verifier {
	t.Helper()
	v, err := NewVerifier(pgp, signers)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyManyKeyrings(t *testing.T) {
	alice, alicePub := newPGPKey(t, "alice@example.com")
	_, bobPub := newPGPKey(t, "bob@example.com")
	_, carolPub := newPGPKey(t, "carol@example.com")
	// Two armored blocks in one keyring, and a second keyring.
	v := mustVerifier(t, [][]byte{append(append([]byte(nil), bobPub...), carolPub...), alicePub}, nil)
	r := newTestRepo(t)
	r.commit("config", map[string]string{"a.hcl": "a"})
	resign(t, r, pgpSign(t, alice), false)
	s, rev := fetched(t, r, func(o *Options) { o.Verify = v })
	if err := s.Verify(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	v = mustVerifier(t, [][]byte{append(append([]byte(nil), alicePub...), bobPub...)}, nil)
	if err := v.VerifyCommit(mustCommit(t, s, rev)); err != nil {
		t.Errorf("alice as the first of two blocks: %v", err)
	}
}

func mustCommit(t *testing.T, s *Syncer, rev Revision) *object.Commit {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.commitLocked(rev)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// goGitSSHSigner signs commits for go-git's CommitOptions.Signer.
type goGitSSHSigner struct{ s ssh.Signer }

func (g goGitSSHSigner) Sign(message io.Reader) ([]byte, error) {
	sig, err := sshsig.Sign(message, g.s, sshsig.HashSHA512, "git")
	if err != nil {
		return nil, err
	}
	return sshsig.Armor(sig), nil
}

func TestVerifyGoGitSignedCommits(t *testing.T) {
	alice, alicePub := newPGPKey(t, "alice@example.com")
	_, sshPub, sshKey := newSSHKey(t, "")
	v := mustVerifier(t, [][]byte{alicePub}, []byte("alice@example.com "+authorizedKey(sshPub)))
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	for i, opts := range []*git.CommitOptions{{SignKey: alice}, {Signer: goGitSSHSigner{sshKey}}} {
		if err := os.WriteFile(filepath.Join(dir, "a.hcl"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add("a.hcl"); err != nil {
			t.Fatal(err)
		}
		opts.Author = &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Now()}
		h, err := wt.Commit(fmt.Sprint("commit ", i), opts)
		if err != nil {
			t.Fatal(err)
		}
		// Through a fetch, as the agent sees it.
		s := newSyncer(t, Options{URL: dir, Branch: "master", Verify: v}, nil)
		rev, err := s.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rev.Hash != h.String() {
			t.Fatalf("fetched %s, want %s", rev.Hash, h)
		}
		if err := s.Verify(context.Background(), rev); err != nil {
			t.Errorf("commit %d: %v", i, err)
		}
	}
}

func TestVerifySSHSignedByGit(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed (Debian package openssh-client)")
	}
	key, pub, _ := newSSHKey(t, "")
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newTestRepo(t)
	r.write(map[string]string{"a.hcl": "a"})
	r.git(r.work, "add", "-A")
	r.git(r.work, "-c", "gpg.format=ssh", "-c", "user.signingkey="+keyFile, "commit", "-q", "-S", "-m", "signed by git")
	r.git(r.work, "push", "-q", "origin", "HEAD:main")
	hash := r.git(r.work, "rev-parse", "HEAD")

	signers := []byte("ada@example.com namespaces=\"git\" " + authorizedKey(pub) + "\n")
	// git itself accepts the signature with these allowed signers.
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(allowed, signers, 0o600); err != nil {
		t.Fatal(err)
	}
	r.git(r.work, "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", "HEAD")

	s, rev := fetched(t, r, func(o *Options) { o.Verify = mustVerifier(t, nil, signers) })
	if rev.Hash != hash {
		t.Fatalf("fetched %s, want %s", rev.Hash, hash)
	}
	if err := s.Verify(context.Background(), rev); err != nil {
		t.Fatalf("Verify of a commit signed by git with ssh-keygen: %v", err)
	}
	_, otherPub, _ := newSSHKey(t, "")
	s, rev = fetched(t, r, func(o *Options) {
		o.Verify = mustVerifier(t, nil, []byte("ada@example.com "+authorizedKey(otherPub)))
	})
	var ve *VerifyError
	if err := s.Verify(context.Background(), rev); !errors.As(err, &ve) || ve.Failure != UnknownKey ||
		ve.Key != ssh.FingerprintSHA256(pub) {
		t.Fatalf("Verify with another allowed key = %v", err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	_, pub, _ := newSSHKey(t, "")
	_, pgpPub := newPGPKey(t, "a@example.com")
	key := authorizedKey(pub)
	tests := []struct {
		name    string
		pgp     [][]byte
		signers string
		want    string
	}{
		{"nothing", nil, "", "no OpenPGP key and no SSH allowed signer"},
		{"only comments", nil, "# nobody\n\n", "no OpenPGP key"},
		{"bad keyring", [][]byte{pgpPub, []byte("hello")}, "", "openpgp keyring 2"},
		{"corrupt keyring", [][]byte{[]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n")}, "", "openpgp keyring 1"},
		{"no principals", nil, key, "line 1"},
		{"bad key", nil, "# c\n\na@example.com ssh-ed25519 AAAAnotbase64", "line 3"},
		{"unknown option", nil, "a@example.com\t" + `foo="bar" ` + key, `line 1: unknown option "foo"`},
		{"cert-authority", nil, "a@example.com cert-authority " + key, "cert-authority"},
		{"bad time", nil, `a@example.com valid-after="2020" ` + key, "valid-after"},
		{"unterminated quote", nil, `"a b ` + key, "unterminated"},
		{"principals only", nil, "a@example.com", "line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.pgp, []byte(tc.signers))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewVerifier = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestParseAllowedSigners(t *testing.T) {
	_, pub, _ := newSSHKey(t, "")
	key := authorizedKey(pub)
	tests := []struct {
		line       string
		principals string
		namespaces []string
		after      string
		before     string
	}{
		{"alice@example.com " + key, "alice@example.com", nil, "", ""},
		{"alice@example.com,bob@example.com " + key + " a comment", "alice@example.com,bob@example.com", nil, "", ""},
		{`"alice smith" ` + key, "alice smith", nil, "", ""},
		{`* namespaces="git,file" ` + key, "*", []string{"git", "file"}, "", ""},
		{`a NAMESPACES="git",valid-after="20200102Z",valid-before="203001020304Z" ` + key, "a", []string{"git"},
			"2020-01-02T00:00:00Z", "2030-01-02T03:04:00Z"},
		{"  a\t\t" + key + "  ", "a", nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			got, err := parseAllowedSigners([]byte("# comment\n" + tc.line + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d signers", len(got))
			}
			s := got[0]
			if s.line != 2 || s.principals != tc.principals || fmt.Sprint(s.namespaces) != fmt.Sprint(tc.namespaces) ||
				!bytes.Equal(s.key.Marshal(), pub.Marshal()) {
				t.Errorf("signer = %+v", s)
			}
			if tc.after != "" && s.validAfter.Format(time.RFC3339) != tc.after {
				t.Errorf("valid-after = %v, want %s", s.validAfter, tc.after)
			}
			if tc.before != "" && s.validBefore.Format(time.RFC3339) != tc.before {
				t.Errorf("valid-before = %v, want %s", s.validBefore, tc.before)
			}
		})
	}
}

func TestMatchPatternList(t *testing.T) {
	tests := []struct {
		patterns string
		want     bool
	}{
		{"git", true},
		{"file", false},
		{"file,git", true},
		{"*", true},
		{"g?t", true},
		{"g*", true},
		{"*t", true},
		{"gi", false},
		{"git?", false},
		{"*,!git", false},
		{"!git", false},
		{"!file", false},
		{"!file,g*", true},
	}
	for _, tc := range tests {
		if got := matchPatternList("git", strings.Split(tc.patterns, ",")); got != tc.want {
			t.Errorf("matchPatternList(git, %s) = %v, want %v", tc.patterns, got, tc.want)
		}
	}
}
