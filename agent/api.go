package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/agent/gossip"
)

// HostPlan is one host's answer to a plan request.
type HostPlan struct {
	Node   string            `json:"node"`
	Labels map[string]string `json:"labels,omitempty"`
	// Targeted tells that the configuration places something on the
	// host, or that berth owns something there it would destroy.
	Targeted    bool     `json:"targeted"`
	Add         int      `json:"add"`
	Change      int      `json:"change"`
	Destroy     int      `json:"destroy"`
	Changes     []string `json:"changes,omitempty"`
	Text        string   `json:"text,omitempty"`
	Invalid     bool     `json:"invalid,omitempty"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	// Error says why the host could not plan at all.
	Error string `json:"error,omitempty"`
	// Unreachable tells that gossip sees the host dead or suspect: it
	// was not asked.
	Unreachable bool `json:"unreachable,omitempty"`
}

// HasChanges reports whether applying the plan would change the host.
func (p HostPlan) HasChanges() bool { return p.Add+p.Change+p.Destroy > 0 }

// FleetPlan is the answer to a fleet plan request.
type FleetPlan struct {
	Hosts []HostPlan `json:"hosts"`
}

// MemberView is one member of the fleet as the API shows it.
type MemberView struct {
	Name    string            `json:"name"`
	Addr    string            `json:"addr"`
	Labels  map[string]string `json:"labels"`
	Version string            `json:"version"`
	APIAddr string            `json:"api_addr,omitempty"`
	State   string            `json:"state"`
	Self    bool              `json:"self,omitempty"`
	Status  StatusView        `json:"status"`
}

// StatusView is a host's status as gossip carries it.
type StatusView struct {
	Revision     string    `json:"revision"`
	Attempted    string    `json:"attempted"`
	State        string    `json:"state"`
	Resources    int       `json:"resources"`
	Drifted      int       `json:"drifted"`
	Failing      int       `json:"failing"`
	FailingAddrs []string  `json:"failing_addrs,omitempty"`
	Message      string    `json:"message,omitempty"`
	LastApply    time.Time `json:"last_apply,omitzero"`
}

// FleetView is the answer of GET /v1/fleet.
type FleetView struct {
	Members []MemberView `json:"members"`
}

// viewOf is a gossiped status as the API shows it.
func viewOf(s gossip.Status) StatusView {
	return StatusView{
		Revision: s.Revision, Attempted: s.Attempted, State: s.State, Resources: s.Resources,
		Drifted: s.Drifted, Failing: s.Failing, FailingAddrs: s.FailingAddrs, Message: s.Message, LastApply: s.LastApply,
	}
}

// apiServer serves the agent's API.
type apiServer struct {
	a      *Agent
	hooks  http.Handler
	client *http.Client
}

// Handler returns the agent's API. hooks, when not nil, serves
// /v1/hooks/. The handler does no authentication: listeners wrap it (see
// RequireToken).
func (a *Agent) Handler(hooks http.Handler) http.Handler {
	s := &apiServer{a: a, hooks: hooks, client: a.peers}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/fleet", s.fleet)
	mux.HandleFunc("POST /v1/sync", s.sync)
	mux.HandleFunc("POST /v1/plan", s.plan)
	mux.HandleFunc("POST /v1/fleet/plan", s.fleetPlan)
	if hooks != nil {
		mux.Handle("/v1/hooks/", hooks)
	}
	return mux
}

// RequireToken wraps h so that every request but webhooks (which carry
// their own signature) must carry `Authorization: Bearer token`.
func RequireToken(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/hooks/") {
			h.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required: give the agent's API token with --token-file or BERTH_AGENT_TOKEN"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *apiServer) health(w http.ResponseWriter, r *http.Request) {
	st := s.a.Status()
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": st.Node, "version": st.Version})
}

func (s *apiServer) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.a.Status())
}

func (s *apiServer) fleet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.a.FleetView())
}

// FleetView returns the fleet as this agent sees it; its own entry shows
// its full local status.
func (a *Agent) FleetView() FleetView {
	var v FleetView
	self := a.Status()
	for _, m := range a.Members() {
		mv := MemberView{
			Name: m.Name, Addr: m.Addr, Labels: m.Labels, Version: m.Version, APIAddr: m.APIAddr, State: m.State, Self: m.Self,
			Status: viewOf(m.Status),
		}
		if m.Self {
			// The full local status: gossip carries a shortened one.
			mv.Status = viewOf(self.summary())
			mv.Status.Message = self.Message
			mv.Status.FailingAddrs = self.FailingAddrs
		}
		if mv.Labels == nil {
			mv.Labels = map[string]string{}
		}
		v.Members = append(v.Members, mv)
	}
	return v
}

func (s *apiServer) sync(w http.ResponseWriter, r *http.Request) {
	s.a.Sync()
	writeJSON(w, http.StatusAccepted, map[string]bool{"triggered": true})
}

// readBundle unpacks the request's configuration bundle into a new
// temporary directory under the state directory.
func (s *apiServer) readBundle(w http.ResponseWriter, r *http.Request) (string, []byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBundle))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("the bundle is larger than %d MiB or was cut: %v", MaxBundle>>20, err)})
		return "", nil, false
	}
	base := s.a.cfg.StateDir + "/agent/plans"
	if err := os.MkdirAll(base, 0o700); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": fmt.Sprintf("cannot create the plan directory: %v; check that the agent can write its state directory", err)})
		return "", nil, false
	}
	dir, err := os.MkdirTemp(base, "plan-")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return "", nil, false
	}
	if err := ReadBundle(bytes.NewReader(body), dir); err != nil {
		os.RemoveAll(dir)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return "", nil, false
	}
	return dir, body, true
}

func (s *apiServer) plan(w http.ResponseWriter, r *http.Request) {
	dir, _, ok := s.readBundle(w, r)
	if !ok {
		return
	}
	defer os.RemoveAll(dir)
	writeJSON(w, http.StatusOK, s.a.planHere(r.Context(), dir))
}

// planHere plans dir on this host.
func (a *Agent) planHere(ctx context.Context, dir string) HostPlan {
	st := a.Status()
	hp := HostPlan{Node: st.Node, Labels: st.Labels}
	out, err := a.Plan(ctx, dir)
	if err != nil {
		hp.Error = err.Error()
		return hp
	}
	hp.Targeted = out.Resources > 0 || out.Owned > 0 || out.Invalid
	hp.Add, hp.Change, hp.Destroy = out.Add, out.Change, out.Destroy
	hp.Changes = out.Changes
	hp.Text = out.PlanText
	hp.Invalid = out.Invalid
	hp.Diagnostics = out.Diagnostics
	return hp
}

func (s *apiServer) fleetPlan(w http.ResponseWriter, r *http.Request) {
	dir, body, ok := s.readBundle(w, r)
	if !ok {
		return
	}
	defer os.RemoveAll(dir)
	ctx := r.Context()
	var members []gossip.Member
	for _, m := range s.a.Members() {
		// A host that left the fleet is not part of it any more.
		if m.State != "left" {
			members = append(members, m)
		}
	}
	plans := make([]HostPlan, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.Self {
			wg.Add(1)
			go func() {
				defer wg.Done()
				plans[i] = s.a.planHere(ctx, dir)
			}()
			continue
		}
		plans[i] = HostPlan{Node: m.Name, Labels: m.Labels}
		switch {
		case m.State != "alive":
			plans[i].Unreachable = true
			plans[i].Error = fmt.Sprintf("the host is %s: not asked", m.State)
			continue
		case m.APIAddr == "":
			plans[i].Error = "the host's agent has no TCP API (api listen): no plan"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			plans[i] = s.remotePlan(ctx, m, body)
		}()
	}
	wg.Wait()
	sort.Slice(plans, func(i, j int) bool { return plans[i].Node < plans[j].Node })
	writeJSON(w, http.StatusOK, FleetPlan{Hosts: plans})
}

// remotePlan asks another agent for its plan of the bundle.
func (s *apiServer) remotePlan(ctx context.Context, m gossip.Member, bundle []byte) HostPlan {
	hp := HostPlan{Node: m.Name, Labels: m.Labels}
	if s.client == nil {
		hp.Error = "this agent cannot call other agents: set api tls_cert_file (or ca_file) and token_file"
		return hp
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+m.APIAddr+"/v1/plan", bytes.NewReader(bundle))
	if err != nil {
		hp.Error = err.Error()
		return hp
	}
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+s.a.cfg.API.Token)
	resp, err := s.client.Do(req)
	if err != nil {
		hp.Error = fmt.Sprintf("ask %s: %v; is that host's agent running, with its api listen reachable from this agent?", m.APIAddr, err)
		return hp
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		hp.Error = fmt.Sprintf("ask %s: %v", m.APIAddr, err)
		return hp
	}
	if resp.StatusCode != http.StatusOK {
		hp.Error = fmt.Sprintf("ask %s: %s: %s", m.APIAddr, resp.Status, strings.TrimSpace(string(b)))
		return hp
	}
	if err := json.Unmarshal(b, &hp); err != nil {
		hp.Error = fmt.Sprintf("ask %s: bad answer: %v", m.APIAddr, err)
	}
	// The member is who gossip says it is, whatever its answer claims.
	hp.Node, hp.Labels, hp.Unreachable = m.Name, m.Labels, false
	return hp
}

// peerClient is the HTTPS client used to ask other agents, trusting the
// configured CA and the certificates the agent serves with. It is nil
// when the agent has no token to present.
func peerClient(api APIConfig) (*http.Client, error) {
	if api.Token == "" || (api.CAFile == "" && api.CertFile == "") {
		return nil, nil
	}
	var files []string
	for _, f := range []string{api.CAFile, api.CertFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	pool, err := certPool(files...)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
	}}, nil
}

// certPool reads PEM certificates from files; each must hold one.
func certPool(files ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read certificates: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s holds no PEM certificate", f)
		}
	}
	return pool, nil
}
