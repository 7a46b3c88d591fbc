package planfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteReadRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.plan")
	in := &File{
		BerthVersion: "test", CreatedAt: time.Unix(1700000000, 0).UTC(), Dir: "/cfg",
		Vars: []Var{{Name: "region", Value: "eu"}}, SensitiveVars: []string{"token"},
		HostName: "h1", HostLabels: map[string]string{"role": "web"}, Targets: []string{"thing.a"},
		Fingerprint: "abc", Changes: []Change{{Address: "thing.a", Action: "create"}},
	}
	if err := Write(p, in); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", st.Mode().Perm())
	}
	out, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.Fingerprint != "abc" || out.Dir != "/cfg" || len(out.Vars) != 1 || out.Vars[0].Value != "eu" ||
		out.HostLabels["role"] != "web" || len(out.Changes) != 1 || out.FormatVersion != FormatVersion {
		t.Errorf("round trip lost data: %+v", out)
	}
	if !IsPlanFile(p) {
		t.Errorf("IsPlanFile = false for a plan")
	}
}

func TestReadRejectsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"hcl":    `thing "a" {}`,
		"json":   `{"a": 1}`,
		"future": `{"format_version": 99, "fingerprint": "x"}`,
		"nofp":   `{"format_version": 1}`,
	}
	for name, content := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := Read(p); err == nil {
			t.Errorf("%s: Read accepted %q", name, content)
		}
		if IsPlanFile(p) {
			t.Errorf("%s: IsPlanFile = true", name)
		}
	}
	if _, err := Read(filepath.Join(dir, "hcl")); !errors.Is(err, ErrNotPlan) {
		t.Errorf("want ErrNotPlan, got %v", err)
	}
	if IsPlanFile(dir) {
		t.Errorf("a directory is not a plan")
	}
}
