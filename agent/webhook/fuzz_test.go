package webhook

import (
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzProvider picks a provider from a fuzzed byte.
func fuzzProvider(b uint8) string {
	ps := Providers()
	return ps[int(b)%len(ps)]
}

func providerIndex(p string) uint8 {
	for i, q := range Providers() {
		if q == p {
			return uint8(i)
		}
	}
	panic("unknown provider " + p)
}

func FuzzParse(f *testing.F) {
	json := "application/json"
	form := "application/x-www-form-urlencoded"
	for _, s := range []struct {
		provider, event, ct, body string
	}{
		{GitHub, "push", json, githubPush},
		{GitHub, "push", json, githubTagPush},
		{GitHub, "push", json, githubDelete},
		{GitHub, "ping", json, githubPing},
		{GitHub, "push", form, "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"},
		{GitHub, "issues", json, `{"action":"opened","issue":{"number":1}}`},
		{Gitea, "push", json, giteaPush},
		{Gitea, "push", json, giteaTagPush},
		{Gitea, "push", form, "payload=%7B%22ref%22%3A%22refs%2Ftags%2Fv2%22%7D&x=1"},
		{GitLab, "Push Hook", json, gitlabPush},
		{GitLab, "Tag Push Hook", json, gitlabTagPush},
		{GitLab, "Merge Request Hook", json, gitlabMergeRequest},
		{Generic, "", json, genericPush},
		{Generic, "", "", ""},
		{Generic, "", json, `{"ref":"refs/heads/a..b"}`},
		{Generic, "", json, `{"after":"` + zeroHash + `"}`},
	} {
		f.Add(providerIndex(s.provider), s.event, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, pi uint8, event, ct string, body []byte) {
		provider := fuzzProvider(pi)
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		for _, name := range []string{headerGitHubEvent, headerGiteaEvent, headerGitLabEvent} {
			h.Set(name, event)
		}
		p, err := Parse(provider, h, body)
		p2, err2 := Parse(provider, h, body)
		if p != p2 || (err == nil) != (err2 == nil) {
			t.Fatalf("Parse is not deterministic: %+v %v, then %+v %v", p, err, p2, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrIgnored) && !errors.Is(err, ErrPing) {
				t.Fatalf("unexpected kind of error: %v", err)
			}
			if p != (Push{}) {
				t.Fatalf("a failed Parse returned %+v", p)
			}
			return
		}
		if p.Provider != provider {
			t.Fatalf("provider %q, want %q", p.Provider, provider)
		}
		switch {
		case p.Ref == "":
			if provider != Generic || p.Branch != "" || p.Tag != "" {
				t.Fatalf("push without ref: %+v", p)
			}
		case p.Branch != "":
			if p.Tag != "" || p.Ref != "refs/heads/"+p.Branch {
				t.Fatalf("branch push %+v", p)
			}
		case p.Tag != "":
			if p.Ref != "refs/tags/"+p.Tag {
				t.Fatalf("tag push %+v", p)
			}
		default:
			t.Fatalf("ref %q names no branch or tag", p.Ref)
		}
		if p.Ref != "" {
			if err := checkRef(p.Ref); err != nil || len(p.Ref) > MaxRefLen {
				t.Fatalf("invalid ref %q accepted: %v", p.Ref, err)
			}
			if strings.ContainsAny(p.Ref, " \t\r\n\x00~^:?*[\\") || strings.Contains(p.Ref, "..") {
				t.Fatalf("ref %q has a forbidden character", p.Ref)
			}
		}
		if p.After != "" {
			if len(p.After) != 40 || strings.Trim(p.After, "0123456789abcdef") != "" || p.After == zeroHash {
				t.Fatalf("invalid hash %q accepted", p.After)
			}
		}
		if len(p.Repo) > MaxRepoLen || !utf8.ValidString(p.Repo) || strings.ContainsAny(p.Repo, "\x00\r\n\x1b") {
			t.Fatalf("invalid repository %q accepted", p.Repo)
		}
	})
}

func FuzzVerify(f *testing.F) {
	body := []byte(githubPush)
	sig := hex.EncodeToString(Sign([]byte(secret), body))
	for _, s := range []struct {
		provider string
		key      string
		header   string
		bearer   bool
		body     string
	}{
		{GitHub, secret, "sha256=" + sig, false, githubPush},
		{GitHub, secret, "SHA256=" + strings.ToUpper(sig), false, githubPush},
		{GitHub, secret, "sha256=" + sig[:63], false, githubPush},
		{GitHub, "", "sha256=", false, ""},
		{Gitea, secret, sig, false, githubPush},
		{Gitea, secret, " " + sig + " ", false, githubPush},
		{GitLab, secret, secret, false, gitlabPush},
		{GitLab, secret, secret[:3], false, gitlabPush},
		{Generic, secret, "Bearer " + secret, true, ""},
		{Generic, secret, "bearer  " + secret + " ", true, ""},
		{Generic, secret, "Basic " + secret, true, ""},
		{Generic, secret, "sha256=" + sig, false, githubPush},
		{Generic, "k", "sha256=" + hex.EncodeToString(Sign([]byte("k"), nil)), false, ""},
	} {
		f.Add(providerIndex(s.provider), []byte(s.key), s.header, s.bearer, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, pi uint8, key []byte, header string, bearer bool, body []byte) {
		provider := fuzzProvider(pi)
		mac := hex.EncodeToString(Sign(key, body))

		// What a host would send always passes.
		good := http.Header{}
		switch provider {
		case GitHub:
			good.Set(headerGitHubSig, "sha256="+mac)
		case Gitea:
			good.Set(headerGiteaSig, mac)
		case GitLab:
			good.Set(headerGitLabTok, string(key))
		case Generic:
			if bearer {
				good.Set(headerAuthorize, "Bearer "+string(key))
			} else {
				good.Set(headerBerthSig, "sha256="+mac)
			}
		}
		err := Verify(provider, key, good, body)
		switch {
		case len(key) == 0:
			if !errors.Is(err, ErrDisabled) {
				t.Fatalf("empty secret: %v", err)
			}
			return
		case provider == Generic && bearer && strings.TrimSpace(string(key)) != string(key):
			// A bearer token with outer spaces cannot be told apart
			// from the header's own.
		case err != nil:
			t.Fatalf("a good credential was refused: %v", err)
		}
		// The signature of a body does not pass for another one.
		if provider != GitLab && !bearer && len(body) > 0 {
			other := append([]byte{}, body...)
			other[0] ^= 1
			if Verify(provider, key, good, other) == nil {
				t.Fatal("a signature passed for another body")
			}
		}

		// A fuzzed header passes only if it is the good credential.
		h := http.Header{}
		var oracle bool
		t32 := strings.TrimSpace(header)
		switch {
		case provider == GitHub:
			h[headerGitHubSig] = []string{header}
			oracle = strings.EqualFold(t32, "sha256="+mac)
		case provider == Gitea:
			h[headerGiteaSig] = []string{header}
			oracle = strings.EqualFold(t32, mac)
		case provider == GitLab:
			h[headerGitLabTok] = []string{header}
			oracle = header == string(key)
		case bearer:
			h[headerAuthorize] = []string{header}
			oracle = len(header) >= 7 && strings.EqualFold(header[:7], "bearer ") && strings.TrimSpace(header[7:]) == string(key)
		default:
			h[headerBerthSig] = []string{header}
			oracle = strings.EqualFold(t32, "sha256="+mac)
		}
		err = Verify(provider, key, h, body)
		if (err == nil) != oracle {
			t.Fatalf("Verify(%s, header %q) = %v, expected to pass: %v", provider, header, err, oracle)
		}
		if err != nil && !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("unexpected kind of error: %v", err)
		}
		// The reason never depends on the secret, so it cannot show it.
		if err != nil {
			other := append([]byte("x"), key...)
			if err2 := Verify(provider, other, h, body); err2 != nil && err2.Error() != err.Error() {
				t.Fatalf("the reason depends on the secret: %q, then %q", err, err2)
			}
		}
	})
}
