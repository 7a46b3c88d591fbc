package acceptance

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
)

// TestLinuxBadInput checks that invalid settings are reported with the
// file and line at validate and plan, before anything changes, and that a
// container whose command is not in its image fails apply with the
// runtime's error while the other containers keep running.
func TestLinuxBadInput(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	h := newLinuxHost(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	testenv.SaveDocker(t, archive, "example.test/busybox:1", testenv.BusyboxImage(t, testenv.ImageConfig{}))
	h.mustBerth(0, nil, "image", "load", "-i", archive)
	good := fmt.Sprintf(`
container "good" {
  network_mode = "none"
  image   = "example.test/busybox:1"
  command = %s
%s}
`, hclList(sleeper("good")), quick)

	cases := []struct {
		name string
		// bad is the offending block; mark is a unique piece of the line
		// the diagnostic must point at; want are words the diagnostic
		// must hold.
		bad  string
		mark string
		want []string
	}{
		{
			name: "invalid_image_reference",
			bad:  "image \"bad\" {\n  ref = \"Not A Valid::Ref\"\n}\n",
			mark: `ref = "Not A Valid::Ref"`,
			want: []string{"Not A Valid::Ref"},
		},
		{
			name: "invalid_container_image_reference",
			bad:  "container \"bad\" {\n  image = \"UPPER/Case:tag\"\n}\n",
			mark: `image = "UPPER/Case:tag"`,
			want: []string{"UPPER/Case:tag"},
		},
		{
			name: "size_with_unknown_unit",
			bad:  "container \"bad\" {\n  image = \"example.test/busybox:1\"\n  resources {\n    memory = \"64Q\"\n  }\n}\n",
			mark: `memory = "64Q"`,
			want: []string{"64Q"},
		},
		{
			name: "tmpfs_size_with_unknown_unit",
			bad:  "container \"bad\" {\n  image = \"example.test/busybox:1\"\n  mount {\n    type   = \"tmpfs\"\n    target = \"/t\"\n    size   = \"64Q\"\n  }\n}\n",
			mark: `size   = "64Q"`,
			want: []string{"64Q"},
		},
		{
			name: "cpus_above_host_cores",
			bad:  fmt.Sprintf("container \"bad\" {\n  image = \"example.test/busybox:1\"\n  resources {\n    cpus = %d\n  }\n}\n", runtime.NumCPU()+1),
			mark: fmt.Sprintf("cpus = %d", runtime.NumCPU()+1),
			want: []string{fmt.Sprint(runtime.NumCPU())},
		},
		{
			name: "unknown_restart_policy",
			bad:  "container \"bad\" {\n  image   = \"example.test/busybox:1\"\n  restart = \"sometimes\"\n}\n",
			mark: `restart = "sometimes"`,
			want: []string{"sometimes", "on-failure"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := good + tc.bad
			h.write(src)
			line := lineOf(t, src, tc.mark)
			where := fmt.Sprintf("main.hcl line %d", line)
			r := h.mustBerth(1, nil, "validate", h.cfgDir)
			requireContains(t, "validate", r.stdout+r.stderr, append([]string{"Error", where}, tc.want...)...)
			r = h.mustBerth(1, nil, "plan", h.cfgDir)
			requireContains(t, "plan", r.stdout+r.stderr, append([]string{where}, tc.want...)...)
			if rows := h.ps(); len(rows) != 0 {
				t.Errorf("a plan of an invalid configuration made containers: %v", rows)
			}
		})
	}

	t.Run("command_not_in_image", func(t *testing.T) {
		h.write(good)
		h.apply()
		id := h.id("container.good")
		pid := h.waitContainerInit(id)
		h.write(good + fmt.Sprintf(`
container "broken" {
  network_mode = "none"
  image   = "example.test/busybox:1"
  command = ["/no/such/program", "arg"]
%s}
`, quick))
		r := h.mustBerth(1, nil, "apply", "-auto-approve", h.cfgDir)
		out := r.stdout + r.stderr
		requireContains(t, "the failed apply", out, "container.broken", "/no/such/program", "no such file or directory")
		if !alive(pid) || h.containerInit(id) != pid {
			t.Errorf("container.good's process %d did not survive the failed apply", pid)
		}
		if row := h.ps()["container.good"]; row.State != "running" {
			t.Errorf("container.good after the failed apply: %+v", row)
		}
		// Fixing the command converges.
		h.write(good + fmt.Sprintf(`
container "broken" {
  network_mode = "none"
  image   = "example.test/busybox:1"
  command = %s
%s}
`, hclList(sleeper("fixed")), quick))
		h.apply()
		h.waitLogs("container.broken", "fixed")
		h.converged()
		if h.containerInit(id) != pid {
			t.Errorf("fixing container.broken restarted container.good")
		}
	})
}

// TestLinuxUnsupportedNetworkMode checks that a network mode berth does
// not know is refused at validate with the file and line.
func TestLinuxUnsupportedNetworkMode(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	h := newLinuxHost(t)
	src := "container \"c\" {\n  image        = \"example.test/busybox:1\"\n  network_mode = \"overlay\"\n}\n"
	h.write(src)
	r := h.mustBerth(1, nil, "validate", h.cfgDir)
	requireContains(t, "validate", r.stdout+r.stderr, fmt.Sprintf("main.hcl line %d", lineOf(t, src, "network_mode")), `unknown network mode "overlay"`)
	if strings.Contains(r.stdout, "Success") {
		t.Errorf("validate says success:\n%s", r.stdout)
	}
}
