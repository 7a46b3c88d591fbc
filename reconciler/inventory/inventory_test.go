package inventory

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// crashChildEnv, when set to a state directory, turns the test binary into
// a child that writes to the inventory there until it is killed.
const crashChildEnv = "BERTH_INVENTORY_TEST_CRASH_CHILD"

// crashNamedEnv, when set, makes the crash child write through named
// temporary files.
const crashNamedEnv = "BERTH_INVENTORY_TEST_CRASH_NAMED"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// tok returns a valid token derived from n.
func tok(n int) string { return fmt.Sprintf("%032x", n+1) }

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func at(sec int) time.Time { return time.Date(2024, 5, 1, 12, 0, sec, 123456789, time.UTC) }

func TestPutEntriesRoundTrip(t *testing.T) {
	s := openTemp(t)
	full := Entry{
		Token:        NewToken(),
		Address:      "container.web[0]",
		Kind:         "container",
		Provider:     "linux",
		ID:           "c-123",
		Status:       Created,
		Dependencies: []string{"image.nginx", "network.front"},
		Private:      []byte{0, 1, 2, 0xff, '"', '\n'},
		ConfigHash:   "sha256:abc",
		Revision:     "deadbeef",
		CreatedAt:    at(1),
		UpdatedAt:    at(2).In(time.FixedZone("X", 3600)),
	}
	minimal := Entry{Token: NewToken(), Address: "volume.data", Status: Creating, CreatedAt: at(3), UpdatedAt: at(3)}
	for _, e := range []Entry{full, minimal} {
		if err := s.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2", len(got))
	}
	for i, want := range []Entry{full, minimal} {
		g := got[i]
		if !g.CreatedAt.Equal(want.CreatedAt) || !g.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("entry %d times: got %v/%v, want %v/%v", i, g.CreatedAt, g.UpdatedAt, want.CreatedAt, want.UpdatedAt)
		}
		g.CreatedAt, g.UpdatedAt = want.CreatedAt, want.UpdatedAt
		if !reflect.DeepEqual(g, want) {
			t.Errorf("entry %d:\n got %#v\nwant %#v", i, g, want)
		}
	}
	// Updating an entry replaces it.
	full.Status = Deleting
	full.ID = "c-456"
	if err := s.Put(full); err != nil {
		t.Fatal(err)
	}
	got, err = s.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Status != Deleting || got[0].ID != "c-456" {
		t.Errorf("after update: %+v", got)
	}
	// Files are private to the owner.
	fi, err := os.Stat(filepath.Join(s.Dir(), full.Token+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("entry file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestEntriesSorted(t *testing.T) {
	tests := []struct {
		name string
		put  []Entry
		want []string // tokens in order
	}{
		{
			name: "by address",
			put: []Entry{
				{Token: tok(1), Address: "obj.c", CreatedAt: at(1)},
				{Token: tok(2), Address: "obj.a", CreatedAt: at(3)},
				{Token: tok(3), Address: "obj.b", CreatedAt: at(2)},
			},
			want: []string{tok(2), tok(3), tok(1)},
		},
		{
			name: "same address by creation time",
			put: []Entry{
				{Token: tok(1), Address: "obj.a", CreatedAt: at(5)},
				{Token: tok(2), Address: "obj.a", CreatedAt: at(1)},
				{Token: tok(3), Address: "obj.a", CreatedAt: at(3)},
				{Token: tok(4), Address: "obj.0", CreatedAt: at(9)},
			},
			want: []string{tok(4), tok(2), tok(3), tok(1)},
		},
		{
			name: "same address and time by token",
			put: []Entry{
				{Token: tok(3), Address: "obj.a", CreatedAt: at(1)},
				{Token: tok(1), Address: "obj.a", CreatedAt: at(1)},
				{Token: tok(2), Address: "obj.a", CreatedAt: at(1).In(time.FixedZone("Y", -7200))},
			},
			want: []string{tok(1), tok(2), tok(3)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			for _, e := range tt.put {
				e.Status = Created
				if err := s.Put(e); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Entries()
			if err != nil {
				t.Fatal(err)
			}
			var toks []string
			for _, e := range got {
				toks = append(toks, e.Token)
			}
			if !reflect.DeepEqual(toks, tt.want) {
				t.Errorf("order %v, want %v", toks, tt.want)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	s := openTemp(t)
	a := Entry{Token: tok(1), Address: "obj.a", Status: Created}
	b := Entry{Token: tok(2), Address: "obj.b", Status: Created}
	for _, e := range []Entry{a, b} {
		if err := s.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		token  string
		remain []string
	}{
		{"present", tok(1), []string{tok(2)}},
		{"already removed", tok(1), []string{tok(2)}},
		{"never existed", tok(99), []string{tok(2)}},
		{"last", tok(2), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Remove(tt.token); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			got, err := s.Entries()
			if err != nil {
				t.Fatal(err)
			}
			var toks []string
			for _, e := range got {
				toks = append(toks, e.Token)
			}
			if !reflect.DeepEqual(toks, tt.remain) {
				t.Errorf("remaining %v, want %v", toks, tt.remain)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	s := openTemp(t)
	e1 := Entry{Token: tok(1), Address: "obj.a", Status: Creating, CreatedAt: at(1), UpdatedAt: at(1)}
	e2 := Entry{Token: tok(2), Address: "obj.b", Status: Created, CreatedAt: at(2), UpdatedAt: at(2)}
	e1created := e1
	e1created.Status, e1created.ID = Created, "x"
	e1private := e1created
	e1private.Private = []byte("p")

	steps := []struct {
		name    string
		do      func() error
		changes bool
	}{
		{"nothing", func() error { return nil }, false},
		{"put first", func() error { return s.Put(e1) }, true},
		{"put second", func() error { return s.Put(e2) }, true},
		{"update status and id", func() error { return s.Put(e1created) }, true},
		{"update private only", func() error { return s.Put(e1private) }, true},
		{"read only", func() error { _, err := s.Entries(); return err }, false},
		{"outputs do not count", func() error { return s.PutOutputs([]Output{{Name: "o", Value: json.RawMessage(`1`)}}) }, false},
		{"remove missing", func() error { return s.Remove(tok(3)) }, false},
		{"remove second", func() error { return s.Remove(tok(2)) }, true},
		{"put second again", func() error { return s.Put(e2) }, true},
		{"remove first", func() error { return s.Remove(tok(1)) }, true},
		{"remove second", func() error { return s.Remove(tok(2)) }, true},
	}
	seen := map[string]string{}
	prev, err := s.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	seen[prev] = "empty"
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		fp, err := s.Fingerprint()
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.Fingerprint()
		if err != nil {
			t.Fatal(err)
		}
		if again != fp {
			t.Errorf("%s: fingerprint not stable: %s then %s", st.name, fp, again)
		}
		if changed := fp != prev; changed != st.changes {
			t.Errorf("%s: fingerprint changed = %v, want %v", st.name, changed, st.changes)
		}
		entries, err := s.Entries()
		if err != nil {
			t.Fatal(err)
		}
		if of := FingerprintOf(entries); of != fp {
			t.Errorf("%s: FingerprintOf(Entries()) = %s, Fingerprint() = %s", st.name, of, fp)
		}
		prev = fp
		seen[fp] = st.name
	}
	// Every distinct content gave a distinct fingerprint: empty, e1,
	// e1+e2, e1created+e2, e1private+e2, e1private, e2.
	if len(seen) != 7 {
		t.Errorf("%d distinct fingerprints, want 7: %v", len(seen), seen)
	}
}

func TestOutputs(t *testing.T) {
	tests := []struct {
		name string
		put  []Output
		want []Output
	}{
		{"none recorded", nil, []Output{}},
		{
			name: "plain and sensitive",
			put: []Output{
				{Name: "url", Value: json.RawMessage(`"http://x"`)},
				{Name: "password", Value: json.RawMessage(`"hunter2-secret"`), Sensitive: true},
				{Name: "ports", Value: json.RawMessage(`[80,443]`)},
				{Name: "unknown"},
				{Name: "spaced", Value: json.RawMessage(`{ "a" : [1, 2] }`)},
			},
			want: []Output{
				{Name: "url", Value: json.RawMessage(`"http://x"`)},
				{Name: "password", Sensitive: true},
				{Name: "ports", Value: json.RawMessage(`[80,443]`)},
				{Name: "unknown"},
				{Name: "spaced", Value: json.RawMessage(`{"a":[1,2]}`)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			if got, err := s.Outputs(); err != nil || got != nil {
				t.Fatalf("before any PutOutputs: %v, %v; want nil, nil", got, err)
			}
			var orig []Output
			for _, o := range tt.put {
				orig = append(orig, Output{Name: o.Name, Value: append(json.RawMessage(nil), o.Value...), Sensitive: o.Sensitive})
			}
			if err := s.PutOutputs(tt.put); err != nil {
				t.Fatal(err)
			}
			for i := range tt.put {
				if !bytes.Equal(tt.put[i].Value, orig[i].Value) {
					t.Errorf("PutOutputs changed the caller's output %q", tt.put[i].Name)
				}
			}
			raw, err := os.ReadFile(filepath.Join(s.Dir(), "outputs.json"))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("hunter2")) {
				t.Errorf("a sensitive value reached the file:\n%s", raw)
			}
			got, err := s.Outputs()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d outputs, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Name != w.Name || g.Sensitive != w.Sensitive || !bytes.Equal(g.Value, w.Value) {
					t.Errorf("output %d: got %+v (%s), want %+v (%s)", i, g, g.Value, w, w.Value)
				}
			}
		})
	}
}

func TestOutputsHandWritten(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
		want    []Output
	}{
		{"sensitive value is not handed out", `[{"name":"p","value":"s3cret","sensitive":true}]`, "", []Output{{Name: "p", Sensitive: true}}},
		{"damaged", `[{"name":`, "the next apply writes it again", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			if err := os.WriteFile(filepath.Join(s.Dir(), "outputs.json"), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := s.Outputs()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "outputs.json") {
					t.Fatalf("error %v, want one naming outputs.json and saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || got[0].Name != tt.want[0].Name || got[0].Value != nil {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInvalidTokens(t *testing.T) {
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"path traversal", "../x"},
		{"path traversal with hex", "../0123456789abcdef0123456789abcdef"},
		{"slash", "0123456789abcdef/0123456789abcdef"},
		{"uppercase", "0123456789ABCDEF0123456789ABCDEF"},
		{"short", "0123456789abcde"},
		{"too long", strings.Repeat("a", 129)},
		{"not hex", "0123456789abcdefg123456789abcdef"},
		{"dot", "0123456789abcdef.json"},
		{"space", "0123456789abcdef "},
		{"nul", "0123456789abcdef\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			s, err := Open(state)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(Entry{Token: tt.token, Address: "obj.a", Status: Created}); err == nil || !strings.Contains(err.Error(), "invalid token") {
				t.Errorf("Put: error %v, want invalid token", err)
			}
			if err := s.Remove(tt.token); err == nil || !strings.Contains(err.Error(), "invalid token") {
				t.Errorf("Remove: error %v, want invalid token", err)
			}
			// Nothing was written anywhere in the state directory.
			var files []string
			_ = filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			if len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
		})
	}
	// The boundaries are accepted.
	s := openTemp(t)
	for _, tk := range []string{strings.Repeat("0", 16), strings.Repeat("f", 128), NewToken()} {
		if err := s.Put(Entry{Token: tk, Address: "obj.a", Status: Created}); err != nil {
			t.Errorf("Put(%q): %v", tk, err)
		}
	}
}

func TestPutRejectsIncompleteEntry(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
	}{
		{"no address", Entry{Token: tok(1), Status: Created}},
		{"no status", Entry{Token: tok(1), Address: "obj.a"}},
		{"unknown status", Entry{Token: tok(1), Address: "obj.a", Status: "gone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			if err := s.Put(tt.e); err == nil {
				t.Fatal("Put accepted an entry that Entries would call damaged")
			}
			if _, err := s.Entries(); err != nil {
				t.Errorf("Entries after a rejected Put: %v", err)
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tk := NewToken()
		if !validToken(tk) || len(tk) != 32 {
			t.Fatalf("NewToken() = %q, not 32 lowercase hex digits", tk)
		}
		if seen[tk] {
			t.Fatalf("NewToken() repeated %q", tk)
		}
		seen[tk] = true
	}
}

func TestTempFilesFromCrash(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	tests := []struct {
		name    string
		file    string
		content string
		mtime   time.Time // zero: now
		locked  bool      // a live writer holds its flock
		removed bool
	}{
		{"torn", ".tmp-123456", `{"token": "000000000`, time.Time{}, false, true},
		{"complete", ".tmp-" + tok(7), `{"token":"` + tok(7) + `","address":"obj.b","status":"created"}`, time.Time{}, false, true},
		{"looks like an entry", ".tmp-987.json", `{"token":"x","address":"obj.b"}`, time.Time{}, false, true},
		{"empty and old", ".tmp-", "", old, false, true},
		{"empty and new: its writer may be about to lock it", ".tmp-555", "", time.Time{}, false, false},
		{"locked by a live writer", ".tmp-666", `{"tok`, old, true, false},
		{"not a temporary file", "README", "x", old, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			s, err := Open(state)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(Entry{Token: tok(1), Address: "obj.a", Status: Created}); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(s.Dir(), tt.file)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if !tt.mtime.IsZero() {
				if err := os.Chtimes(p, tt.mtime, tt.mtime); err != nil {
					t.Fatal(err)
				}
			}
			if tt.locked {
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Entries()
			if err != nil {
				t.Fatalf("Entries with %s present: %v", tt.file, err)
			}
			if len(got) != 1 || got[0].Token != tok(1) {
				t.Errorf("Entries = %+v, want only obj.a", got)
			}
			if _, err := Open(state); err != nil {
				t.Fatal(err)
			}
			_, err = os.Stat(p)
			if removed := os.IsNotExist(err); removed != tt.removed {
				t.Errorf("Open removed %s: %v, want %v (stat: %v)", tt.file, removed, tt.removed, err)
			}
			if _, err := os.Stat(filepath.Join(s.Dir(), tok(1)+".json")); err != nil {
				t.Errorf("Open removed an entry: %v", err)
			}
		})
	}
}

func TestDamagedEntry(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"torn json", `{"token": "` + tok(1) + `", "addr`},
		{"not json", "\x00\x01garbage"},
		{"token differs from name", `{"token":"` + tok(2) + `","address":"obj.a","status":"created"}`},
		{"no address", `{"token":"` + tok(1) + `","status":"created"}`},
		{"no status", `{"token":"` + tok(1) + `","address":"obj.a"}`},
		{"unknown status", `{"token":"` + tok(1) + `","address":"obj.a","status":"Created"}`},
		{"private not base64", `{"token":"` + tok(1) + `","address":"obj.a","status":"created","private":"!!"}`},
		{"bad time", `{"token":"` + tok(1) + `","address":"obj.a","status":"created","created_at":"yesterday"}`},
		{"wrong type", `{"token":"` + tok(1) + `","address":["obj.a"],"status":"created"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			if err := s.Put(Entry{Token: tok(5), Address: "obj.ok", Status: Created}); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(s.Dir(), tok(1)+".json")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Entries()
			if err == nil {
				t.Fatal("Entries accepted a damaged entry")
			}
			msg := err.Error()
			for _, want := range []string{p, "damaged", "restore it from a backup", "berth import"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if _, err := s.Fingerprint(); err == nil {
				t.Error("Fingerprint accepted a damaged entry")
			}
		})
	}
}

func TestOpenCreatesPrivateDirs(t *testing.T) {
	tests := []struct {
		name string
		rel  string
	}{
		{"state directory exists", ""},
		{"state directory missing", "state"},
		{"parents missing", "a/b/state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			state := filepath.Join(root, tt.rel)
			s, err := Open(state)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(state, "inventory"); s.Dir() != want {
				t.Errorf("Dir() = %s, want %s", s.Dir(), want)
			}
			check := []string{s.Dir()}
			for p := state; p != root; p = filepath.Dir(p) {
				check = append(check, p)
			}
			for _, p := range check {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s has mode %v, want drwx------", p, fi.Mode())
				}
			}
			// Opening again changes nothing.
			if _, err := Open(state); err != nil {
				t.Errorf("second Open: %v", err)
			}
		})
	}
	// A file in the way is an error naming it, not a panic.
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(state); err == nil || !strings.Contains(err.Error(), state) {
		t.Errorf("Open over a file: %v, want an error naming %s", err, state)
	}
}

// TestEntriesMany reads enough entries for Entries to read them in
// parallel, and checks the order and that every damaged file is named.
func TestEntriesMany(t *testing.T) {
	const n = 700
	s := openTemp(t)
	for i := range n {
		// Addresses sort in reverse order of tokens.
		if err := s.Put(Entry{Token: tok(i), Address: fmt.Sprintf("obj.a%04d", n-i), Status: Created, ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("Entries has %d entries, want %d", len(got), n)
	}
	for i, e := range got {
		if want := tok(n - 1 - i); e.Token != want || e.ID != fmt.Sprint(n-1-i) {
			t.Fatalf("entry %d is %s (id %s), want %s", i, e.Token, e.ID, want)
		}
	}
	damaged := []string{tok(3), tok(400), tok(699)}
	for _, tk := range damaged {
		if err := os.WriteFile(filepath.Join(s.Dir(), tk+".json"), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Entries()
	if err == nil {
		t.Fatal("Entries accepted damaged entries")
	}
	for _, tk := range damaged {
		if !strings.Contains(err.Error(), tk+".json") {
			t.Errorf("error does not name %s.json: %v", tk, err)
		}
	}
}

// tempModes are the two ways a Store writes: through unnamed temporary
// files (O_TMPFILE) where the file system has them, else named ones.
var tempModes = []struct {
	name  string
	named bool
}{
	{"unnamed temporary files", false},
	{"named temporary files", true},
}

// openMode opens a Store under state that writes in the given mode; it
// skips the test when the file system lacks unnamed temporary files.
func openMode(t *testing.T, state string, named bool) *Store {
	t.Helper()
	s, err := Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if named {
		s.named.Store(true)
		return s
	}
	probe := openTemp(t)
	if err := probe.Put(Entry{Token: tok(0), Address: "obj.probe", Status: Created}); err != nil {
		t.Fatal(err)
	}
	if probe.named.Load() {
		t.Skip("the file system has no unnamed temporary files (O_TMPFILE)")
	}
	return s
}

func TestConcurrentPut(t *testing.T) {
	for _, mode := range tempModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openMode(t, t.TempDir(), mode.named)
			const n = 50
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					errs <- s.Put(Entry{Token: tok(i), Address: fmt.Sprintf("obj.a%02d", i), Status: Created, CreatedAt: at(i % 60)})
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			got, err := s.Entries()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("Entries has %d entries, want %d", len(got), n)
			}
			for i, e := range got {
				if want := fmt.Sprintf("obj.a%02d", i); e.Address != want || e.Token != tok(i) {
					t.Errorf("entry %d is %s/%s, want %s/%s", i, e.Address, e.Token, want, tok(i))
				}
			}
			left, _ := filepath.Glob(filepath.Join(s.Dir(), ".tmp-*"))
			if len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
			if s.named.Load() != mode.named {
				t.Errorf("the store switched to named temporary files: %v", s.named.Load())
			}
		})
	}
}

// TestOpenDuringWrites checks that a reader's Open (berth plan takes no
// lock) never breaks the writes of an apply running at the same time, and
// that readers see every entry whole while it is rewritten.
func TestOpenDuringWrites(t *testing.T) {
	for _, mode := range tempModes {
		t.Run(mode.name, func(t *testing.T) {
			state := t.TempDir()
			s := openMode(t, state, mode.named)
			private := bytes.Repeat([]byte("x"), 16<<10)
			stop := make(chan struct{})
			var readers sync.WaitGroup
			for r := range 2 {
				readers.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						rs, err := Open(state)
						if err != nil {
							t.Error(err)
							return
						}
						if r == 0 {
							continue
						}
						got, err := rs.Entries()
						if err != nil {
							t.Errorf("Entries during writes: %v", err)
							return
						}
						for _, e := range got {
							if !bytes.Equal(e.Private, private) {
								t.Errorf("Entries during writes: entry %s has %d bytes of private data, want %d", e.Token, len(e.Private), len(private))
								return
							}
						}
					}
				})
			}
			for i := range 100 {
				if err := s.Put(Entry{Token: tok(i % 20), Address: "obj.a", Status: Created, Private: private}); err != nil {
					t.Errorf("Put %d during Open: %v", i, err)
					break
				}
			}
			close(stop)
			readers.Wait()
			if got, err := s.Entries(); err != nil || len(got) != 20 {
				t.Errorf("Entries: %d entries, %v; want 20", len(got), err)
			}
		})
	}
}

// crashEntry returns the entry the crash child writes for token number n in
// generation gen; its content can be checked from the token alone.
func crashEntry(n, gen int) Entry {
	t := tok(n)
	sum := sha256.Sum256([]byte(t))
	private := bytes.Repeat(sum[:], 1+n%64) // up to 2 KiB
	return Entry{
		Token:        t,
		Address:      fmt.Sprintf("obj.n%d", n),
		Kind:         "obj",
		Provider:     "fake",
		ID:           fmt.Sprintf("id-%d-%d", n, gen),
		Status:       []Status{Creating, Created, Deleting}[gen%3],
		Dependencies: []string{fmt.Sprintf("obj.n%d", n/2)},
		Private:      private,
		ConfigHash:   fmt.Sprintf("%x", sum),
		Revision:     fmt.Sprint(gen),
		CreatedAt:    at(n % 60),
		UpdatedAt:    at(gen % 60),
	}
}

// checkCrashEntry checks that e is intact, as the crash child wrote it, and
// returns the generation it was written in.
func checkCrashEntry(e Entry) (int, error) {
	var n, gen int
	if _, err := fmt.Sscanf(e.ID, "id-%d-%d", &n, &gen); err != nil {
		return 0, fmt.Errorf("id %q: %w", e.ID, err)
	}
	want := crashEntry(n, gen)
	if !e.CreatedAt.Equal(want.CreatedAt) || !e.UpdatedAt.Equal(want.UpdatedAt) {
		return 0, fmt.Errorf("times %v %v, want %v %v", e.CreatedAt, e.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	e.CreatedAt, e.UpdatedAt = want.CreatedAt, want.UpdatedAt
	if !reflect.DeepEqual(e, want) {
		return 0, fmt.Errorf("content differs from what was written")
	}
	return gen, nil
}

// crashOp is one write of the crash child.
type crashOp struct {
	kind byte // 'p': Put, 'r': Remove, 'o': PutOutputs
	n    int  // entry number for 'p' and 'r'
	gen  int
}

// crashOps yields the crash child's writes in order, forever. The sequence
// is fixed so that the parent knows which writes the child acknowledged.
func crashOps(yield func(crashOp) bool) {
	for gen := 0; ; gen++ {
		if !yield(crashOp{'p', gen % 97, gen}) {
			return
		}
		if gen%7 == 3 && !yield(crashOp{'r', (gen * 13) % 97, gen}) {
			return
		}
		if gen%5 == 0 && !yield(crashOp{'o', 0, gen}) {
			return
		}
	}
}

func (op crashOp) do(s *Store) error {
	switch op.kind {
	case 'p':
		return s.Put(crashEntry(op.n, op.gen))
	case 'r':
		return s.Remove(tok(op.n))
	default:
		return s.PutOutputs([]Output{{Name: "gen", Value: json.RawMessage(fmt.Sprint(op.gen))}})
	}
}

// crashChild performs crashOps on the inventory under dir, writing one '.'
// to stdout after each write returns, until it is killed.
func crashChild(dir string) int {
	s, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s.named.Store(os.Getenv(crashNamedEnv) != "")
	fmt.Println("ready")
	for op := range crashOps {
		if err := op.do(s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := os.Stdout.Write([]byte{'.'}); err != nil {
			return 1
		}
	}
	return 1
}

// crashState is what the crash child's writes leave: the generation of
// each entry by token, and of the outputs (-1: none).
type crashState struct {
	gens    map[string]int
	outputs int
}

func (st *crashState) apply(op crashOp) {
	switch op.kind {
	case 'p':
		st.gens[tok(op.n)] = op.gen
	case 'r':
		delete(st.gens, tok(op.n))
	default:
		st.outputs = op.gen
	}
}

func (st crashState) clone() crashState {
	return crashState{gens: maps.Clone(st.gens), outputs: st.outputs}
}

func (st crashState) equal(o crashState) bool {
	return st.outputs == o.outputs && maps.Equal(st.gens, o.gens)
}

// readCrashState reads what the inventory under state holds, checking
// that every entry and the outputs are intact.
func readCrashState(state string) (crashState, error) {
	got := crashState{gens: map[string]int{}, outputs: -1}
	s, err := Open(state)
	if err != nil {
		return got, fmt.Errorf("Open: %w", err)
	}
	entries, err := s.Entries()
	if err != nil {
		return got, fmt.Errorf("Entries: %w", err)
	}
	for _, e := range entries {
		gen, err := checkCrashEntry(e)
		if err != nil {
			return got, fmt.Errorf("entry %s: %w", e.Token, err)
		}
		got.gens[e.Token] = gen
	}
	outs, err := s.Outputs()
	if err != nil {
		return got, fmt.Errorf("Outputs: %w", err)
	}
	if outs != nil {
		if len(outs) != 1 || outs[0].Name != "gen" {
			return got, fmt.Errorf("outputs %+v, want one named gen", outs)
		}
		if err := json.Unmarshal(outs[0].Value, &got.outputs); err != nil {
			return got, fmt.Errorf("outputs value %s: %w", outs[0].Value, err)
		}
	}
	return got, nil
}

// TestCrashSafety kills a child process that writes to the inventory at
// varied moments, again and again on the same state directory. After each
// kill every entry must be intact, and the inventory must hold exactly the
// writes that returned in the child, plus at most the one in flight.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, mode := range tempModes {
		t.Run(mode.name, func(t *testing.T) {
			openMode(t, t.TempDir(), mode.named) // skips when unsupported
			testCrashSafety(t, mode.named)
		})
	}
}

func testCrashSafety(t *testing.T, named bool) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	const kills = 20
	start := time.Now()
	model := crashState{gens: map[string]int{}, outputs: -1}
	tempsSeen, maxEntries, inFlightSeen, totalAcked := 0, 0, 0, 0
	for i := range kills {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+state)
		if named {
			cmd.Env = append(cmd.Env, crashNamedEnv+"=1")
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		line, err := r.ReadString('\n')
		if err != nil || line != "ready\n" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child did not start: %q %v: %s", line, err, stderr.String())
		}
		acks := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(r) // ends when the child dies
			acks <- b
		}()
		// Kill at varied moments: right away, and up to ~130 ms in.
		time.Sleep(time.Duration(i*37%131) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		acked := <-acks
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("child %d ended by itself (%v) instead of by SIGKILL: %s", i, err, stderr.String())
		}
		if strings.Trim(string(acked), ".") != "" {
			t.Fatalf("child %d wrote %q", i, acked)
		}
		totalAcked += len(acked)

		// The writes that returned, and the one that may have been under
		// way when the kill came.
		done := model.clone()
		var next crashOp
		n := 0
		for op := range crashOps {
			if n == len(acked) {
				next = op
				break
			}
			done.apply(op)
			n++
		}
		withNext := done.clone()
		withNext.apply(next)

		temps, _ := filepath.Glob(filepath.Join(state, "inventory", ".tmp-*"))
		tempsSeen += len(temps)
		got, err := readCrashState(state)
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		// Open removes every temporary file a crash left, except, with
		// named ones, a file created but not yet written, which it cannot
		// tell from a live writer's until it is old.
		left, _ := filepath.Glob(filepath.Join(state, "inventory", ".tmp-*"))
		for _, p := range left {
			if fi, err := os.Stat(p); err == nil && (!named || fi.Size() > 0) {
				t.Errorf("kill %d: Open left temporary file %s (%d bytes)", i, p, fi.Size())
			}
		}
		switch {
		case got.equal(done):
		case got.equal(withNext):
			inFlightSeen++
		default:
			t.Fatalf("kill %d after %d acknowledged writes (next %c %d gen %d):\n got %v\nwant %v\n  or %v", i, len(acked), next.kind, next.n, next.gen, got, done, withNext)
		}
		maxEntries = max(maxEntries, len(got.gens))
		model = got
	}
	if maxEntries == 0 || totalAcked == 0 {
		t.Error("the children never wrote an entry; the test proves nothing")
	}
	t.Logf("%d kills in %v; %d writes acknowledged; %d temporary files found after kills; the write in flight was kept %d times; up to %d entries",
		kills, time.Since(start).Round(time.Millisecond), totalAcked, tempsSeen, inFlightSeen, maxEntries)
}

// benchEntry returns an entry of a size like a real container's, with
// private data of privateSize bytes.
func benchEntry(i, privateSize int) Entry {
	sum := sha256.Sum256([]byte(fmt.Sprint(i)))
	return Entry{
		Token:        tok(i),
		Address:      fmt.Sprintf("container.web[%d]", i),
		Kind:         "container",
		Provider:     "linux",
		ID:           fmt.Sprintf("%x", sum),
		Status:       Created,
		Dependencies: []string{"image.nginx", "network.front", "volume.data"},
		Private:      bytes.Repeat(sum[:8], privateSize/8),
		ConfigHash:   fmt.Sprintf("sha256:%x", sum),
		Revision:     fmt.Sprintf("%x", sum[:20]),
		CreatedAt:    at(i % 60),
		UpdatedAt:    at(i % 60),
	}
}

func BenchmarkEntries(b *testing.B) {
	for _, size := range []int{64, 2048} {
		b.Run(fmt.Sprintf("1000 entries/private %d B", size), func(b *testing.B) {
			s := openTemp(b)
			for i := range 1000 {
				if err := s.Put(benchEntry(i, size)); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				got, err := s.Entries()
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != 1000 {
					b.Fatalf("%d entries", len(got))
				}
			}
		})
	}
}

// TestPutOutputsUnchangedLeavesTheFile checks that recording the same
// outputs again does not rewrite the file, and that new outputs do.
func TestPutOutputsUnchangedLeavesTheFile(t *testing.T) {
	s := openTemp(t)
	outs := []Output{{Name: "port", Value: json.RawMessage(`80`)}}
	if err := s.PutOutputs(outs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Dir(), "outputs.json")
	inode := func() uint64 {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	first := inode()
	if err := s.PutOutputs(outs); err != nil {
		t.Fatal(err)
	}
	if inode() != first {
		t.Errorf("the same outputs rewrote %s", path)
	}
	if err := s.PutOutputs([]Output{{Name: "port", Value: json.RawMessage(`81`)}}); err != nil {
		t.Fatal(err)
	}
	if inode() == first {
		t.Errorf("new outputs left %s as it was", path)
	}
	got, err := s.Outputs()
	if err != nil || len(got) != 1 || string(got[0].Value) != "81" {
		t.Errorf("outputs after the change: %v, %v; want port = 81", got, err)
	}
}
