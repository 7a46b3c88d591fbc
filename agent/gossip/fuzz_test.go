package gossip

import (
	"bytes"
	"testing"
)

// FuzzDecode checks that Decode never panics, respects the size limits, and
// accepts only canonical encodings: whatever it accepts encodes back to the
// same bytes.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{typeStatus, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned a message with an error")
			}
			return
		}
		limit := MaxMessageSize
		if _, ok := m.(State); ok {
			limit = MaxStateSize
		}
		if len(b) > limit {
			t.Fatalf("Decode accepted %d bytes, limit %d", len(b), limit)
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of decoded %+v: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in: %x\nout: %x", b, again)
		}
	})
}

// FuzzDecodeMeta checks that node metadata decoding never panics and only
// accepts canonical encodings.
func FuzzDecodeMeta(f *testing.F) {
	b, err := encodeMeta(nodeMeta{Labels: map[string]string{"role": "web", "zone": "a"}, Version: "1.0", APIAddr: "10.0.0.1:7947"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{metaVersion, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("encodeMeta of decoded %+v: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in: %x\nout: %x", b, again)
		}
	})
}
