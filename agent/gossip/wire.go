package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// writer appends the wire encoding's primitives to a byte slice.
type writer struct {
	b []byte
}

func (w *writer) byte(c byte) { w.b = append(w.b, c) }

func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }

func (w *writer) string(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *writer) bytes(p []byte) {
	w.uvarint(uint64(len(p)))
	w.b = append(w.b, p...)
}

// errTruncated reports input that ends in the middle of a field.
var errTruncated = errors.New("truncated")

// reader reads the wire encoding's primitives; the first error sticks and
// later reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// uvarint reads an unsigned varint that must be minimally encoded, so that
// every value has exactly one encoding.
func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail(errTruncated)
		return 0
	case n < 0:
		r.fail(errors.New("varint overflows 64 bits"))
		return 0
	case n != uvarintLen(v):
		r.fail(errors.New("varint not minimally encoded"))
		return 0
	}
	r.off += n
	return v
}

// bounded reads an unsigned varint no greater than limit.
func (r *reader) bounded(what string, limit uint64) uint64 {
	v := r.uvarint()
	if r.err == nil && v > limit {
		r.fail(fmt.Errorf("%s %d exceeds %d", what, v, limit))
		return 0
	}
	return v
}

// rawBytes reads a length-prefixed byte string of at most limit bytes; the
// result aliases the input.
func (r *reader) rawBytes(what string, limit int) []byte {
	n := r.bounded(what+" length", uint64(limit))
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)-r.off) < n {
		r.fail(errTruncated)
		return nil
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p
}

// string reads a length-prefixed string of at most limit bytes.
func (r *reader) string(what string, limit int) string {
	return string(r.rawBytes(what, limit))
}

// fixed reads exactly n bytes.
func (r *reader) fixed(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail(errTruncated)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

// end fails unless all input was consumed.
func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail(fmt.Errorf("%d trailing bytes", len(r.b)-r.off))
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
