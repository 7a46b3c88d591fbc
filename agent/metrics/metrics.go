// Package metrics holds the Prometheus metrics of the berth agent: its
// syncs, applies, drift checks, applied revision, gossip members and
// webhooks, and the figures of every container on the host, read from
// their cgroups at scrape time. The metrics live on a registry of their
// own, never on the process-wide default one.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// memberStates are the states of gossip members, whose series always
// exist.
func memberStates() []string { return []string{"alive", "suspect", "dead", "left"} }

// Registry is the agent's metrics registry. Its methods are safe for
// concurrent use.
type Registry struct {
	reg *prometheus.Registry

	syncs          *prometheus.CounterVec
	syncDuration   prometheus.Histogram
	applies        *prometheus.CounterVec
	applyDuration  prometheus.Histogram
	driftChecks    prometheus.Counter
	driftDetected  prometheus.Counter
	driftCorrected prometheus.Counter
	revision       *prometheus.GaugeVec
	members        *prometheus.GaugeVec
	webhooks       *prometheus.CounterVec

	mu           sync.Mutex
	rev          string          // the revision label now set
	extraMembers map[string]bool // member states set beyond memberStates
}

// New returns a registry with the agent's metrics, the Go runtime's and
// the process's, and, when src is not nil, those of the containers that
// src lists at every scrape.
func New(src ContainerSource) *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_agent_syncs_total",
			Help: "Git syncs of the agent, by result (ok, error).",
		}, []string{"result"}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_agent_sync_duration_seconds",
			Help:    "Time a git sync took.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_agent_applies_total",
			Help: "Applies of a revision or of a drift correction, by result (ok, failed, refused).",
		}, []string{"result"}),
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_agent_apply_duration_seconds",
			Help:    "Time an apply took, plan included.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		driftChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_agent_drift_checks_total",
			Help: "Drift checks: plans of the applied revision against the live host.",
		}),
		driftDetected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_agent_drift_detected_total",
			Help: "Resource instances that drift checks found drifted.",
		}),
		driftCorrected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_agent_drift_corrections_total",
			Help: "Applies that corrected drift.",
		}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_agent_applied_revision_info",
			Help: "The revision last applied on this host, as a label; always 1.",
		}, []string{"revision"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_agent_gossip_members",
			Help: "Gossip members as this agent sees them, by state.",
		}, []string{"state"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_agent_webhooks_total",
			Help: "Webhook requests, by provider and result (accepted, rejected).",
		}, []string{"provider", "result"}),
		extraMembers: map[string]bool{},
	}
	// The label values known in advance have their series, at zero,
	// from the start.
	for _, v := range []string{"ok", "error"} {
		r.syncs.WithLabelValues(v)
	}
	for _, v := range []string{"ok", "failed", "refused"} {
		r.applies.WithLabelValues(v)
	}
	for _, v := range memberStates() {
		r.members.WithLabelValues(v)
	}
	for _, p := range []string{"github", "gitea", "gitlab", "generic"} {
		for _, v := range []string{"accepted", "rejected"} {
			r.webhooks.WithLabelValues(p, v)
		}
	}
	r.reg.MustRegister(
		r.syncs, r.syncDuration, r.applies, r.applyDuration,
		r.driftChecks, r.driftDetected, r.driftCorrected,
		r.revision, r.members, r.webhooks,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if src != nil {
		r.reg.MustRegister(newContainerCollector(src, scrapeTimeout))
	}
	return r
}

// Gatherer returns the underlying registry, for tests and for callers
// that expose it in another way than Handler.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler returns the /metrics handler. A container source that fails
// does not fail the scrape: the other metrics are served, and the failure
// is counted in promhttp_metric_handler_errors_total.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		Registry:            r.reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// Sync records a git sync that took d.
func (r *Registry) Sync(ok bool, d time.Duration) {
	res := "ok"
	if !ok {
		res = "error"
	}
	r.syncs.WithLabelValues(res).Inc()
	r.syncDuration.Observe(d.Seconds())
}

// Apply records an apply that took d, with result "ok", "failed" or
// "refused" (a revision that did not validate or was not signed). Any
// other result counts as "failed", so that a typo cannot grow the
// metric's label values without bound.
func (r *Registry) Apply(result string, d time.Duration) {
	switch result {
	case "ok", "failed", "refused":
	default:
		result = "failed"
	}
	r.applies.WithLabelValues(result).Inc()
	r.applyDuration.Observe(d.Seconds())
}

// DriftCheck records a drift check that found drifted instances drifted,
// and whether an apply corrected them.
func (r *Registry) DriftCheck(drifted int, corrected bool) {
	r.driftChecks.Inc()
	if drifted > 0 {
		r.driftDetected.Add(float64(drifted))
	}
	if corrected {
		r.driftCorrected.Inc()
	}
}

// AppliedRevision sets the applied revision ("main@sha1:…"), replacing the
// previous one; an empty rev removes it.
func (r *Registry) AppliedRevision(rev string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev == r.rev {
		return
	}
	if r.rev != "" {
		r.revision.DeleteLabelValues(r.rev)
	}
	if rev != "" {
		r.revision.WithLabelValues(rev).Set(1)
	}
	r.rev = rev
}

// Members sets the number of gossip members in each state (alive,
// suspect, dead, left); a state missing from counts is set to 0. Other
// states are kept only while counts names them.
func (r *Registry) Members(counts map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := map[string]bool{}
	for _, s := range memberStates() {
		known[s] = true
		r.members.WithLabelValues(s).Set(float64(counts[s]))
	}
	for s := range r.extraMembers {
		if _, ok := counts[s]; !ok {
			r.members.DeleteLabelValues(s)
			delete(r.extraMembers, s)
		}
	}
	for s, n := range counts {
		if !known[s] {
			r.members.WithLabelValues(s).Set(float64(n))
			r.extraMembers[s] = true
		}
	}
}

// Webhook records a webhook request to provider, accepted or rejected.
// Providers other than github, gitea, gitlab and generic are counted as
// "unknown".
func (r *Registry) Webhook(provider string, accepted bool) {
	switch provider {
	case "github", "gitea", "gitlab", "generic":
	default:
		provider = "unknown"
	}
	res := "accepted"
	if !accepted {
		res = "rejected"
	}
	r.webhooks.WithLabelValues(provider, res).Inc()
}
