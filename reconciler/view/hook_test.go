package view

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/spec/addr"
	"github.com/zclconf/go-cty/cty"
)

// lineWriter records every Write call; it is safe for concurrent use so
// that the tests can check that each call holds exactly one whole line.
type lineWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.writes, "")
}

func (w *lineWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

// hookEvent is one call made to a Hook.
type hookEvent struct {
	pre     bool
	skipped bool
	change  *reconciler.Change
	elapsed time.Duration
	err     error
	cause   addr.Instance
}

func (e hookEvent) play(h reconciler.Hook) {
	switch {
	case e.pre:
		h.PreApply(e.change)
	case e.skipped:
		h.Skipped(e.change, e.cause)
	default:
		h.PostApply(e.change, e.elapsed, e.err)
	}
}

func hookScript() []hookEvent {
	webPlanned := &reconciler.Change{Addr: at("container", "web"), Action: reconciler.Create,
		Before: cty.NullVal(cty.Object(map[string]cty.Type{"id": cty.String})), After: obj(map[string]cty.Value{"id": unk(cty.String)})}
	webDone := &reconciler.Change{Addr: at("container", "web"), Action: reconciler.Create, After: obj(map[string]cty.Value{"id": str("abc")})}
	bDelete := &reconciler.Change{Addr: at("thing", "b"), Action: reconciler.Delete, Before: obj(map[string]cty.Value{"id": str("x1")}), After: cty.NullVal(cty.Object(map[string]cty.Type{"id": cty.String}))}
	c := &reconciler.Change{Addr: atKey("thing", "c", addr.IntKey(0)), Action: reconciler.Update,
		Before: obj(map[string]cty.Value{"id": str("x3"), "v": str("a")}), After: obj(map[string]cty.Value{"id": str("x3"), "v": str("b")})}
	secretID := &reconciler.Change{Addr: at("thing", "s"), Action: reconciler.Update,
		Before: obj(map[string]cty.Value{"id": sens(str(secretOne))}), After: obj(map[string]cty.Value{"id": sens(str(secretOne))})}
	e := &reconciler.Change{Addr: atKey("thing", "e", addr.StringKey("k")), Action: reconciler.Create, After: obj(map[string]cty.Value{"id": unk(cty.String)})}
	f := &reconciler.Change{Addr: at("thing", "f"), Action: reconciler.Create, After: obj(map[string]cty.Value{"id": unk(cty.String)})}
	old := &reconciler.Change{Addr: at("thing", "old"), Action: reconciler.Delete, Deposed: true, Before: obj(map[string]cty.Value{"id": str("x9")})}
	return []hookEvent{
		{pre: true, change: webPlanned},
		{change: webDone, elapsed: 1400 * time.Millisecond},
		{pre: true, change: bDelete},
		{change: bDelete, elapsed: 200 * time.Millisecond},
		{pre: true, change: c},
		{change: c, elapsed: 2 * time.Second},
		{pre: true, change: secretID},
		{change: secretID, elapsed: 0},
		{pre: true, change: e},
		{change: e, elapsed: time.Second, err: errors.New("image registry.local/app:1 not found; check the image reference")},
		{skipped: true, change: f, cause: e.Addr},
		{pre: true, change: old},
		{change: old, elapsed: 65 * time.Second},
	}
}

func TestApplyHook(t *testing.T) {
	tests := []struct {
		color bool
		want  string
	}{
		{false, `container.web: Creating...
container.web: Creation complete after 1s [id=abc]
thing.b: Destroying... [id=x1]
thing.b: Destruction complete after 0s
thing.c[0]: Modifying... [id=x3]
thing.c[0]: Modifications complete after 2s [id=x3]
thing.s: Modifying...
thing.s: Modifications complete after 0s
thing.e["k"]: Creating...
thing.e["k"]: Error: image registry.local/app:1 not found; check the image reference
thing.f: Skipped because thing.e["k"] failed
thing.old (deposed object): Destroying... [id=x9]
thing.old (deposed object): Destruction complete after 1m5s
`},
		{true, "\x1b[1mcontainer.web:\x1b[0m Creating...\n" +
			"\x1b[1mcontainer.web:\x1b[0m Creation complete after 1s [id=abc]\n" +
			"\x1b[1mthing.b:\x1b[0m Destroying... [id=x1]\n" +
			"\x1b[1mthing.b:\x1b[0m Destruction complete after 0s\n" +
			"\x1b[1mthing.c[0]:\x1b[0m Modifying... [id=x3]\n" +
			"\x1b[1mthing.c[0]:\x1b[0m Modifications complete after 2s [id=x3]\n" +
			"\x1b[1mthing.s:\x1b[0m Modifying...\n" +
			"\x1b[1mthing.s:\x1b[0m Modifications complete after 0s\n" +
			"\x1b[1mthing.e[\"k\"]:\x1b[0m Creating...\n" +
			"\x1b[1mthing.e[\"k\"]:\x1b[0m \x1b[1m\x1b[31mError:\x1b[0m image registry.local/app:1 not found; check the image reference\n" +
			"\x1b[1mthing.f:\x1b[0m \x1b[33mSkipped\x1b[0m because thing.e[\"k\"] failed\n" +
			"\x1b[1mthing.old (deposed object):\x1b[0m Destroying... [id=x9]\n" +
			"\x1b[1mthing.old (deposed object):\x1b[0m Destruction complete after 1m5s\n"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("color=%t", tt.color), func(t *testing.T) {
			var w lineWriter
			h := NewApplyHook(&w, Options{Color: tt.color})
			defer h.Close()
			for _, e := range hookScript() {
				e.play(h)
			}
			if got := w.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			if strings.Contains(w.String(), "TOPSECRET") {
				t.Error("a sensitive id leaked")
			}
		})
	}
}

func TestApplyHookStill(t *testing.T) {
	var w lineWriter
	h := NewApplyHook(&w, Options{})
	h.interval = 5 * time.Millisecond
	defer h.Close()
	c := &reconciler.Change{Addr: at("thing", "slow"), Action: reconciler.Update, After: obj(map[string]cty.Value{"id": str("x1")})}
	h.PreApply(c)
	deadline := time.Now().Add(5 * time.Second)
	for w.count() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	h.PostApply(c, time.Second, nil)
	n := w.count()
	time.Sleep(30 * time.Millisecond)
	if w.count() != n {
		t.Errorf("progress lines after the operation ended:\n%s", w.String())
	}
	out := w.String()
	if !strings.Contains(out, "thing.slow: Still modifying... [id=x1, ") || !strings.Contains(out, " elapsed]\n") {
		t.Errorf("no progress line in:\n%s", out)
	}
	if !strings.HasSuffix(out, "thing.slow: Modifications complete after 1s [id=x1]\n") {
		t.Errorf("output does not end with the completion:\n%s", out)
	}

	// Close stops the reports of operations that never end.
	h.PreApply(c)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	n = w.count()
	time.Sleep(30 * time.Millisecond)
	if w.count() != n {
		t.Errorf("progress lines after Close:\n%s", w.String())
	}
}

// TestHooksConcurrent calls both hooks from many goroutines: every Write
// must carry exactly one whole line.
func TestHooksConcurrent(t *testing.T) {
	for _, name := range []string{"human", "json"} {
		t.Run(name, func(t *testing.T) {
			var w lineWriter
			var h reconciler.Hook = NewJSONHook(&w)
			if name == "human" {
				ah := NewApplyHook(&w, Options{})
				ah.interval = time.Millisecond
				defer ah.Close()
				h = ah
			}
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := &reconciler.Change{Addr: atKey("thing", "n", addr.IntKey(i)), Action: reconciler.Create, After: obj(map[string]cty.Value{"id": str(fmt.Sprint(i))})}
					h.PreApply(c)
					time.Sleep(2 * time.Millisecond)
					h.PostApply(c, time.Second, nil)
					h.Skipped(c, at("thing", "x"))
				}()
			}
			wg.Wait()
			w.mu.Lock()
			defer w.mu.Unlock()
			if len(w.writes) < 60 {
				t.Errorf("%d writes, want at least 60", len(w.writes))
			}
			for _, s := range w.writes {
				if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
					t.Errorf("write is not one line: %q", s)
				}
			}
		})
	}
}

func TestJSONHook(t *testing.T) {
	var w lineWriter
	h := NewJSONHook(&w)
	h.now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }
	for _, e := range hookScript() {
		e.play(h)
	}
	h.Summary(1, 2, 3)
	out := w.String()
	if strings.Contains(out, "TOPSECRET") {
		t.Fatalf("a sensitive id leaked:\n%s", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	type msg struct {
		Level     string         `json:"@level"`
		Message   string         `json:"@message"`
		Timestamp string         `json:"@timestamp"`
		Type      string         `json:"type"`
		Hook      map[string]any `json:"hook"`
		Changes   map[string]any `json:"changes"`
	}
	var msgs []msg
	for _, l := range lines {
		var m msg
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line is not JSON: %v\n%s", err, l)
		}
		if m.Timestamp != "2025-01-02T03:04:05Z" {
			t.Errorf("timestamp %q", m.Timestamp)
		}
		msgs = append(msgs, m)
	}
	want := []struct {
		level, typ, message, action, idValue, errText, cause string
		elapsed                                              any
		resource                                             map[string]any
	}{
		{"info", "apply_start", "container.web: Creating...", "create", "", "", "", nil, map[string]any{"addr": "container.web", "kind": "container", "name": "web"}},
		{"info", "apply_complete", "container.web: Creation complete after 1s [id=abc]", "create", "abc", "", "", 1.0, nil},
		{"info", "apply_start", "thing.b: Destroying... [id=x1]", "delete", "x1", "", "", nil, nil},
		{"info", "apply_complete", "thing.b: Destruction complete after 0s", "delete", "", "", "", 0.0, nil},
		{"info", "apply_start", "thing.c[0]: Modifying... [id=x3]", "update", "x3", "", "", nil, map[string]any{"addr": "thing.c[0]", "kind": "thing", "name": "c", "index": 0.0}},
		{"info", "apply_complete", "thing.c[0]: Modifications complete after 2s [id=x3]", "update", "x3", "", "", 2.0, nil},
		{"info", "apply_start", "thing.s: Modifying...", "update", "", "", "", nil, nil},
		{"info", "apply_complete", "thing.s: Modifications complete after 0s", "update", "", "", "", 0.0, nil},
		{"info", "apply_start", `thing.e["k"]: Creating...`, "create", "", "", "", nil, map[string]any{"addr": `thing.e["k"]`, "kind": "thing", "name": "e", "index": "k"}},
		{"error", "apply_errored", `thing.e["k"]: Error: image registry.local/app:1 not found; check the image reference`, "create", "", "image registry.local/app:1 not found; check the image reference", "", 1.0, nil},
		{"warn", "apply_skipped", `thing.f: Skipped because thing.e["k"] failed`, "create", "", "", `thing.e["k"]`, nil, nil},
		{"info", "apply_start", "thing.old (deposed object): Destroying... [id=x9]", "delete", "x9", "", "", nil, nil},
		{"info", "apply_complete", "thing.old (deposed object): Destruction complete after 1m5s", "delete", "", "", "", 65.0, nil},
	}
	if len(msgs) != len(want)+1 {
		t.Fatalf("%d messages, want %d:\n%s", len(msgs), len(want)+1, out)
	}
	for i, wm := range want {
		m := msgs[i]
		if m.Level != wm.level || m.Type != wm.typ || m.Message != wm.message {
			t.Errorf("message %d: %s %s %q, want %s %s %q", i, m.Level, m.Type, m.Message, wm.level, wm.typ, wm.message)
		}
		if m.Hook["action"] != wm.action {
			t.Errorf("message %d: action %v, want %s", i, m.Hook["action"], wm.action)
		}
		if got, _ := m.Hook["id_value"].(string); got != wm.idValue {
			t.Errorf("message %d: id_value %q, want %q", i, got, wm.idValue)
		}
		if wm.idValue != "" && m.Hook["id_key"] != "id" {
			t.Errorf("message %d: id_key %v", i, m.Hook["id_key"])
		}
		if got, _ := m.Hook["error"].(string); got != wm.errText {
			t.Errorf("message %d: error %q, want %q", i, got, wm.errText)
		}
		if got, _ := m.Hook["cause"].(string); got != wm.cause {
			t.Errorf("message %d: cause %q, want %q", i, got, wm.cause)
		}
		if m.Hook["elapsed_seconds"] != wm.elapsed {
			t.Errorf("message %d: elapsed_seconds %v, want %v", i, m.Hook["elapsed_seconds"], wm.elapsed)
		}
		if wm.resource != nil && fmt.Sprint(m.Hook["resource"]) != fmt.Sprint(wm.resource) {
			t.Errorf("message %d: resource %v, want %v", i, m.Hook["resource"], wm.resource)
		}
	}
	last := msgs[len(msgs)-1]
	if last.Type != "change_summary" || fmt.Sprint(last.Changes) != "map[add:1 change:2 destroy:3]" {
		t.Errorf("summary message %+v", last)
	}
}

func TestApplySummary(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{}, "Apply complete! Resources: 1 added, 2 changed, 3 destroyed.\n"},
		{Options{Color: true}, "\x1b[1m\x1b[32mApply complete! Resources: 1 added, 2 changed, 3 destroyed.\x1b[0m\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := ApplySummary(&buf, 1, 2, 3, tt.opts); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("got %q, want %q", buf.String(), tt.want)
		}
	}
	if err := ApplySummary(failWriter{}, 0, 0, 0, Options{}); err == nil {
		t.Error("ApplySummary to a failing writer returned no error")
	}
}

func TestApplyHookHighlights(t *testing.T) {
	ports := cty.ListVal([]cty.Value{str("0.0.0.0:8080->80/tcp"), str("127.0.0.1:49153->82/tcp")})
	tests := []struct {
		name  string
		after cty.Value
		hl    []string
		want  string
	}{
		{"list and string", obj(map[string]cty.Value{"id": str("abc"), "ip_address": str("10.89.0.2"), "published_ports": ports}), []string{"ip_address", "published_ports"},
			"container.web: Creation complete after 1s [id=abc, ip_address = 10.89.0.2, published_ports = 0.0.0.0:8080->80/tcp 127.0.0.1:49153->82/tcp]\n"},
		{"not highlighted", obj(map[string]cty.Value{"id": str("abc"), "published_ports": ports}), nil,
			"container.web: Creation complete after 1s [id=abc]\n"},
		{"empty and null are left out", obj(map[string]cty.Value{"id": str("abc"), "ip_address": cty.NullVal(cty.String), "published_ports": cty.ListValEmpty(cty.String)}), []string{"ip_address", "published_ports"},
			"container.web: Creation complete after 1s [id=abc]\n"},
		{"sensitive is never shown", obj(map[string]cty.Value{"id": str("abc"), "ip_address": str("10.89.0.2").Mark("sensitive")}), []string{"ip_address"},
			"container.web: Creation complete after 1s [id=abc]\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		h := NewApplyHook(&buf, Options{})
		c := &reconciler.Change{Addr: at("container", "web"), Action: reconciler.Create, After: tt.after, Highlights: tt.hl}
		h.PostApply(c, time.Second, nil)
		if got := buf.String(); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}
