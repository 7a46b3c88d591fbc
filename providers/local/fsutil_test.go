package local

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	cases := []struct {
		name      string
		noReplace bool
		data      string
		wantErr   error
		want      string
	}{
		{"create", true, "one", nil, "one"},
		{"create refuses to replace", true, "two", errExists, "one"},
		{"update replaces", false, "three", nil, "three"},
	}
	for _, c := range cases {
		err := writeAtomic(path, []byte(c.data), 0o600, c.noReplace)
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.wantErr)
		}
		if b, _ := os.ReadFile(path); string(b) != c.want {
			t.Errorf("%s: file holds %q, want %q", c.name, b, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries, want 1: a temporary file was left", len(entries))
	}
}

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("12345"), 0o640)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path    string
		limit   int64
		want    string
		wantErr error // nil: success; errAny: some error
	}{
		{file, 100, "12345", nil},
		{file, 4, "", errAny},
		{link, 100, "", errNotRegular},
		{fifo, 100, "", errNotRegular}, // must not block
		{dir, 100, "", errNotRegular},
	}
	for _, c := range cases {
		b, mode, err := readRegular(c.path, c.limit)
		switch {
		case c.wantErr == nil && (err != nil || string(b) != c.want || mode != 0o640):
			t.Errorf("%s: %q %v %v", c.path, b, mode, err)
		case c.wantErr == errAny && err == nil:
			t.Errorf("%s with limit %d: no error", c.path, c.limit)
		case c.wantErr != nil && c.wantErr != errAny && !errors.Is(err, c.wantErr):
			t.Errorf("%s: error %v, want %v", c.path, err, c.wantErr)
		}
	}
}

var errAny = errors.New("any error")
