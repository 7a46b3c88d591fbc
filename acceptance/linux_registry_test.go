package acceptance

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berthhq/berth/acceptance/testenv"
)

// sleeper is the command of a test container that prints word and then
// runs until it is stopped.
func sleeper(word string) []string {
	return []string{"sh", "-c", "echo " + word + "; exec sleep 3600"}
}

// hclList writes a list of strings as HCL.
func hclList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// pullConfig is a registry, an image pulled through it and a container
// running it. reg is the registry block's body.
func pullConfig(reg, ref, pull string) string {
	return fmt.Sprintf(`
variable "registry_password" {
  type      = string
  default   = ""
  sensitive = true
}

registry "r" {
%s
}

image "app" {
  ref      = %q
  registry = registry.r
  pull     = %q
}

container "app" {
  network_mode = "none"
  image = image.app
%s}
`, reg, ref, pull, quick)
}

// stopRegistry kills the docker-registry process of reg: the registry
// becomes unreachable. testenv's own cleanup copes with a dead registry.
func stopRegistry(t *testing.T, reg *testenv.Registry) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c := cmdline(pid)
		if strings.Contains(c, "docker-registry") && strings.Contains(c, filepath.Join(reg.Dir, "config.yml")) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("stop the registry: %v", err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no docker-registry process of %s found", reg.Dir)
	}
	waitFor(t, "the registry to stop answering", func() (bool, string) {
		resp, err := reg.Client(t).Get(reg.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			return false, resp.Status
		}
		return true, ""
	})
}

// noSecretOnDisk fails the test when secret appears in any file under
// the host's directories (the inventory, saved plans, logs), except in the
// linux provider's records of the objects it owns: it needs a registry's
// password to pull later, as docker keeps it in config.json. Those records
// must be readable by root only.
func noSecretOnDisk(t *testing.T, h *linuxHost, secret string) {
	t.Helper()
	objects := filepath.Join(h.stateDir, "providers", "linux", "objects")
	filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), secret) {
			return nil
		}
		if filepath.Dir(p) != objects {
			t.Errorf("the registry password is written in %s", p)
			return nil
		}
		fi, err := os.Stat(p)
		dfi, derr := os.Stat(objects)
		if err != nil || derr != nil || (fi.Mode().Perm()&0o077 != 0 && dfi.Mode().Perm()&0o077 != 0) {
			t.Errorf("%s holds the registry password and is readable by others than root", p)
		}
		return nil
	})
}

// TestLinuxPull pulls images through registries with and without
// authentication, over plain HTTP when declared insecure and over HTTPS
// with a private CA, and checks that every failure says what went wrong
// without showing the password.
func TestLinuxPull(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	authReg := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	plainReg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	tlsReg := testenv.StartRegistry(t, testenv.RegistryOptions{TLS: true, Auth: true})
	img := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: sleeper("pulled-ok")})
	for _, r := range []*testenv.Registry{authReg, plainReg, tlsReg} {
		testenv.Push(t, r, "tools/busybox:1.35", img)
	}

	t.Run("auth", func(t *testing.T) {
		h := newLinuxHost(t)
		h.write(pullConfig(fmt.Sprintf("  address  = %q\n  username = %q\n  password = var.registry_password\n  insecure = true", authReg.Addr, authReg.Username),
			authReg.Ref("tools/busybox:1.35"), "missing"))
		env := []string{"BERTH_VAR_registry_password=" + authReg.Password}
		plan := h.mustBerth(0, env, "plan", h.cfgDir)
		requireContains(t, "plan", plan.stdout, "(sensitive value)")
		ap := h.apply(env...)
		h.waitLogs("container.app", "pulled-ok")
		h.converged(env...)
		show := h.mustBerth(0, env, "show")
		for what, out := range map[string]string{"plan": plan.stdout + plan.stderr, "apply": ap.stdout + ap.stderr, "show": show.stdout + show.stderr} {
			requireNotContains(t, what, out, authReg.Password)
		}
		noSecretOnDisk(t, h, authReg.Password)
		ls := h.mustBerth(0, nil, "image", "ls")
		requireContains(t, "image ls", ls.stdout, authReg.Addr+"/tools/busybox:1.35")
	})

	t.Run("insecure_without_auth", func(t *testing.T) {
		h := newLinuxHost(t)
		h.write(pullConfig(fmt.Sprintf("  address  = %q\n  insecure = true", plainReg.Addr), plainReg.Ref("tools/busybox:1.35"), "missing"))
		h.apply()
		h.waitLogs("container.app", "pulled-ok")
		h.converged()
	})

	t.Run("wrong_password", func(t *testing.T) {
		h := newLinuxHost(t)
		const wrong = "not-the-password-4711"
		h.write(pullConfig(fmt.Sprintf("  address  = %q\n  username = %q\n  password = var.registry_password\n  insecure = true", authReg.Addr, authReg.Username),
			authReg.Ref("tools/busybox:1.35"), "missing"))
		r := h.mustBerth(1, []string{"BERTH_VAR_registry_password=" + wrong}, "apply", "-auto-approve", h.cfgDir)
		out := r.stdout + r.stderr
		requireContains(t, "the failed apply", out, authReg.Addr, authReg.Username)
		requireNotContains(t, "the failed apply", out, wrong, authReg.Password)
		noSecretOnDisk(t, h, wrong)
		if ps := h.ps(); len(ps) != 0 {
			t.Errorf("a container was made although its image could not be pulled: %v", ps)
		}
	})

	t.Run("password_fixed_after_failure", func(t *testing.T) {
		h := newLinuxHost(t)
		h.write(pullConfig(fmt.Sprintf("  address  = %q\n  username = %q\n  password = var.registry_password\n  insecure = true", authReg.Addr, authReg.Username),
			authReg.Ref("tools/busybox:1.35"), "missing"))
		h.mustBerth(1, []string{"BERTH_VAR_registry_password=wrong-one"}, "apply", "-auto-approve", h.cfgDir)
		// The operator gives the right password: the next apply pulls
		// with it.
		env := []string{"BERTH_VAR_registry_password=" + authReg.Password}
		h.apply(env...)
		h.waitLogs("container.app", "pulled-ok")
		h.converged(env...)
	})

	t.Run("https_by_default", func(t *testing.T) {
		h := newLinuxHost(t)
		// 127.0.0.1 without insecure: berth must not fall back to
		// plain HTTP on its own.
		h.write(pullConfig(fmt.Sprintf("  address = %q", plainReg.Addr), plainReg.Ref("tools/busybox:1.35"), "missing"))
		r := h.mustBerth(1, nil, "apply", "-auto-approve", h.cfgDir)
		out := r.stdout + r.stderr
		requireContains(t, "the failed apply", out, plainReg.Addr, "insecure = true")
		if ps := h.ps(); len(ps) != 0 {
			t.Errorf("the image was pulled over plain HTTP from a registry not declared insecure: %v", ps)
		}
	})

	t.Run("missing_tag", func(t *testing.T) {
		h := newLinuxHost(t)
		ref := plainReg.Ref("tools/busybox:no-such-tag")
		h.write(pullConfig(fmt.Sprintf("  address  = %q\n  insecure = true", plainReg.Addr), ref, "missing"))
		r := h.mustBerth(1, nil, "apply", "-auto-approve", h.cfgDir)
		requireContains(t, "the failed apply", r.stdout+r.stderr, ref)
	})

	tlsCreds := fmt.Sprintf("  address  = %q\n  username = %q\n  password = var.registry_password\n", tlsReg.Addr, tlsReg.Username)
	tlsEnv := []string{"BERTH_VAR_registry_password=" + tlsReg.Password}
	t.Run("tls_with_ca_file", func(t *testing.T) {
		h := newLinuxHost(t)
		h.write(pullConfig(tlsCreds+fmt.Sprintf("  ca_file  = %q", tlsReg.CAFile), tlsReg.Ref("tools/busybox:1.35"), "missing"))
		h.apply(tlsEnv...)
		h.waitLogs("container.app", "pulled-ok")
		h.converged(tlsEnv...)
	})

	t.Run("tls_ca_file_added_after_failure", func(t *testing.T) {
		h := newLinuxHost(t)
		// Without the CA the certificate is not trusted, and the error
		// says what to do.
		h.write(pullConfig(tlsCreds, tlsReg.Ref("tools/busybox:1.35"), "missing"))
		r := h.mustBerth(1, tlsEnv, "apply", "-auto-approve", h.cfgDir)
		requireContains(t, "the apply without ca_file", r.stdout+r.stderr, tlsReg.Addr, "ca_file")
		requireNotContains(t, "the apply without ca_file", r.stdout+r.stderr, tlsReg.Password)
		// The operator adds the CA: the same apply must now pull with it.
		h.write(pullConfig(tlsCreds+fmt.Sprintf("  ca_file  = %q", tlsReg.CAFile), tlsReg.Ref("tools/busybox:1.35"), "missing"))
		h.apply(tlsEnv...)
		h.waitLogs("container.app", "pulled-ok")
		h.converged(tlsEnv...)
	})
}

// TestLinuxTagMoved moves a tag on the registry: the next plan shows the
// image's new digest and replaces the container because of the image.
// With the registry gone, a pull = "always" image that is in the store
// plans with a warning.
func TestLinuxTagMoved(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	v1 := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: sleeper("image-one")})
	v2 := testenv.BusyboxImage(t, testenv.ImageConfig{Cmd: sleeper("image-two")})
	d1, err := v1.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := v2.Digest()
	if err != nil {
		t.Fatal(err)
	}
	testenv.Push(t, reg, "tools/app:stable", v1)
	h := newLinuxHost(t)
	h.write(pullConfig(fmt.Sprintf("  address  = %q\n  insecure = true", reg.Addr), reg.Ref("tools/app:stable"), "always"))
	h.apply()
	h.waitLogs("container.app", "image-one")
	h.converged()
	oldID := h.id("container.app")

	testenv.Push(t, reg, "tools/app:stable", v2)
	plan := h.planChanges()
	requireContains(t, "the plan after the tag moved", plan,
		d1.String(), d2.String(),
		"container.app must be replaced",
		"image changed")
	// The reason of the container's replacement is its image.
	for _, l := range strings.Split(plan, "\n") {
		if strings.Contains(l, "forces replacement") && !strings.Contains(l, "image") && !strings.Contains(l, "id ") {
			t.Errorf("the replacement is forced by something else than the image: %q\n%s", l, plan)
		}
	}
	h.apply()
	if id := h.id("container.app"); id == oldID {
		t.Errorf("the container was not replaced (ID %s)", id)
	}
	h.waitLogs("container.app", "image-two")
	h.converged()

	// The registry goes away; the image is in the store.
	stopRegistry(t, reg)
	r := h.mustBerth(0, nil, "plan", "-detailed-exitcode", h.cfgDir)
	out := r.stdout + r.stderr
	requireContains(t, "the plan with the registry down", out, "Warning", reg.Addr)
	requireContains(t, "the plan with the registry down", out, "No changes")
	t.Logf("plan with the registry down:\n%s", out)
	// apply has nothing to do either, and the container keeps running.
	h.apply()
	if row := h.ps()["container.app"]; row.State != "running" {
		t.Errorf("container.app with the registry down: %+v", row)
	}
}
