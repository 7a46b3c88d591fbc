package acceptance

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The agent tests run a fleet of `berth agent`s, one per simulated host
// (a network namespace on a simulated LAN, with a state directory, a node
// name and labels of its own), against a real git server (git daemon on
// another host of the LAN) that the tests push configurations to. Most
// configurations declare files (the local provider: cheap), each host's
// under a directory named after it, since the simulated hosts share the
// file system; TestAgentContainers runs real containers.

// placementConfig places files by label, by host name and by an
// expression: "everywhere" on every host, "web" on hosts labelled
// role=web among webHosts (an HCL list), "db" on db-1 only and "zone-a"
// on hosts labelled zone=a. version is in every file but db, which has
// dbVersion.
func placementConfig(dir, version, dbVersion, webHosts string) string {
	return fmt.Sprintf(`locals {
  dir = %[1]s
}

# Every host: no placement block.
file "everywhere" {
  path    = "${local.dir}/everywhere"
  content = "%[2]s ${host.name} role=${host.labels.role}\n"
}

# The web tier: by label, and among the listed hosts.
file "web" {
  placement {
    labels = { role = "web" }
    hosts  = %[4]s
  }
  path    = "${local.dir}/web"
  content = "web %[2]s\n"
}

# The database: one named host.
file "db" {
  placement {
    hosts = ["db-1"]
  }
  path    = "${local.dir}/db"
  content = "db %[3]s\n"
}

# Zone a: by an expression over the host's labels.
file "zone_a" {
  placement {
    when = host.labels.zone == "a"
  }
  path    = "${local.dir}/zone-a"
  content = "zone a %[2]s\n"
}
`, dir, version, dbVersion, webHosts)
}

// placementWant is what placementConfig makes on each host of
// TestAgentFleetFiles: web-1 (role=web, zone=a), web-2 (role=web,
// zone=b) and db-1 (role=db, zone=a).
func placementWant(version, dbVersion string, webHosts ...string) map[string]map[string]string {
	want := map[string]map[string]string{
		"web-1": {"everywhere": version + " web-1 role=web\n", "zone-a": "zone a " + version + "\n"},
		"web-2": {"everywhere": version + " web-2 role=web\n"},
		"db-1":  {"everywhere": version + " db-1 role=db\n", "db": "db " + dbVersion + "\n", "zone-a": "zone a " + version + "\n"},
	}
	for _, h := range webHosts {
		want[h]["web"] = "web " + version + "\n"
	}
	return want
}

// badHCL does not parse: line 4 has two equals signs.
const badHCL = `# Broken on purpose.
file "broken" {
  path    = "/nonexistent/berth-agent-test/broken"
  content = = "two equals"
}
`

// planSections splits the output of `berth plan --fleet` into the
// sections of hosts: each starts where the host's name first appears.
func planSections(t *testing.T, out string, hosts ...string) map[string]string {
	t.Helper()
	type start struct {
		host string
		at   int
	}
	var starts []start
	for _, h := range hosts {
		i := strings.Index(out, h)
		if i < 0 {
			t.Errorf("berth plan --fleet does not name host %s:\n%s", h, out)
			continue
		}
		starts = append(starts, start{h, i})
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].at < starts[j].at })
	sections := map[string]string{}
	for i, s := range starts {
		end := len(out)
		if i+1 < len(starts) {
			end = starts[i+1].at
		}
		sections[s.host] = out[s.at:end]
	}
	return sections
}

// TestAgentFleetFiles runs three agents (web-1 and web-2 labelled
// role=web, db-1 role=db; zones a, b and a) that converge on the files
// a configuration places on them: a push converges every targeted host
// and only those; a bad commit is refused everywhere while the old state
// stays; drift is corrected; `berth plan --fleet` shows per-host plans;
// the API answers on TCP with TLS and a token only; an agent with the
// wrong gossip key never joins.
func TestAgentFleetFiles(t *testing.T) {
	requireAgentTools(t)
	t.Parallel()
	f := newAgentFleet(t)
	web1 := f.addNode(agentOptions{Name: "web-1", Labels: map[string]string{"role": "web", "zone": "a"}})
	web2 := f.addNode(agentOptions{Name: "web-2", Labels: map[string]string{"role": "web", "zone": "b"}})
	db1 := f.addNode(agentOptions{Name: "db-1", Labels: map[string]string{"role": "db", "zone": "a"}})
	all := []*agentNode{web1, web2, db1}
	dir := f.filesHCL()

	current := placementConfig(dir, "v1", "v1", `["web-1", "web-2"]`)
	good := f.push(t, map[string]string{"main.hcl": current}, "v1: web tier on both web hosts")
	f.startAll()

	t.Run("push_converges_targeted_hosts", func(t *testing.T) {
		f.waitApplied(t, good, all...)
		want := placementWant("v1", "v1", "web-1", "web-2")
		for _, n := range all {
			f.requireFiles(t, n.name(), want[n.name()])
		}
		// Every agent sees, through gossip, what the others applied,
		// and the labels they run with.
		for _, v := range all {
			f.waitSeenApplied(t, v, good, all...)
		}
		s, _, err := db1.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range all {
			m, ok := s.member(n.name())
			if !ok {
				t.Fatalf("db-1 does not list %s: %s", n.name(), s.summary())
			}
			if m.State != memberAlive {
				t.Errorf("db-1 sees %s %s, want %s", n.name(), m.State, memberAlive)
			}
			for k, v := range n.opts.Labels {
				if m.Labels[k] != v {
					t.Errorf("db-1 sees %s with labels %v, want %v", n.name(), m.Labels, n.opts.Labels)
					break
				}
			}
			if m.Version == "" {
				t.Errorf("db-1 sees no agent version for %s", n.name())
			}
			if got, want := m.Status.Resources, len(want[n.name()]); got != want {
				t.Errorf("db-1 sees %d resources on %s, want %d", got, n.name(), want)
			}
		}
	})

	t.Run("placement_change_destroys_where_excluded", func(t *testing.T) {
		current = placementConfig(dir, "v2", "v2", `["web-1"]`)
		good = f.push(t, map[string]string{"main.hcl": current}, "v2: web tier on web-1 only")
		f.waitApplied(t, good, all...)
		want := placementWant("v2", "v2", "web-1")
		for _, n := range all {
			f.requireFiles(t, n.name(), want[n.name()])
		}
	})

	t.Run("only_targeted_hosts_change", func(t *testing.T) {
		// A change that only the database's file sees: the web hosts
		// move to the new revision without rewriting anything.
		before := map[string]fileStamp{}
		for _, n := range []*agentNode{web1, web2} {
			for name := range f.readFiles(n.name()) {
				p := filepath.Join(f.filesDir(n.name()), name)
				before[p] = stampOf(t, p)
			}
		}
		current = placementConfig(dir, "v2", "v3", `["web-1"]`)
		good = f.push(t, map[string]string{"main.hcl": current}, "v3: the database's file only")
		f.waitApplied(t, good, all...)
		want := placementWant("v2", "v3", "web-1")
		for _, n := range all {
			f.requireFiles(t, n.name(), want[n.name()])
		}
		for p, st := range before {
			if got := stampOf(t, p); got != st {
				t.Errorf("%s was rewritten by a revision that does not target it (%v -> %v)", p, st, got)
			}
		}
	})

	t.Run("bad_commit_refused_everywhere", func(t *testing.T) {
		lastGood := good
		// The broken revision also changes every host's valid files:
		// none of it may be applied.
		bad := f.push(t, map[string]string{"main.hcl": placementConfig(dir, "v4", "v4", `["web-1"]`), "bad.hcl": badHCL}, "broken")
		re := diagRE("bad.hcl", lineOf(t, badHCL, "= ="))
		for _, n := range all {
			waitAgent(t, n.name()+" to refuse "+f.rev(bad), func() (bool, string) {
				m, sum, err := n.self()
				if err != nil {
					return false, err.Error()
				}
				st := m.Status
				ok := st.Attempted == f.rev(bad) && st.Revision == f.rev(lastGood) &&
					(st.State == hostRefused || st.State == hostFailing) && re.MatchString(st.Message)
				return ok, sum
			})
		}
		want := placementWant("v2", "v3", "web-1")
		for _, n := range all {
			f.requireFiles(t, n.name(), want[n.name()])
		}
		// Every agent sees, through gossip, the refusal everywhere; the
		// table shows it and where the error is.
		waitAgent(t, "web-1 to see every host refuse "+f.rev(bad), func() (bool, string) {
			s, _, err := web1.status()
			if err != nil {
				return false, err.Error()
			}
			for _, n := range all {
				m, ok := s.member(n.name())
				if !ok || m.Status.Attempted != f.rev(bad) || m.Status.Revision != f.rev(lastGood) ||
					(m.Status.State != hostRefused && m.Status.State != hostFailing) {
					return false, s.summary()
				}
			}
			return true, ""
		})
		r := web1.berth(nil, "status", "--agent", web1.agentAddr())
		if r.code != 0 {
			t.Fatalf("berth status exited %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("berth status with a refused revision:\n%s", r.stdout)
		requireContains(t, "berth status", r.stdout, "HOST", "REVISION", "STATE", "web-1", "web-2", "db-1", "bad.hcl")
		if !regexp.MustCompile(hostRefused + "|" + hostFailing).MatchString(r.stdout) {
			t.Errorf("berth status does not show the hosts refused or failing:\n%s", r.stdout)
		}
		if !re.MatchString(r.stdout) {
			t.Errorf("berth status does not show the diagnostic's location (bad.hcl line %d):\n%s", lineOf(t, badHCL, "= ="), r.stdout)
		}

		// The next good commit is applied everywhere.
		current = placementConfig(dir, "v5", "v5", `["web-1"]`)
		good = f.push(t, map[string]string{"main.hcl": current}, "v5: fixed")
		f.waitApplied(t, good, all...)
		want = placementWant("v5", "v5", "web-1")
		for _, n := range all {
			f.requireFiles(t, n.name(), want[n.name()])
			m, _, err := n.self()
			if err != nil {
				t.Fatal(err)
			}
			if m.Status.Attempted != f.rev(good) || m.Status.Message != "" && re.MatchString(m.Status.Message) {
				t.Errorf("%s after the fix: attempted %s, message %q", n.name(), m.Status.Attempted, m.Status.Message)
			}
		}
	})

	t.Run("drift_corrected", func(t *testing.T) {
		everywhere := filepath.Join(f.filesDir("web-1"), "everywhere")
		want := placementWant("v5", "v5", "web-1")
		if err := os.WriteFile(everywhere, []byte("edited by hand\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dbFile := filepath.Join(f.filesDir("db-1"), "db")
		if err := os.Remove(dbFile); err != nil {
			t.Fatal(err)
		}
		f.waitFile(t, "web-1", "everywhere", want["web-1"]["everywhere"])
		f.waitFile(t, "db-1", "db", want["db-1"]["db"])
		web1.waitMetric(t, "berth_agent_drift_detected_total", nil, 1)
		web1.waitMetric(t, "berth_agent_drift_corrections_total", nil, 1)
		db1.waitMetric(t, "berth_agent_drift_corrections_total", nil, 1)
		f.waitApplied(t, good, web1, db1)
	})

	t.Run("plan_fleet", func(t *testing.T) {
		cfg := t.TempDir()
		agentWriteFile(t, filepath.Join(cfg, "main.hcl"), current, 0o644)
		// The configuration every host runs: no host would change.
		r := db1.berth(nil, "plan", "--fleet", db1.agentAddr(), "-detailed-exitcode", cfg)
		if r.code != 0 {
			t.Errorf("berth plan --fleet -detailed-exitcode of the applied configuration exited %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
		}
		noChanges := regexp.MustCompile(`(?i)no changes`)
		for h, sec := range planSections(t, r.stdout, "web-1", "web-2", "db-1") {
			if !noChanges.MatchString(sec) {
				t.Errorf("the plan of %s does not say it has no changes:\n%s", h, sec)
			}
		}

		// An extra file for the web tier: the web hosts would change,
		// the database would not.
		extra := current + `
file "extra" {
  placement {
    labels = { role = "web" }
  }
  path    = "${local.dir}/extra"
  content = "extra\n"
}
`
		agentWriteFile(t, filepath.Join(cfg, "main.hcl"), extra, 0o644)
		r = db1.berth(nil, "plan", "--fleet", db1.agentAddr(), "-detailed-exitcode", cfg)
		if r.code != 2 {
			t.Errorf("berth plan --fleet -detailed-exitcode with changes exited %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("berth plan --fleet with changes:\n%s", r.stdout)
		sections := planSections(t, r.stdout, "web-1", "web-2", "db-1")
		for _, h := range []string{"web-1", "web-2"} {
			requireContains(t, "the plan of "+h, sections[h], "file.extra", "Plan: 1 to add, 0 to change, 0 to destroy.")
		}
		requireNotContains(t, "the plan of db-1", sections["db-1"], "file.extra")
		if !noChanges.MatchString(sections["db-1"]) {
			t.Errorf("the plan of db-1 does not say it has no changes:\n%s", sections["db-1"])
		}
		if !regexp.MustCompile(`(?im)^.*fleet.*$`).MatchString(r.stdout) {
			t.Errorf("berth plan --fleet prints no fleet summary:\n%s", r.stdout)
		}

		// The same as JSON.
		r = db1.berth(nil, "plan", "--fleet", db1.agentAddr(), "-json", cfg)
		if r.code != 0 {
			t.Fatalf("berth plan --fleet -json exited %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var fp fleetPlanJSON
		if err := json.Unmarshal([]byte(r.stdout), &fp); err != nil {
			t.Fatalf("berth plan --fleet -json: %v\n%s", err, r.stdout)
		}
		seen := map[string]bool{}
		for _, h := range fp.Hosts {
			seen[h.Node] = true
			changes := h.Add + h.Change + h.Destroy
			switch h.Node {
			case "web-1", "web-2":
				if h.Add != 1 || h.Change != 0 || h.Destroy != 0 || !strings.Contains(strings.Join(h.Changes, " "), "file.extra") {
					t.Errorf("the JSON plan of %s: add %d change %d destroy %d changes %v, want file.extra added", h.Node, h.Add, h.Change, h.Destroy, h.Changes)
				}
			case "db-1":
				if changes != 0 {
					t.Errorf("the JSON plan of db-1 has %d changes: %v", changes, h.Changes)
				}
			default:
				t.Errorf("the JSON plan names an unknown host %q", h.Node)
			}
			if h.Error != "" || h.Invalid {
				t.Errorf("the JSON plan of %s: error %q, invalid %v", h.Node, h.Error, h.Invalid)
			}
		}
		for _, n := range all {
			if !seen[n.name()] {
				t.Errorf("the JSON plan has no host %s:\n%s", n.name(), r.stdout)
			}
		}

		// A plan applies nothing.
		for _, n := range []*agentNode{web1, web2} {
			if _, err := os.Stat(filepath.Join(f.filesDir(n.name()), "extra")); !os.IsNotExist(err) {
				t.Errorf("berth plan --fleet made file.extra on %s (%v)", n.name(), err)
			}
		}
		// A configuration sent to be planned may not read the hosts'
		// files: the fleet's webhook secret stays out of every answer.
		peek := current + fmt.Sprintf(`
file "peek" {
  path    = "${local.dir}/peek"
  content = file(%q)
}
`, f.webhookSecretFile)
		agentWriteFile(t, filepath.Join(cfg, "main.hcl"), peek, 0o644)
		r = db1.berth(nil, "plan", "--fleet", db1.agentAddr(), cfg)
		if r.code != 1 {
			t.Errorf("berth plan --fleet of a configuration reading a host file exited %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
		}
		requireContains(t, "berth plan --fleet of a configuration reading a host file", r.stdout, "outside the configuration directory")
		requireNotContains(t, "berth plan --fleet of a configuration reading a host file", r.stdout+r.stderr, f.webhookSecret)

		// Nor may it probe them through a provider: an image archive
		// missing from the hosts is not reported as missing, as a plan
		// on the host itself would.
		probe := current + `
image "probe" {
  archive = "/nonexistent/berth-probe.tar"
}
`
		agentWriteFile(t, filepath.Join(cfg, "main.hcl"), probe, 0o644)
		r = db1.berth(nil, "plan", "--fleet", db1.agentAddr(), cfg)
		if r.code != 0 {
			t.Errorf("berth plan --fleet of a configuration naming a missing archive exited %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
		}
		requireContains(t, "berth plan --fleet of a configuration naming a missing archive", r.stdout, "image.probe")
		requireNotContains(t, "berth plan --fleet of a configuration naming a missing archive", r.stdout+r.stderr, "cannot be read")
	})

	t.Run("tcp_api_needs_the_token", func(t *testing.T) {
		// From web-2's namespace, ask web-1 over HTTPS.
		addr := "https://" + net.JoinHostPort(web1.ip(), strconv.Itoa(agentAPIPort))
		r := web2.berth(nil, "status", "--agent", addr, "--token-file", f.tokenFile, "--ca-file", f.caFile, "-json")
		if r.code != 0 {
			t.Fatalf("berth status --agent %s exited %d\n%s%s", addr, r.code, r.stdout, r.stderr)
		}
		var s fleetStatus
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("berth status -json over TCP: %v\n%s", err, r.stdout)
		}
		if got := strings.Join(s.names(), " "); got != "db-1 web-1 web-2" {
			t.Errorf("berth status over TCP lists %q, want db-1 web-1 web-2", got)
		}
		wrong := filepath.Join(t.TempDir(), "wrong.token")
		agentWriteFile(t, wrong, "not-the-token", 0o600)
		for what, args := range map[string][]string{
			"no token":    {"status", "--agent", addr, "--ca-file", f.caFile, "-json"},
			"wrong token": {"status", "--agent", addr, "--token-file", wrong, "--ca-file", f.caFile, "-json"},
		} {
			if r := web2.berth([]string{"BERTH_AGENT_TOKEN="}, args...); r.code == 0 {
				t.Errorf("berth status over TCP with %s succeeded:\n%s", what, r.stdout)
			}
		}
	})

	t.Run("wrong_gossip_key_never_joins", func(t *testing.T) {
		// Two agents start at once: late-1 with the fleet's key and
		// intruder with another one; both are told to join the fleet.
		late := f.addNode(agentOptions{Name: "late-1", Labels: map[string]string{"role": "late", "zone": "c"}})
		intruder := f.addNode(agentOptions{Name: "intruder", Labels: map[string]string{"role": "web", "zone": "a"},
			GossipKeyFile: f.newGossipKey("wrong-gossip.key")})
		late.start()
		intruder.start()
		legit := []*agentNode{web1, web2, db1, late}
		// late-1 joins: everyone sees it alive, and it applies the
		// revision; the intruder runs too (it applies the revision
		// from git on its own).
		for _, v := range legit {
			f.waitMember(t, []*agentNode{v}, "late-1", memberAlive)
		}
		f.waitApplied(t, good, late, intruder)
		noIntruder := func() {
			t.Helper()
			for _, v := range legit {
				s, _, err := v.status()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := s.member("intruder"); ok {
					t.Errorf("%s lists the agent with the wrong gossip key: %s", v.name(), s.summary())
				}
			}
			s, _, err := intruder.status()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(s.names(), " "); got != "intruder" {
				t.Errorf("the agent with the wrong gossip key sees %q, want only itself", got)
			}
		}
		noIntruder()
		// A new revision spreads to every member, late-1 included; the
		// intruder still is no member.
		current = placementConfig(dir, "v6", "v6", `["web-1"]`)
		good = f.push(t, map[string]string{"main.hcl": current}, "v6")
		f.waitApplied(t, good, legit...)
		f.waitSeenApplied(t, web1, good, legit...)
		f.waitApplied(t, good, intruder)
		noIntruder()
	})
}

// TestAgentWebhook polls only once an hour: a push is seen only when a
// webhook (or berth sync) tells one agent, which tells the others by
// gossip. Bad signatures are refused with 401 and counted.
func TestAgentWebhook(t *testing.T) {
	requireAgentTools(t)
	t.Parallel()
	f := newAgentFleet(t)
	var all []*agentNode
	for i := 1; i <= 3; i++ {
		all = append(all, f.addNode(agentOptions{Name: fmt.Sprintf("hook-%d", i), Labels: map[string]string{"role": "hook"}, PollInterval: "1h"}))
	}
	dir := f.filesHCL()
	push := func(version string) string {
		t.Helper()
		return f.push(t, map[string]string{"main.hcl": fileConfig(dir, "hook", version)}, version)
	}
	requireHook := func(t *testing.T, version string) {
		t.Helper()
		for _, n := range all {
			f.waitFile(t, n.name(), "hook", version+" "+n.name()+"\n")
		}
	}
	// The agents fetch once when they start.
	h1 := push("v1")
	f.startAll()
	f.waitApplied(t, h1, all...)
	requireHook(t, "v1")

	t.Run("bad_signatures_rejected", func(t *testing.T) {
		h2 := push("v2")
		body := f.pushPayload(h1, h2)
		for _, tc := range []struct {
			name, provider string
			header         http.Header
		}{
			{"github_wrong_secret", "github", http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {"sha256=" + hmacHex("not-the-secret", body)}}},
			{"github_no_signature", "github", http.Header{"X-Github-Event": {"push"}}},
			{"github_signature_of_another_body", "github", http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {"sha256=" + hmacHex(f.webhookSecret, append([]byte(" "), body...))}}},
			{"gitea_wrong_secret", "gitea", http.Header{"X-Gitea-Event": {"push"}, "X-Gitea-Signature": {hmacHex("not-the-secret", body)}}},
		} {
			code, answer := all[0].postHook(t, tc.provider, tc.header, body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s: the webhook answered %d %s, want 401", tc.name, code, answer)
			}
			if strings.Contains(answer, f.webhookSecret) {
				t.Errorf("%s: the answer holds the secret: %s", tc.name, answer)
			}
		}
		all[0].waitMetric(t, "berth_agent_webhooks_total", map[string]string{"provider": "github", "result": "rejected"}, 3)
		all[0].waitMetric(t, "berth_agent_webhooks_total", map[string]string{"provider": "gitea", "result": "rejected"}, 1)
		if v := all[0].metric(t, "berth_agent_webhooks_total", map[string]string{"result": "accepted"}); v != 0 {
			t.Errorf("berth_agent_webhooks_total{result=accepted} is %v after bad signatures only", v)
		}
		// Nothing was synced: every host still runs v1.
		for _, n := range all {
			m, sum, err := n.self()
			if err != nil {
				t.Fatal(err)
			}
			if m.Status.Revision != f.rev(h1) || m.Status.Attempted != f.rev(h1) {
				t.Errorf("%s moved after refused webhooks: %s", n.name(), sum)
			}
		}

		// A good signature on one host: all three converge.
		code, answer := all[0].postHook(t, "github", http.Header{
			"X-Github-Event":      {"push"},
			"X-Github-Delivery":   {"d-" + agentRandomHex(t, 8)},
			"X-Hub-Signature-256": {"sha256=" + hmacHex(f.webhookSecret, body)},
		}, body)
		if code/100 != 2 {
			t.Fatalf("a well-signed GitHub push: %d %s", code, answer)
		}
		f.waitApplied(t, h2, all...)
		requireHook(t, "v2")
		all[0].waitMetric(t, "berth_agent_webhooks_total", map[string]string{"provider": "github", "result": "accepted"}, 1)
	})

	t.Run("gitea_push", func(t *testing.T) {
		before := f.git.Head(t)
		h3 := push("v3")
		body := f.pushPayload(before, h3)
		code, answer := all[1].postHook(t, "gitea", http.Header{
			"X-Gitea-Event":     {"push"},
			"X-Gitea-Signature": {hmacHex(f.webhookSecret, body)},
		}, body)
		if code/100 != 2 {
			t.Fatalf("a well-signed Gitea push: %d %s", code, answer)
		}
		f.waitApplied(t, h3, all...)
		requireHook(t, "v3")
	})

	t.Run("berth_sync", func(t *testing.T) {
		h4 := push("v4")
		all[2].mustBerth(0, nil, "sync", "--agent", all[2].agentAddr())
		f.waitApplied(t, h4, all...)
		requireHook(t, "v4")
	})
}

// fileConfig is one file, name, per host, holding version and the
// host's name.
func fileConfig(dir, name, version string) string {
	return fmt.Sprintf(`locals {
  dir = %s
}

file %q {
  path    = "${local.dir}/%s"
  content = "%s ${host.name}\n"
}
`, dir, name, name, version)
}
