package acceptance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
)

// lineOf returns the 1-based line of the first line of src containing
// needle, or fails the test.
func lineOf(t *testing.T, src, needle string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, needle) {
			return i + 1
		}
	}
	t.Fatalf("%q is not in the configuration", needle)
	return 0
}

// exec runs a command in a container with berth exec and returns its
// standard output; it fails the test unless the command exits 0.
func (h *linuxHost) exec(address string, args ...string) string {
	h.t.Helper()
	return h.mustBerth(0, nil, append([]string{"exec", address, "--"}, args...)...).stdout
}

// volumeConfig is the configuration of TestLinuxVolumes: the container
// "app" mounts volume "site" at /www (filled from the image) and volume
// "blank" at /blank with copy_up = false; word changes its command.
func volumeConfig(ref, word, extra string) string {
	return fmt.Sprintf(`
volume "site" {}

volume "blank" {}

volume "keep" {
  lifecycle {
    prevent_destroy = true
  }
}

container "app" {
  network_mode = "none"
  image   = %q
  command = %s
  mount {
    type   = "volume"
    source = volume.site
    target = "/www"
  }
  mount {
    type    = "volume"
    source  = volume.blank
    target  = "/blank"
    copy_up = false
  }
  mount {
    type   = "tmpfs"
    target = "/scratch"
    size   = "8M"
  }
%s}
%s`, ref, hclList(sleeper(word)), quick, extra)
}

// TestLinuxVolumes checks named volumes: filled from the image once in
// their life, left empty with copy_up = false, kept across a container's
// replacement, and protected against deletion; bind mounts with and
// without create_host_path, and a tmpfs with a size.
func TestLinuxVolumes(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	h := newLinuxHost(t)
	dir := t.TempDir()
	v1 := filepath.Join(dir, "v1.tar")
	v2 := filepath.Join(dir, "v2.tar")
	testenv.SaveDocker(t, v1, "example.test/site:1", testenv.BusyboxImage(t, testenv.ImageConfig{
		Files: map[string]string{"www/index.html": "from-image-one\n", "blank/x": "must-not-be-copied\n"},
	}))
	testenv.SaveDocker(t, v2, "example.test/site:2", testenv.BusyboxImage(t, testenv.ImageConfig{
		Files: map[string]string{"www/index.html": "from-image-two\n", "www/only-in-two": "two\n"},
	}))
	h.mustBerth(0, nil, "image", "load", "-i", v1)
	h.mustBerth(0, nil, "image", "load", "-i", v2)

	h.write(volumeConfig("example.test/site:1", "one", ""))
	h.apply()
	h.converged()

	t.Run("copy_up_on_first_use", func(t *testing.T) {
		if got := h.exec("container.app", "cat", "/www/index.html"); got != "from-image-one\n" {
			t.Errorf("/www/index.html in the new volume: %q, want the image's", got)
		}
	})

	t.Run("copy_up_false_leaves_it_empty", func(t *testing.T) {
		if got := h.exec("container.app", "ls", "-A", "/blank"); got != "" {
			t.Errorf("the copy_up = false volume holds %q, want nothing", got)
		}
	})

	t.Run("tmpfs_with_size", func(t *testing.T) {
		mounts := h.exec("container.app", "cat", "/proc/mounts")
		var line string
		for _, l := range strings.Split(mounts, "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[1] == "/scratch" {
				line = l
			}
		}
		if !strings.HasPrefix(line, "tmpfs /scratch tmpfs") || !strings.Contains(line, "size=8192k") {
			t.Errorf("/scratch is mounted as %q, want a tmpfs with size=8192k\n%s", line, mounts)
		}
	})

	t.Run("data_survives_replace_and_is_never_refilled", func(t *testing.T) {
		old := h.id("container.app")
		h.exec("container.app", "sh", "-c", "echo changed > /www/index.html; echo mine > /www/added")
		// A new command and a new image: the container is replaced.
		h.write(volumeConfig("example.test/site:2", "two", ""))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "container.app must be replaced")
		requireNotContains(t, "the plan", plan, "volume.site must be replaced", "volume.site will be destroyed")
		h.apply()
		if h.id("container.app") == old {
			t.Fatal("the container was not replaced")
		}
		got := h.exec("container.app", "sh", "-c", "cat /www/index.html /www/added; ls /www")
		if got != "changed\nmine\nadded\nindex.html\n" {
			t.Errorf("the volume after the replacement with a new image holds %q, want the data written before and nothing of the new image", got)
		}
		// Emptied by hand: still never filled again.
		h.exec("container.app", "sh", "-c", "rm -f /www/*")
		h.write(volumeConfig("example.test/site:2", "three", ""))
		h.apply()
		if got := h.exec("container.app", "ls", "-A", "/www"); got != "" {
			t.Errorf("a volume filled once was filled again: it holds %q", got)
		}
		h.converged()
	})

	t.Run("deleting_a_volume_destroys_data", func(t *testing.T) {
		h.write(volumeConfig("example.test/site:2", "three", "\nvolume \"scratch\" {}\n"))
		h.apply()
		h.write(volumeConfig("example.test/site:2", "three", ""))
		plan := h.planChanges()
		requireContains(t, "the plan", plan, "volume.scratch will be destroyed", "destroys data")
		h.apply()
		h.converged()
	})

	t.Run("prevent_destroy", func(t *testing.T) {
		r := h.mustBerth(1, nil, "plan", "-destroy", h.cfgDir)
		requireContains(t, "plan -destroy", r.stdout+r.stderr, "volume.keep", "prevent_destroy")
		r = h.mustBerth(1, nil, "destroy", "-auto-approve", h.cfgDir)
		requireContains(t, "destroy", r.stdout+r.stderr, "volume.keep")
		if rows := h.ps(); rows["container.app"].State != "running" {
			t.Errorf("a refused destroy touched the container: %+v", rows)
		}
	})

	t.Run("bind_mounts", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no", "such", "dir")
		bind := func(create bool) string {
			return fmt.Sprintf(`
container "bound" {
  network_mode = "none"
  image   = "example.test/site:1"
  command = %s
  mount {
    type             = "bind"
    source           = %q
    target           = "/host"
    create_host_path = %t
  }
%s}
`, hclList(sleeper("bound")), missing, create, quick)
		}
		src := volumeConfig("example.test/site:2", "three", bind(false))
		h.write(src)
		line := lineOf(t, src, "source           = ")
		r := h.mustBerth(1, nil, "validate", h.cfgDir)
		out := r.stdout + r.stderr
		requireContains(t, "validate", out, fmt.Sprintf("main.hcl line %d", line), missing)
		r = h.mustBerth(1, nil, "plan", h.cfgDir)
		requireContains(t, "plan", r.stdout+r.stderr, fmt.Sprintf("main.hcl line %d", line))
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("validate or plan created the bind source %s", missing)
		}

		h.write(volumeConfig("example.test/site:2", "three", bind(true)))
		h.apply()
		h.waitLogs("container.bound", "bound")
		h.exec("container.bound", "sh", "-c", "echo from-container > /host/file")
		b, err := os.ReadFile(filepath.Join(missing, "file"))
		if err != nil || string(b) != "from-container\n" {
			t.Errorf("the bind mount's host directory holds %q, %v", b, err)
		}
		h.converged()
	})
}
