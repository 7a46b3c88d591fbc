package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// sshNamespace is the namespace git signs commits in.
const sshNamespace = "git"

// VerifyFailure says why a commit was refused.
type VerifyFailure int

// The reasons for refusing a commit.
const (
	// NotSigned: the commit carries no signature.
	NotSigned VerifyFailure = iota + 1
	// UnknownKey: the signing key is in no keyring or allowed signers.
	UnknownKey
	// KeyNotAllowed: the key is known but may not sign this commit
	// (namespaces or validity of allowed signers; revoked or expired
	// OpenPGP key).
	KeyNotAllowed
	// BadSignature: the signature does not match the commit, or is
	// malformed.
	BadSignature
	// UnsupportedSignature: the signature is of a kind not verified here
	// (X.509, SSH certificates).
	UnsupportedSignature
)

// String names f.
func (f VerifyFailure) String() string {
	switch f {
	case NotSigned:
		return "not signed"
	case UnknownKey:
		return "unknown key"
	case KeyNotAllowed:
		return "key not allowed"
	case BadSignature:
		return "bad signature"
	case UnsupportedSignature:
		return "unsupported signature"
	}
	return fmt.Sprintf("VerifyFailure(%d)", int(f))
}

// VerifyError is returned when a commit's signature is refused.
type VerifyError struct {
	// Commit is the full hash of the refused commit.
	Commit string
	// Failure is the kind of refusal.
	Failure VerifyFailure
	// Key is the signing key's fingerprint (SSH: SHA256:..., OpenPGP:
	// hex fingerprint or key id) when known.
	Key string
	// Reason explains the refusal: "not signed", "signed by an unknown
	// key SHA256:...", "bad signature: ...".
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error returns "commit <hash>: <reason>".
func (e *VerifyError) Error() string {
	return "commit " + e.Commit + ": " + printable(e.Reason)
}

// printable replaces control characters and invalid UTF-8 in s, which may
// quote a commit's signature (anyone's input), so that the message is
// safe in logs, terminals and status.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		// Control characters, and format characters such as the
		// bidirectional overrides, which can disguise a message.
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// Unwrap returns the underlying error.
func (e *VerifyError) Unwrap() error { return e.Err }

// Verifier checks that commits are signed by allowed OpenPGP keys or SSH
// allowed signers. It is safe for concurrent use.
type Verifier struct {
	pgp     openpgp.EntityList
	signers []allowedSigner
}

// NewVerifier returns a Verifier trusting the keys of the armored OpenPGP
// keyrings and of the SSH allowed signers file (the format of
// ssh-keygen(1), ALLOWED SIGNERS). Either may be empty, not both.
//
// An allowed signer is used for a commit when its namespaces option, if
// any, allows "git" and the commit's committer time is within its
// valid-after and valid-before options, as git and ssh-keygen do. The
// cert-authority option is refused: SSH certificates are not verified.
func NewVerifier(openPGPArmoredKeyrings [][]byte, sshAllowedSigners []byte) (*Verifier, error) {
	v := &Verifier{}
	for i, kr := range openPGPArmoredKeyrings {
		el, err := readArmoredKeyrings(kr)
		if err != nil {
			return nil, fmt.Errorf("openpgp keyring %d: %w", i+1, err)
		}
		v.pgp = append(v.pgp, el...)
	}
	signers, err := parseAllowedSigners(sshAllowedSigners)
	if err != nil {
		return nil, err
	}
	v.signers = signers
	if len(v.pgp) == 0 && len(v.signers) == 0 {
		return nil, errors.New("verifier: no OpenPGP key and no SSH allowed signer")
	}
	return v, nil
}

// readArmoredKeyrings reads every armored key block of b.
func readArmoredKeyrings(b []byte) (openpgp.EntityList, error) {
	const begin = "-----BEGIN PGP "
	s := string(b)
	if !strings.Contains(s, begin) {
		return nil, errors.New("no armored OpenPGP key block")
	}
	var all openpgp.EntityList
	for _, part := range strings.Split(s, begin)[1:] {
		el, err := openpgp.ReadArmoredKeyRing(strings.NewReader(begin + part))
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
	}
	return all, nil
}

// VerifyCommit checks c's signature. It returns nil when c is signed by a
// trusted key and a *VerifyError otherwise.
func (v *Verifier) VerifyCommit(c *object.Commit) error {
	_, err := v.verifyCommit(c)
	return err
}

// verifyCommit checks c's signature and describes the signer.
func (v *Verifier) verifyCommit(c *object.Commit) (string, error) {
	fail := func(f VerifyFailure, key, reason string, err error) (string, error) {
		return "", &VerifyError{Commit: c.Hash.String(), Failure: f, Key: key, Reason: reason, Err: err}
	}
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return fail(NotSigned, "", "not signed", nil)
	}
	if strings.Count(sig, "-----BEGIN ") > 1 {
		return fail(BadSignature, "", "bad signature: more than one signature block", nil)
	}
	payload, err := signedPayload(c)
	if err != nil {
		return fail(BadSignature, "", "bad signature: cannot encode the commit", err)
	}
	switch {
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		return v.verifyOpenPGP(c, sig, payload, fail)
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return v.verifySSH(c, sig, payload, fail)
	case strings.HasPrefix(sig, "-----BEGIN SIGNED MESSAGE-----"):
		return fail(UnsupportedSignature, "", "unsupported signature: X.509 signatures are not verified", nil)
	}
	return fail(BadSignature, "", "bad signature: not an OpenPGP or SSH signature", nil)
}

// signedPayload is the commit as signed: encoded without its signature.
func signedPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

type failFunc func(f VerifyFailure, key, reason string, err error) (string, error)

func (v *Verifier) verifyOpenPGP(c *object.Commit, sig string, payload []byte, fail failFunc) (string, error) {
	signer, err := openpgp.CheckArmoredDetachedSignature(v.pgp, bytes.NewReader(payload), strings.NewReader(sig), nil)
	if err == nil {
		return "openpgp key " + fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint) + identityOf(signer), nil
	}
	issuer := openPGPIssuer(sig)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return fail(UnknownKey, issuer, "signed by an unknown key "+orUnknown(issuer), err)
	case errors.Is(err, pgperrors.ErrKeyExpired), errors.Is(err, pgperrors.ErrKeyRevoked):
		return fail(KeyNotAllowed, issuer, fmt.Sprintf("key %s may not sign: %v", orUnknown(issuer), err), err)
	}
	return fail(BadSignature, issuer, "bad signature: "+err.Error(), err)
}

func orUnknown(s string) string {
	if s == "" {
		return "(no issuer)"
	}
	return s
}

func identityOf(e *openpgp.Entity) string {
	for name := range e.Identities {
		return " (" + name + ")"
	}
	return ""
}

// openPGPIssuer returns the issuer fingerprint, or key id, of an armored
// signature, or "".
func openPGPIssuer(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return ""
	}
	p, err := packet.NewReader(block.Body).Next()
	if err != nil {
		return ""
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return ""
	}
	if len(s.IssuerFingerprint) > 0 {
		return fmt.Sprintf("%X", s.IssuerFingerprint)
	}
	if s.IssuerKeyId != nil {
		return fmt.Sprintf("%016X", *s.IssuerKeyId)
	}
	return ""
}

func (v *Verifier) verifySSH(c *object.Commit, armored string, payload []byte, fail failFunc) (string, error) {
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return fail(BadSignature, "", "bad signature: malformed SSH signature", err)
	}
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	if _, ok := sig.PublicKey.(*ssh.Certificate); ok {
		return fail(UnsupportedSignature, fp, "unsupported signature: SSH certificates are not verified", nil)
	}
	var known []allowedSigner
	for _, s := range v.signers {
		if bytes.Equal(s.key.Marshal(), sig.PublicKey.Marshal()) {
			known = append(known, s)
		}
	}
	if len(known) == 0 {
		return fail(UnknownKey, fp, "signed by an unknown key "+fp, nil)
	}
	if sig.Namespace != sshNamespace {
		return fail(BadSignature, fp, fmt.Sprintf("bad signature: made for namespace %q, not %q", sig.Namespace, sshNamespace), nil)
	}
	if err := sshsig.Verify(bytes.NewReader(payload), sig, sig.PublicKey, sig.HashAlgorithm, sshNamespace); err != nil {
		return fail(BadSignature, fp, "bad signature: "+err.Error(), err)
	}
	at := c.Committer.When
	var why []string
	for _, s := range known {
		reason := s.allows(sshNamespace, at)
		if reason == "" {
			return "ssh key " + fp + " (" + s.principals + ")", nil
		}
		why = append(why, fmt.Sprintf("line %d: %s", s.line, reason))
	}
	return fail(KeyNotAllowed, fp, fmt.Sprintf("key %s may not sign: %s", fp, strings.Join(why, "; ")), nil)
}

// allowedSigner is one line of an allowed signers file.
type allowedSigner struct {
	line        int
	principals  string
	key         ssh.PublicKey
	namespaces  []string // nil: any namespace
	validAfter  time.Time
	validBefore time.Time
}

// allows returns "" when s may sign in namespace at time t, or why not.
func (s allowedSigner) allows(namespace string, t time.Time) string {
	if s.namespaces != nil && !matchPatternList(namespace, s.namespaces) {
		return fmt.Sprintf("namespaces=%q does not allow %q", strings.Join(s.namespaces, ","), namespace)
	}
	if !s.validAfter.IsZero() && t.Before(s.validAfter) {
		return "commit time " + t.UTC().Format(time.RFC3339) + " is before valid-after"
	}
	if !s.validBefore.IsZero() && !t.Before(s.validBefore) {
		return "commit time " + t.UTC().Format(time.RFC3339) + " is not before valid-before"
	}
	return ""
}

// parseAllowedSigners parses an allowed signers file: per line,
// principals, options, key type and base64 key, then a comment.
func parseAllowedSigners(b []byte) ([]allowedSigner, error) {
	var out []allowedSigner
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseAllowedSigner(line)
		if err != nil {
			return nil, fmt.Errorf("allowed signers: line %d: %w", i+1, err)
		}
		s.line = i + 1
		out = append(out, s)
	}
	return out, nil
}

func parseAllowedSigner(line string) (allowedSigner, error) {
	var s allowedSigner
	var rest string
	if strings.HasPrefix(line, `"`) {
		end := strings.Index(line[1:], `"`)
		if end < 0 {
			return s, errors.New("unterminated quoted principals")
		}
		s.principals, rest = line[1:1+end], line[2+end:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return s, errors.New("no space after the quoted principals")
		}
	} else {
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return s, errors.New("expected principals and a key")
		}
		s.principals, rest = line[:i], line[i:]
	}
	if s.principals == "" {
		return s, errors.New("empty principals")
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return s, errors.New("missing key")
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return s, fmt.Errorf("key: %w", err)
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return s, errors.New("a certificate is not an allowed signer key")
	}
	s.key = key
	for _, o := range options {
		name, val, hasVal := strings.Cut(o, "=")
		val = unquoteOption(val)
		switch strings.ToLower(name) {
		case "namespaces":
			if !hasVal || val == "" {
				return s, errors.New("namespaces: empty")
			}
			s.namespaces = strings.Split(val, ",")
		case "valid-after", "valid-before":
			if !hasVal {
				return s, fmt.Errorf("%s: missing time", name)
			}
			t, err := parseSSHTime(val)
			if err != nil {
				return s, fmt.Errorf("%s: %w", name, err)
			}
			if strings.EqualFold(name, "valid-after") {
				s.validAfter = t
			} else {
				s.validBefore = t
			}
		case "cert-authority":
			return s, errors.New("cert-authority: SSH certificates are not supported")
		default:
			return s, fmt.Errorf("unknown option %q", name)
		}
	}
	return s, nil
}

// unquoteOption strips the double quotes of an option value.
func unquoteOption(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return strings.ReplaceAll(v, `\"`, `"`)
}

// parseSSHTime parses the times of ssh-keygen: YYYYMMDD, YYYYMMDDHHMM or
// YYYYMMDDHHMMSS, in local time or in UTC with a trailing Z.
func parseSSHTime(v string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		loc, v = time.UTC, v[:len(v)-1]
	}
	var layout string
	switch len(v) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Errorf("%q: expected YYYYMMDD[HHMM[SS]][Z]", v)
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return time.Time{}, fmt.Errorf("%q: expected YYYYMMDD[HHMM[SS]][Z]", v)
		}
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: %w", v, err)
	}
	return t, nil
}

// matchPatternList matches s against comma-split ssh patterns ("*", "?"
// wildcards, "!" negates) as ssh's match_pattern_list: a negated match
// refuses, otherwise any match accepts.
func matchPatternList(s string, patterns []string) bool {
	ok := false
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if neg {
				return false
			}
			ok = true
		}
	}
	return ok
}

// matchPattern matches s against p with "*" and "?" wildcards.
func matchPattern(s, p string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if matchPattern(s[i:], p) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s, p = s[1:], p[1:]
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
			s, p = s[1:], p[1:]
		}
	}
	return s == ""
}

// isHash reports whether s is a full lowercase hex SHA-1.
func isHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
