package view

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/reconciler"
	"github.com/berthhq/berth/spec/addr"
	"github.com/zclconf/go-cty/cty"
)

// stillInterval is how often ApplyHook reports an operation still running.
const stillInterval = 10 * time.Second

// ApplyHook is a reconciler.Hook that prints the progress of an apply for
// people, one line per event, such as "container.web: Creating..." and
// "container.web: Creation complete after 1s [id=abc]". While an operation
// runs it prints "Still creating... [10s elapsed]" every ten seconds. It is
// safe for concurrent use.
type ApplyHook struct {
	w        io.Writer
	opts     Options
	interval time.Duration

	mu      sync.Mutex
	running map[string]*time.Timer
	closed  bool
}

var _ reconciler.Hook = (*ApplyHook)(nil)

// NewApplyHook returns an ApplyHook that writes to w.
func NewApplyHook(w io.Writer, opts Options) *ApplyHook {
	return &ApplyHook{w: w, opts: opts, interval: stillInterval, running: map[string]*time.Timer{}}
}

// verbs returns the words ApplyHook uses for an action: the start
// ("Creating"), the progress ("creating") and the end ("Creation").
func verbs(a reconciler.Action) (start, still, done string) {
	switch a {
	case reconciler.Create:
		return "Creating", "creating", "Creation"
	case reconciler.Update:
		return "Modifying", "modifying", "Modifications"
	case reconciler.Replace, reconciler.CreateThenDelete:
		return "Replacing", "replacing", "Replacement"
	case reconciler.Delete:
		return "Destroying", "destroying", "Destruction"
	}
	return "", "", ""
}

// changeID returns the id of the object a change is about: the "id"
// attribute of After, or else of Before, when known and not sensitive.
func changeID(c *reconciler.Change) (string, bool) {
	if c.Action != reconciler.Delete {
		if id, ok := idOf(c.After); ok {
			return id, true
		}
	}
	return idOf(c.Before)
}

// highlights returns the kind's highlighted attributes of an applied
// change that have a value, as ", name = value" each.
func highlights(c *reconciler.Change) string {
	if c.Action == reconciler.Delete || c.After == cty.NilVal || c.After.IsNull() || !c.After.IsKnown() || !c.After.Type().IsObjectType() {
		return ""
	}
	var b strings.Builder
	for _, name := range c.Highlights {
		if !c.After.Type().HasAttribute(name) {
			continue
		}
		v := c.After.GetAttr(name)
		// A sensitive value is never shown.
		if v.ContainsMarked() || v.IsNull() || !v.IsWhollyKnown() {
			continue
		}
		var parts []string
		switch {
		case v.Type() == cty.String:
			parts = []string{v.AsString()}
		case v.Type().IsListType() || v.Type().IsSetType() || v.Type().IsTupleType():
			for it := v.ElementIterator(); it.Next(); {
				_, e := it.Element()
				if e.Type() == cty.String && !e.IsNull() {
					parts = append(parts, e.AsString())
				}
			}
		}
		if len(parts) > 0 {
			b.WriteString(", " + name + " = " + strings.Join(parts, " "))
		}
	}
	return b.String()
}

// opKey identifies one running operation of an instance.
func opKey(c *reconciler.Change) string {
	return fmt.Sprintf("%s|%d|%t", c.Addr, c.Action, c.Deposed)
}

// subject returns how a change's instance is named in progress lines.
func subject(c *reconciler.Change) string {
	s := c.Addr.String()
	if c.Deposed {
		s += " (deposed object)"
	}
	return s
}

// label returns the start of a progress line about c.
func (h *ApplyHook) label(c *reconciler.Change) string {
	return h.opts.paint(subject(c)+":", ansiBold)
}

// write prints one line; the caller holds h.mu.
func (h *ApplyHook) write(line string) {
	_, _ = io.WriteString(h.w, line+"\n")
}

// PreApply prints that an operation starts.
func (h *ApplyHook) PreApply(c *reconciler.Change) {
	if c == nil {
		return
	}
	start, _, _ := verbs(c.Action)
	if start == "" {
		return
	}
	line := h.label(c) + " " + start + "..."
	if id, ok := changeID(c); ok && c.Action != reconciler.Create {
		line += " [id=" + id + "]"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.write(line)
	if h.interval > 0 && !h.closed {
		key := opKey(c)
		if t, ok := h.running[key]; ok {
			t.Stop()
		}
		h.running[key] = h.still(key, c, time.Now())
	}
}

// still arms the timer that reports the operation key as still running;
// the caller holds h.mu.
func (h *ApplyHook) still(key string, c *reconciler.Change, began time.Time) *time.Timer {
	_, verb, _ := verbs(c.Action)
	id, hasID := changeID(c)
	if c.Action == reconciler.Create {
		hasID = false
	}
	label := h.label(c)
	var t *time.Timer
	t = time.AfterFunc(h.interval, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed || h.running[key] != t {
			return
		}
		elapsed := time.Since(began).Round(time.Second).String() + " elapsed"
		if hasID {
			elapsed = "id=" + id + ", " + elapsed
		}
		h.write(label + " Still " + verb + "... [" + elapsed + "]")
		t.Reset(h.interval)
	})
	return t
}

// stop disarms the progress timer of an operation; the caller holds h.mu.
func (h *ApplyHook) stop(c *reconciler.Change) {
	key := opKey(c)
	if t, ok := h.running[key]; ok {
		t.Stop()
		delete(h.running, key)
	}
}

// PostApply prints that an operation ended, with its error if it failed.
func (h *ApplyHook) PostApply(c *reconciler.Change, elapsed time.Duration, err error) {
	if c == nil {
		return
	}
	_, _, done := verbs(c.Action)
	var line string
	switch {
	case err != nil:
		line = h.label(c) + " " + h.opts.paint("Error:", ansiBold, ansiRed) + " " + err.Error()
	case done == "":
	default:
		line = h.label(c) + " " + done + " complete after " + elapsed.Round(time.Second).String()
		if id, ok := changeID(c); ok && c.Action != reconciler.Delete {
			line += " [id=" + id + highlights(c) + "]"
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop(c)
	if line != "" {
		h.write(line)
	}
}

// Skipped prints that a change was not attempted because of cause.
func (h *ApplyHook) Skipped(c *reconciler.Change, cause addr.Instance) {
	if c == nil {
		return
	}
	line := h.label(c) + " " + h.opts.paint("Skipped", ansiYellow) + " because " + cause.String() + " failed"
	h.mu.Lock()
	defer h.mu.Unlock()
	h.write(line)
}

// Close stops the "Still ..." reports of operations that never ended. The
// hook prints nothing more about them afterwards.
func (h *ApplyHook) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for k, t := range h.running {
		t.Stop()
		delete(h.running, k)
	}
	return nil
}

// ApplySummary prints the last line of a successful apply: "Apply complete!
// Resources: N added, N changed, N destroyed."
func ApplySummary(w io.Writer, added, changed, destroyed int, opts Options) error {
	line := opts.paint(fmt.Sprintf("Apply complete! Resources: %d added, %d changed, %d destroyed.", added, changed, destroyed), ansiBold, ansiGreen)
	if _, err := io.WriteString(w, line+"\n"); err != nil {
		return fmt.Errorf("write apply summary: %w", err)
	}
	return nil
}

// JSONHook is a reconciler.Hook that writes the progress of an apply as
// JSON lines, one object per event, in the format described in
// docs/json-output.md. It is safe for concurrent use.
type JSONHook struct {
	w   io.Writer
	now func() time.Time

	mu sync.Mutex
}

var _ reconciler.Hook = (*JSONHook)(nil)

// NewJSONHook returns a JSONHook that writes to w.
func NewJSONHook(w io.Writer) *JSONHook {
	return &JSONHook{w: w, now: time.Now}
}

type jsonMessage struct {
	Level     string       `json:"@level"`
	Message   string       `json:"@message"`
	Module    string       `json:"@module"`
	Timestamp string       `json:"@timestamp"`
	Type      string       `json:"type"`
	Hook      *jsonHook    `json:"hook,omitempty"`
	Changes   *jsonSummary `json:"changes,omitempty"`
}

type jsonHook struct {
	Resource       jsonResource `json:"resource"`
	Action         string       `json:"action"`
	Deposed        bool         `json:"deposed,omitempty"`
	ElapsedSeconds *int64       `json:"elapsed_seconds,omitempty"`
	IDKey          string       `json:"id_key,omitempty"`
	IDValue        string       `json:"id_value,omitempty"`
	Error          string       `json:"error,omitempty"`
	Cause          string       `json:"cause,omitempty"`
}

type jsonResource struct {
	Addr  string `json:"addr"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Index any    `json:"index,omitempty"`
}

func (h *JSONHook) emit(m jsonMessage) {
	m.Module = "berth.ui"
	m.Timestamp = h.now().Format(time.RFC3339Nano)
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = h.w.Write(append(b, '\n'))
}

func newJSONHook(c *reconciler.Change) *jsonHook {
	return &jsonHook{
		Resource: jsonResource{Addr: c.Addr.String(), Kind: c.Addr.Kind, Name: c.Addr.Name, Index: jsonIndex(c.Addr.Key)},
		Action:   c.Action.String(),
		Deposed:  c.Deposed,
	}
}

// PreApply writes an apply_start message.
func (h *JSONHook) PreApply(c *reconciler.Change) {
	if c == nil {
		return
	}
	start, _, _ := verbs(c.Action)
	if start == "" {
		return
	}
	hk := newJSONHook(c)
	msg := subject(c) + ": " + start + "..."
	if id, ok := changeID(c); ok && c.Action != reconciler.Create {
		hk.IDKey, hk.IDValue = "id", id
		msg += " [id=" + id + "]"
	}
	h.emit(jsonMessage{Level: "info", Message: msg, Type: "apply_start", Hook: hk})
}

// PostApply writes an apply_complete or an apply_errored message.
func (h *JSONHook) PostApply(c *reconciler.Change, elapsed time.Duration, err error) {
	if c == nil {
		return
	}
	hk := newJSONHook(c)
	secs := int64(elapsed.Round(time.Second) / time.Second)
	hk.ElapsedSeconds = &secs
	if err != nil {
		hk.Error = err.Error()
		h.emit(jsonMessage{Level: "error", Message: subject(c) + ": Error: " + hk.Error, Type: "apply_errored", Hook: hk})
		return
	}
	_, _, done := verbs(c.Action)
	if done == "" {
		return
	}
	msg := subject(c) + ": " + done + " complete after " + elapsed.Round(time.Second).String()
	if id, ok := changeID(c); ok && c.Action != reconciler.Delete {
		hk.IDKey, hk.IDValue = "id", id
		msg += " [id=" + id + "]"
	}
	h.emit(jsonMessage{Level: "info", Message: msg, Type: "apply_complete", Hook: hk})
}

// Skipped writes an apply_skipped message.
func (h *JSONHook) Skipped(c *reconciler.Change, cause addr.Instance) {
	if c == nil {
		return
	}
	hk := newJSONHook(c)
	hk.Cause = cause.String()
	h.emit(jsonMessage{Level: "warn", Message: subject(c) + ": Skipped because " + hk.Cause + " failed", Type: "apply_skipped", Hook: hk})
}

// Summary writes a change_summary message with the numbers of a finished
// apply, the JSON counterpart of ApplySummary.
func (h *JSONHook) Summary(added, changed, destroyed int) {
	h.SummaryFailed(added, changed, destroyed, 0, 0)
}

// SummaryFailed writes the closing "change_summary" line of an apply in
// which failed instances failed and skipped ones were not attempted; with
// none of either it is the same as Summary.
func (h *JSONHook) SummaryFailed(added, changed, destroyed, failed, skipped int) {
	msg := jsonMessage{
		Level:   "info",
		Message: fmt.Sprintf("Apply complete! Resources: %d added, %d changed, %d destroyed.", added, changed, destroyed),
		Type:    "change_summary",
		Changes: &jsonSummary{Add: added, Change: changed, Destroy: destroyed, Failed: failed, Skipped: skipped},
	}
	if failed > 0 || skipped > 0 {
		msg.Level = "error"
		msg.Message = fmt.Sprintf("Apply failed: %d failed, %d skipped. Resources: %d added, %d changed, %d destroyed.", failed, skipped, added, changed, destroyed)
	}
	h.emit(msg)
}
