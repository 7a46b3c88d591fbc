package acceptance

// The harness of the agent tests: a fleet of simulated hosts on one LAN,
// each running `berth agent` in its network namespace with a state
// directory, node name and labels of its own, and a git server on a host
// of the LAN that the tests push configurations to.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
)

// agentEventually is the deadline of every eventual state the agent
// tests wait for. It is a safety net for a loaded machine (gossip
// suspicion, polls and drift checks of several agents on two cores),
// never a speed requirement.
const agentEventually = 90 * time.Second

// The ports every agent listens on, on its simulated host's LAN address
// (each host is a network namespace of its own).
const (
	agentGossipPort  = 7946
	agentAPIPort     = 7947
	agentWebhookPort = 7948
	agentMetricsPort = 9947
)

// agentRepoPath is the directory of the repository that holds the
// configuration (the agents' repository { path }).
const agentRepoPath = "fleet"

// The JSON the agent tests read. They are defined here, and only here,
// so that the agent's output and the tests agree in one place.

// fleetStatus is what `berth status -json` prints (GET /v1/fleet): the
// members of the fleet as the asked agent sees them, itself included.
type fleetStatus struct {
	Members []fleetMember `json:"members"`
}

// fleetMember is one member of the fleet.
type fleetMember struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Version string            `json:"version"`
	APIAddr string            `json:"api_addr"`
	// State is the gossip state: memberAlive, memberSuspect, memberDead
	// or memberLeft.
	State  string       `json:"state"`
	Status memberStatus `json:"status"`
}

// memberStatus is a host's status as gossip carries it.
type memberStatus struct {
	// Revision is the last applied revision ("main@sha1:HASH").
	Revision string `json:"revision"`
	// Attempted is the last revision the agent tried (applied, refused
	// or failed).
	Attempted string `json:"attempted"`
	// State is one of the host states below.
	State        string    `json:"state"`
	Resources    int       `json:"resources"`
	Drifted      int       `json:"drifted"`
	Failing      int       `json:"failing"`
	FailingAddrs []string  `json:"failing_addrs"`
	Message      string    `json:"message"`
	LastApply    time.Time `json:"last_apply"`
}

// The gossip states of a member.
const (
	memberAlive   = "alive"
	memberSuspect = "suspect"
	memberDead    = "dead"
	memberLeft    = "left"
)

// The states of a host.
const (
	hostConverged = "converged"
	hostDrifted   = "drifted"
	hostFailing   = "failing"
	hostRefused   = "refused"
)

// fleetPlanJSON is what `berth plan --fleet ADDR -json DIR` prints: one
// plan per member host.
type fleetPlanJSON struct {
	Hosts []struct {
		Node        string   `json:"node"`
		Targeted    bool     `json:"targeted"`
		Add         int      `json:"add"`
		Change      int      `json:"change"`
		Destroy     int      `json:"destroy"`
		Changes     []string `json:"changes"`
		Text        string   `json:"text"`
		Invalid     bool     `json:"invalid"`
		Diagnostics string   `json:"diagnostics"`
		Error       string   `json:"error"`
	} `json:"hosts"`
}

// member returns the member called name.
func (s fleetStatus) member(name string) (fleetMember, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return fleetMember{}, false
}

// names returns the names of the members, sorted.
func (s fleetStatus) names() []string {
	var out []string
	for _, m := range s.Members {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return out
}

// summary is a one-line view of the members, for failure messages.
func (s fleetStatus) summary() string {
	var b strings.Builder
	for _, m := range s.Members {
		fmt.Fprintf(&b, "[%s %s rev=%s attempted=%s state=%s resources=%d drifted=%d failing=%d msg=%q] ",
			m.Name, m.State, m.Status.Revision, m.Status.Attempted, m.Status.State, m.Status.Resources,
			m.Status.Drifted, m.Status.Failing, m.Status.Message)
	}
	return b.String()
}

// requireAgentTools skips the test unless it runs as root with what the
// agent tests need: the linux provider's tools, simulated hosts and git.
func requireAgentTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent's acceptance tests need root (simulated hosts in network namespaces, containers)")
	}
	requireLinux(t)
	testenv.RequireNetTools(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is missing (Debian package git)")
	}
}

// agentFleet is a LAN with a git server and the agents' hosts.
type agentFleet struct {
	t   *testing.T
	lan *testenv.LAN
	git *testenv.GitServer
	// root holds the fleet's keys and secrets, and files/, under which
	// each host's file resources go (files/HOST/...).
	root string
	// gossipKeyFile is the fleet's gossip key (base64 of 32 bytes).
	gossipKeyFile string
	// webhookSecret is the webhook secret, in webhookSecretFile.
	webhookSecret     string
	webhookSecretFile string
	// tokenFile is the API's bearer token; caFile the CA that signed
	// every agent's TLS certificate.
	tokenFile, caFile string
	ca                *testenv.CA
	// archive is the busybox image archive the linux hosts load.
	archive string
	nodes   []*agentNode
}

// busyboxRef is the image the agent tests' containers run.
const busyboxRef = "example.test/busybox:1"

// newAgentFleet makes a LAN, a git server on a host of its own there,
// and the fleet's gossip key, webhook secret, API token and CA.
func newAgentFleet(t *testing.T) *agentFleet {
	t.Helper()
	requireAgentTools(t)
	build(t)
	lan := testenv.NewLAN(t)
	gitHost := testenv.NewSimHost(t, lan, "git")
	f := &agentFleet{t: t, lan: lan, git: testenv.NewGitServer(t, gitHost), root: t.TempDir()}
	f.gossipKeyFile = f.newGossipKey("gossip.key")
	f.webhookSecret = "whsec-" + agentRandomHex(t, 16)
	f.webhookSecretFile = filepath.Join(f.root, "webhook.secret")
	agentWriteFile(t, f.webhookSecretFile, f.webhookSecret, 0o600)
	f.tokenFile = filepath.Join(f.root, "api.token")
	agentWriteFile(t, f.tokenFile, "tok-"+agentRandomHex(t, 16), 0o600)
	f.caFile = filepath.Join(f.root, "ca.pem")
	f.ca = testenv.NewCA(t, "berth agent test CA", f.caFile)
	return f
}

// newGossipKey writes a new random gossip key (base64 of 32 bytes) into
// the fleet's root and returns its file.
func (f *agentFleet) newGossipKey(name string) string {
	f.t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		f.t.Fatal(err)
	}
	path := filepath.Join(f.root, name)
	agentWriteFile(f.t, path, base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
	return path
}

// filesDir is the directory under which the configurations put the
// files of host name: FILES/NAME, written in HCL as
// "FILES/${host.name}".
func (f *agentFleet) filesDir(name string) string { return filepath.Join(f.root, "files", name) }

// filesHCL is filesDir of the host that evaluates it, as an HCL string:
// "FILES/${host.name}".
func (f *agentFleet) filesHCL() string {
	return `"` + filepath.Join(f.root, "files") + `/${host.name}"`
}

// push commits files (paths relative to the configuration's directory)
// as the repository's whole configuration and returns the commit's hash.
func (f *agentFleet) push(t *testing.T, files map[string]string, msg string) string {
	t.Helper()
	return f.git.Commit(t, inRepoPath(files), msg)
}

// pushSigned is push with the commit signed by key.
func (f *agentFleet) pushSigned(t *testing.T, key *testenv.SigningKey, files map[string]string, msg string) string {
	t.Helper()
	return f.git.CommitSigned(t, key, inRepoPath(files), msg)
}

func inRepoPath(files map[string]string) map[string]string {
	out := map[string]string{"README.md": "The fleet's configuration is in " + agentRepoPath + "/.\n"}
	for k, v := range files {
		out[agentRepoPath+"/"+k] = v
	}
	return out
}

// rev returns the revision berth records for hash on the tracked branch.
func (f *agentFleet) rev(hash string) string { return f.git.Revision(hash) }

// agentOptions describe one agent of the fleet.
type agentOptions struct {
	// Name is the node name (host.name); Labels are host.labels.
	Name   string
	Labels map[string]string
	// PollInterval is repository { poll_interval } ("2s" when empty).
	PollInterval string
	// DriftMode is drift { mode } ("correct" when empty).
	DriftMode string
	// DriftInterval is drift { interval } ("2s" when empty).
	DriftInterval string
	// Verify is the body of repository { verify { ... } }, if any.
	Verify string
	// GossipKeyFile replaces the fleet's gossip key.
	GossipKeyFile string
	// Linux loads the busybox image into the host's store before its
	// agent first starts, for configurations with containers.
	Linux bool
}

// agentNode is one simulated host of the fleet running `berth agent`.
type agentNode struct {
	*netHost
	f    *agentFleet
	opts agentOptions
	// dir holds the agent's configuration, certificate and log.
	dir        string
	configPath string
	logPath    string
	// sock is the agent's API socket: in a short directory of its own,
	// as a unix socket's path is limited to 108 bytes.
	sock string

	cmd     *exec.Cmd
	done    chan struct{}
	stopSet bool
}

// addNode makes a simulated host for an agent; start starts the agent.
func (f *agentFleet) addNode(opts agentOptions) *agentNode {
	t := f.t
	t.Helper()
	if opts.PollInterval == "" {
		opts.PollInterval = "2s"
	}
	if opts.DriftInterval == "" {
		opts.DriftInterval = "2s"
	}
	if opts.DriftMode == "" {
		opts.DriftMode = "correct"
	}
	if opts.GossipKeyFile == "" {
		opts.GossipKeyFile = f.gossipKeyFile
	}
	n := &agentNode{netHost: newNetHost(t, f.lan, opts.Name), f: f, opts: opts, dir: t.TempDir()}
	n.configPath = filepath.Join(n.dir, "agent.hcl")
	n.logPath = filepath.Join(n.dir, "agent.log")
	sockDir, err := os.MkdirTemp("", "berth-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	n.sock = filepath.Join(sockDir, "agent.sock")
	// The certificate file holds the fleet's CA after the host's
	// certificate, so that an agent that trusts the certificates of its
	// own file trusts its peers.
	f.ca.WriteCert(t, filepath.Join(n.dir, "tls.crt"), filepath.Join(n.dir, "tls.key"), testenv.CertOptions{
		IPs:        []net.IP{net.IP(n.sim.IP().AsSlice())},
		ClientAuth: true,
	})
	if opts.Linux {
		if f.archive == "" {
			f.archive = filepath.Join(f.root, "busybox.tar")
			testenv.SaveDocker(t, f.archive, busyboxRef, testenv.BusyboxImage(t, testenv.ImageConfig{}))
		}
		n.mustBerth(0, nil, "image", "load", "-i", f.archive)
	}
	f.nodes = append(f.nodes, n)
	return n
}

// name is the node's name.
func (n *agentNode) name() string { return n.opts.Name }

// ip is the node's LAN address.
func (n *agentNode) ip() string { return n.sim.IP().String() }

// gossipAddr is where the node's agent gossips.
func (n *agentNode) gossipAddr() string {
	return net.JoinHostPort(n.ip(), strconv.Itoa(agentGossipPort))
}

// agentAddr is the ADDR of the CLI's --agent for the node's socket.
func (n *agentNode) agentAddr() string { return "unix://" + n.sock }

// hclLabels writes labels as an HCL object, keys sorted.
func hclLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s = %q", k, labels[k]))
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

// writeConfig writes the node's agent.hcl. The agent joins every other
// node of the fleet that shares its gossip key.
func (n *agentNode) writeConfig() {
	t := n.f.t
	t.Helper()
	var join []string
	for _, o := range n.f.nodes {
		if o != n && o.opts.GossipKeyFile == n.opts.GossipKeyFile {
			join = append(join, strconv.Quote(o.gossipAddr()))
		}
	}
	// An agent with a key of its own (the wrong key) tries to join the
	// fleet.
	if n.opts.GossipKeyFile != n.f.gossipKeyFile {
		join = nil
		for _, o := range n.f.nodes {
			if o.opts.GossipKeyFile == n.f.gossipKeyFile {
				join = append(join, strconv.Quote(o.gossipAddr()))
			}
		}
	}
	verify := ""
	if n.opts.Verify != "" {
		verify = "  verify {\n" + n.opts.Verify + "  }\n"
	}
	ip := n.ip()
	cfg := fmt.Sprintf(`# agent of the simulated host %[1]s (network namespace %[2]s)
node {
  name   = %[3]q
  labels = %[4]s
}
state_dir = %[5]q

repository {
  url           = %[6]q
  branch        = "main"
  path          = %[7]q
  poll_interval = %[8]q
%[9]s}

drift {
  interval = %[23]q
  mode     = %[10]q
}

gossip {
  bind            = "%[11]s:%[12]d"
  join            = [%[13]s]
  key_file        = %[14]q
  insecure_gossip = false
}

api {
  socket        = %[15]q
  listen        = ["%[11]s:%[16]d"]
  tls_cert_file = %[17]q
  tls_key_file  = %[18]q
  token_file    = %[19]q
}

webhook {
  listen      = "%[11]s:%[20]d"
  secret_file = %[21]q
}

metrics {
  listen = "%[11]s:%[22]d"
}

log_format = "text"
`, n.name(), n.sim.Name, n.name(), hclLabels(n.opts.Labels), n.stateDir,
		n.f.git.URL(), agentRepoPath, n.opts.PollInterval, verify,
		n.opts.DriftMode,
		ip, agentGossipPort, strings.Join(join, ", "), n.opts.GossipKeyFile,
		n.sock, agentAPIPort, filepath.Join(n.dir, "tls.crt"), filepath.Join(n.dir, "tls.key"), n.f.tokenFile,
		agentWebhookPort, n.f.webhookSecretFile,
		agentMetricsPort, n.opts.DriftInterval)
	agentWriteFile(t, n.configPath, cfg, 0o600)
}

// startAll starts the agents of every node that is not running yet and
// waits until each one sees every node that shares its key alive.
func (f *agentFleet) startAll() {
	f.t.Helper()
	var started []*agentNode
	for _, n := range f.nodes {
		if !n.running() {
			n.start()
			started = append(started, n)
		}
	}
	for _, n := range started {
		var peers []string
		for _, o := range f.nodes {
			if o.opts.GossipKeyFile == n.opts.GossipKeyFile {
				peers = append(peers, o.name())
			}
		}
		for _, p := range peers {
			f.waitMember(f.t, []*agentNode{n}, p, memberAlive)
		}
	}
}

// running reports whether the node's agent process runs.
func (n *agentNode) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// start starts `berth agent --config agent.hcl` in the node's network
// namespace, with the host's environment (state directory, cgroup
// parent), its output appended to the node's log, and waits until its
// API answers. The test's cleanup stops it (SIGTERM, then SIGKILL)
// before the host is destroyed, and prints its log if the test failed.
func (n *agentNode) start() {
	t := n.f.t
	t.Helper()
	n.writeConfig()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s: berth agent --config %s\n", time.Now().Format(time.RFC3339Nano), n.configPath)
	cmd := exec.Command(n.bin.berth, "agent", "--config", n.configPath)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start the agent of %s: %v", n.name(), err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	if !n.stopSet {
		n.stopSet = true
		t.Cleanup(n.shutdown)
	}
	n.waitUp(t)
}

// waitUp waits until the agent's API lists the node itself, and fails
// the test if the agent exits first.
func (n *agentNode) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(agentEventually)
	var last string
	for {
		if !n.running() {
			t.Fatalf("the agent of %s exited (%v) before its API answered; last: %s\nlog:\n%s", n.name(), n.cmd.ProcessState, last, n.logTail(200))
		}
		s, out, err := n.status()
		if err == nil {
			if _, ok := s.member(n.name()); ok {
				return
			}
			last = out
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for the API of the agent of %s; last: %s\nlog:\n%s", agentEventually, n.name(), last, n.logTail(200))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// kill9 kills the node's agent with SIGKILL (and nothing else: its
// providers and shims are left to themselves) and waits for it.
func (n *agentNode) kill9() {
	n.f.t.Helper()
	if err := syscall.Kill(n.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		n.f.t.Fatalf("kill -9 the agent of %s: %v", n.name(), err)
	}
	<-n.done
}

// shutdown stops the agent with SIGTERM, then SIGKILL if it is still
// there after agentEventually, and prints the end of its log when the
// test failed.
func (n *agentNode) shutdown() {
	t := n.f.t
	if n.running() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(agentEventually):
			t.Errorf("the agent of %s was still running %s after SIGTERM: killed", n.name(), agentEventually)
			n.cmd.Process.Kill()
			<-n.done
		}
	}
	if t.Failed() {
		t.Logf("the end of the log of the agent of %s (%s):\n%s", n.name(), n.sim.Name, n.logTail(300))
	}
}

// logTail returns the last lines of the node's agent log.
func (n *agentNode) logTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("[... %d lines]", len(all)-lines)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}

// status runs `berth status --agent unix://SOCK -json` and returns the
// fleet as the node's agent sees it, and the raw output.
func (n *agentNode) status() (fleetStatus, string, error) {
	r := n.berth(nil, "status", "--agent", n.agentAddr(), "-json")
	if r.code != 0 {
		return fleetStatus{}, r.stdout, fmt.Errorf("berth status exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	var s fleetStatus
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		return fleetStatus{}, r.stdout, fmt.Errorf("berth status -json: %v: %s", err, r.stdout)
	}
	return s, r.stdout, nil
}

// self returns the node's own entry in its agent's fleet view.
func (n *agentNode) self() (fleetMember, string, error) {
	s, out, err := n.status()
	if err != nil {
		return fleetMember{}, out, err
	}
	m, ok := s.member(n.name())
	if !ok {
		return fleetMember{}, out, fmt.Errorf("the agent of %s does not list itself: %s", n.name(), s.summary())
	}
	return m, s.summary(), nil
}

// waitAgent polls cond until it holds, and fails the test with what cond
// last said when it has not held within agentEventually.
func waitAgent(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	waitWithin(t, agentEventually, what, cond)
}

// waitMember waits until every viewer's agent sees the member called
// name in one of states.
func (f *agentFleet) waitMember(t *testing.T, viewers []*agentNode, name string, states ...string) {
	t.Helper()
	for _, v := range viewers {
		waitAgent(t, fmt.Sprintf("%s to see %s %s", v.name(), name, strings.Join(states, " or ")), func() (bool, string) {
			s, out, err := v.status()
			if err != nil {
				return false, err.Error()
			}
			m, ok := s.member(name)
			if !ok {
				return false, "not listed: " + s.summary() + out
			}
			for _, st := range states {
				if m.State == st {
					return true, ""
				}
			}
			return false, s.summary()
		})
	}
}

// waitApplied waits until each node's agent reports that it applied
// hash and is converged, and until every other running agent of the
// fleet that shares its key sees that through gossip.
func (f *agentFleet) waitApplied(t *testing.T, hash string, nodes ...*agentNode) {
	t.Helper()
	want := f.rev(hash)
	for _, n := range nodes {
		waitAgent(t, fmt.Sprintf("%s to apply %s", n.name(), want), func() (bool, string) {
			m, sum, err := n.self()
			if err != nil {
				return false, err.Error()
			}
			return m.Status.Revision == want && m.Status.State == hostConverged, sum
		})
	}
}

// waitSeenApplied waits until viewer's agent sees, through gossip, that
// each node applied hash.
func (f *agentFleet) waitSeenApplied(t *testing.T, viewer *agentNode, hash string, nodes ...*agentNode) {
	t.Helper()
	want := f.rev(hash)
	waitAgent(t, fmt.Sprintf("%s to see %s applied everywhere", viewer.name(), want), func() (bool, string) {
		s, _, err := viewer.status()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			m, ok := s.member(n.name())
			if !ok || m.Status.Revision != want {
				return false, s.summary()
			}
		}
		return true, ""
	})
}

// readFiles returns the files of host name under the fleet's files
// directory, by name.
func (f *agentFleet) readFiles(name string) map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(f.filesDir(name))
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.filesDir(name), e.Name()))
		if err == nil {
			out[e.Name()] = string(b)
		}
	}
	return out
}

// requireFiles fails the test unless host name's files are exactly want.
func (f *agentFleet) requireFiles(t *testing.T, name string, want map[string]string) {
	t.Helper()
	got := f.readFiles(name)
	if len(got) != len(want) {
		t.Errorf("the files of %s are %q, want %q", name, got, want)
		return
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("the files of %s are %q, want %q", name, got, want)
			return
		}
	}
}

// waitFile waits until the file of host name holds want.
func (f *agentFleet) waitFile(t *testing.T, name, file, want string) {
	t.Helper()
	path := filepath.Join(f.filesDir(name), file)
	waitAgent(t, fmt.Sprintf("%s to hold %q", path, want), func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		return string(b) == want, fmt.Sprintf("%q", b)
	})
}

// metricSample is one sample of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format.
func parseMetrics(text string) ([]metricSample, error) {
	var out []metricSample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		s := metricSample{labels: map[string]string{}}
		i := strings.IndexAny(l, "{ ")
		if i < 0 {
			return nil, fmt.Errorf("no value in %q", l)
		}
		s.name, l = l[:i], l[i:]
		if strings.HasPrefix(l, "{") {
			l = l[1:]
			for {
				l = strings.TrimLeft(l, ", ")
				if strings.HasPrefix(l, "}") {
					l = l[1:]
					break
				}
				eq := strings.Index(l, "=\"")
				if eq < 0 {
					return nil, fmt.Errorf("bad labels in %q", sc.Text())
				}
				key := l[:eq]
				l = l[eq+2:]
				var val strings.Builder
				closed := false
				for j := 0; j < len(l); j++ {
					if l[j] == '\\' && j+1 < len(l) {
						switch l[j+1] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(l[j+1])
						}
						j++
						continue
					}
					if l[j] == '"' {
						l = l[j+1:]
						closed = true
						break
					}
					val.WriteByte(l[j])
				}
				if !closed {
					return nil, fmt.Errorf("unterminated label value in %q", sc.Text())
				}
				s.labels[key] = val.String()
			}
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			return nil, fmt.Errorf("no value in %q", sc.Text())
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %v", sc.Text(), err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// metricSum returns the sum of the samples called name whose labels
// include labels, and whether there was one.
func metricSum(samples []metricSample, name string, labels map[string]string) (float64, bool) {
	var sum float64
	found := false
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
		found = true
	}
	return sum, found
}

// metrics fetches GET /metrics of the node's agent from the node's
// network namespace.
func (n *agentNode) metrics() ([]metricSample, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := n.sim.HTTPGet(ctx, fmt.Sprintf("http://%s/metrics", net.JoinHostPort(n.ip(), strconv.Itoa(agentMetricsPort))))
	if err != nil {
		return nil, body, err
	}
	s, err := parseMetrics(body)
	return s, body, err
}

// metric returns the value of a metric of the node's agent (the sum of
// its samples with labels), 0 when it has no such sample.
func (n *agentNode) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	s, body, err := n.metrics()
	if err != nil {
		t.Fatalf("GET /metrics of %s: %v\n%s", n.name(), err, body)
	}
	v, _ := metricSum(s, name, labels)
	return v
}

// waitMetric waits until a metric of the node's agent is at least min.
func (n *agentNode) waitMetric(t *testing.T, name string, labels map[string]string, min float64) {
	t.Helper()
	waitAgent(t, fmt.Sprintf("%s%v >= %v on %s", name, labels, min, n.name()), func() (bool, string) {
		s, body, err := n.metrics()
		if err != nil {
			return false, err.Error()
		}
		v, _ := metricSum(s, name, labels)
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, name) {
				lines = append(lines, l)
			}
		}
		return v >= min, fmt.Sprintf("%v (%s)", v, strings.Join(lines, "; "))
	})
}

// postHook posts body to the node's webhook listener at
// /v1/hooks/PROVIDER from the node's network namespace, and returns the
// status code and the answer.
func (n *agentNode) postHook(t *testing.T, provider string, header http.Header, body []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/v1/hooks/%s", net.JoinHostPort(n.ip(), strconv.Itoa(agentWebhookPort)), provider)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	tr := &http.Transport{DialContext: n.sim.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pushPayload is the body of a push event for the tracked branch, as
// GitHub and Gitea send it.
func (f *agentFleet) pushPayload(before, after string) []byte {
	b, err := json.Marshal(map[string]any{
		"ref":    "refs/heads/main",
		"before": before,
		"after":  after,
		"repository": map[string]any{
			"full_name": "ops/fleet",
			"clone_url": f.git.URL(),
		},
		"head_commit": map[string]any{"id": after, "message": "push"},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// hmacHex returns the hex HMAC-SHA256 of body with secret.
func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// diagRE matches a diagnostic's location in file at line, as
// "file:line" or "file line N".
func diagRE(file string, line int) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(file) + `(:| line )` + strconv.Itoa(line) + `\b`)
}

func agentWriteFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func agentRandomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// fileStamp identifies a file's content on disk: a rewrite (the local
// provider writes into a new file and renames it) changes it.
type fileStamp struct {
	ino   uint64
	mtime time.Time
}

func stampOf(t *testing.T, path string) fileStamp {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no inode for %s", path)
	}
	return fileStamp{ino: st.Ino, mtime: fi.ModTime()}
}

// containerID returns the ID of the container at address from `berth
// show -json`, or an error while it is not there.
func (n *agentNode) containerID(address string) (string, error) {
	r := n.berth(nil, "show", "-json")
	if r.code != 0 {
		return "", fmt.Errorf("berth show exited %d: %s", r.code, r.stderr)
	}
	var s shown
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		return "", fmt.Errorf("show -json: %v", err)
	}
	for _, res := range s.Resources {
		if res.Address == address && res.ID != "" {
			return res.ID, nil
		}
	}
	return "", fmt.Errorf("%s is not in berth show", address)
}

func TestAgentHarnessParsers(t *testing.T) {
	text := `# HELP berth_agent_webhooks_total Webhooks received.
# TYPE berth_agent_webhooks_total counter
berth_agent_webhooks_total{provider="github",result="rejected"} 3
berth_agent_webhooks_total{result="accepted",provider="github"} 1
berth_agent_webhooks_total{provider="gitea",result="rejected"} 1
berth_agent_applied_revision_info{revision="main@sha1:ab\"c,d}"} 1
berth_agent_drift_checks_total 7 1700000000000
`
	s, err := parseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
		found  bool
	}{
		{"berth_agent_webhooks_total", map[string]string{"provider": "github", "result": "rejected"}, 3, true},
		{"berth_agent_webhooks_total", map[string]string{"result": "rejected"}, 4, true},
		{"berth_agent_webhooks_total", map[string]string{"result": "accepted"}, 1, true},
		{"berth_agent_webhooks_total", nil, 5, true},
		{"berth_agent_webhooks_total", map[string]string{"provider": "gitlab"}, 0, false},
		{"berth_agent_applied_revision_info", map[string]string{"revision": `main@sha1:ab"c,d}`}, 1, true},
		{"berth_agent_drift_checks_total", nil, 7, true},
		{"berth_agent_drift", nil, 0, false},
	} {
		if got, found := metricSum(s, tc.name, tc.labels); got != tc.want || found != tc.found {
			t.Errorf("metricSum(%s, %v) = %v, %v; want %v, %v", tc.name, tc.labels, got, found, tc.want, tc.found)
		}
	}
	for _, bad := range []string{"novalue", `m{a="b} 1`, `m{a=b} 1`, "m{} x"} {
		if _, err := parseMetrics(bad); err == nil {
			t.Errorf("parseMetrics(%q) succeeded", bad)
		}
	}

	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"Error: Invalid expression\n\n  on fleet/bad.hcl line 4, in file \"broken\":", true},
		{"fleet/bad.hcl:4,13-14: Invalid expression", true},
		{"bad.hcl:40: something", false},
		{"bad.hcl line 5", false},
		{"main.hcl:4", false},
	} {
		if got := diagRE("bad.hcl", 4).MatchString(tc.msg); got != tc.want {
			t.Errorf("diagRE(bad.hcl, 4) on %q = %v, want %v", tc.msg, got, tc.want)
		}
	}

	out := "Host web-1 (role=web)\n  + file.extra\nPlan: 1 to add\n\nHost db-1 (role=db)\nNo changes.\n\nFleet: 1 of 2 hosts would change.\n"
	sec := planSections(t, out, "web-1", "db-1")
	if !strings.Contains(sec["web-1"], "file.extra") || strings.Contains(sec["web-1"], "No changes") {
		t.Errorf("the section of web-1 is %q", sec["web-1"])
	}
	if !strings.Contains(sec["db-1"], "No changes") || strings.Contains(sec["db-1"], "file.extra") {
		t.Errorf("the section of db-1 is %q", sec["db-1"])
	}

	if got, want := hclLabels(map[string]string{"zone": "a", "role": "web"}), `{ role = "web", zone = "a" }`; got != want {
		t.Errorf("hclLabels = %s, want %s", got, want)
	}
}
