// Package agent runs berth on every host of a fleet: it pulls the
// configuration from git, plans and applies it for this host, keeps the
// host converged between revisions (drift included), and tells the other
// agents what it runs over gossip. It reuses the engine and providers
// through a Runner; it adds the loop, git, gossip, an API and metrics.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/agent/gitsync"
	"github.com/berthhq/berth/agent/gossip"
	"github.com/berthhq/berth/agent/metrics"
	"github.com/berthhq/berth/internal/fsync"
)

// Source gives the revisions of the configuration: gitsync.Syncer is one.
type Source interface {
	// Fetch returns the tip of the tracked ref.
	Fetch(ctx context.Context) (gitsync.Revision, error)
	// Verify reports why rev may not be applied, or nil.
	Verify(ctx context.Context, rev gitsync.Revision) error
	// Checkout returns a directory holding the configuration at rev.
	Checkout(ctx context.Context, rev gitsync.Revision) (string, error)
	// Prune drops the snapshots of revisions other than keep.
	Prune(keep ...string) error
}

// Runner plans, and applies when asked, a configuration on this host. The
// berth command implements it with the engine and the providers.
type Runner interface {
	Run(ctx context.Context, req RunRequest) (*Outcome, error)
}

// RunRequest is one plan, or plan and apply, of a configuration directory.
type RunRequest struct {
	Dir string
	// Apply applies the plan when it has changes.
	Apply bool
	// Render asks for the plan as text in Outcome.PlanText.
	Render bool
	// Confine keeps the configuration's file functions inside Dir: the
	// configuration comes from an API caller, who may not read the
	// host's files through a plan.
	Confine bool
}

// Outcome is what a run found and did. A Runner returns an error only for
// a failure that may pass (a provider that cannot start, a lock held);
// a configuration that does not plan is an Outcome with Invalid set.
type Outcome struct {
	// Invalid tells that the configuration did not validate or plan;
	// nothing was applied and Diagnostics says why, with file:line.
	Invalid     bool   `json:"invalid,omitempty"`
	Diagnostics string `json:"diagnostics,omitempty"`
	// Recheck tells, with Invalid, that the configuration loaded but its
	// plan failed, where a cause outside it may pass (a provider's read
	// of the host): the revision is judged again after a while.
	Recheck bool `json:"recheck,omitempty"`
	// Resources counts the instances the configuration places here.
	Resources int `json:"resources"`
	// Owned counts the instances berth owned here before the run.
	Owned int `json:"owned"`
	// Changes lists the addresses the plan changes, with the action.
	Changes              []string `json:"changes,omitempty"`
	Add, Change, Destroy int
	// Failed lists the instances whose apply failed.
	Failed []string `json:"failed,omitempty"`
	// PlanText is the rendered plan, when asked for.
	PlanText string `json:"plan_text,omitempty"`
}

// Fleet is the gossip layer as the agent uses it.
type Fleet interface {
	SetStatus(s gossip.Status)
	AnnounceRevision(ref, hash string)
	Members() []gossip.Member
}

// Status is this host's status, as the API and `berth status` show it.
type Status struct {
	Node         string            `json:"node"`
	Labels       map[string]string `json:"labels"`
	Version      string            `json:"version"`
	Revision     string            `json:"revision"`
	Attempted    string            `json:"attempted"`
	State        string            `json:"state"`
	Resources    int               `json:"resources"`
	Drifted      int               `json:"drifted"`
	Failing      int               `json:"failing"`
	DriftedAddrs []string          `json:"drifted_addrs,omitempty"`
	FailingAddrs []string          `json:"failing_addrs,omitempty"`
	Message      string            `json:"message,omitempty"`
	LastApply    time.Time         `json:"last_apply,omitzero"`
	LastCheck    time.Time         `json:"last_check,omitzero"`
	DriftMode    string            `json:"drift_mode"`
}

// The states of a host.
const (
	StateStarting  = "starting"
	StateSyncing   = "syncing"
	StateConverged = "converged"
	StateDrifted   = "drifted"
	StateFailing   = "failing"
	StateRefused   = "refused"
)

// revRecord is a revision as the agent records it.
type revRecord struct {
	Ref  string    `json:"ref"`
	Hash string    `json:"hash"`
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

func (r *revRecord) rev() gitsync.Revision { return gitsync.Revision{Ref: r.Ref, Hash: r.Hash} }

// record is what the agent keeps across restarts, in
// STATE_DIR/agent/state.json. Refusals are kept in memory only: after a
// restart, perhaps with fixed variables or allowed signers, the tip is
// judged again.
type record struct {
	Applied   *revRecord `json:"applied,omitempty"`
	Attempted *revRecord `json:"attempted,omitempty"`
	// AttemptRefused tells that the attempted revision was refused, so
	// that nothing of it was applied.
	AttemptRefused bool      `json:"attempt_refused,omitempty"`
	LastApply      time.Time `json:"last_apply,omitzero"`
}

// Options are what an Agent is made of besides its configuration.
type Options struct {
	Source  Source
	Runner  Runner
	Metrics *metrics.Registry
	Logger  *slog.Logger
	Version string
	// Idle, when set, is called after every run, when the agent goes
	// back to waiting: it may give memory back to the system.
	Idle func()
}

// Agent is the loop that keeps one host converged.
type Agent struct {
	cfg     *Config
	src     Source
	run     Runner
	met     *metrics.Registry
	log     *slog.Logger
	version string
	idle    func()
	// peers asks other agents for their plans; nil when this agent
	// cannot (no token or no certificates).
	peers *http.Client

	kick  chan struct{}
	drift chan struct{}

	// runMu serialises runs of the runner: syncs, drift checks and plans
	// asked for through the API.
	runMu sync.Mutex

	mu       sync.Mutex
	fleet    Fleet
	rec      record
	st       Status
	refused  map[string]refusal // hash → why it is not applied
	refusal  string             // why the tip of the tracked ref is not applied
	failed   bool               // the last attempt failed and waits for a retry
	failMsg  string             // why it failed
	failAddr []string           // the instances whose apply failed
	// driftMsg and driftAddr say why the last drift correction failed.
	driftMsg  string
	driftAddr []string
	fetchErr  string // why the last fetch failed, "" when it worked
	backoff   time.Duration
	retryAt   time.Time // when a failed attempt is tried again
	seen      map[string]bool
}

// New returns an agent for cfg.
func New(cfg *Config, opts Options) *Agent {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{
		cfg: cfg, src: opts.Source, run: opts.Runner, met: opts.Metrics, log: log, version: opts.Version, idle: opts.Idle,
		kick: make(chan struct{}, 1), drift: make(chan struct{}, 1),
		seen: map[string]bool{}, refused: map[string]refusal{},
	}
	if a.met == nil {
		a.met = metrics.New(nil)
	}
	a.st = Status{Node: cfg.Node.Name, Labels: cfg.Node.Labels, Version: opts.Version, State: StateStarting, DriftMode: cfg.Drift.Mode}
	return a
}

// SetFleet connects the agent to its gossip layer.
func (a *Agent) SetFleet(f Fleet) {
	a.mu.Lock()
	a.fleet = f
	a.mu.Unlock()
	a.publish()
}

// Sync asks for a fetch at once. It never blocks.
func (a *Agent) Sync() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// CheckDrift asks for a drift check at once. It never blocks.
func (a *Agent) CheckDrift() {
	select {
	case a.drift <- struct{}{}:
	default:
	}
}

// Announce spreads word of a revision of ref that this agent has learnt
// of (from a webhook), and syncs.
func (a *Agent) Announce(ref, hash string) {
	if ref != "" && hash != "" && ref == a.trackedRef() {
		a.mu.Lock()
		f, seen := a.fleet, a.seen[hash]
		a.see(hash)
		a.mu.Unlock()
		if f != nil && !seen {
			f.AnnounceRevision(ref, hash)
		}
	}
	a.Sync()
}

// NewRevision is called by gossip when another agent announces a
// revision: an agent tracking that ref fetches at once.
func (a *Agent) NewRevision(ref, hash, from string) {
	if ref != a.trackedRef() {
		return
	}
	a.mu.Lock()
	applied := a.rec.Applied != nil && a.rec.Applied.Hash == hash
	a.see(hash)
	a.mu.Unlock()
	if applied {
		return
	}
	a.log.Info("revision announced", "ref", ref, "hash", hash, "from", from)
	a.Sync()
}

// MemberChanged is called by gossip when a member joins, leaves, dies or
// changes; it updates the membership metrics.
func (a *Agent) MemberChanged(m gossip.Member) {
	a.mu.Lock()
	f := a.fleet
	a.mu.Unlock()
	if f == nil {
		return
	}
	counts := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range f.Members() {
		counts[m.State]++
	}
	a.met.Members(counts)
}

// see notes that hash is known; a.mu is held. The set is bounded: an
// old hash forgotten only costs an announcement again.
func (a *Agent) see(hash string) {
	if len(a.seen) >= 1000 {
		clear(a.seen)
	}
	a.seen[hash] = true
}

// trackedRef is the ref name gossip announcements are about.
func (a *Agent) trackedRef() string {
	r := a.cfg.Repository
	switch {
	case r.Tag != "":
		return r.Tag
	case r.Commit != "":
		return ""
	}
	return r.Branch
}

// Status returns this host's status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.st
	s.Labels = a.cfg.Node.Labels
	return s
}

// recordPath is where the agent keeps its record.
func (a *Agent) recordPath() string { return filepath.Join(a.cfg.StateDir, "agent", "state.json") }

func (a *Agent) load() error {
	b, err := os.ReadFile(a.recordPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read agent record: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("agent record %s is damaged: %w", a.recordPath(), err)
	}
	a.mu.Lock()
	a.rec = r
	if r.Applied != nil {
		a.st.Revision = r.Applied.Name
		a.see(r.Applied.Hash)
		a.met.AppliedRevision(r.Applied.Name)
	}
	if r.Attempted != nil {
		a.st.Attempted = r.Attempted.Name
		if !r.AttemptRefused && (r.Applied == nil || r.Applied.Hash != r.Attempted.Hash) {
			// The last attempt did not complete (the agent stopped in
			// the middle, or it failed): the host is between two
			// revisions. It is retried at once, and no drift check
			// goes back to the applied revision meanwhile.
			a.failed = true
			a.backoff = 2 * time.Second
			a.retryAt = time.Now()
			a.failMsg = fmt.Sprintf("the apply of %s did not complete; retrying", r.Attempted.Name)
		}
	}
	a.st.LastApply = r.LastApply
	a.mu.Unlock()
	return nil
}

// save writes the record atomically; a.mu is held.
func (a *Agent) save() {
	b, err := json.MarshalIndent(a.rec, "", "  ")
	if err != nil {
		return
	}
	p := a.recordPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		a.log.Error("cannot save the agent record", "err", err)
		return
	}
	if err := fsync.WriteFile(p, b, 0o600); err != nil {
		a.log.Error("cannot save the agent record", "err", err)
	}
}

// Run keeps the host converged until ctx ends. It first checks what the
// last applied revision declares (bringing containers back after a host
// reboot), then fetches, and goes on with polls, drift checks, retries
// and triggers.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.load(); err != nil {
		return err
	}
	// After an interrupted apply, checkDrift does nothing (the host is
	// between two revisions, and going back would undo the newer one):
	// the sync retries it.
	a.checkDrift(ctx, "start")
	a.sync(ctx, "start")
	if a.idle != nil {
		a.idle()
	}
	// Polls are jittered like drift checks: agents started together
	// drift apart, so that the first poll after a push comes sooner and
	// the git server is not asked by the whole fleet at once.
	poll := time.NewTimer(a.jitter(a.cfg.Repository.PollInterval))
	defer poll.Stop()
	drift := time.NewTimer(a.jitter(a.cfg.Drift.Interval))
	defer drift.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		a.mu.Lock()
		retry.Stop()
		if a.failed {
			retry.Reset(max(time.Until(a.retryAt), 0))
		}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			a.sync(ctx, "poll")
			poll.Reset(a.jitter(a.cfg.Repository.PollInterval))
		case <-a.kick:
			a.sync(ctx, "trigger")
		case <-retry.C:
			a.sync(ctx, "retry")
			a.mu.Lock()
			if a.failed && !a.retryAt.After(time.Now()) {
				// Whatever the retry met, the next one waits.
				a.retryAt = time.Now().Add(a.jitter(max(a.backoff, 2*time.Second)))
			}
			a.mu.Unlock()
		case <-drift.C:
			a.checkDrift(ctx, "interval")
			drift.Reset(a.jitter(a.cfg.Drift.Interval))
		case <-a.drift:
			a.checkDrift(ctx, "container event")
		}
		if a.idle != nil {
			a.idle()
		}
	}
}

// jitter spreads d by up to a fifth either way, so that a fleet's checks
// do not all fall at once.
func (a *Agent) jitter(d time.Duration) time.Duration {
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread))
}

// sync fetches the tracked ref and applies its tip when it is new.
func (a *Agent) sync(ctx context.Context, reason string) {
	start := time.Now()
	rev, err := a.src.Fetch(ctx)
	a.met.Sync(err == nil, time.Since(start))
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("fetch failed", "err", err)
		a.mu.Lock()
		a.fetchErr = "fetch failed: " + err.Error()
		var pending *revRecord
		if a.failed && reason == "retry" {
			pending = a.rec.Attempted
		}
		a.mu.Unlock()
		a.settle()
		if pending != nil {
			// The repository cannot be reached, but the revision to
			// retry is in the local cache.
			a.process(ctx, pending.rev())
		}
		return
	}
	a.mu.Lock()
	a.fetchErr = ""
	isNew := !a.seen[rev.Hash]
	a.see(rev.Hash)
	f := a.fleet
	applied := a.rec.Applied != nil && a.rec.Applied.Hash == rev.Hash
	ref, refused := a.refused[rev.Hash]
	if refused && !ref.recheck.IsZero() && time.Now().After(ref.recheck) {
		// Judged again: what failed its plan may have passed.
		delete(a.refused, rev.Hash)
		refused = false
	}
	attempted := a.rec.Attempted != nil && a.rec.Attempted.Hash == rev.Hash
	waiting := a.failed && attempted && time.Now().Before(a.retryAt)
	switch {
	case applied:
		// The tip is what this host runs (a force-push may have brought
		// it back): nothing is left to retry or to refuse.
		a.clearFailure()
		a.refusal = ""
	case refused:
		a.refusal = ref.why
		if a.failed && !attempted {
			// The tip moved to a refused revision: the failed one is
			// superseded and is not retried.
			a.clearFailure()
		}
	}
	a.mu.Unlock()
	if isNew && f != nil && rev.Ref != "" {
		f.AnnounceRevision(rev.Ref, rev.Hash)
	}
	if applied || refused || waiting {
		a.settle()
		return
	}
	a.log.Info("new revision", "revision", rev.String(), "reason", reason)
	a.process(ctx, rev)
}

// clearFailure forgets a failed attempt; a.mu is held.
func (a *Agent) clearFailure() {
	a.failed = false
	a.failMsg = ""
	a.failAddr = nil
	a.backoff = 0
	a.retryAt = time.Time{}
}

// process verifies, checks out, plans and applies one revision.
func (a *Agent) process(ctx context.Context, rev gitsync.Revision) {
	rr := &revRecord{Ref: rev.Ref, Hash: rev.Hash, Name: rev.String(), At: time.Now().UTC()}
	a.mu.Lock()
	a.rec.Attempted = rr
	a.rec.AttemptRefused = false
	a.st.Attempted = rr.Name
	a.st.State = StateSyncing
	a.st.Message = ""
	a.save()
	a.mu.Unlock()
	a.publish()

	start := time.Now()
	if err := a.src.Verify(ctx, rev); err != nil {
		if ctx.Err() != nil {
			return
		}
		var ve *gitsync.VerifyError
		if !errors.As(err, &ve) {
			// Not a verdict on the commit (the cache could not be
			// read): tried again.
			a.fail(rr, nil, fmt.Sprintf("cannot verify %s: %v", rr.Name, err))
			a.met.Apply("failed", time.Since(start))
			return
		}
		a.refuse(rr, fmt.Sprintf("commit %s is refused: %v", short(rev.Hash), err), false)
		a.met.Apply("refused", time.Since(start))
		return
	}
	dir, err := a.src.Checkout(ctx, rev)
	if err != nil {
		a.fail(rr, nil, fmt.Sprintf("cannot check out %s: %v", rr.Name, err))
		a.met.Apply("failed", time.Since(start))
		return
	}
	out, err := a.runLocked(ctx, RunRequest{Dir: dir, Apply: true})
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		a.fail(rr, nil, fmt.Sprintf("apply of %s failed: %v", rr.Name, err))
		a.met.Apply("failed", time.Since(start))
	case out.Invalid && ctx.Err() != nil:
		// A plan cut short by the agent stopping says nothing of the
		// revision.
		return
	case out.Invalid:
		a.refuse(rr, fmt.Sprintf("revision %s does not validate; this host keeps running %s:\n%s", rr.Name, a.appliedName(), out.Diagnostics), out.Recheck)
		a.met.Apply("refused", time.Since(start))
	case len(out.Failed) > 0:
		a.fail(rr, out, fmt.Sprintf("apply of %s failed for %s; retrying with backoff:\n%s", rr.Name, strings.Join(out.Failed, ", "), out.Diagnostics))
		a.met.Apply("failed", time.Since(start))
	default:
		a.met.Apply("ok", time.Since(start))
		a.mu.Lock()
		a.rec.Applied = rr
		a.rec.LastApply = time.Now().UTC()
		a.clearFailure()
		a.refusal = ""
		a.st.Revision = rr.Name
		a.st.LastApply = a.rec.LastApply
		a.st.Resources = out.Resources
		a.st.Drifted, a.st.DriftedAddrs = 0, nil
		a.save()
		a.mu.Unlock()
		a.met.AppliedRevision(rr.Name)
		a.log.Info("applied", "revision", rr.Name, "add", out.Add, "change", out.Change, "destroy", out.Destroy)
		if err := a.src.Prune(rev.Hash); err != nil {
			a.log.Warn("cannot prune snapshots", "err", err)
		}
		a.settle()
	}
}

func (a *Agent) appliedName() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec.Applied == nil {
		return "nothing (no revision applied yet)"
	}
	return a.rec.Applied.Name
}

// refuse records that rr is never to be applied.
func (a *Agent) refuse(rr *revRecord, why string, recheck bool) {
	a.log.Error("revision refused", "revision", rr.Name, "reason", why)
	a.mu.Lock()
	// Only the latest refusals matter.
	if len(a.refused) > 50 {
		clear(a.refused)
	}
	r := refusal{why: why}
	if recheck {
		r.recheck = time.Now().Add(a.jitter(maxBackoff))
	}
	a.refused[rr.Hash] = r
	a.refusal = why
	a.rec.AttemptRefused = true
	a.save()
	// A failure of an earlier attempt is superseded by this revision.
	a.clearFailure()
	a.mu.Unlock()
	a.settle()
}

// maxBackoff is the longest wait before a failed apply is tried again.
const maxBackoff = 5 * time.Minute

// refusal is why a revision is not applied, and when it is judged again
// (zero: not before a restart).
type refusal struct {
	why     string
	recheck time.Time
}

// fail records a failed attempt and schedules a retry with exponential
// backoff.
func (a *Agent) fail(rr *revRecord, out *Outcome, why string) {
	a.log.Error("apply failed", "revision", rr.Name, "reason", why)
	a.mu.Lock()
	a.failed = true
	a.refusal = ""
	a.backoff = min(max(2*a.backoff, 2*time.Second), maxBackoff)
	a.retryAt = time.Now().Add(a.jitter(a.backoff))
	a.failMsg = why
	a.failAddr = nil
	if out != nil {
		a.failAddr = out.Failed
		a.st.Resources = out.Resources
	}
	a.mu.Unlock()
	a.settle()
}

// settle computes the state from what is known and publishes it.
func (a *Agent) settle() {
	a.mu.Lock()
	a.st.Message = a.fetchErr
	a.st.FailingAddrs = a.driftAddr
	if a.failed {
		a.st.FailingAddrs = a.failAddr
	}
	a.st.Failing = len(a.st.FailingAddrs)
	switch {
	case a.failed:
		a.st.State = StateFailing
		a.st.Message = a.failMsg
	case a.driftMsg != "":
		a.st.State = StateFailing
		a.st.Message = a.driftMsg
	case a.refusal != "":
		a.st.State = StateRefused
		a.st.Message = a.refusal
	case a.st.Drifted > 0:
		a.st.State = StateDrifted
	case a.rec.Applied == nil:
		a.st.State = StateStarting
	default:
		a.st.State = StateConverged
	}
	a.mu.Unlock()
	a.publish()
}

// publish hands the status to gossip.
func (a *Agent) publish() {
	a.mu.Lock()
	f := a.fleet
	s := a.st
	a.mu.Unlock()
	if f == nil {
		return
	}
	f.SetStatus(s.summary())
}

// summary is the status as gossip carries it, cut to gossip's sizes.
func (s Status) summary() gossip.Status {
	msg := s.Message
	if len(msg) > 500 {
		msg = msg[:497] + "..."
	}
	failing := s.FailingAddrs
	if len(failing) > 20 {
		failing = failing[:20]
	}
	return gossip.Status{
		Node: s.Node, Revision: s.Revision, Attempted: s.Attempted, State: s.State,
		Resources: s.Resources, Drifted: s.Drifted, Failing: s.Failing,
		FailingAddrs: failing, Message: msg, LastApply: s.LastApply,
	}
}

// checkDrift plans the last applied revision again: any change is drift,
// corrected or only reported as the configuration says.
func (a *Agent) checkDrift(ctx context.Context, reason string) {
	a.mu.Lock()
	applied, failing := a.rec.Applied, a.failed
	a.mu.Unlock()
	// While a newer revision waits for a retry, the applied one is not
	// the reference any more: correcting towards it would undo what the
	// newer one did. The retry converges the host.
	if applied == nil || failing {
		return
	}
	dir, err := a.src.Checkout(ctx, applied.rev())
	if err != nil {
		a.log.Warn("drift check: cannot check out the applied revision", "revision", applied.Name, "err", err)
		return
	}
	correct := a.cfg.Drift.Mode == "correct"
	out, err := a.runLocked(ctx, RunRequest{Dir: dir, Apply: correct})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("drift check failed", "err", err)
		}
		return
	}
	if out.Invalid {
		a.log.Error("drift check: the applied revision no longer plans", "revision", applied.Name, "diagnostics", out.Diagnostics)
		return
	}
	corrected := correct && len(out.Changes) > 0 && len(out.Failed) == 0
	a.met.DriftCheck(len(out.Changes), corrected)
	a.mu.Lock()
	a.st.LastCheck = time.Now().UTC()
	a.st.Resources = out.Resources
	switch {
	case len(out.Changes) == 0:
		a.st.Drifted, a.st.DriftedAddrs = 0, nil
		a.driftMsg, a.driftAddr = "", nil
	case correct:
		a.st.Drifted, a.st.DriftedAddrs = 0, nil
		a.driftMsg, a.driftAddr = "", nil
		if len(out.Failed) > 0 {
			a.driftMsg = "drift correction failed:\n" + out.Diagnostics
			a.driftAddr = out.Failed
		}
	default:
		a.st.Drifted, a.st.DriftedAddrs = len(out.Changes), out.Changes
	}
	a.mu.Unlock()
	if len(out.Changes) > 0 {
		a.log.Warn("drift", "reason", reason, "changes", strings.Join(out.Changes, ", "), "corrected", corrected)
	}
	a.settle()
}

// runLocked runs the runner, one run at a time.
func (a *Agent) runLocked(ctx context.Context, req RunRequest) (*Outcome, error) {
	a.runMu.Lock()
	defer a.runMu.Unlock()
	return a.run.Run(ctx, req)
}

// Plan plans dir on this host without applying it.
func (a *Agent) Plan(ctx context.Context, dir string) (*Outcome, error) {
	return a.runLocked(ctx, RunRequest{Dir: dir, Render: true, Confine: true})
}

// Members returns the fleet as gossip knows it, this host included.
func (a *Agent) Members() []gossip.Member {
	a.mu.Lock()
	f := a.fleet
	a.mu.Unlock()
	if f == nil {
		s := a.Status()
		return []gossip.Member{{Name: s.Node, Labels: s.Labels, Version: s.Version, State: "alive", Self: true, Status: s.summary()}}
	}
	ms := f.Members()
	slices.SortFunc(ms, func(x, y gossip.Member) int { return strings.Compare(x.Name, y.Name) })
	return ms
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
