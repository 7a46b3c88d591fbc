package plugin

import (
	"encoding/binary"
	"sync"

	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/msgpack"
)

// typeCache encodes and decodes values exactly as encodeValue and
// decodeValue do, remembering the types it meets. A value crosses the wire
// as cty's msgpack of a dynamic value: a two-element array of the type's
// JSON description and the value. A provider's calls carry the same few
// object types over and over, and parsing a container's type from JSON
// takes about ten times as long as decoding the value itself (195 µs
// against 16 µs), so each side of a connection keeps the types it has
// parsed or described, and the two halves of a connection in one process
// (InProcess) share one typeCache, so that a type one half describes is
// never parsed by the other. The bytes on the wire do not change.
//
// The zero typeCache is ready to use; a typeCache must not be copied
// after first use.
type typeCache struct {
	mu     sync.Mutex
	byJSON map[string]cty.Type // types parsed from their JSON
	json   []describedType     // types described as JSON, newest last
}

// describedType is a type and its JSON description.
type describedType struct {
	ty   cty.Type
	json []byte
}

// maxCachedTypes bounds each of a typeCache's two collections; a cache
// that is full starts again empty. A provider has a type per kind, and
// values of a few more types cross in paths and diagnostics.
const maxCachedTypes = 64

// encodeValue is encodeValue with the type's JSON description remembered.
func (tc *typeCache) encodeValue(v cty.Value) (*providerpb.DynamicValue, error) {
	if isNil(v) {
		return nil, nil
	}
	v, _ = v.UnmarkDeep()
	ty := v.Type()
	if !v.IsKnown() || v.IsNull() || ty == cty.DynamicPseudoType {
		// Unknown and null values carry no type description.
		return encodeValue(v)
	}
	tj, err := tc.describe(ty)
	if err != nil {
		return encodeValue(v) // the same error, worded by cty
	}
	val, err := msgpack.Marshal(v, ty)
	if err != nil {
		return nil, err
	}
	// A fixed array of two elements, the description as msgpack binary
	// (as cty's encoder writes it), then the value.
	b := make([]byte, 0, 1+5+len(tj)+len(val))
	b = append(b, 0x92)
	switch n := len(tj); {
	case n < 1<<8:
		b = append(b, 0xc4, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	b = append(append(b, tj...), val...)
	return &providerpb.DynamicValue{Msgpack: b}, nil
}

// decodeValue is decodeValue with the types parsed from JSON remembered.
func (tc *typeCache) decodeValue(dv *providerpb.DynamicValue) (cty.Value, error) {
	b := dv.GetMsgpack()
	tj, val, ok := splitDynamic(b)
	if !ok {
		// Nothing, an unknown or a null value, or a form that cty's own
		// decoder judges.
		return decodeValue(dv)
	}
	ty, err := tc.parse(tj)
	if err != nil {
		return decodeValue(dv) // the same error, worded by cty
	}
	return msgpack.Unmarshal(val, ty)
}

// describe returns the JSON description of ty.
func (tc *typeCache) describe(ty cty.Type) ([]byte, error) {
	tc.mu.Lock()
	for i := len(tc.json) - 1; i >= 0; i-- {
		if tc.json[i].ty.Equals(ty) {
			tj := tc.json[i].json
			tc.mu.Unlock()
			return tj, nil
		}
	}
	tc.mu.Unlock()
	tj, err := ty.MarshalJSON()
	if err != nil {
		return nil, err
	}
	tc.mu.Lock()
	if len(tc.json) >= maxCachedTypes {
		tc.json = nil
	}
	tc.json = append(tc.json, describedType{ty: ty, json: tj})
	// The description parses back to ty (for every type whose attribute
	// names are valid UTF-8, as schemas' names are): a cache shared by
	// the two halves of a connection in one process never parses it.
	tc.remember(tj, ty)
	tc.mu.Unlock()
	return tj, nil
}

// parse returns the type that tj describes.
func (tc *typeCache) parse(tj []byte) (cty.Type, error) {
	tc.mu.Lock()
	ty, ok := tc.byJSON[string(tj)]
	tc.mu.Unlock()
	if ok {
		return ty, nil
	}
	if err := ty.UnmarshalJSON(tj); err != nil {
		return cty.NilType, err
	}
	tc.mu.Lock()
	tc.remember(tj, ty)
	tc.mu.Unlock()
	return ty, nil
}

// remember records that tj describes ty; tc.mu is held.
func (tc *typeCache) remember(tj []byte, ty cty.Type) {
	if tc.byJSON == nil || len(tc.byJSON) >= maxCachedTypes {
		tc.byJSON = map[string]cty.Type{}
	}
	tc.byJSON[string(tj)] = ty
}

// splitDynamic splits cty's msgpack of a dynamic value into its type's
// JSON description and the encoded value. ok is false for anything else:
// nothing, an unknown or a null value, or a form it does not recognise.
func splitDynamic(b []byte) (tj, val []byte, ok bool) {
	if len(b) < 3 || b[0] != 0x92 { // a fixed array of two elements
		return nil, nil, false
	}
	var n, start int
	switch c := b[1]; {
	case c == 0xc4 || c == 0xd9: // bin 8, str 8
		n, start = int(b[2]), 3
	case c == 0xc5 || c == 0xda: // bin 16, str 16
		if len(b) < 4 {
			return nil, nil, false
		}
		n, start = int(binary.BigEndian.Uint16(b[2:])), 4
	case c == 0xc6 || c == 0xdb: // bin 32, str 32
		if len(b) < 6 {
			return nil, nil, false
		}
		n, start = int(binary.BigEndian.Uint32(b[2:])), 6
	case c&0xe0 == 0xa0: // fixed str
		n, start = int(c&0x1f), 2
	default:
		return nil, nil, false
	}
	if n < 0 || n > len(b)-start {
		return nil, nil, false
	}
	return b[start : start+n], b[start+n:], true
}
