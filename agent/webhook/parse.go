package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the fields of a Push.
const (
	// MaxRefLen caps Push.Ref, in bytes.
	MaxRefLen = 255
	// MaxRepoLen caps Push.Repo, in bytes.
	MaxRepoLen = 255
	// hashLen is the length of a SHA-1 commit hash in hex.
	hashLen = 40
)

// Event headers.
const (
	headerGitHubEvent = "X-GitHub-Event"
	headerGiteaEvent  = "X-Gitea-Event"
	headerGitLabEvent = "X-Gitlab-Event"
)

// payload holds the fields of a push payload that berth reads; GitHub and
// Gitea share a shape, GitLab adds checkout_sha and project, the generic
// hook has only ref and after.
type payload struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	HeadCommit *struct {
		ID string `json:"id"`
	} `json:"head_commit"`
	CheckoutSHA *string `json:"checkout_sha"`
	Repository  *struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	Project *struct {
		PathWithNamespace string `json:"path_with_namespace"`
	} `json:"project"`
}

// Parse decodes the push that a provider's hook request describes, with
// the request headers h (event type, content type) and body. It does not
// authenticate the request: call Verify first.
//
// It fails with ErrPing for GitHub's ping event, with ErrIgnored for any
// other event than a push, and with ErrMalformed for a payload that does
// not decode or whose fields are invalid: the ref must be refs/heads/NAME
// or refs/tags/NAME with a name git accepts, the commit hash 40 hex
// digits. After is the pushed commit (for an annotated tag, the commit
// rather than the tag object) and is empty when the ref was deleted.
//
// A generic hook's body is optional: empty, it asks to sync whatever the
// agent tracks (Ref is then empty); otherwise it is a JSON object with
// optional "ref" and "after" members.
func Parse(provider string, h http.Header, body []byte) (Push, error) {
	if !known(provider) {
		return Push{}, fmt.Errorf("%w %q", ErrUnknownProvider, clip(provider))
	}
	if err := event(provider, h); err != nil {
		return Push{}, err
	}
	if provider == GitHub || provider == Gitea {
		var err error
		if body, err = formPayload(h, body); err != nil {
			return Push{}, err
		}
	}
	p := Push{Provider: provider}
	if provider == Generic && len(bytes.TrimSpace(body)) == 0 {
		return p, nil
	}
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return Push{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var pl payload
	if err := json.Unmarshal(body, &pl); err != nil {
		return Push{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p.Ref, p.After = pl.Ref, pl.After
	switch provider {
	case GitHub, Gitea:
		if pl.HeadCommit != nil && pl.HeadCommit.ID != "" {
			p.After = pl.HeadCommit.ID
		}
		if pl.Repository != nil {
			p.Repo = pl.Repository.FullName
		}
	case GitLab:
		if pl.CheckoutSHA != nil && *pl.CheckoutSHA != "" {
			p.After = *pl.CheckoutSHA
		}
		if pl.Project != nil {
			p.Repo = pl.Project.PathWithNamespace
		}
	}
	if p.Ref == "" && provider != Generic {
		return Push{}, fmt.Errorf("%w: no ref", ErrMalformed)
	}
	if p.Ref != "" {
		if err := checkRef(p.Ref); err != nil {
			return Push{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if b, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok {
			p.Branch = b
		} else {
			p.Tag = strings.TrimPrefix(p.Ref, "refs/tags/")
		}
	}
	hash, err := checkHash(p.After)
	if err != nil {
		return Push{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p.After = hash
	if err := checkRepo(p.Repo); err != nil {
		return Push{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return p, nil
}

// event checks the event header of a request: nil for a push.
func event(provider string, h http.Header) error {
	var name string
	var push []string
	switch provider {
	case GitHub:
		name, push = headerGitHubEvent, []string{"push"}
	case Gitea:
		name, push = headerGiteaEvent, []string{"push"}
	case GitLab:
		name, push = headerGitLabEvent, []string{"Push Hook", "Tag Push Hook"}
	default:
		return nil
	}
	ev := strings.TrimSpace(h.Get(name))
	switch {
	case ev == "":
		return fmt.Errorf("%w: missing %s header", ErrMalformed, name)
	case provider == GitHub && ev == "ping":
		return ErrPing
	}
	for _, p := range push {
		if ev == p {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrIgnored, clip(ev))
}

// formPayload returns the JSON of a form-encoded request (GitHub and Gitea
// can send payload=JSON), or body itself.
func formPayload(h http.Header, body []byte) ([]byte, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		return body, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: form: %w", ErrMalformed, err)
	}
	p, ok := v["payload"]
	if !ok || len(p) != 1 {
		return nil, fmt.Errorf("%w: form without one payload field", ErrMalformed)
	}
	return []byte(p[0]), nil
}

// checkRef checks a branch or tag ref with git's rules for ref names
// (git check-ref-format), with a length cap.
func checkRef(ref string) error {
	name, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		name, ok = strings.CutPrefix(ref, "refs/tags/")
	}
	switch {
	case !ok:
		return fmt.Errorf("ref %q is neither refs/heads/ nor refs/tags/", clip(ref))
	case len(ref) > MaxRefLen:
		return fmt.Errorf("ref longer than %d bytes", MaxRefLen)
	case name == "":
		return fmt.Errorf("ref %q names no branch or tag", clip(ref))
	case !utf8.ValidString(ref):
		return fmt.Errorf("ref is not UTF-8")
	case strings.Contains(name, "..") || strings.Contains(name, "@{") || name == "@" ||
		strings.Contains(name, "//") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, "."):
		return fmt.Errorf("invalid ref %q", clip(ref))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return fmt.Errorf("invalid ref %q", clip(ref))
		}
	}
	for c := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(c, ".") || strings.HasSuffix(c, ".lock") {
			return fmt.Errorf("invalid ref %q", clip(ref))
		}
	}
	return nil
}

// checkHash checks a commit hash: empty or 40 hex digits, returned in
// lower case; the all-zero hash of a deleted ref becomes empty.
func checkHash(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	if len(h) != hashLen {
		return "", fmt.Errorf("commit hash %q is not %d hex digits", clip(h), hashLen)
	}
	zero := true
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return "", fmt.Errorf("commit hash %q is not %d hex digits", clip(h), hashLen)
		}
		if c != '0' {
			zero = false
		}
	}
	if zero {
		return "", nil
	}
	return strings.ToLower(h), nil
}

// checkRepo checks a repository name: printable UTF-8, capped.
func checkRepo(repo string) error {
	if len(repo) > MaxRepoLen {
		return fmt.Errorf("repository name longer than %d bytes", MaxRepoLen)
	}
	if !utf8.ValidString(repo) {
		return fmt.Errorf("repository name is not UTF-8")
	}
	for _, r := range repo {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("repository name %q has a non-printable character", clip(repo))
		}
	}
	return nil
}

// clip shortens an outside string for an error message or a log line:
// at most 64 bytes, cut on a rune boundary.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
