package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The providers a Handler serves, as they appear in its paths and in
// Push.Provider.
const (
	GitHub  = "github"
	Gitea   = "gitea"
	GitLab  = "gitlab"
	Generic = "generic"
)

// Providers lists the supported providers.
func Providers() []string { return []string{GitHub, Gitea, GitLab, Generic} }

// Errors of Verify and Parse. They are wrapped with the precise reason,
// which never contains the secret.
var (
	// ErrUnknownProvider is returned for a provider other than those of
	// Providers.
	ErrUnknownProvider = errors.New("unknown webhook provider")
	// ErrDisabled is returned by Verify when the secret is empty: no
	// hook is ever accepted without authentication.
	ErrDisabled = errors.New("webhook disabled: no secret")
	// ErrUnauthorized is returned by Verify for a missing, malformed or
	// wrong signature or token.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrMalformed is returned by Parse for a payload that does not decode
	// or carries invalid fields.
	ErrMalformed = errors.New("malformed payload")
	// ErrPing is returned by Parse for GitHub's ping event, which asks
	// only for an acknowledgement.
	ErrPing = errors.New("ping event")
	// ErrIgnored is returned by Parse for an event that is not a push.
	ErrIgnored = errors.New("event ignored")
)

// Headers that carry the signatures and tokens.
const (
	headerGitHubSig  = "X-Hub-Signature-256"
	headerGiteaSig   = "X-Gitea-Signature"
	headerGitLabTok  = "X-Gitlab-Token"
	headerBerthSig   = "X-Berth-Signature"
	headerAuthorize  = "Authorization"
	sigPrefix        = "sha256="
	bearerPrefix     = "bearer "
	maxSignatureSize = 2 + 2*sha256.Size + len(sigPrefix) // hex digest, prefix and a little slack
)

// Verify checks that the request headers h authenticate body for provider
// with secret: an HMAC-SHA256 signature of the body for github
// (X-Hub-Signature-256: sha256=HEX), gitea (X-Gitea-Signature: HEX) and
// generic (X-Berth-Signature: sha256=HEX), the secret itself as a token
// for gitlab (X-Gitlab-Token) and generic (Authorization: Bearer SECRET).
// A generic request with an X-Berth-Signature header is judged by it
// alone. All comparisons take constant time. An empty secret fails with
// ErrDisabled; a missing or wrong credential with ErrUnauthorized.
func Verify(provider string, secret []byte, h http.Header, body []byte) error {
	if !known(provider) {
		return fmt.Errorf("%w %q", ErrUnknownProvider, clip(provider))
	}
	if len(secret) == 0 {
		return ErrDisabled
	}
	switch provider {
	case GitHub:
		return verifyHMAC(secret, h, headerGitHubSig, sigPrefix, body)
	case Gitea:
		return verifyHMAC(secret, h, headerGiteaSig, "", body)
	case GitLab:
		tok, err := single(h, headerGitLabTok)
		if err != nil {
			return err
		}
		if !equalSecret([]byte(tok), secret) {
			return fmt.Errorf("%w: wrong %s", ErrUnauthorized, headerGitLabTok)
		}
		return nil
	default: // Generic
		if len(h.Values(headerBerthSig)) > 0 {
			return verifyHMAC(secret, h, headerBerthSig, sigPrefix, body)
		}
		if len(h.Values(headerAuthorize)) == 0 {
			return fmt.Errorf("%w: missing %s or %s header", ErrUnauthorized, headerBerthSig, headerAuthorize)
		}
		auth, err := single(h, headerAuthorize)
		if err != nil {
			return err
		}
		if len(auth) < len(bearerPrefix) || !strings.EqualFold(auth[:len(bearerPrefix)], bearerPrefix) {
			return fmt.Errorf("%w: %s is not a bearer token", ErrUnauthorized, headerAuthorize)
		}
		if !equalSecret([]byte(strings.TrimSpace(auth[len(bearerPrefix):])), secret) {
			return fmt.Errorf("%w: wrong bearer token", ErrUnauthorized)
		}
		return nil
	}
}

// verifyHMAC checks the hex HMAC-SHA256 of body in header name, after
// prefix.
func verifyHMAC(secret []byte, h http.Header, name, prefix string, body []byte) error {
	v, err := single(h, name)
	if err != nil {
		return err
	}
	v = strings.TrimSpace(v)
	if len(v) > maxSignatureSize {
		return fmt.Errorf("%w: malformed %s header", ErrUnauthorized, name)
	}
	if prefix != "" {
		if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
			return fmt.Errorf("%w: %s header lacks the %q prefix", ErrUnauthorized, name, prefix)
		}
		v = v[len(prefix):]
	}
	got, err := hex.DecodeString(v)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: malformed %s header", ErrUnauthorized, name)
	}
	if !hmac.Equal(got, Sign(secret, body)) {
		return fmt.Errorf("%w: signature mismatch", ErrUnauthorized)
	}
	return nil
}

// Sign returns the HMAC-SHA256 of body keyed with secret, which github,
// gitea and generic signatures carry in hex.
func Sign(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// equalSecret compares a presented token with the secret in constant time,
// whatever their lengths: it compares their SHA-256 digests.
func equalSecret(got, secret []byte) bool {
	a, b := sha256.Sum256(got), sha256.Sum256(secret)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// single returns the one value of header name; a header given several
// times is refused, as nobody can tell which one was meant.
func single(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0 || len(vs) == 1 && vs[0] == "":
		return "", fmt.Errorf("%w: missing %s header", ErrUnauthorized, name)
	case len(vs) > 1:
		return "", fmt.Errorf("%w: repeated %s header", ErrUnauthorized, name)
	}
	return vs[0], nil
}

// known reports whether provider is supported.
func known(provider string) bool {
	switch provider {
	case GitHub, Gitea, GitLab, Generic:
		return true
	}
	return false
}
