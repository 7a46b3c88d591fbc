// Package webhook receives the push webhooks of git hosts (GitHub, Gitea,
// GitLab and a generic one for scripts and CI) and turns them into Push
// values that make the agent sync at once.
//
// Every request is authenticated before its payload is read: an HMAC-SHA256
// signature of the body or a shared token, compared in constant time. A
// Handler with no secret serves nothing, so unauthenticated hooks are never
// accepted.
package webhook

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
)

// DefaultMaxBody is the largest body a Handler reads unless Config.MaxBody
// says otherwise.
const DefaultMaxBody = 1 << 20

// Push is a push that a webhook reported.
type Push struct {
	// Provider is the provider whose path the hook came to: github, gitea,
	// gitlab or generic.
	Provider string
	// Ref is the full ref pushed, "refs/heads/main" or "refs/tags/v1";
	// empty for a generic hook without a body, which means "sync whatever
	// you track".
	Ref string
	// Branch or Tag is the ref's short name, the other one empty.
	Branch string
	Tag    string
	// After is the new commit, 40 lower-case hex digits, or empty when
	// the hook did not say or the ref was deleted.
	After string
	// Repo is the repository's name at the git host ("owner/name"), for
	// logs; it may be empty.
	Repo string
}

// Config configures a Handler.
type Config struct {
	// Secret is the shared secret: the HMAC key of github, gitea and
	// generic signatures, the token of gitlab and the bearer token of
	// generic. Empty, every hook path answers 404.
	Secret []byte
	// OnPush is called with every accepted push, on the request's
	// goroutine: it must return quickly (hand the push over, do not sync
	// in it). It may be nil.
	OnPush func(Push)
	// OnResult is called once for every request to a known provider's
	// path while hooks are enabled: accepted when it was authenticated
	// and well formed (a push, a ping or an ignored event), not accepted
	// when it was refused (401, 400, 413). It may be nil.
	OnResult func(provider string, accepted bool)
	// Logger receives a line per request; nil discards them.
	Logger *slog.Logger
	// MaxBody caps the request body, in bytes; 0 means DefaultMaxBody.
	MaxBody int64
}

// response is the JSON body of every answer.
type response struct {
	Accepted bool   `json:"accepted"`
	Ref      string `json:"ref,omitempty"`
	After    string `json:"after,omitempty"`
	Event    string `json:"event,omitempty"`
	Ignored  bool   `json:"ignored,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Handler returns the handler of POST /v1/hooks/{github|gitea|gitlab|generic}.
// It answers 202 with {"accepted":true,"ref":...} to an accepted push,
// 200 to a GitHub ping, 202 with "ignored" to other events, 401 to a bad
// or missing signature or token, 400 to a malformed payload, 413 to a
// body over MaxBody, 404 to an unknown provider or when Secret is empty,
// and 405 to other methods.
func Handler(cfg Config) http.Handler {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hooks/{provider}", h.serve)
	return mux
}

// handler serves the hook paths.
type handler struct {
	cfg Config
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	provider := r.PathValue("provider")
	if !known(provider) || len(h.cfg.Secret) == 0 {
		http.NotFound(w, r)
		return
	}
	log := h.cfg.Logger.With("provider", provider, "remote", r.RemoteAddr)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.refuse(w, log, provider, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		h.refuse(w, log, provider, http.StatusBadRequest, "reading the body failed")
		return
	}
	if err := Verify(provider, h.cfg.Secret, r.Header, body); err != nil {
		h.refuse(w, log, provider, http.StatusUnauthorized, err.Error())
		return
	}
	p, err := Parse(provider, r.Header, body)
	switch {
	case errors.Is(err, ErrPing):
		h.result(provider, true)
		log.Info("webhook ping")
		reply(w, http.StatusOK, response{Accepted: true, Event: "ping"})
		return
	case errors.Is(err, ErrIgnored):
		h.result(provider, true)
		log.Debug("webhook event ignored", "reason", err.Error())
		reply(w, http.StatusAccepted, response{Accepted: true, Ignored: true})
		return
	case err != nil:
		h.refuse(w, log, provider, http.StatusBadRequest, err.Error())
		return
	}
	h.result(provider, true)
	log.Info("webhook push", "ref", p.Ref, "after", p.After, "repo", p.Repo)
	if h.cfg.OnPush != nil {
		h.cfg.OnPush(p)
	}
	reply(w, http.StatusAccepted, response{Accepted: true, Ref: p.Ref, After: p.After})
}

// refuse answers a refused request with code and a short reason.
func (h *handler) refuse(w http.ResponseWriter, log *slog.Logger, provider string, code int, reason string) {
	h.result(provider, false)
	log.Warn("webhook refused", "status", code, "reason", reason)
	reply(w, code, response{Error: reason})
}

// result reports the outcome of a request to OnResult.
func (h *handler) result(provider string, accepted bool) {
	if h.cfg.OnResult != nil {
		h.cfg.OnResult(provider, accepted)
	}
}

// reply writes a JSON answer.
func reply(w http.ResponseWriter, code int, r response) {
	b, _ := json.Marshal(r)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
