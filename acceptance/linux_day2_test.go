package acceptance

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/acceptance/testenv"
)

// talkerScript prints a few lines at start, then "late" and "followed"
// whenever the files /tmp/go and /tmp/go2 appear.
const talkerScript = `echo early; echo l1; echo l2; echo l3
while :; do
  if [ -f /tmp/go ]; then rm /tmp/go; echo late; fi
  if [ -f /tmp/go2 ]; then rm /tmp/go2; echo followed; fi
  sleep 0.1
done`

// day2Config is the configuration of TestLinuxDay2; extra is added at the
// end.
func day2Config(reg *testenv.Registry, httpAddr, extra string) string {
	return fmt.Sprintf(`
registry "local" {
  address  = %q
  insecure = true
}

image "day2" {
  ref      = %q
  registry = registry.local
}

container "web" {
  image        = image.day2
  command      = ["httpd", "-f", "-p", %q, "-h", "/www"]
  network_mode = "host"
  hostname     = "day2-box"
  restart      = "always"
  resources {
    memory = "64M"
  }
%[5]s}

container "talker" {
  network_mode = "none"
  image   = image.day2
  command = ["sh", "-c", %[4]q]
%[5]s}
%[6]s`, reg.Addr, reg.Ref("tools/day2:1"), httpAddr, talkerScript, quick, extra)
}

// httpGet fetches url and returns the body, or an error.
func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// logTime returns the time of the first log line of address that is
// exactly line, read with berth logs -timestamps.
func (h *linuxHost) logTime(address, line string) time.Time {
	h.t.Helper()
	r := h.mustBerth(0, nil, "logs", "-timestamps", address)
	for _, l := range strings.Split(r.stdout, "\n") {
		f := strings.SplitN(l, " ", 2)
		if len(f) == 2 && f[1] == line {
			ts, err := time.Parse(time.RFC3339Nano, f[0])
			if err != nil {
				h.t.Fatalf("log line %q: %v", l, err)
			}
			return ts
		}
	}
	h.t.Fatalf("no log line %q of %s:\n%s", line, address, r.stdout)
	return time.Time{}
}

// imageNames returns the NAME column of berth image ls, by name, with the
// short digest.
func (h *linuxHost) imageNames() map[string]string {
	h.t.Helper()
	out := h.mustBerth(0, nil, "image", "ls").stdout
	names := map[string]string{}
	for _, l := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(l); len(f) >= 2 {
			names[f[0]] = f[1]
		}
	}
	return names
}

// TestLinuxDay2 runs berth's day-2 commands against running containers:
// ps, logs (-tail, -since, -f), exec, stats, cp (both ways, and never
// through a container's symlinks to the host), commit, and the image
// commands (ls, rm, prune, save, load, push).
func TestLinuxDay2(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	testenv.Push(t, reg, "tools/day2:1", testenv.BusyboxImage(t, testenv.ImageConfig{
		Files: map[string]string{
			"www/index.html": "hello-http\n",
			"etc/shadow":     "container-shadow\n",
			"etc/motd":       "motd-from-image\n",
		},
	}))
	httpAddr := testenv.FreeAddr(t)
	h := newLinuxHost(t)
	h.write(day2Config(reg, httpAddr, ""))
	h.apply()
	h.converged()
	h.waitLogs("container.talker", "l3")

	t.Run("http_on_host_network", func(t *testing.T) {
		var body string
		waitFor(t, "httpd in container.web to answer", func() (bool, string) {
			b, err := httpGet("http://" + httpAddr + "/index.html")
			body = b
			return err == nil, fmt.Sprint(err)
		})
		if body != "hello-http\n" {
			t.Errorf("httpd served %q", body)
		}
	})

	t.Run("ps", func(t *testing.T) {
		rows := h.ps()
		for _, addr := range []string{"container.web", "container.talker"} {
			r := rows[addr]
			if r.State != "running" || !strings.HasPrefix(h.id(addr), r.ID) || !strings.Contains(r.Image, "tools/day2:1@sha256:") || r.Uptime == "-" {
				t.Errorf("berth ps row of %s: %+v", addr, r)
			}
		}
	})

	t.Run("logs_tail", func(t *testing.T) {
		r := h.mustBerth(0, nil, "logs", "-tail", "2", "container.talker")
		if r.stdout != "l2\nl3\n" {
			t.Errorf("logs -tail 2: %q, want %q", r.stdout, "l2\nl3\n")
		}
	})

	t.Run("logs_since", func(t *testing.T) {
		early := h.logTime("container.talker", "early")
		// Let a few seconds pass, so that a cut between the two lines
		// has a wide margin on each side.
		time.Sleep(time.Until(early.Add(5 * time.Second)))
		h.exec("container.talker", "touch", "/tmp/go")
		h.waitLogs("container.talker", "late")
		late := h.logTime("container.talker", "late")
		since := time.Since(early.Add(late.Sub(early) / 2)).Round(time.Millisecond)
		r := h.mustBerth(0, nil, "logs", "-since", since.String(), "container.talker")
		if r.stdout != "late\n" {
			t.Errorf("logs -since %s (early at %s, late at %s): %q, want only the late line", since, early, late, r.stdout)
		}
	})

	t.Run("logs_follow", func(t *testing.T) {
		cmd := exec.Command(h.bin.berth, "logs", "-f", "container.talker")
		cmd.Env = h.env
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Kill()
			cmd.Wait()
		}()
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// The existing lines first, then a new one.
		var seen []string
		wait := func(want string) {
			deadline := time.After(eventually)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("logs -f ended before %q; saw %q", want, seen)
					}
					seen = append(seen, l)
					if l == want {
						return
					}
				case <-deadline:
					t.Fatalf("logs -f did not print %q in %s; saw %q", want, eventually, seen)
				}
			}
		}
		wait("l3")
		h.exec("container.talker", "touch", "/tmp/go2")
		wait("followed")
	})

	t.Run("exec", func(t *testing.T) {
		r := h.mustBerth(7, nil, "exec", "container.web", "--", "sh", "-c", "echo out; exit 7")
		if r.stdout != "out\n" {
			t.Errorf("exec output %q", r.stdout)
		}
		if got := h.exec("container.web", "hostname"); got != "day2-box\n" {
			t.Errorf("exec hostname in container.web: %q, want day2-box", got)
		}
		if got := h.exec("container.talker", "hostname"); got != "talker\n" {
			t.Errorf("exec hostname in container.talker: %q, want its name, talker", got)
		}
		// The exec runs in the container's PID namespace.
		if got := h.exec("container.talker", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"); !strings.HasPrefix(got, "sh -c echo early") {
			t.Errorf("PID 1 seen by exec in container.talker: %q", got)
		}
	})

	t.Run("stats_no_stream", func(t *testing.T) {
		r := h.mustBerth(0, nil, "stats", "-no-stream", "container.web")
		requireContains(t, "stats -no-stream", r.stdout, "container.web", "64.00MiB")
		requireNotContains(t, "stats -no-stream container.web", r.stdout, "container.talker")
	})

	t.Run("cp", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "motd")
		h.mustBerth(0, nil, "cp", "container.web:/etc/motd", out)
		if b, err := os.ReadFile(out); err != nil || string(b) != "motd-from-image\n" {
			t.Errorf("cp out of the container: %q, %v", b, err)
		}
		in := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(in, []byte("from-host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.mustBerth(0, nil, "cp", in, "container.talker:/tmp/in.txt")
		if got := h.exec("container.talker", "cat", "/tmp/in.txt"); got != "from-host\n" {
			t.Errorf("cp into the container: %q", got)
		}
	})

	t.Run("cp_never_follows_symlinks_to_the_host", func(t *testing.T) {
		hostShadow, err := os.ReadFile("/etc/shadow")
		if err != nil || len(hostShadow) == 0 {
			t.Skipf("no host /etc/shadow to compare with: %v", err)
		}
		h.exec("container.talker", "sh", "-c", "ln -s /etc/shadow /tmp/shadow-link; ln -s /etc /tmp/etc-link; ln -s ../../../../../../etc/shadow /tmp/dots-link")
		dir := t.TempDir()
		for i, src := range []string{"/tmp/shadow-link", "/tmp/etc-link/shadow", "/tmp/dots-link"} {
			dst := filepath.Join(dir, fmt.Sprintf("out%d", i))
			r := h.berth(nil, "cp", "container.talker:"+src, dst)
			fi, err := os.Lstat(dst)
			if r.code != 0 || err != nil || fi.Mode()&os.ModeSymlink != 0 {
				t.Logf("cp %s: exit %d, %s (%v)", src, r.code, strings.TrimSpace(r.stderr), err)
				continue // refused, or copied as a link: the host's file was not read
			}
			b, _ := os.ReadFile(dst)
			if string(b) == string(hostShadow) {
				t.Errorf("cp container.talker:%s copied the HOST's /etc/shadow", src)
			} else if string(b) != "container-shadow\n" {
				t.Errorf("cp container.talker:%s copied %q, want the container's /etc/shadow", src, b)
			}
		}
		// Copying in through a link must stay in the container too.
		var rnd [6]byte
		rand.Read(rnd[:])
		name := "berth-cp-escape-" + hex.EncodeToString(rnd[:])
		t.Cleanup(func() { os.Remove(filepath.Join("/etc", name)) })
		src := filepath.Join(dir, "payload")
		os.WriteFile(src, []byte("payload\n"), 0o644)
		r := h.berth(nil, "cp", src, "container.talker:/tmp/etc-link/"+name)
		if _, err := os.Lstat(filepath.Join("/etc", name)); err == nil {
			t.Errorf("cp into container.talker:/tmp/etc-link/%s wrote the HOST's /etc/%s", name, name)
		}
		if r.code == 0 {
			if got := h.exec("container.talker", "cat", "/etc/"+name); got != "payload\n" {
				t.Errorf("cp through the container's link: the container's /etc/%s holds %q", name, got)
			}
		}
	})

	committed := reg.Ref("tools/committed:1")
	var committedDigest string
	t.Run("commit", func(t *testing.T) {
		h.exec("container.web", "sh", "-c", "echo c-data > /committed.txt")
		r := h.mustBerth(0, nil, "commit", "container.web", committed)
		requireContains(t, "commit", r.stdout, committed, "sha256:")
		committedDigest = h.imageNames()[committed]
		if committedDigest == "" {
			t.Fatalf("image ls does not list the committed image:\n%s", h.mustBerth(0, nil, "image", "ls").stdout)
		}
	})

	t.Run("image_push", func(t *testing.T) {
		h.mustBerth(0, nil, "image", "push", committed)
		req, _ := http.NewRequest(http.MethodGet, reg.URL()+"/v2/tools/committed/manifests/1", nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := reg.Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Docker-Content-Digest"), committedDigest) {
			t.Errorf("the registry has tools/committed:1 as %s %q, want 200 and digest %s", resp.Status, resp.Header.Get("Docker-Content-Digest"), committedDigest)
		}
	})

	t.Run("image_save_rm_load", func(t *testing.T) {
		archive := filepath.Join(t.TempDir(), "committed.tar")
		h.mustBerth(0, nil, "image", "save", "-o", archive, committed)
		h.mustBerth(0, nil, "image", "rm", committed)
		if d, ok := h.imageNames()[committed]; ok {
			t.Fatalf("image rm left %s (%s)", committed, d)
		}
		r := h.mustBerth(0, nil, "image", "load", "-i", archive)
		requireContains(t, "image load", r.stdout, committed)
		if d := h.imageNames()[committed]; d != committedDigest {
			t.Errorf("after save and load the image is %q, want digest %s", d, committedDigest)
		}
	})

	t.Run("load_docker_and_oci_archives", func(t *testing.T) {
		dir := t.TempDir()
		testenv.SaveDocker(t, filepath.Join(dir, "docker.tar"), "example.test/loaded/docker:1", testenv.BusyboxImage(t, testenv.ImageConfig{
			Files: map[string]string{"from": "docker-archive\n"}, DockerMediaTypes: true,
		}))
		testenv.SaveOCI(t, filepath.Join(dir, "oci.tar"), "example.test/loaded/oci:1", testenv.BusyboxImage(t, testenv.ImageConfig{
			Files: map[string]string{"from": "oci-archive\n"},
		}))
		h.mustBerth(0, nil, "image", "load", "-i", filepath.Join(dir, "docker.tar"))
		h.mustBerth(0, nil, "image", "load", "-i", filepath.Join(dir, "oci.tar"))
		names := h.imageNames()
		for _, n := range []string{"example.test/loaded/docker:1", "example.test/loaded/oci:1"} {
			if _, ok := names[n]; !ok {
				t.Errorf("image ls does not list %s after image load:\n%v", n, names)
			}
		}
	})

	t.Run("committed_and_loaded_images_run", func(t *testing.T) {
		h.write(day2Config(reg, httpAddr, fmt.Sprintf(`
container "fromcommit" {
  network_mode = "none"
  image   = %q
  command = ["sh", "-c", "cat /committed.txt; exec sleep 3600"]
%[3]s}

container "fromdocker" {
  network_mode = "none"
  image   = "example.test/loaded/docker:1"
  command = ["sh", "-c", "cat /from; exec sleep 3600"]
%[3]s}

container "fromoci" {
  network_mode = "none"
  image   = %[2]q
  command = ["sh", "-c", "cat /from; exec sleep 3600"]
%[3]s}
`, committed, "example.test/loaded/oci:1", quick)))
		h.apply()
		h.waitLogs("container.fromcommit", "c-data")
		h.waitLogs("container.fromdocker", "docker-archive")
		h.waitLogs("container.fromoci", "oci-archive")
		h.converged()
	})

	t.Run("image_rm_and_prune", func(t *testing.T) {
		r := h.mustBerth(1, nil, "image", "rm", "example.test/loaded/oci:1")
		requireContains(t, "image rm of an image in use", r.stderr, "used by")
		h.write(day2Config(reg, httpAddr, ""))
		h.apply()
		h.mustBerth(0, nil, "image", "rm", "example.test/loaded/oci:1")
		if _, ok := h.imageNames()["example.test/loaded/oci:1"]; ok {
			t.Errorf("image rm left example.test/loaded/oci:1")
		}
		// prune without -a keeps named images; with -a it removes the
		// unused ones and keeps the one container.web uses.
		h.mustBerth(0, nil, "image", "prune")
		names := h.imageNames()
		for _, n := range []string{committed, "example.test/loaded/docker:1", reg.Ref("tools/day2:1")} {
			if _, ok := names[n]; !ok {
				t.Errorf("image prune without -a removed the named image %s", n)
			}
		}
		h.mustBerth(0, nil, "image", "prune", "-a")
		names = h.imageNames()
		for _, n := range []string{committed, "example.test/loaded/docker:1"} {
			if _, ok := names[n]; ok {
				t.Errorf("image prune -a kept the unused image %s", n)
			}
		}
		if _, ok := names[reg.Ref("tools/day2:1")]; !ok {
			t.Errorf("image prune -a removed the image container.web uses")
		}
		h.converged()
	})
}

// TestLinuxHealthcheck checks that berth ps shows a container's health:
// healthy for an httpd that answers its check, unhealthy for a check that
// fails, and healthy again once it passes.
func TestLinuxHealthcheck(t *testing.T) {
	requireLinux(t)
	t.Parallel()
	h := newLinuxHost(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	testenv.SaveDocker(t, archive, "example.test/busybox:1", testenv.BusyboxImage(t, testenv.ImageConfig{
		Files: map[string]string{"www/index.html": "ok\n"},
	}))
	h.mustBerth(0, nil, "image", "load", "-i", archive)
	addr := testenv.FreeAddr(t)
	h.write(fmt.Sprintf(`
container "web" {
  image        = "example.test/busybox:1"
  command      = ["httpd", "-f", "-p", %[1]q, "-h", "/www"]
  network_mode = "host"
  healthcheck {
    command  = ["wget", "-q", "-O-", "http://%[1]s/index.html"]
    interval = "1s"
    retries  = 2
  }
%[2]s}

container "flaky" {
  network_mode = "none"
  image   = "example.test/busybox:1"
  command = %[3]s
  healthcheck {
    command  = ["test", "-f", "/tmp/ok"]
    interval = "1s"
    timeout  = "5s"
    retries  = 2
  }
%[2]s}
`, addr, quick, hclList(sleeper("up"))))
	h.apply()
	h.waitPs("container.web", "healthy", func(r psRow) bool { return r.Health == "healthy" })
	h.waitPs("container.flaky", "unhealthy", func(r psRow) bool { return r.Health == "unhealthy" })
	h.exec("container.flaky", "touch", "/tmp/ok")
	h.waitPs("container.flaky", "healthy again", func(r psRow) bool { return r.Health == "healthy" })
	if r := h.ps()["container.web"]; r.Health != "healthy" {
		t.Errorf("container.web: %+v", r)
	}
}
