package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// planRunner answers plans of any directory, noting what it saw.
type planRunner struct {
	sawFile string
	confine bool
}

func (r *planRunner) Run(ctx context.Context, req RunRequest) (*Outcome, error) {
	b, err := os.ReadFile(filepath.Join(req.Dir, "main.hcl"))
	if err != nil {
		return nil, err
	}
	r.sawFile = string(b)
	r.confine = req.Confine
	return &Outcome{Resources: 1, Changes: []string{"file.a"}, Add: 1, PlanText: "  + file.a\n\nPlan: 1 to add, 0 to change, 0 to destroy.\n"}, nil
}

func TestAPIPlanAndStatus(t *testing.T) {
	cfg := testConfig(t, "correct")
	run := &planRunner{}
	a := New(cfg, Options{Source: &fakeSource{}, Runner: run, Version: "v-test"})
	srv := httptest.NewServer(a.Handler(nil))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Node != "h1" || st.Version != "v-test" || st.Labels["role"] != "web" {
		t.Fatalf("status %+v, %v", st, err)
	}
	resp.Body.Close()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(`file "a" {}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteBundle(&buf, dir); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(srv.URL+"/v1/fleet/plan", "application/gzip", bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var fp FleetPlan
	if err := json.NewDecoder(resp.Body).Decode(&fp); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(fp.Hosts) != 1 || fp.Hosts[0].Node != "h1" || !fp.Hosts[0].Targeted || fp.Hosts[0].Add != 1 || !strings.Contains(fp.Hosts[0].Text, "+ file.a") {
		t.Fatalf("fleet plan %+v", fp)
	}
	if run.sawFile != `file "a" {}` || !run.confine {
		t.Fatalf("the runner saw %q, confined %v: a plan sent through the API must be confined to its bundle", run.sawFile, run.confine)
	}
	// The plan's temporary directory is gone.
	if left, _ := filepath.Glob(filepath.Join(cfg.StateDir, "agent", "plans", "*")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}

	// A body that is not a bundle is refused.
	resp, err = http.Post(srv.URL+"/v1/plan", "application/gzip", strings.NewReader("not gzip"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad bundle: %d", resp.StatusCode)
	}
	// Sync answers at once and queues one sync.
	resp, err = http.Post(srv.URL+"/v1/sync", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(a.kick) != 1 {
		t.Fatalf("sync: %d, queued %d", resp.StatusCode, len(a.kick))
	}
}

func TestClientOverUnixSocket(t *testing.T) {
	cfg := testConfig(t, "correct")
	a := New(cfg, Options{Source: &fakeSource{}, Runner: &planRunner{}, Version: "v-test"})
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.Handler(nil)}
	go srv.Serve(ln)
	defer srv.Close()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	// A second agent on the same socket is refused.
	if _, err := listenUnix(sock); err == nil {
		t.Fatal("a live socket was taken over")
	}
	c, err := NewClient(ClientOptions{Addr: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	fv, err := c.Fleet(context.Background())
	if err != nil || len(fv.Members) != 1 || !fv.Members[0].Self || fv.Members[0].Name != "h1" {
		t.Fatalf("fleet %+v, %v", fv, err)
	}
	if _, err := NewClient(ClientOptions{Addr: "http://x:1"}); err == nil {
		t.Fatal("plain http accepted for the TCP API")
	}
	if _, err := NewClient(ClientOptions{Addr: "https://x:1"}); err == nil {
		t.Fatal("https without a token accepted")
	}
}
