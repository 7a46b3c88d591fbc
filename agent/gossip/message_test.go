package gossip

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const hashA = "3f2a9c0b1d4e5f60718293a4b5c6d7e8f9012345"

func sampleStatus() Status {
	return Status{
		Node:         "web-1",
		Revision:     "main@sha1:" + hashA,
		Attempted:    "main@sha1:" + strings.Repeat("b", 40),
		State:        "failing",
		Resources:    12,
		Drifted:      1,
		Failing:      2,
		FailingAddrs: []string{"container.web[0]", `container.db["primary"]`},
		Message:      "apply failed:\n\tport 80 in use",
		LastApply:    time.UnixMilli(1767225600123).UTC(),
		Seq:          1767225600999,
	}
}

func sampleMessages() []Message {
	return []Message{
		sampleStatus(),
		Status{Node: "a", Seq: 1},
		Revision{Ref: "main", Hash: hashA, From: "web-1"},
		Revision{Ref: "release/1.2", Hash: strings.Repeat("0", 40), From: "db.example.com"},
		Leave{Node: "web-1", Seq: 42},
		State{},
		State{Statuses: []Status{sampleStatus(), {Node: "b", State: "converged", Seq: 7}}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", m, err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		// Every proper prefix is rejected.
		for i := range len(b) {
			if _, err := Decode(b[:i]); err == nil {
				t.Errorf("Decode of %T truncated to %d of %d bytes succeeded", m, i, len(b))
			}
		}
		// So is a trailing byte.
		if _, err := Decode(append(bytes.Clone(b), 0)); err == nil {
			t.Errorf("Decode of %T with a trailing byte succeeded", m)
		}
	}
}

func TestStatusSizeBound(t *testing.T) {
	// The largest status the rules allow fits in MaxMessageSize.
	long := func(n int) string { return strings.Repeat("x", n) }
	ref := long(MaxRef)
	s := Status{
		Node:      long(MaxNodeName),
		Revision:  ref + "@sha1:" + hashA,
		Attempted: ref + "@sha1:" + hashA,
		State:     "converged",
		Resources: maxCount, Drifted: maxCount, Failing: maxCount,
		Message:   long(MaxStatusMessage),
		LastApply: time.UnixMilli(maxLastApplyMillis),
		Seq:       ^uint64(0),
	}
	for range MaxFailingAddrs {
		s.FailingAddrs = append(s.FailingAddrs, long(MaxFailingAddr))
	}
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMessageSize {
		t.Fatalf("largest status is %d bytes, over %d", len(b), MaxMessageSize)
	}
}

func TestDecodeRejects(t *testing.T) {
	enc := func(m Message) []byte {
		// Encode without validation, to build invalid messages.
		w := writer{}
		w.byte(m.messageType())
		w.byte(wireVersion)
		switch m := m.(type) {
		case Status:
			m.encode(&w)
		case Leave:
			w.string(m.Node)
			w.uvarint(m.Seq)
		}
		return w.b
	}
	rev := func(from, ref string, hash []byte) []byte {
		w := writer{b: []byte{typeRevision, wireVersion}}
		w.string(from)
		w.string(ref)
		w.b = append(w.b, hash...)
		return w.b
	}
	hash := bytes.Repeat([]byte{0xab}, hashLen)
	valid, _ := Encode(sampleStatus())
	state := func(entries ...[]byte) []byte {
		w := writer{b: []byte{typeState, wireVersion}}
		w.uvarint(uint64(len(entries)))
		for _, e := range entries {
			w.bytes(e)
		}
		return w.b
	}
	leave, _ := Encode(Leave{Node: "a", Seq: 1})
	mod := func(f func(*Status)) []byte {
		s := sampleStatus()
		f(&s)
		return enc(s)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"one byte", []byte{typeStatus}, "truncated"},
		{"unknown type 0", []byte{0, 1, 0}, "unknown message type 0"},
		{"unknown type 9", []byte{9, 1, 0}, "unknown message type 9"},
		{"unknown version", append([]byte{typeStatus, 2}, valid[2:]...), "unsupported version 2"},
		{"oversized status", append(bytes.Clone(valid), make([]byte, MaxMessageSize)...), "too large"},
		{"oversized state", make([]byte, MaxStateSize+1), "too large"},
		{"bad node name", mod(func(s *Status) { s.Node = "-web" }), "node name"},
		{"node name with space", mod(func(s *Status) { s.Node = "web 1" }), "node name"},
		{"empty node name", mod(func(s *Status) { s.Node = "" }), "empty node name"},
		{"short hash in revision", mod(func(s *Status) { s.Revision = "main@sha1:abc" }), "hash"},
		{"uppercase hash in revision", mod(func(s *Status) { s.Revision = "main@sha1:" + strings.ToUpper(hashA) }), "lowercase hex"},
		{"bad ref in revision", mod(func(s *Status) { s.Revision = "ma..in@sha1:" + hashA }), "not a valid git ref"},
		{"revision without hash", mod(func(s *Status) { s.Attempted = "main" }), "neither"},
		{"no seq", mod(func(s *Status) { s.Seq = 0 }), "sequence number"},
		{"too many failing addrs", mod(func(s *Status) { s.FailingAddrs = make([]string, MaxFailingAddrs+1) }), "failing address count"},
		{"empty failing addr", mod(func(s *Status) { s.FailingAddrs = []string{""} }), "empty failing address"},
		{"long failing addr", mod(func(s *Status) { s.FailingAddrs = []string{strings.Repeat("a", MaxFailingAddr+1)} }), "failing address length"},
		{"long message", mod(func(s *Status) { s.Message = strings.Repeat("a", MaxStatusMessage+1) }), "message length"},
		{"control char in message", mod(func(s *Status) { s.Message = "a\x1bb" }), "control character"},
		{"invalid utf-8", mod(func(s *Status) { s.Message = "\xff" }), "UTF-8"},
		{"count too large", mod(func(s *Status) { s.Resources = maxCount + 1 }), "resource count"},
		{"unknown state", func() []byte {
			s := sampleStatus()
			b := bytes.Clone(valid)
			b[2+1+len(s.Node)+1+len(s.Revision)+1+len(s.Attempted)] = 99
			return b
		}(), "unknown state 99"},
		{"non-minimal varint", []byte{typeLeave, wireVersion, 1, 'a', 0x81, 0x00}, "minimally"},
		{"varint overflow", append([]byte{typeLeave, wireVersion, 1, 'a'}, bytes.Repeat([]byte{0xff}, 11)...), "overflows"},
		{"revision bad from", rev("", "main", hash), "empty node name"},
		{"revision bad ref", rev("a", "main.lock", hash), "not a valid git ref"},
		{"revision ref with space", rev("a", "ma in", hash), "forbidden character"},
		{"revision short hash", rev("a", "main", hash[:19]), "truncated"},
		{"revision long ref", rev("a", strings.Repeat("r", MaxRef+1), hash), "ref length"},
		{"leave no seq", enc(Leave{Node: "a"}), "sequence number"},
		{"state with a leave", state(leave), "not a status"},
		{"state with a bad status", state(mod(func(s *Status) { s.Node = "" })), "status 0"},
		{"state with a duplicate", state(valid, valid), "two statuses"},
		{"state count beyond entries", append([]byte{typeState, wireVersion, 2}, append([]byte{byte(len(valid))}, valid...)...), "truncated"},
		{"state too many entries", []byte{typeState, wireVersion, 0x81, 0x40}, "status count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.in)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", m)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, m := range []Message{
		Status{Node: "a"},
		Status{Node: "a", Seq: 1, Resources: -1},
		Status{Node: "a", Seq: 1, State: "happy"},
		Revision{Ref: "main", Hash: strings.ToUpper(hashA), From: "a"},
		Revision{Ref: "", Hash: hashA, From: "a"},
		Leave{Node: "a b", Seq: 1},
		State{Statuses: []Status{{Node: "a", Seq: 1}, {Node: "a", Seq: 2}}},
	} {
		if b, err := Encode(m); err == nil {
			t.Errorf("Encode(%+v) = %x, want an error", m, b)
		}
	}
}

func TestValidRef(t *testing.T) {
	for _, ok := range []string{"main", "release/1.2", "refs/heads/main", "v1.0.0", "feature_x-y", "a@b"} {
		if err := validRef(ok); err != nil {
			t.Errorf("validRef(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "@", "/main", "main/", "-x", ".x", "x.", "a..b", "a//b", "a/.b", "x.lock", "a@{1}", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", `a\b`, "a\x7f"} {
		if err := validRef(bad); err == nil {
			t.Errorf("validRef(%q) succeeded", bad)
		}
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := nodeMeta{Labels: map[string]string{"role": "web", "zone": "eu-1", "example.com/tier": ""}, Version: "0.5.0", APIAddr: "192.0.2.1:7947"}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for i := range len(b) {
		if _, err := decodeMeta(b[:i]); err == nil {
			t.Errorf("decodeMeta of %d of %d bytes succeeded", i, len(b))
		}
	}
	if _, err := decodeMeta(append(bytes.Clone(b), 0)); err == nil {
		t.Error("decodeMeta with a trailing byte succeeded")
	}
	// Keys out of order.
	w := writer{b: []byte{metaVersion}}
	w.string("")
	w.string("")
	w.uvarint(2)
	for _, s := range []string{"b", "1", "a", "2"} {
		w.string(s)
	}
	if _, err := decodeMeta(w.b); err == nil || !strings.Contains(err.Error(), "increasing") {
		t.Errorf("decodeMeta with unordered keys: %v", err)
	}
	if _, err := decodeMeta([]byte{2, 0, 0}); err == nil || !strings.Contains(err.Error(), "unknown node metadata version") {
		t.Errorf("decodeMeta of version 2: %v", err)
	}
}

func TestMetaRejects(t *testing.T) {
	tests := []struct {
		name string
		m    nodeMeta
		want string
	}{
		{"too large", nodeMeta{Labels: map[string]string{"alpha": strings.Repeat("x", 250), "beta": strings.Repeat("y", 250)}}, "node labels too large: labels alpha, beta"},
		{"bad key", nodeMeta{Labels: map[string]string{"a b": "x"}}, "label key"},
		{"empty key", nodeMeta{Labels: map[string]string{"": "x"}}, "empty label key"},
		{"long value", nodeMeta{Labels: map[string]string{"a": strings.Repeat("x", MaxLabelValue+1)}}, "longer than"},
		{"control in value", nodeMeta{Labels: map[string]string{"a": "x\ny"}}, "control character"},
		{"bad api addr", nodeMeta{APIAddr: "nohost"}, "API address"},
		{"long version", nodeMeta{Version: strings.Repeat("1", MaxVersion+1)}, "agent version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := encodeMeta(tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("encodeMeta: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestSanitizeText(t *testing.T) {
	tests := []struct {
		in        string
		limit     int
		multiline bool
		want      string
	}{
		{"plain", 10, false, "plain"},
		{"a\nb\tc\x1b", 10, true, "a\nb\tc "},
		{"a\nb", 10, false, "a b"},
		{"\xffx", 10, false, "\uFFFDx"},
		{"héllo", 2, false, "h"},
		{"abcdef", 3, false, "abc"},
	}
	for _, tt := range tests {
		got := sanitizeText(tt.in, tt.limit, tt.multiline)
		if got != tt.want {
			t.Errorf("sanitizeText(%q, %d, %v) = %q, want %q", tt.in, tt.limit, tt.multiline, got, tt.want)
		}
		if err := validText("x", got, tt.limit, tt.multiline); err != nil {
			t.Errorf("sanitizeText(%q) = %q, invalid: %v", tt.in, got, err)
		}
	}
}
