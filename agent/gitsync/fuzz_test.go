package gitsync

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

const fuzzKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIONwMYqIIXy5/oQkVsg2CMnpEEndWPKhhKg6AJaa9xU"

func FuzzParseAllowedSigners(f *testing.F) {
	for _, s := range []string{
		"alice@example.com " + fuzzKey,
		`"a b" namespaces="git,file",valid-after="20200101Z" ` + fuzzKey + " comment",
		"# c\n\n* " + fuzzKey + "\nbob " + fuzzKey,
		`a cert-authority ` + fuzzKey,
		`"unterminated ` + fuzzKey,
		"a b c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		signers, err := parseAllowedSigners([]byte(in))
		if err != nil {
			if !strings.Contains(err.Error(), "allowed signers: line ") {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		for _, s := range signers {
			if s.key == nil || s.line < 1 || s.principals == "" {
				t.Fatalf("bad signer %+v", s)
			}
			_ = s.allows("git", time.Now())
		}
	})
}

func FuzzParseRevision(f *testing.F) {
	h := strings.Repeat("0123456789abcdef", 3)[:40]
	for _, s := range []string{"main@sha1:" + h, "sha1:" + h, "v1.2@sha1:" + h, "a@b@sha1:" + h, "@sha1:" + h, "main"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rev, err := ParseRevision(in)
		if err != nil {
			return
		}
		if rev.String() != in {
			t.Fatalf("ParseRevision(%q).String() = %q", in, rev.String())
		}
		if !isHash(rev.Hash) {
			t.Fatalf("hash %q", rev.Hash)
		}
	})
}

// FuzzVerifyCommit checks that no signature made up by the fuzzer is
// accepted, and that every refusal is a *VerifyError.
func FuzzVerifyCommit(f *testing.F) {
	f.Add("")
	f.Add("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n")
	f.Add("-----BEGIN PGP SIGNATURE-----\n\nwnUEABYKACcFAmVU\n-----END PGP SIGNATURE-----\n")
	f.Add("-----BEGIN SIGNED MESSAGE-----\n-----END SIGNED MESSAGE-----")
	v, err := NewVerifier(nil, []byte("alice "+fuzzKey))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig string) {
		c := &object.Commit{
			Hash:         plumbing.NewHash(strings.Repeat("ab", 20)),
			Author:       object.Signature{Name: "a", Email: "a@example.com", When: time.Unix(1700000000, 0)},
			Committer:    object.Signature{Name: "a", Email: "a@example.com", When: time.Unix(1700000000, 0)},
			Message:      "m\n",
			PGPSignature: sig,
		}
		err := v.VerifyCommit(c)
		var ve *VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("VerifyCommit(%q) = %v, want a *VerifyError", sig, err)
		}
		if ve.Failure < NotSigned || ve.Failure > UnsupportedSignature || ve.Reason == "" {
			t.Fatalf("VerifyError %+v", ve)
		}
		if bytes.Contains([]byte(ve.Error()), []byte("\x00")) {
			t.Fatalf("NUL in %q", ve.Error())
		}
	})
}
