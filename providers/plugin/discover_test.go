package plugin_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berthhq/berth/providers/plugin"
	"github.com/google/go-cmp/cmp"
)

func TestDiscover(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	write := func(dir, name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write(first, "berth-provider-a", 0o755)
	write(first, "berth-provider-notexec", 0o644)
	write(first, "berth-provider-", 0o755)
	write(first, "berth-provider-bad.name", 0o755)
	write(first, "other-tool", 0o755)
	if err := os.Mkdir(filepath.Join(first, "berth-provider-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	target := write(first, "target", 0o755)
	link := filepath.Join(first, "berth-provider-link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(first, "gone"), filepath.Join(first, "berth-provider-broken")); err != nil {
		t.Fatal(err)
	}
	write(second, "berth-provider-a", 0o755) // shadowed by the first directory
	d := write(second, "berth-provider-d_2", 0o700)
	notDir := write(second, "plain-file", 0o644)

	tests := []struct {
		name    string
		dirs    []string
		want    map[string]string
		wantErr bool
	}{
		{"none", nil, map[string]string{}, false},
		{"earlier dirs win, missing dirs are skipped",
			[]string{filepath.Join(first, "missing"), first, "", second},
			map[string]string{"a": a, "link": link, "d_2": d}, false},
		{"order matters", []string{second, first},
			map[string]string{"a": filepath.Join(second, "berth-provider-a"), "link": link, "d_2": d}, false},
		{"a file is not a directory", []string{notDir}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plugin.Discover(tt.dirs...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Discover (-want +got):\n%s", diff)
			}
		})
	}
}
