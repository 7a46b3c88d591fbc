package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kind classifies a registry error by what the user can do about it.
type Kind int

// The kinds of registry errors.
const (
	// Other is any error not classified below.
	Other Kind = iota
	// Unauthorized: the registry wants credentials, or refused the given
	// ones (HTTP 401 or 403).
	Unauthorized
	// NotFound: the repository, tag or digest does not exist (HTTP 404).
	NotFound
	// PlainHTTP: the registry answered plain HTTP to an HTTPS request, and
	// it is not declared insecure.
	PlainHTTP
	// Unreachable: no connection (refused, no route, DNS, timeout).
	Unreachable
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case Unauthorized:
		return "unauthorized"
	case NotFound:
		return "not found"
	case PlainHTTP:
		return "plain HTTP"
	case Unreachable:
		return "unreachable"
	}
	return "other"
}

// plainHTTPPhrase is what net/http says when an HTTPS request gets a plain
// HTTP answer; it is the only handle on that case.
const plainHTTPPhrase = "server gave HTTP response to HTTPS client"

// Error is an error talking to a registry. Its message names the operation,
// the reference, the registry and the user (never the password) and says
// what to do where there is something to do.
type Error struct {
	Kind Kind
	// Op is "resolve", "pull" or "push".
	Op string
	// Ref is the full image reference.
	Ref string
	// Registry is the registry address (host[:port]).
	Registry string
	// Username is the user berth authenticated as, "" for anonymous.
	Username string
	// Err is the underlying error.
	Err error

	// cause is Err's message with the password masked.
	cause string
	// untrusted is set when the registry's certificate was not trusted.
	untrusted bool
}

// Error implements error.
func (e *Error) Error() string {
	as := ""
	if e.Username != "" {
		as = fmt.Sprintf(" as user %q", e.Username)
	}
	prefix := e.Op + " " + e.Ref + ": "
	switch e.Kind {
	case Unauthorized:
		if e.Username == "" {
			return prefix + fmt.Sprintf("registry %s requires credentials and none were given: declare the registry with a username and password, or log in with docker login (%s)", e.Registry, e.cause)
		}
		return prefix + fmt.Sprintf("registry %s refused access%s: check the username and password, and the user's rights on the repository (%s)", e.Registry, as, e.cause)
	case NotFound:
		return prefix + fmt.Sprintf("image %s not found on registry %s%s (%s)", e.Ref, e.Registry, as, e.cause)
	case PlainHTTP:
		return prefix + fmt.Sprintf("registry %s answered plain HTTP to an HTTPS request; if it is meant to be plain HTTP, set insecure = true on the registry", e.Registry)
	case Unreachable:
		return prefix + fmt.Sprintf("registry %s is unreachable: %s", e.Registry, e.cause)
	}
	if e.untrusted {
		return prefix + fmt.Sprintf("registry %s presented a certificate that is not trusted; if it is signed by a private CA, set ca_file on the registry (%s)", e.Registry, e.cause)
	}
	return prefix + fmt.Sprintf("registry %s%s: %s", e.Registry, as, e.cause)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// newError classifies err from an operation on ref.
func newError(op string, ref Reference, username, password string, err error) *Error {
	e := &Error{Kind: classify(err), Op: op, Ref: ref.String(), Registry: ref.Registry(), Username: username, Err: err}
	e.cause = err.Error()
	// go-containerregistry tries plain HTTP after HTTPS for local
	// addresses and joins both errors; berth's refusal of the second adds
	// nothing when the first says what went wrong.
	if i := strings.Index(e.cause, `; Get "http://`); i > 0 && strings.Contains(e.cause[i:], "refusing plain HTTP") {
		e.cause = e.cause[:i]
	}
	e.untrusted = isCertificateError(err)
	if password != "" {
		e.cause = strings.ReplaceAll(e.cause, password, "********")
	}
	return e
}

// classify finds the Kind of an error from go-containerregistry or net/http.
func classify(err error) Kind {
	if strings.Contains(err.Error(), plainHTTPPhrase) {
		return PlainHTTP
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return Unauthorized
		case http.StatusNotFound:
			return NotFound
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return Unauthorized
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return NotFound
			}
		}
		return Other
	}
	// Certificate problems are not network problems: keep them Other.
	if isCertificateError(err) {
		return Other
	}
	var operr *net.OpError
	var dnserr *net.DNSError
	if errors.As(err, &operr) && operr.Op == "remote error" {
		return Other // a TLS alert from the server
	}
	if operr != nil || errors.As(err, &dnserr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, context.DeadlineExceeded) {
		return Unreachable
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return Unreachable
	}
	return Other
}

// errPlainHTTPRefused is the error of a plain HTTP request to a registry
// that is not declared insecure.
type errPlainHTTPRefused struct {
	host string
}

func (e *errPlainHTTPRefused) Error() string {
	return fmt.Sprintf("refusing plain HTTP to %s: the registry is not declared insecure", e.host)
}

// isCertificateError reports whether err is a failed verification of the
// registry's certificate.
func isCertificateError(err error) bool {
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var verr *tls.CertificateVerificationError
	return errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &verr)
}
