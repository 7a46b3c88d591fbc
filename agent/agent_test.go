package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/agent/gitsync"
	"github.com/berthhq/berth/agent/gossip"
)

// fakeSource serves revisions from memory.
type fakeSource struct {
	mu      sync.Mutex
	tip     gitsync.Revision
	bad     map[string]string // hash → verification failure
	fetches int
}

func (s *fakeSource) set(hash string) {
	s.mu.Lock()
	s.tip = gitsync.Revision{Ref: "main", Hash: hash}
	s.mu.Unlock()
}

func (s *fakeSource) Fetch(ctx context.Context) (gitsync.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	if s.tip.Hash == "" {
		return s.tip, errors.New("empty repository")
	}
	return s.tip, nil
}

func (s *fakeSource) Verify(ctx context.Context, rev gitsync.Revision) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if why, ok := s.bad[rev.Hash]; ok {
		return &gitsync.VerifyError{Commit: rev.Hash, Failure: gitsync.NotSigned, Reason: why}
	}
	return nil
}

func (s *fakeSource) Checkout(ctx context.Context, rev gitsync.Revision) (string, error) {
	return "/snap/" + rev.Hash, nil
}

func (s *fakeSource) Prune(keep ...string) error { return nil }

// fakeRunner plays a host: each snapshot directory names a revision,
// whose behaviour the test sets.
type fakeRunner struct {
	mu      sync.Mutex
	invalid map[string]bool
	fail    map[string]int // revision → applies that fail before one succeeds
	drift   []string       // changes a plan finds in the applied revision
	applied []string       // directories applied, in order
	plans   int
	recheck bool // invalid plans may pass later
}

func (r *fakeRunner) Run(ctx context.Context, req RunRequest) (*Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plans++
	hash := strings.TrimPrefix(req.Dir, "/snap/")
	out := &Outcome{Resources: 2}
	if r.invalid[hash] {
		out.Invalid = true
		out.Recheck = r.recheck
		out.Diagnostics = "Error: Unsupported argument\n\n  on main.hcl line 3"
		return out, nil
	}
	current := len(r.applied) > 0 && r.applied[len(r.applied)-1] == hash
	if current {
		out.Changes = append(out.Changes, r.drift...)
	} else {
		out.Changes = []string{"file.a"}
	}
	if !req.Apply || len(out.Changes) == 0 {
		return out, nil
	}
	if r.fail[hash] > 0 {
		r.fail[hash]--
		out.Failed = []string{"file.a"}
		out.Diagnostics = "Error: disk full"
		return out, nil
	}
	if current {
		r.drift = nil
	}
	r.applied = append(r.applied, hash)
	return out, nil
}

func (r *fakeRunner) appliedList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.applied...)
}

// fakeFleet records what the agent tells gossip.
type fakeFleet struct {
	mu        sync.Mutex
	statuses  []gossip.Status
	announced []string
}

func (f *fakeFleet) SetStatus(s gossip.Status) {
	f.mu.Lock()
	f.statuses = append(f.statuses, s)
	f.mu.Unlock()
}

func (f *fakeFleet) AnnounceRevision(ref, hash string) {
	f.mu.Lock()
	f.announced = append(f.announced, ref+"@"+hash)
	f.mu.Unlock()
}

func (f *fakeFleet) Members() []gossip.Member { return nil }

func (f *fakeFleet) last() gossip.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.statuses) == 0 {
		return gossip.Status{}
	}
	return f.statuses[len(f.statuses)-1]
}

func hash(c byte) string { return strings.Repeat(string(c), 40) }

func testConfig(t *testing.T, mode string) *Config {
	return &Config{
		Node:       NodeConfig{Name: "h1", Labels: map[string]string{"role": "web"}},
		StateDir:   t.TempDir(),
		Repository: RepositoryConfig{URL: "file:///repo", Branch: "main", PollInterval: time.Hour},
		Drift:      DriftConfig{Interval: time.Hour, Mode: mode},
	}
}

type rig struct {
	a     *Agent
	src   *fakeSource
	run   *fakeRunner
	fleet *fakeFleet
	ctx   context.Context
}

func newRig(t *testing.T, mode string) *rig {
	cfg := testConfig(t, mode)
	r := &rig{
		src:   &fakeSource{bad: map[string]string{}},
		run:   &fakeRunner{invalid: map[string]bool{}, fail: map[string]int{}},
		fleet: &fakeFleet{},
		ctx:   context.Background(),
	}
	r.a = New(cfg, Options{Source: r.src, Runner: r.run, Version: "test"})
	r.a.SetFleet(r.fleet)
	return r
}

func TestAppliesNewRevisionAndRecordsIt(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	st := r.a.Status()
	if st.State != StateConverged || st.Revision != "main@sha1:"+hash('a') {
		t.Fatalf("status = %+v, want converged at a", st)
	}
	if got := r.run.appliedList(); len(got) != 1 || got[0] != hash('a') {
		t.Fatalf("applied %v", got)
	}
	if g := r.fleet.last(); g.State != StateConverged || g.Revision != st.Revision {
		t.Fatalf("gossiped %+v", g)
	}
	if len(r.fleet.announced) != 1 {
		t.Fatalf("announced %v, want the new revision once", r.fleet.announced)
	}
	// The same tip again is not applied again.
	r.a.sync(r.ctx, "test")
	if got := r.run.appliedList(); len(got) != 1 {
		t.Fatalf("applied again: %v", got)
	}
	// A new agent on the same state directory knows what was applied.
	b := New(r.a.cfg, Options{Source: r.src, Runner: r.run})
	if err := b.load(); err != nil {
		t.Fatal(err)
	}
	if got := b.Status().Revision; got != st.Revision {
		t.Fatalf("after restart revision = %q, want %q", got, st.Revision)
	}
}

func TestInvalidRevisionIsRefusedAndOldStateKept(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	r.run.invalid[hash('b')] = true
	r.src.set(hash('b'))
	r.a.sync(r.ctx, "test")
	st := r.a.Status()
	if st.State != StateRefused {
		t.Fatalf("state = %q, want refused", st.State)
	}
	if st.Revision != "main@sha1:"+hash('a') || st.Attempted != "main@sha1:"+hash('b') {
		t.Fatalf("revision %q attempted %q", st.Revision, st.Attempted)
	}
	if !strings.Contains(st.Message, "main.hcl line 3") {
		t.Fatalf("message does not carry the diagnostics: %q", st.Message)
	}
	// A refused revision is not tried again.
	plans := r.run.plans
	r.a.sync(r.ctx, "test")
	if r.run.plans != plans {
		t.Fatal("a refused revision was planned again")
	}
	// Drift checks go on with the last good revision.
	r.run.drift = []string{"file.a"}
	r.a.checkDrift(r.ctx, "test")
	if got := r.run.appliedList(); got[len(got)-1] != hash('a') {
		t.Fatalf("drift correction applied %v, want the last good revision", got)
	}
	// The next good commit is applied.
	r.src.set(hash('c'))
	r.a.sync(r.ctx, "test")
	if st := r.a.Status(); st.State != StateConverged || st.Revision != "main@sha1:"+hash('c') {
		t.Fatalf("status = %+v, want converged at c", st)
	}
}

func TestUnverifiedCommitIsRefused(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	r.src.bad[hash('b')] = "not signed"
	r.src.set(hash('b'))
	r.a.sync(r.ctx, "test")
	st := r.a.Status()
	if st.State != StateRefused || !strings.Contains(st.Message, "not signed") {
		t.Fatalf("status = %+v, want refused: not signed", st)
	}
	if got := r.run.appliedList(); len(got) != 1 {
		t.Fatalf("an unsigned revision was applied: %v", got)
	}
}

func TestFailedApplyIsRetriedWithBackoff(t *testing.T) {
	r := newRig(t, "correct")
	r.run.fail[hash('a')] = 2
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	st := r.a.Status()
	if st.State != StateFailing || len(st.FailingAddrs) != 1 || st.FailingAddrs[0] != "file.a" {
		t.Fatalf("status = %+v, want failing file.a", st)
	}
	first := r.a.backoff
	// A poll does not retry before the backoff ends.
	plans := r.run.plans
	r.a.sync(r.ctx, "poll")
	if r.run.plans != plans {
		t.Fatal("retried before the backoff ended")
	}
	r.a.retryAt = time.Now()
	r.a.sync(r.ctx, "retry")
	if r.a.backoff <= first {
		t.Fatalf("backoff %v after %v: want it to grow", r.a.backoff, first)
	}
	r.a.retryAt = time.Now()
	r.a.sync(r.ctx, "retry")
	if st := r.a.Status(); st.State != StateConverged || st.Failing != 0 {
		t.Fatalf("status = %+v, want converged after the retries", st)
	}
	if r.a.backoff != 0 {
		t.Fatalf("backoff %v not reset", r.a.backoff)
	}
}

func TestDriftCorrectedOrReported(t *testing.T) {
	for _, mode := range []string{"correct", "report"} {
		t.Run(mode, func(t *testing.T) {
			r := newRig(t, mode)
			r.src.set(hash('a'))
			r.a.sync(r.ctx, "test")
			r.run.drift = []string{"container.web"}
			r.a.checkDrift(r.ctx, "test")
			st := r.a.Status()
			applied := r.run.appliedList()
			if mode == "correct" {
				if len(applied) != 2 || st.State != StateConverged {
					t.Fatalf("applied %v, status %+v: want the drift corrected", applied, st)
				}
				return
			}
			if len(applied) != 1 {
				t.Fatalf("report mode applied: %v", applied)
			}
			if st.State != StateDrifted || st.Drifted != 1 || st.DriftedAddrs[0] != "container.web" {
				t.Fatalf("status = %+v, want drifted container.web", st)
			}
		})
	}
}

func TestGossipAnnouncementTriggersSync(t *testing.T) {
	r := newRig(t, "correct")
	r.a.NewRevision("other-branch", hash('b'), "h2")
	select {
	case <-r.a.kick:
		t.Fatal("an announcement of another ref triggered a sync")
	default:
	}
	r.a.NewRevision("main", hash('b'), "h2")
	select {
	case <-r.a.kick:
	default:
		t.Fatal("an announcement of the tracked ref did not trigger a sync")
	}
	// A webhook's revision is announced to the fleet once.
	r.a.Announce("main", hash('c'))
	r.a.Announce("main", hash('c'))
	if len(r.fleet.announced) != 1 || r.fleet.announced[0] != "main@"+hash('c') {
		t.Fatalf("announced %v", r.fleet.announced)
	}
}

func TestRunLoopStopsWithContext(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.a.Status().State != StateConverged {
		if time.Now().After(deadline) {
			t.Fatal("the loop never applied the tip")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.src.set(hash('b'))
	r.a.Sync()
	for r.a.Status().Revision != "main@sha1:"+hash('b') {
		if time.Now().After(deadline) {
			t.Fatal("a triggered sync never applied the new tip")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestJitterStaysNear(t *testing.T) {
	r := newRig(t, "correct")
	for i := 0; i < 100; i++ {
		d := r.a.jitter(10 * time.Second)
		if d < 8*time.Second || d > 12*time.Second {
			t.Fatalf("jitter(10s) = %v", d)
		}
	}
}

func TestRetryUsesTheCacheWhenGitIsDown(t *testing.T) {
	r := newRig(t, "correct")
	r.run.fail[hash('a')] = 2
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	// The retry comes, but the repository cannot be reached: the revision
	// is retried from the cache, and fails again.
	r.a.retryAt = time.Now()
	r.src.set("")
	r.a.sync(r.ctx, "retry")
	if !r.a.failed || !r.a.retryAt.After(time.Now()) {
		t.Fatalf("after a failed retry: failed %v, retry at %v; want a new retry scheduled", r.a.failed, r.a.retryAt)
	}
	if st := r.a.Status(); st.State != StateFailing {
		t.Fatalf("state %q", st.State)
	}
	// The next retry, git still down, succeeds from the cache.
	r.a.retryAt = time.Now()
	r.a.sync(r.ctx, "retry")
	if st := r.a.Status(); st.State != StateConverged || st.Revision != "main@sha1:"+hash('a') || !strings.Contains(st.Message, "fetch failed") {
		t.Fatalf("status %+v, want a applied, the fetch failure shown", st)
	}
	// The repository is back: the message goes.
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "poll")
	if st := r.a.Status(); st.State != StateConverged || st.Message != "" {
		t.Fatalf("status %+v, want converged without a message", st)
	}
}

func TestTipMovedToARefusedRevisionEndsTheRetry(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	r.run.invalid[hash('c')] = true
	r.src.set(hash('c'))
	r.a.sync(r.ctx, "test")
	r.run.fail[hash('b')] = 5
	r.src.set(hash('b'))
	r.a.sync(r.ctx, "test")
	// Force-pushed back to the refused c.
	r.src.set(hash('c'))
	r.a.retryAt = time.Now()
	r.a.sync(r.ctx, "retry")
	if r.a.failed {
		t.Fatal("the superseded revision is still waiting for a retry")
	}
	if st := r.a.Status(); st.State != StateRefused {
		t.Fatalf("state %q, want refused", st.State)
	}
}

func TestDriftFailureOutlivesPolls(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	r.run.drift = []string{"container.web"}
	r.run.fail[hash('a')] = 1
	r.a.checkDrift(r.ctx, "test")
	if st := r.a.Status(); st.State != StateFailing || !strings.Contains(st.Message, "drift correction failed") {
		t.Fatalf("status %+v, want the failed correction", st)
	}
	r.a.sync(r.ctx, "poll")
	if st := r.a.Status(); st.State != StateFailing || st.Failing != 1 {
		t.Fatalf("a poll hid the failed drift correction: %+v", st)
	}
}

func TestRestartRetriesAnUnfinishedAttempt(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	r.run.fail[hash('b')] = 5
	r.src.set(hash('b'))
	r.a.sync(r.ctx, "test")
	// A new agent: b must be retried at once, and the start's drift
	// check must not go back to a.
	b := New(r.a.cfg, Options{Source: r.src, Runner: r.run})
	if err := b.load(); err != nil {
		t.Fatal(err)
	}
	if !b.failed || b.retryAt.After(time.Now()) {
		t.Fatalf("after a restart: failed %v, retry at %v", b.failed, b.retryAt)
	}
	r.run.drift = []string{"file.a"}
	n := len(r.run.appliedList())
	b.checkDrift(r.ctx, "start")
	if len(r.run.appliedList()) != n {
		t.Fatal("the start's drift check went back to the applied revision")
	}
	// A refused attempt is not retried after a restart.
	r.run.invalid[hash('c')] = true
	r.src.set(hash('c'))
	r.a.sync(r.ctx, "test")
	c := New(r.a.cfg, Options{Source: r.src, Runner: r.run})
	if err := c.load(); err != nil {
		t.Fatal(err)
	}
	if c.failed {
		t.Fatal("a refused revision counts as an unfinished apply after a restart")
	}
}

func TestStoppingRefusesNothing(t *testing.T) {
	r := newRig(t, "correct")
	r.src.bad[hash('a')] = "context canceled"
	r.src.set(hash('a'))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.a.sync(ctx, "test")
	if len(r.a.refused) != 0 {
		t.Fatalf("a cancelled verification refused %v", r.a.refused)
	}
}

func TestDriftCheckWaitsWhileANewerRevisionFails(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	r.run.fail[hash('b')] = 5
	r.src.set(hash('b'))
	r.a.sync(r.ctx, "test")
	r.run.drift = []string{"file.a"}
	before := len(r.run.appliedList())
	r.a.checkDrift(r.ctx, "test")
	if got := r.run.appliedList(); len(got) != before {
		t.Fatalf("a drift check rolled the host back to the applied revision while the newer one fails: %v", got)
	}
}

func TestInterruptedApplyIsNotRolledBackAtStart(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	// The agent dies in the middle of applying b: state.json says b was
	// attempted.
	r.a.mu.Lock()
	r.a.rec.Attempted = &revRecord{Ref: "main", Hash: hash('b'), Name: "main@sha1:" + hash('b')}
	r.a.save()
	r.a.mu.Unlock()
	r.src.set(hash('b'))
	b := New(r.a.cfg, Options{Source: r.src, Runner: r.run})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for b.Status().Revision != "main@sha1:"+hash('b') {
		if time.Now().After(deadline) {
			t.Fatal("b was never applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	// a, b (first agent), then b again: never a in between.
	got := r.run.appliedList()
	if got[len(got)-1] != hash('b') || slices.Contains(got[1:], hash('a')) {
		t.Fatalf("applied %v: the interrupted revision was rolled back first", got)
	}
}

func TestStatusMessagesFollowTheState(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	// A failed fetch shows, and goes when fetches work again.
	r.src.set("")
	r.a.sync(r.ctx, "test")
	if st := r.a.Status(); !strings.Contains(st.Message, "fetch failed") {
		t.Fatalf("message %q", st.Message)
	}
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	if st := r.a.Status(); st.Message != "" || st.State != StateConverged {
		t.Fatalf("status %+v after the fetch worked again", st)
	}
	// b fails, then c is refused: the refusal shows, not b's failure.
	r.run.fail[hash('b')] = 5
	r.src.set(hash('b'))
	r.a.sync(r.ctx, "test")
	r.run.invalid[hash('c')] = true
	r.src.set(hash('c'))
	r.a.sync(r.ctx, "test")
	st := r.a.Status()
	if st.State != StateRefused || !strings.Contains(st.Message, "does not validate") || st.Failing != 0 {
		t.Fatalf("status %+v, want refused with c's diagnostics", st)
	}
	// The tip is forced back to a, which runs: neither refused nor failing.
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	if st := r.a.Status(); st.State != StateConverged || st.Message != "" {
		t.Fatalf("status %+v after the tip came back to the applied revision", st)
	}
}

func TestBackoffIsCapped(t *testing.T) {
	r := newRig(t, "correct")
	rr := &revRecord{Hash: hash('a')}
	for i := 0; i < 20; i++ {
		r.a.fail(rr, nil, "x")
	}
	if r.a.backoff != maxBackoff {
		t.Fatalf("backoff %v, want %v", r.a.backoff, maxBackoff)
	}
}

func TestPlanFailureIsJudgedAgainLater(t *testing.T) {
	r := newRig(t, "correct")
	r.src.set(hash('a'))
	r.a.sync(r.ctx, "test")
	r.run.invalid[hash('b')] = true
	r.run.recheck = true
	r.src.set(hash('b'))
	r.a.sync(r.ctx, "test")
	if st := r.a.Status(); st.State != StateRefused {
		t.Fatalf("state %q, want refused", st.State)
	}
	plans := r.run.plans
	r.a.sync(r.ctx, "poll")
	if r.run.plans != plans {
		t.Fatal("judged again before its time")
	}
	// The cause passed (a provider could read the host again), and the
	// time to judge again came.
	r.run.invalid[hash('b')] = false
	r.a.mu.Lock()
	ref := r.a.refused[hash('b')]
	ref.recheck = time.Now().Add(-time.Second)
	r.a.refused[hash('b')] = ref
	r.a.mu.Unlock()
	r.a.sync(r.ctx, "poll")
	if st := r.a.Status(); st.State != StateConverged || st.Revision != "main@sha1:"+hash('b') {
		t.Fatalf("status %+v, want b applied once judged again", st)
	}
}
