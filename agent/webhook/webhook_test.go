package webhook

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

const (
	secret      = "s3cret-of-the-tests"
	wrongSecret = "not-the-secret"
)

// headers returns the headers with which provider's host would send body
// with key, for event ("" for none).
func headers(provider, key, event, body string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	sig := hex.EncodeToString(Sign([]byte(key), []byte(body)))
	switch provider {
	case GitHub:
		h.Set(headerGitHubSig, "sha256="+sig)
		h.Set("X-Hub-Signature", "sha1=ignored")
		h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		h.Set(headerGitHubEvent, event)
	case Gitea:
		h.Set(headerGiteaSig, sig)
		h.Set("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473")
		h.Set(headerGiteaEvent, event)
	case GitLab:
		h.Set(headerGitLabTok, key)
		h.Set(headerGitLabEvent, event)
	case Generic:
		h.Set(headerBerthSig, "sha256="+sig)
	}
	if event == "" {
		h.Del(headerGitHubEvent)
		h.Del(headerGiteaEvent)
		h.Del(headerGitLabEvent)
	}
	return h
}

// without returns h without the named headers.
func without(h http.Header, names ...string) http.Header {
	h = h.Clone()
	for _, n := range names {
		h.Del(n)
	}
	return h
}

// recorder records what a Handler reports.
type recorder struct {
	mu      sync.Mutex
	pushes  []Push
	results []string
}

func (r *recorder) config() Config {
	return Config{
		Secret: []byte(secret),
		OnPush: func(p Push) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.pushes = append(r.pushes, p)
		},
		OnResult: func(provider string, accepted bool) {
			r.mu.Lock()
			defer r.mu.Unlock()
			res := "rejected"
			if accepted {
				res = "accepted"
			}
			r.results = append(r.results, provider+" "+res)
		},
		MaxBody: 8 << 10,
	}
}

// post sends a hook request to h and returns the answer.
func post(t *testing.T, h http.Handler, path string, hdr http.Header, body string) (*http.Response, response) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header = hdr
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	var out response
	if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
	}
	return res, out
}

func TestHandler(t *testing.T) {
	big := `{"ref":"refs/heads/main","pad":"` + strings.Repeat("x", 9<<10) + `"}`
	mainPush := func(provider, repo string) *Push {
		return &Push{Provider: provider, Ref: "refs/heads/main", Branch: "main", After: commitMain, Repo: repo}
	}
	type tc struct {
		name     string
		provider string
		header   http.Header
		body     string
		code     int
		push     *Push  // the push OnPush gets, nil for none
		result   string // what OnResult gets, "" for no call
		errPart  string // part of the error of the answer
	}
	cases := []tc{
		// GitHub
		{"github good", GitHub, headers(GitHub, secret, "push", githubPush), githubPush, 202, mainPush(GitHub, "acme/fleet"), "accepted", ""},
		{"github annotated tag", GitHub, headers(GitHub, secret, "push", githubTagPush), githubTagPush, 202,
			&Push{Provider: GitHub, Ref: "refs/tags/v1.2.0", Tag: "v1.2.0", After: commitTag, Repo: "acme/fleet"}, "accepted", ""},
		{"github deleted branch", GitHub, headers(GitHub, secret, "push", githubDelete), githubDelete, 202,
			&Push{Provider: GitHub, Ref: "refs/heads/feature/old", Branch: "feature/old", Repo: "acme/fleet"}, "accepted", ""},
		{"github ping", GitHub, headers(GitHub, secret, "ping", githubPing), githubPing, 200, nil, "accepted", ""},
		{"github bad signature", GitHub, headers(GitHub, wrongSecret, "push", githubPush), githubPush, 401, nil, "rejected", "signature mismatch"},
		{"github signature of another body", GitHub, headers(GitHub, secret, "push", githubTagPush), githubPush, 401, nil, "rejected", "signature mismatch"},
		{"github missing signature", GitHub, without(headers(GitHub, secret, "push", githubPush), headerGitHubSig), githubPush, 401, nil, "rejected", "missing X-Hub-Signature-256"},
		{"github signature without prefix", GitHub, headers(Gitea, secret, "push", githubPush), githubPush, 401, nil, "rejected", "missing X-Hub-Signature-256"},
		{"github missing event", GitHub, headers(GitHub, secret, "", githubPush), githubPush, 400, nil, "rejected", "missing X-GitHub-Event"},
		{"github wrong event", GitHub, headers(GitHub, secret, "issues", githubPush), githubPush, 202, nil, "accepted", ""},
		{"github oversized", GitHub, headers(GitHub, secret, "push", big), big, 413, nil, "rejected", "too large"},
		{"github malformed json", GitHub, headers(GitHub, secret, "push", `{"ref":`), `{"ref":`, 400, nil, "rejected", "malformed"},
		{"github bad ref", GitHub, headers(GitHub, secret, "push", `{"ref":"refs/pull/1/head"}`), `{"ref":"refs/pull/1/head"}`, 400, nil, "rejected", "neither"},
		// Gitea
		{"gitea good", Gitea, headers(Gitea, secret, "push", giteaPush), giteaPush, 202, mainPush(Gitea, "infra/fleet"), "accepted", ""},
		{"gitea tag", Gitea, headers(Gitea, secret, "push", giteaTagPush), giteaTagPush, 202,
			&Push{Provider: Gitea, Ref: "refs/tags/v2", Tag: "v2", After: commitTag, Repo: "infra/fleet"}, "accepted", ""},
		{"gitea bad signature", Gitea, headers(Gitea, wrongSecret, "push", giteaPush), giteaPush, 401, nil, "rejected", "signature mismatch"},
		{"gitea missing signature", Gitea, without(headers(Gitea, secret, "push", giteaPush), headerGiteaSig), giteaPush, 401, nil, "rejected", "missing X-Gitea-Signature"},
		{"gitea github-style signature", Gitea, headers(GitHub, secret, "push", giteaPush), giteaPush, 401, nil, "rejected", "missing X-Gitea-Signature"},
		{"gitea wrong event", Gitea, headers(Gitea, secret, "issues", giteaPush), giteaPush, 202, nil, "accepted", ""},
		{"gitea missing event", Gitea, headers(Gitea, secret, "", giteaPush), giteaPush, 400, nil, "rejected", "missing X-Gitea-Event"},
		{"gitea oversized", Gitea, headers(Gitea, secret, "push", big), big, 413, nil, "rejected", "too large"},
		{"gitea malformed json", Gitea, headers(Gitea, secret, "push", `["ref"]`), `["ref"]`, 400, nil, "rejected", "malformed"},
		// GitLab
		{"gitlab good", GitLab, headers(GitLab, secret, "Push Hook", gitlabPush), gitlabPush, 202, mainPush(GitLab, "infra/fleet"), "accepted", ""},
		{"gitlab tag", GitLab, headers(GitLab, secret, "Tag Push Hook", gitlabTagPush), gitlabTagPush, 202,
			&Push{Provider: GitLab, Ref: "refs/tags/v1.0.0", Tag: "v1.0.0", After: commitTag, Repo: "infra/fleet"}, "accepted", ""},
		{"gitlab bad token", GitLab, headers(GitLab, wrongSecret, "Push Hook", gitlabPush), gitlabPush, 401, nil, "rejected", "wrong X-Gitlab-Token"},
		{"gitlab token prefix", GitLab, headers(GitLab, secret[:5], "Push Hook", gitlabPush), gitlabPush, 401, nil, "rejected", "wrong X-Gitlab-Token"},
		{"gitlab missing token", GitLab, without(headers(GitLab, secret, "Push Hook", gitlabPush), headerGitLabTok), gitlabPush, 401, nil, "rejected", "missing X-Gitlab-Token"},
		{"gitlab wrong event", GitLab, headers(GitLab, secret, "Merge Request Hook", gitlabMergeRequest), gitlabMergeRequest, 202, nil, "accepted", ""},
		{"gitlab oversized", GitLab, headers(GitLab, secret, "Push Hook", big), big, 413, nil, "rejected", "too large"},
		{"gitlab malformed json", GitLab, headers(GitLab, secret, "Push Hook", `{"ref": "refs/heads/main",}`), `{"ref": "refs/heads/main",}`, 400, nil, "rejected", "malformed"},
		{"gitlab short hash", GitLab, headers(GitLab, secret, "Push Hook", `{"ref":"refs/heads/main","after":"9f2c3b1"}`), `{"ref":"refs/heads/main","after":"9f2c3b1"}`, 400, nil, "rejected", "hex digits"},
		// Generic
		{"generic good signature", Generic, headers(Generic, secret, "", genericPush), genericPush, 202, mainPush(Generic, ""), "accepted", ""},
		{"generic good bearer", Generic, http.Header{"Authorization": {"Bearer " + secret}}, genericPush, 202, mainPush(Generic, ""), "accepted", ""},
		{"generic empty body", Generic, http.Header{"Authorization": {"Bearer " + secret}}, "", 202, &Push{Provider: Generic}, "accepted", ""},
		{"generic tag", Generic, http.Header{"Authorization": {"Bearer " + secret}}, `{"ref":"refs/tags/v3"}`, 202, &Push{Provider: Generic, Ref: "refs/tags/v3", Tag: "v3"}, "accepted", ""},
		{"generic bad signature", Generic, headers(Generic, wrongSecret, "", genericPush), genericPush, 401, nil, "rejected", "signature mismatch"},
		{"generic bad bearer", Generic, http.Header{"Authorization": {"Bearer " + wrongSecret}}, genericPush, 401, nil, "rejected", "wrong bearer"},
		{"generic basic auth", Generic, http.Header{"Authorization": {"Basic " + secret}}, genericPush, 401, nil, "rejected", "not a bearer"},
		{"generic bad signature beside good bearer", Generic, func() http.Header {
			h := headers(Generic, wrongSecret, "", genericPush)
			h.Set("Authorization", "Bearer "+secret)
			return h
		}(), genericPush, 401, nil, "rejected", "signature mismatch"},
		{"generic missing header", Generic, http.Header{}, genericPush, 401, nil, "rejected", "missing"},
		{"generic oversized", Generic, headers(Generic, secret, "", big), big, 413, nil, "rejected", "too large"},
		{"generic malformed json", Generic, headers(Generic, secret, "", "ref=main"), "ref=main", 400, nil, "rejected", "not a JSON object"},
		{"generic bad ref", Generic, headers(Generic, secret, "", `{"ref":"refs/heads/../x"}`), `{"ref":"refs/heads/../x"}`, 400, nil, "rejected", "invalid ref"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec recorder
			h := Handler(rec.config())
			res, out := post(t, h, "/v1/hooks/"+c.provider, c.header, c.body)
			if res.StatusCode != c.code {
				t.Fatalf("status %d, want %d (answer %+v)", res.StatusCode, c.code, out)
			}
			if c.errPart != "" && !strings.Contains(out.Error, c.errPart) {
				t.Errorf("error %q does not say %q", out.Error, c.errPart)
			}
			if c.errPart == "" && out.Error != "" {
				t.Errorf("unexpected error %q", out.Error)
			}
			if strings.Contains(out.Error, secret) {
				t.Errorf("the error shows the secret: %q", out.Error)
			}
			switch {
			case c.push == nil && len(rec.pushes) > 0:
				t.Errorf("OnPush called with %+v", rec.pushes)
			case c.push != nil && (len(rec.pushes) != 1 || rec.pushes[0] != *c.push):
				t.Errorf("OnPush got %+v, want %+v", rec.pushes, *c.push)
			}
			if c.push != nil && (!out.Accepted || out.Ref != c.push.Ref || out.After != c.push.After) {
				t.Errorf("answer %+v for push %+v", out, *c.push)
			}
			if c.code >= 400 && out.Accepted {
				t.Errorf("refusal %d says accepted", c.code)
			}
			want := []string{c.provider + " " + c.result}
			if len(rec.results) != 1 || rec.results[0] != want[0] {
				t.Errorf("OnResult got %q, want %q", rec.results, want)
			}
		})
	}
}

func TestHandlerRoutes(t *testing.T) {
	var rec recorder
	h := Handler(rec.config())
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/v1/hooks/github", http.StatusMethodNotAllowed},
		{http.MethodPut, "/v1/hooks/generic", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/hooks/bitbucket", http.StatusNotFound},
		{http.MethodPost, "/v1/hooks/GitHub", http.StatusNotFound},
		{http.MethodPost, "/v1/hooks/github/extra", http.StatusNotFound},
		{http.MethodPost, "/v1/hooks/", http.StatusNotFound},
		{http.MethodPost, "/v2/hooks/github", http.StatusNotFound},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(githubPush))
		req.Header = headers(GitHub, secret, "push", githubPush)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.code)
		}
		if c.code == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "POST" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, w.Header().Get("Allow"))
		}
	}
	if len(rec.pushes) != 0 || len(rec.results) != 0 {
		t.Errorf("routing failures reported %v %v", rec.pushes, rec.results)
	}
}

// With no secret every hook is refused with 404, even one that an empty
// key signs correctly.
func TestHandlerDisabled(t *testing.T) {
	var rec recorder
	cfg := rec.config()
	cfg.Secret = nil
	h := Handler(cfg)
	for _, p := range Providers() {
		hdr := headers(p, "", "push", genericPush)
		hdr.Set("Authorization", "Bearer ")
		res, _ := post(t, h, "/v1/hooks/"+p, hdr, genericPush)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
	}
	if len(rec.pushes) != 0 || len(rec.results) != 0 {
		t.Errorf("disabled hooks reported %v %v", rec.pushes, rec.results)
	}
}

// A real server: the body limit holds for a chunked body too, nil
// callbacks and logger are fine, and concurrent hooks each get through.
func TestHandlerServer(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(Handler(Config{Secret: []byte(secret), MaxBody: 1024, OnPush: func(Push) { mu.Lock(); n++; mu.Unlock() }}))
	t.Cleanup(srv.Close)

	send := func(body io.Reader, hdr http.Header) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/hooks/github", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = hdr
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	big := strings.Repeat(" ", 2048) + `{"ref":"refs/heads/main"}`
	// io.MultiReader hides the length: the request is chunked.
	if code := send(io.MultiReader(strings.NewReader(big)), headers(GitHub, secret, "push", big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked oversized body: %d", code)
	}
	small := `{"ref":"refs/heads/main","after":"` + commitMain + `"}`
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if code := send(strings.NewReader(small), headers(GitHub, secret, "push", small)); code != http.StatusAccepted {
				t.Errorf("push: %d", code)
			}
		})
	}
	wg.Wait()
	if n != 8 {
		t.Errorf("%d pushes, want 8", n)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(githubPush)
	sig := hex.EncodeToString(Sign([]byte(secret), body))
	for _, c := range []struct {
		name     string
		provider string
		secret   string
		header   http.Header
		want     error
	}{
		{"github ok", GitHub, secret, http.Header{"X-Hub-Signature-256": {"sha256=" + sig}}, nil},
		{"github upper-case hex", GitHub, secret, http.Header{"X-Hub-Signature-256": {"sha256=" + strings.ToUpper(sig)}}, nil},
		{"github truncated", GitHub, secret, http.Header{"X-Hub-Signature-256": {"sha256=" + sig[:62]}}, ErrUnauthorized},
		{"github not hex", GitHub, secret, http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("zz", 32)}}, ErrUnauthorized},
		{"github sha1 only", GitHub, secret, http.Header{"X-Hub-Signature": {"sha1=" + sig[:40]}}, ErrUnauthorized},
		{"github repeated", GitHub, secret, http.Header{"X-Hub-Signature-256": {"sha256=" + sig, "sha256=" + sig}}, ErrUnauthorized},
		{"github huge header", GitHub, secret, http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("a", 1<<16)}}, ErrUnauthorized},
		{"gitea ok", Gitea, secret, http.Header{"X-Gitea-Signature": {sig}}, nil},
		{"gitea prefixed", Gitea, secret, http.Header{"X-Gitea-Signature": {"sha256=" + sig}}, ErrUnauthorized},
		{"gitlab ok", GitLab, secret, http.Header{"X-Gitlab-Token": {secret}}, nil},
		{"gitlab longer", GitLab, secret, http.Header{"X-Gitlab-Token": {secret + "x"}}, ErrUnauthorized},
		{"gitlab empty", GitLab, secret, http.Header{"X-Gitlab-Token": {""}}, ErrUnauthorized},
		{"generic signature", Generic, secret, http.Header{"X-Berth-Signature": {"sha256=" + sig}}, nil},
		{"generic bearer", Generic, secret, http.Header{"Authorization": {"bearer " + secret}}, nil},
		{"generic bearer empty", Generic, secret, http.Header{"Authorization": {"Bearer "}}, ErrUnauthorized},
		{"generic empty signature", Generic, secret, http.Header{"X-Berth-Signature": {""}, "Authorization": {"Bearer " + secret}}, ErrUnauthorized},
		{"empty secret", GitHub, "", http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(Sign(nil, body))}}, ErrDisabled},
		{"empty secret gitlab", GitLab, "", http.Header{"X-Gitlab-Token": {""}}, ErrDisabled},
		{"unknown provider", "bitbucket", secret, http.Header{}, ErrUnknownProvider},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.provider, []byte(c.secret), c.header, body)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	form := url.Values{"payload": {githubPush}}.Encode()
	for _, c := range []struct {
		name     string
		provider string
		header   http.Header
		body     string
		want     Push
		err      error
	}{
		{"github form", GitHub, http.Header{"X-Github-Event": {"push"}, "Content-Type": {"application/x-www-form-urlencoded"}}, form,
			Push{Provider: GitHub, Ref: "refs/heads/main", Branch: "main", After: commitMain, Repo: "acme/fleet"}, nil},
		{"github form without payload", GitHub, http.Header{"X-Github-Event": {"push"}, "Content-Type": {"application/x-www-form-urlencoded"}}, "x=1", Push{}, ErrMalformed},
		{"github upper-case hash", GitHub, http.Header{"X-Github-Event": {"push"}}, `{"ref":"refs/heads/main","after":"` + strings.ToUpper(commitMain) + `"}`,
			Push{Provider: GitHub, Ref: "refs/heads/main", Branch: "main", After: commitMain}, nil},
		{"github ping", GitHub, http.Header{"X-Github-Event": {"ping"}}, githubPing, Push{}, ErrPing},
		{"gitea ping is ignored", Gitea, http.Header{"X-Gitea-Event": {"ping"}}, githubPing, Push{}, ErrIgnored},
		{"github no ref", GitHub, http.Header{"X-Github-Event": {"push"}}, `{"after":"` + commitMain + `"}`, Push{}, ErrMalformed},
		{"github null", GitHub, http.Header{"X-Github-Event": {"push"}}, `null`, Push{}, ErrMalformed},
		{"github trailing data", GitHub, http.Header{"X-Github-Event": {"push"}}, genericPush + `{}`, Push{}, ErrMalformed},
		{"github sha256 repository", GitHub, http.Header{"X-Github-Event": {"push"}}, `{"ref":"refs/heads/main","after":"` + strings.Repeat("ab", 32) + `"}`, Push{}, ErrMalformed},
		{"github control in repo", GitHub, http.Header{"X-Github-Event": {"push"}}, `{"ref":"refs/heads/main","repository":{"full_name":"a\u001b[31mb"}}`, Push{}, ErrMalformed},
		{"github long repo", GitHub, http.Header{"X-Github-Event": {"push"}}, `{"ref":"refs/heads/main","repository":{"full_name":"` + strings.Repeat("a", MaxRepoLen+1) + `"}}`, Push{}, ErrMalformed},
		{"gitlab event of another case", GitLab, http.Header{"X-Gitlab-Event": {"push hook"}}, gitlabPush, Push{}, ErrIgnored},
		{"gitlab null checkout_sha", GitLab, http.Header{"X-Gitlab-Event": {"Push Hook"}}, `{"ref":"refs/heads/gone","after":"` + zeroHash + `","checkout_sha":null}`,
			Push{Provider: GitLab, Ref: "refs/heads/gone", Branch: "gone"}, nil},
		{"generic spaces only", Generic, nil, " \n\t", Push{Provider: Generic}, nil},
		{"generic empty object", Generic, nil, "{}", Push{Provider: Generic}, nil},
		{"generic after only", Generic, nil, `{"after":"` + commitMain + `"}`, Push{Provider: Generic, After: commitMain}, nil},
		{"generic unknown fields", Generic, nil, `{"ref":"refs/heads/x","by":"ci"}`, Push{Provider: Generic, Ref: "refs/heads/x", Branch: "x"}, nil},
		{"generic wrong type", Generic, nil, `{"ref":1}`, Push{}, ErrMalformed},
		{"unknown provider", "svn", nil, genericPush, Push{}, ErrUnknownProvider},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.provider, c.header, []byte(c.body))
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("Parse: %v, want %v", err, c.err)
			}
			if got != c.want {
				t.Errorf("Parse: %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestCheckRef(t *testing.T) {
	long := "refs/heads/" + strings.Repeat("a", MaxRefLen-len("refs/heads/"))
	for _, c := range []struct {
		ref string
		ok  bool
	}{
		{"refs/heads/main", true},
		{"refs/heads/feature/x-1.2", true},
		{"refs/tags/v1.0.0", true},
		{"refs/heads/ünïcode", true},
		{long, true},
		{long + "a", false},
		{"refs/heads/", false},
		{"refs/tags/", false},
		{"refs/pull/1/head", false},
		{"refs/remotes/origin/main", false},
		{"main", false},
		{"refs/heads/a..b", false},
		{"refs/heads/a b", false},
		{"refs/heads/a~1", false},
		{"refs/heads/a^", false},
		{"refs/heads/a:b", false},
		{"refs/heads/a?", false},
		{"refs/heads/a*", false},
		{"refs/heads/a[", false},
		{"refs/heads/a\\b", false},
		{"refs/heads/a\x00b", false},
		{"refs/heads/a\x7f", false},
		{"refs/heads/a@{1}", false},
		{"refs/heads/@", false},
		{"refs/heads/a//b", false},
		{"refs/heads/a/", false},
		{"refs/heads/a.", false},
		{"refs/heads/.hidden", false},
		{"refs/heads/x/.y", false},
		{"refs/heads/x.lock", false},
		{"refs/heads/x.lock/y", false},
		{"refs/heads/\xff", false},
	} {
		if err := checkRef(c.ref); (err == nil) != c.ok {
			t.Errorf("checkRef(%q) = %v, want ok %v", c.ref, err, c.ok)
		}
	}
}

// A long or binary event name is clipped in the error.
func TestIgnoredEventClipped(t *testing.T) {
	_, err := Parse(GitHub, http.Header{"X-Github-Event": {strings.Repeat("é", 100)}}, nil)
	if !errors.Is(err, ErrIgnored) {
		t.Fatal(err)
	}
	if len(err.Error()) > 120 || !bytes.Contains([]byte(err.Error()), []byte("…")) {
		t.Errorf("error not clipped: %q", err)
	}
}
