package jsonfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	var got map[string]int
	if err := Read(path, &got); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read of a missing file: %v", err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Write(path, map[string]int{"n": i}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := Read(path, &got); err != nil || len(got) != 1 {
		t.Fatalf("read after concurrent writes: %v %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if err := Read(path, &got); err == nil {
		t.Error("a broken file read without error")
	}
}

// TestWriteChanged checks that WriteChanged leaves a file that holds the
// same value alone, replaces it otherwise, and writes what Write writes.
func TestWriteChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rec.json")
	type rec struct{ A, B string }
	inode := func() uint64 {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	if err := WriteChanged(path, rec{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	first := inode()
	if err := WriteChanged(path, rec{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if inode() != first {
		t.Error("the same value was written again")
	}
	if err := WriteChanged(path, rec{"a", "c"}); err != nil {
		t.Fatal(err)
	}
	if inode() == first {
		t.Error("a new value left the file as it was")
	}
	var got rec
	if err := Read(path, &got); err != nil || got != (rec{"a", "c"}) {
		t.Errorf("read back %+v, %v; want {a c}", got, err)
	}
	viaWrite := filepath.Join(dir, "write.json")
	if err := Write(viaWrite, rec{"a", "c"}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(viaWrite)
	if !bytes.Equal(a, b) {
		t.Errorf("WriteChanged wrote %q, Write %q", a, b)
	}
}
