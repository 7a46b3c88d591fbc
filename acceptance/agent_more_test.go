package acceptance

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
)

// TestAgentSignatures turns verification on (OpenPGP keys and SSH
// allowed signers): only commits signed by a trusted key are applied;
// unsigned commits and commits signed by other keys are refused with the
// reason, and the hosts keep running the last good revision.
func TestAgentSignatures(t *testing.T) {
	requireAgentTools(t)
	t.Parallel()
	f := newAgentFleet(t)
	pgp := testenv.NewOpenPGPKey(t, "Fleet Deployer", "deploy@example.test")
	otherPGP := testenv.NewOpenPGPKey(t, "Someone Else", "else@example.test")
	ssh := testenv.NewSSHKey(t, "deploy@example.test")
	otherSSH := testenv.NewSSHKey(t, "else@example.test")
	verify := fmt.Sprintf("    openpgp_keys_file   = %q\n    ssh_allowed_signers = %q\n", pgp.PublicFile, ssh.PublicFile)
	var all []*agentNode
	for i := 1; i <= 3; i++ {
		all = append(all, f.addNode(agentOptions{Name: fmt.Sprintf("sig-%d", i), Labels: map[string]string{"role": "sig"}, Verify: verify}))
	}
	dir := f.filesHCL()
	cfg := func(version string) map[string]string {
		return map[string]string{"main.hcl": fileConfig(dir, "signed", version)}
	}
	requireSigned := func(t *testing.T, version string) {
		t.Helper()
		for _, n := range all {
			f.requireFiles(t, n.name(), map[string]string{"signed": version + " " + n.name() + "\n"})
		}
	}
	good := f.pushSigned(t, pgp, cfg("v1"), "v1 signed with the trusted OpenPGP key")
	f.startAll()
	f.waitApplied(t, good, all...)
	requireSigned(t, "v1")
	goodVersion := "v1"

	signRE := regexp.MustCompile(`(?i)sign`)
	for _, tc := range []struct {
		name    string
		key     *testenv.SigningKey // nil: unsigned
		trusted bool
	}{
		{"unsigned", nil, false},
		{"openpgp_untrusted_key", otherPGP, false},
		{"ssh_trusted_key", ssh, true},
		{"ssh_untrusted_key", otherSSH, false},
		{"openpgp_trusted_key", pgp, true},
		{"unsigned_again", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := "v-" + tc.name
			var hash string
			if tc.key == nil {
				hash = f.push(t, cfg(version), tc.name)
			} else {
				hash = f.pushSigned(t, tc.key, cfg(version), tc.name)
			}
			if tc.trusted {
				f.waitApplied(t, hash, all...)
				requireSigned(t, version)
				good, goodVersion = hash, version
				return
			}
			for _, n := range all {
				waitAgent(t, n.name()+" to refuse "+f.rev(hash), func() (bool, string) {
					m, sum, err := n.self()
					if err != nil {
						return false, err.Error()
					}
					st := m.Status
					return st.Attempted == f.rev(hash) && st.Revision == f.rev(good) &&
						st.State == hostRefused && signRE.MatchString(st.Message), sum
				})
			}
			requireSigned(t, goodVersion)
			// Every agent sees, through gossip, the others refuse it too.
			waitAgent(t, all[0].name()+" to see every host refuse "+f.rev(hash), func() (bool, string) {
				s, _, err := all[0].status()
				if err != nil {
					return false, err.Error()
				}
				for _, n := range all {
					m, ok := s.member(n.name())
					if !ok || m.Status.State != hostRefused || m.Status.Attempted != f.rev(hash) || m.Status.Revision != f.rev(good) {
						return false, s.summary()
					}
				}
				return true, ""
			})
		})
	}
}

// containerConfig runs one container, "app", with restart = "no" (so
// that only the agent can bring it back) on every host, and a file
// holding version.
func containerConfig(dir, version string) string {
	return fmt.Sprintf(`locals {
  dir = %[1]s
}

container "app" {
  network_mode = "none"
  image        = %[2]q
  command      = %[3]s
  restart      = "no"
%[4]s}

file "marker" {
  path    = "${local.dir}/marker"
  content = "%[5]s ${host.name}\n"
}
`, dir, busyboxRef, hclList(sleeper("app-up")), quick, version)
}

// TestAgentContainers runs a container and a file on three hosts (app-3
// in drift report mode): kill -9 of an agent is seen by the others and
// its restart restarts no container; a partitioned host keeps running,
// then rejoins and converges to what was pushed while it was away;
// drift is corrected in "correct" mode and only reported in "report"
// mode.
func TestAgentContainers(t *testing.T) {
	requireAgentTools(t)
	t.Parallel()
	f := newAgentFleet(t)
	app1 := f.addNode(agentOptions{Name: "app-1", Labels: map[string]string{"role": "app"}, Linux: true})
	app2 := f.addNode(agentOptions{Name: "app-2", Labels: map[string]string{"role": "app"}, Linux: true})
	app3 := f.addNode(agentOptions{Name: "app-3", Labels: map[string]string{"role": "app"}, Linux: true, DriftMode: "report"})
	all := []*agentNode{app1, app2, app3}
	dir := f.filesHCL()
	marker := func(n *agentNode, version string) string { return version + " " + n.name() + "\n" }

	h1 := f.push(t, map[string]string{"main.hcl": containerConfig(dir, "v1")}, "v1")
	// applied is the revision every host runs.
	applied := h1
	f.startAll()
	f.waitApplied(t, h1, all...)
	ids, pids := map[string]string{}, map[string]int{}
	for _, n := range all {
		f.requireFiles(t, n.name(), map[string]string{"marker": marker(n, "v1")})
		ids[n.name()] = n.id("container.app")
		pids[n.name()] = n.waitContainerInit(ids[n.name()])
	}

	t.Run("kill9_seen_and_restart_restarts_no_container", func(t *testing.T) {
		shims := app2.shimPids()
		app2.kill9()
		f.waitMember(t, []*agentNode{app1, app3}, "app-2", memberDead, memberSuspect)
		if !alive(pids["app-2"]) {
			t.Errorf("the container of app-2 (PID %d) died with its agent", pids["app-2"])
		}
		app2.start()
		f.waitMember(t, []*agentNode{app1, app3}, "app-2", memberAlive)
		f.waitApplied(t, h1, app2)
		// Two drift checks of the new agent have looked at the
		// container: it is still the same process, under the same shim.
		app2.waitMetric(t, "berth_agent_drift_checks_total", nil, 2)
		f.waitApplied(t, h1, app2)
		if got := app2.id("container.app"); got != ids["app-2"] {
			t.Errorf("the restarted agent replaced the container: %s -> %s", ids["app-2"], got)
		}
		if got := app2.containerInit(ids["app-2"]); got != pids["app-2"] || !alive(pids["app-2"]) {
			t.Errorf("the container's process after the agent's restart is %d, want %d still running", got, pids["app-2"])
		}
		if got := app2.shimPids(); !slices.Equal(got, shims) {
			t.Errorf("the shims after the agent's restart are %v, want %v", got, shims)
		}
	})

	t.Run("partitioned_host_keeps_running_then_rejoins", func(t *testing.T) {
		app1.sim.Run(t, "ip", "link", "set", app1.sim.Link, "down")
		// Put the link back even if the test fails half-way, before the
		// host's network state is compared with what it was.
		t.Cleanup(func() { app1.sim.Exec("ip", "link", "set", app1.sim.Link, "up") })
		f.waitMember(t, []*agentNode{app2, app3}, "app-1", memberDead, memberSuspect)

		h2 := f.push(t, map[string]string{"main.hcl": containerConfig(dir, "v2")}, "v2 while app-1 is away")
		f.waitApplied(t, h2, app2, app3)
		f.requireFiles(t, "app-2", map[string]string{"marker": marker(app2, "v2")})
		// app-1 cannot reach the git server: it keeps what it runs.
		f.requireFiles(t, "app-1", map[string]string{"marker": marker(app1, "v1")})
		if got := app1.containerInit(ids["app-1"]); got != pids["app-1"] || !alive(pids["app-1"]) {
			t.Errorf("the container of the partitioned host runs as %d, want %d", got, pids["app-1"])
		}
		if m, sum, err := app1.self(); err != nil {
			t.Error(err)
		} else if m.Status.Revision != f.rev(h1) {
			t.Errorf("the partitioned host reports revision %s, want %s: %s", m.Status.Revision, f.rev(h1), sum)
		}

		app1.sim.Run(t, "ip", "link", "set", app1.sim.Link, "up")
		f.waitMember(t, []*agentNode{app2, app3}, "app-1", memberAlive)
		f.waitMember(t, []*agentNode{app1}, "app-2", memberAlive)
		f.waitMember(t, []*agentNode{app1}, "app-3", memberAlive)
		f.waitApplied(t, h2, app1)
		f.waitSeenApplied(t, app2, h2, all...)
		f.requireFiles(t, "app-1", map[string]string{"marker": marker(app1, "v2")})
		if got := app1.containerInit(ids["app-1"]); got != pids["app-1"] || !alive(pids["app-1"]) {
			t.Errorf("the container of the host that rejoined runs as %d, want %d", got, pids["app-1"])
		}
		applied = h2
	})

	t.Run("drift_corrected_in_correct_mode", func(t *testing.T) {
		// app-2's agent was restarted above: it re-attached to the
		// container's shim and sees it die.
		if err := syscall.Kill(pids["app-2"], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitAgent(t, "the agent of app-2 to start the killed container again", func() (bool, string) {
			id, err := app2.containerID("container.app")
			if err != nil {
				return false, err.Error()
			}
			pid := app2.containerInit(id)
			return pid > 0 && pid != pids["app-2"] && alive(pid), fmt.Sprintf("container %s, init %d", id, pid)
		})
		path := filepath.Join(f.filesDir("app-2"), "marker")
		if err := os.WriteFile(path, []byte("edited by hand\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f.waitFile(t, "app-2", "marker", marker(app2, "v2"))
		app2.waitMetric(t, "berth_agent_drift_corrections_total", nil, 2)
		f.waitApplied(t, applied, app2)
	})

	t.Run("drift_only_reported_in_report_mode", func(t *testing.T) {
		id := ids["app-3"]
		if err := syscall.Kill(pids["app-3"], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(f.filesDir("app-3"), "marker")
		if err := os.WriteFile(path, []byte("edited by hand\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitAgent(t, "app-3 to report both drifts", func() (bool, string) {
			m, sum, err := app3.self()
			if err != nil {
				return false, err.Error()
			}
			return m.Status.State == hostDrifted && m.Status.Drifted >= 2, sum
		})
		// Two more drift checks: nothing was corrected.
		checks := app3.metric(t, "berth_agent_drift_checks_total", nil)
		app3.waitMetric(t, "berth_agent_drift_checks_total", nil, checks+2)
		if b, err := os.ReadFile(path); err != nil || string(b) != "edited by hand\n" {
			t.Errorf("report mode changed the file edited by hand: %q, %v", b, err)
		}
		if pid := app3.containerInit(id); pid != 0 {
			t.Errorf("report mode started the killed container again (PID %d)", pid)
		}
		if v := app3.metric(t, "berth_agent_drift_corrections_total", nil); v != 0 {
			t.Errorf("berth_agent_drift_corrections_total is %v in report mode", v)
		}
		m, sum, err := app3.self()
		if err != nil {
			t.Fatal(err)
		}
		if m.Status.State != hostDrifted || m.Status.Revision != f.rev(applied) {
			t.Errorf("app-3 after two more drift checks: %s", sum)
		}
		// The others see it drifted, through gossip.
		waitAgent(t, "app-1 to see app-3 drifted", func() (bool, string) {
			s, _, err := app1.status()
			if err != nil {
				return false, err.Error()
			}
			m, ok := s.member("app-3")
			return ok && m.Status.State == hostDrifted && m.Status.Drifted >= 2, s.summary()
		})
		// berth status shows it in its table too.
		r := app1.mustBerth(0, nil, "status", "--agent", app1.agentAddr())
		requireContains(t, "berth status", r.stdout, "app-3", hostDrifted)
	})
}
