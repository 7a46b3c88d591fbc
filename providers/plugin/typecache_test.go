package plugin

import (
	"bytes"
	"fmt"
	"testing"

	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/msgpack"
)

// cacheValues are values of every shape, with types whose descriptions
// take each of msgpack's binary length forms.
func cacheValues() map[string]cty.Value {
	wide := map[string]cty.Value{}
	for i := range 40 { // a description longer than 255 bytes
		wide[fmt.Sprintf("attribute_%02d", i)] = cty.StringVal("v")
	}
	huge := map[string]cty.Value{}
	for i := range 3000 { // a description longer than 65535 bytes
		huge[fmt.Sprintf("a_rather_long_attribute_name_%04d", i)] = cty.NumberIntVal(int64(i))
	}
	return map[string]cty.Value{
		"string":          cty.StringVal("héllo\x00"),
		"number":          cty.MustParseNumberVal("123456789012345678901234567890.5"),
		"bool":            cty.False,
		"null":            cty.NullVal(cty.String),
		"null dynamic":    cty.NullVal(cty.DynamicPseudoType),
		"unknown":         cty.UnknownVal(cty.String).Refine().NotNull().StringPrefix("sha256:").NewValue(),
		"unknown dynamic": cty.DynamicVal,
		"list":            cty.ListVal([]cty.Value{cty.StringVal("a"), cty.UnknownVal(cty.String)}),
		"set":             cty.SetVal([]cty.Value{cty.NumberIntVal(1)}),
		"map":             cty.MapVal(map[string]cty.Value{"k": cty.NullVal(cty.String)}),
		"tuple":           cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NullVal(cty.DynamicPseudoType)}),
		"object": cty.ObjectVal(map[string]cty.Value{
			"id":    cty.UnknownVal(cty.String),
			"ports": cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{"port": cty.NumberIntVal(80)})}),
			"any":   cty.NullVal(cty.DynamicPseudoType),
		}),
		"wide object": cty.ObjectVal(wide),
		"huge object": cty.ObjectVal(huge),
	}
}

// TestTypeCacheKeepsTheWireFormat checks that the cache changes nothing on
// the wire: its encoding is byte for byte cty's, and it decodes both its
// own and cty's encoding to the same value, on a first use and on a
// cached one.
func TestTypeCacheKeepsTheWireFormat(t *testing.T) {
	var enc, dec, shared typeCache
	for name, v := range cacheValues() {
		t.Run(name, func(t *testing.T) {
			// One cache on both sides, as in process: the type the
			// encoder described is the one the decoder uses.
			dv, err := shared.encodeValue(v)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := shared.decodeValue(dv); err != nil || !back.RawEquals(v) {
				t.Fatalf("through a shared cache: decoded %#v, %v; want %#v", back, err, v)
			}
			want, err := encodeValue(v)
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				got, err := enc.encodeValue(v)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if !bytes.Equal(got.GetMsgpack(), want.GetMsgpack()) {
					t.Fatalf("round %d: the cache encodes %x, cty %x", round, got.GetMsgpack(), want.GetMsgpack())
				}
				back, err := dec.decodeValue(got)
				if err != nil {
					t.Fatalf("round %d: decode: %v", round, err)
				}
				if !back.RawEquals(v) {
					t.Fatalf("round %d: decoded %#v, want %#v", round, back, v)
				}
			}
		})
	}
}

// TestTypeCacheReadsStringDescriptions checks that a description sent as a
// msgpack string, which cty's decoder accepts too, is read.
func TestTypeCacheReadsStringDescriptions(t *testing.T) {
	v := cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x")})
	tj, err := v.Type().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	val, err := msgpack.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte{0x92, 0xd9, byte(len(tj))}, tj...)
	b = append(b, val...)
	var tc typeCache
	got, err := tc.decodeValue(&providerpb.DynamicValue{Msgpack: b})
	if err != nil || !got.RawEquals(v) {
		t.Fatalf("decoded %#v, %v; want %#v", got, err, v)
	}
}

// FuzzTypeCacheDecode checks that the cache decodes any input as cty's own
// decoder does: the same value, or an error for both.
func FuzzTypeCacheDecode(f *testing.F) {
	for _, v := range cacheValues() {
		dv, err := encodeValue(v)
		if err == nil && len(dv.GetMsgpack()) < 4096 {
			f.Add(dv.GetMsgpack())
		}
	}
	f.Add([]byte{0x92, 0xc4, 0x08})
	f.Add([]byte{0x92, 0xa8, '"', 's', 't', 'r', 'i', 'n', 'g', '"', 0xa1, 'x'})
	var tc typeCache
	f.Fuzz(func(t *testing.T, b []byte) {
		dv := &providerpb.DynamicValue{Msgpack: b}
		want, wantErr := decodeValue(dv)
		got, gotErr := tc.decodeValue(dv)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("cty says %v, the cache says %v", wantErr, gotErr)
		}
		if wantErr == nil && !got.RawEquals(want) {
			t.Fatalf("cty decodes %#v, the cache %#v", want, got)
		}
	})
}
