package gossip

import (
	"errors"
	"fmt"
	"time"
)

// Size limits of the wire encoding.
const (
	// MaxMessageSize is the largest Status, Revision or Leave message.
	MaxMessageSize = 4096
	// MaxStateSize is the largest State message (the push/pull exchange).
	MaxStateSize = 1 << 20
	// maxStateEntries is the most statuses a State message carries.
	maxStateEntries = 4096
)

// Message types and the wire version. A message is a type byte, a version
// byte and the type's fields: unsigned varints (minimally encoded) and
// varint-length-prefixed strings, with no trailing bytes.
const (
	typeStatus   byte = 1
	typeRevision byte = 2
	typeLeave    byte = 3
	typeState    byte = 4
	wireVersion  byte = 1
)

// Message is a decoded gossip message: a Status, a Revision, a Leave or a
// State.
type Message interface {
	messageType() byte
}

// Status is one host's status summary, as gossiped.
type Status struct {
	Node         string
	Revision     string // last applied, "main@sha1:..."
	Attempted    string // last attempted
	State        string // "converged", "drifted", "failing", "refused", "syncing", "starting" or ""
	Resources    int
	Drifted      int
	Failing      int
	FailingAddrs []string  // at most MaxFailingAddrs kept
	Message      string    // short, at most MaxStatusMessage bytes (e.g. why a revision was refused)
	LastApply    time.Time // millisecond precision on the wire
	// Seq is set by the gossip layer: it increases with every SetStatus and
	// never falls below the wall clock in milliseconds, so the newest status
	// of a node wins, even over one from before the node restarted.
	Seq uint64
}

// Revision announces that a ref moved to a commit.
type Revision struct {
	Ref  string // branch or tag name, e.g. "main"
	Hash string // 40 lowercase hex digits
	From string // the node that announced it first
}

// Leave tells the others that a node leaves the cluster on purpose, so they
// record it as "left" rather than "dead".
type Leave struct {
	Node string
	Seq  uint64
}

// State is what two nodes exchange in memberlist's push/pull: every status
// the sender knows.
type State struct {
	Statuses []Status
}

func (Status) messageType() byte   { return typeStatus }
func (Revision) messageType() byte { return typeRevision }
func (Leave) messageType() byte    { return typeLeave }
func (State) messageType() byte    { return typeState }

// Encode returns the wire form of m after checking it as Decode would.
func Encode(m Message) ([]byte, error) {
	w := writer{b: make([]byte, 0, 128)}
	w.byte(m.messageType())
	w.byte(wireVersion)
	limit := MaxMessageSize
	switch m := m.(type) {
	case Status:
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("encode status: %w", err)
		}
		m.encode(&w)
	case Revision:
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("encode revision: %w", err)
		}
		w.string(m.From)
		w.string(m.Ref)
		var h [hashLen]byte
		for i := range h {
			h[i] = unhex(m.Hash[2*i])<<4 | unhex(m.Hash[2*i+1])
		}
		w.b = append(w.b, h[:]...)
	case Leave:
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("encode leave: %w", err)
		}
		w.string(m.Node)
		w.uvarint(m.Seq)
	case State:
		limit = MaxStateSize
		if len(m.Statuses) > maxStateEntries {
			return nil, fmt.Errorf("encode state: %d statuses, limit %d", len(m.Statuses), maxStateEntries)
		}
		w.uvarint(uint64(len(m.Statuses)))
		seen := make(map[string]bool, len(m.Statuses))
		for _, s := range m.Statuses {
			if seen[s.Node] {
				return nil, fmt.Errorf("encode state: two statuses for node %q", s.Node)
			}
			seen[s.Node] = true
			b, err := Encode(s)
			if err != nil {
				return nil, fmt.Errorf("encode state: %w", err)
			}
			w.bytes(b)
		}
	default:
		return nil, fmt.Errorf("encode: unknown message %T", m)
	}
	if len(w.b) > limit {
		return nil, fmt.Errorf("encode: message is %d bytes, limit %d", len(w.b), limit)
	}
	return w.b, nil
}

// Decode parses and validates a message. It returns an error for anything
// malformed (truncated, trailing bytes, fields out of range, invalid names,
// refs, hashes or text), oversized, or of an unknown type or version.
func Decode(b []byte) (Message, error) {
	m, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode gossip message: %w", err)
	}
	return m, nil
}

func decode(b []byte) (Message, error) {
	if len(b) < 2 {
		return nil, errTruncated
	}
	if len(b) > MaxStateSize || b[0] != typeState && len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%d bytes, too large", len(b))
	}
	typ, ver := b[0], b[1]
	if typ < typeStatus || typ > typeState {
		return nil, fmt.Errorf("unknown message type %d", typ)
	}
	if ver != wireVersion {
		return nil, fmt.Errorf("message type %d: unsupported version %d", typ, ver)
	}
	r := reader{b: b, off: 2}
	var m Message
	switch typ {
	case typeStatus:
		s := decodeStatus(&r)
		r.end()
		if r.err == nil {
			r.fail(s.validate())
		}
		m = s
	case typeRevision:
		var v Revision
		v.From = r.string("node name", MaxNodeName)
		v.Ref = r.string("ref", MaxRef)
		v.Hash = hexString(r.fixed(hashLen))
		r.end()
		if r.err == nil {
			r.fail(v.validate())
		}
		m = v
	case typeLeave:
		var v Leave
		v.Node = r.string("node name", MaxNodeName)
		v.Seq = r.uvarint()
		r.end()
		if r.err == nil {
			r.fail(v.validate())
		}
		m = v
	case typeState:
		n := r.bounded("status count", maxStateEntries)
		var v State
		seen := make(map[string]bool)
		for i := uint64(0); i < n && r.err == nil; i++ {
			sub := r.rawBytes("status", MaxMessageSize)
			if r.err != nil {
				break
			}
			if len(sub) == 0 || sub[0] != typeStatus {
				r.fail(fmt.Errorf("entry %d is not a status", i))
				break
			}
			sm, err := decode(sub)
			if err != nil {
				r.fail(fmt.Errorf("status %d: %w", i, err))
				break
			}
			s := sm.(Status)
			if seen[s.Node] {
				r.fail(fmt.Errorf("two statuses for node %q", s.Node))
				break
			}
			seen[s.Node] = true
			v.Statuses = append(v.Statuses, s)
		}
		r.end()
		m = v
	}
	if r.err != nil {
		return nil, fmt.Errorf("message type %d: %w", typ, r.err)
	}
	return m, nil
}

func (s Status) encode(w *writer) {
	code, _ := stateCode(s.State)
	w.string(s.Node)
	w.string(s.Revision)
	w.string(s.Attempted)
	w.byte(code)
	w.uvarint(uint64(s.Resources))
	w.uvarint(uint64(s.Drifted))
	w.uvarint(uint64(s.Failing))
	w.uvarint(uint64(len(s.FailingAddrs)))
	for _, a := range s.FailingAddrs {
		w.string(a)
	}
	w.string(s.Message)
	w.uvarint(lastApplyMillis(s.LastApply))
	w.uvarint(s.Seq)
}

func decodeStatus(r *reader) Status {
	var s Status
	s.Node = r.string("node name", MaxNodeName)
	s.Revision = r.string("revision", maxRevision)
	s.Attempted = r.string("attempted revision", maxRevision)
	code := r.byte()
	if r.err == nil && int(code) >= len(states) {
		r.fail(fmt.Errorf("unknown state %d", code))
	}
	if r.err == nil {
		s.State = states[code]
	}
	s.Resources = int(r.bounded("resource count", maxCount))
	s.Drifted = int(r.bounded("drifted count", maxCount))
	s.Failing = int(r.bounded("failing count", maxCount))
	n := r.bounded("failing address count", MaxFailingAddrs)
	for i := uint64(0); i < n && r.err == nil; i++ {
		s.FailingAddrs = append(s.FailingAddrs, r.string("failing address", MaxFailingAddr))
	}
	s.Message = r.string("message", MaxStatusMessage)
	if ms := r.bounded("last apply", maxLastApplyMillis); ms != 0 {
		s.LastApply = time.UnixMilli(int64(ms)).UTC()
	}
	s.Seq = r.uvarint()
	return s
}

func lastApplyMillis(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixMilli())
}

// validate checks every field of a status against the wire rules.
func (s Status) validate() error {
	if err := validNodeName(s.Node); err != nil {
		return err
	}
	if err := validRevision(s.Revision); err != nil {
		return err
	}
	if err := validRevision(s.Attempted); err != nil {
		return fmt.Errorf("attempted: %w", err)
	}
	if _, ok := stateCode(s.State); !ok {
		return fmt.Errorf("unknown state %q", s.State)
	}
	for _, c := range []struct {
		what string
		n    int
	}{{"resource count", s.Resources}, {"drifted count", s.Drifted}, {"failing count", s.Failing}} {
		if c.n < 0 || c.n > maxCount {
			return fmt.Errorf("%s %d out of range", c.what, c.n)
		}
	}
	if len(s.FailingAddrs) > MaxFailingAddrs {
		return fmt.Errorf("%d failing addresses, limit %d", len(s.FailingAddrs), MaxFailingAddrs)
	}
	for _, a := range s.FailingAddrs {
		if a == "" {
			return errors.New("empty failing address")
		}
		if err := validText("failing address", a, MaxFailingAddr, false); err != nil {
			return err
		}
	}
	if err := validText("message", s.Message, MaxStatusMessage, true); err != nil {
		return err
	}
	if !s.LastApply.IsZero() {
		if ms := s.LastApply.UnixMilli(); ms < 0 || ms > maxLastApplyMillis {
			return errors.New("last apply time out of range")
		}
	}
	if s.Seq == 0 {
		return errors.New("status without a sequence number")
	}
	return nil
}

func (v Revision) validate() error {
	if err := validNodeName(v.From); err != nil {
		return err
	}
	if err := validRef(v.Ref); err != nil {
		return err
	}
	return validHash(v.Hash)
}

func (v Leave) validate() error {
	if err := validNodeName(v.Node); err != nil {
		return err
	}
	if v.Seq == 0 {
		return errors.New("leave without a sequence number")
	}
	return nil
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func hexString(p []byte) string {
	if p == nil {
		return ""
	}
	const digits = "0123456789abcdef"
	b := make([]byte, 2*len(p))
	for i, c := range p {
		b[2*i], b[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(b)
}
