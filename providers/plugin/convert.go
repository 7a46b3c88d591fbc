package plugin

import (
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/berthhq/berth/providers"
	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"github.com/zclconf/go-cty/cty/msgpack"
)

// isNil reports whether v is cty.NilVal, the absence of a value.
func isNil(v cty.Value) bool {
	return v.Type() == cty.NilType
}

// encodeValue encodes v for the wire. Marks are stripped: providers never
// see them. cty.NilVal encodes as nil.
func encodeValue(v cty.Value) (*providerpb.DynamicValue, error) {
	if isNil(v) {
		return nil, nil
	}
	v, _ = v.UnmarkDeep()
	b, err := msgpack.Marshal(v, cty.DynamicPseudoType)
	if err != nil {
		return nil, err
	}
	return &providerpb.DynamicValue{Msgpack: b}, nil
}

// decodeValue decodes a value encoded by encodeValue; nil or empty decodes
// as cty.NilVal.
func decodeValue(dv *providerpb.DynamicValue) (cty.Value, error) {
	b := dv.GetMsgpack()
	if len(b) == 0 {
		return cty.NilVal, nil
	}
	return msgpack.Unmarshal(b, cty.DynamicPseudoType)
}

// encodePath encodes a cty.Path; nil encodes as nil.
func encodePath(p cty.Path) (*providerpb.AttributePath, error) {
	if p == nil {
		return nil, nil
	}
	out := &providerpb.AttributePath{Steps: make([]*providerpb.AttributePath_Step, 0, len(p))}
	for _, step := range p {
		s, err := encodeStep(step)
		if err != nil {
			return nil, err
		}
		out.Steps = append(out.Steps, s)
	}
	return out, nil
}

func encodeStep(step cty.PathStep) (*providerpb.AttributePath_Step, error) {
	switch s := step.(type) {
	case cty.GetAttrStep:
		return &providerpb.AttributePath_Step{Selector: &providerpb.AttributePath_Step_AttributeName{AttributeName: s.Name}}, nil
	case cty.IndexStep:
		k := s.Key
		if isNil(k) {
			return nil, errors.New("path step has no key")
		}
		k, _ = k.UnmarkDeep()
		if k.IsKnown() && !k.IsNull() {
			switch k.Type() {
			case cty.String:
				return &providerpb.AttributePath_Step{Selector: &providerpb.AttributePath_Step_ElementKeyString{ElementKeyString: k.AsString()}}, nil
			case cty.Number:
				if i, ok := int64Of(k.AsBigFloat()); ok {
					return &providerpb.AttributePath_Step{Selector: &providerpb.AttributePath_Step_ElementKeyInt{ElementKeyInt: i}}, nil
				}
			}
		}
		dv, err := encodeValue(k)
		if err != nil {
			return nil, fmt.Errorf("path step key: %w", err)
		}
		return &providerpb.AttributePath_Step{Selector: &providerpb.AttributePath_Step_ElementKeyValue{ElementKeyValue: dv}}, nil
	default:
		return nil, fmt.Errorf("unsupported path step %T", step)
	}
}

// int64Of returns f as an int64 when it is an integer in range.
func int64Of(f *big.Float) (int64, bool) {
	if f == nil || f.IsInf() || !f.IsInt() {
		return 0, false
	}
	i, acc := f.Int64()
	if acc != big.Exact {
		return 0, false
	}
	return i, true
}

// decodePath decodes a path encoded by encodePath; nil decodes as nil.
func decodePath(ap *providerpb.AttributePath) (cty.Path, error) {
	if ap == nil {
		return nil, nil
	}
	p := make(cty.Path, 0, len(ap.GetSteps()))
	for i, s := range ap.GetSteps() {
		switch sel := s.GetSelector().(type) {
		case *providerpb.AttributePath_Step_AttributeName:
			p = append(p, cty.GetAttrStep{Name: sel.AttributeName})
		case *providerpb.AttributePath_Step_ElementKeyString:
			p = append(p, cty.IndexStep{Key: cty.StringVal(sel.ElementKeyString)})
		case *providerpb.AttributePath_Step_ElementKeyInt:
			p = append(p, cty.IndexStep{Key: cty.NumberIntVal(sel.ElementKeyInt)})
		case *providerpb.AttributePath_Step_ElementKeyValue:
			k, err := decodeValue(sel.ElementKeyValue)
			if err != nil {
				return nil, fmt.Errorf("path step %d: %w", i, err)
			}
			if isNil(k) {
				return nil, fmt.Errorf("path step %d has an empty key", i)
			}
			p = append(p, cty.IndexStep{Key: k})
		default:
			return nil, fmt.Errorf("path step %d is empty", i)
		}
	}
	return p, nil
}

func encodePaths(ps []cty.Path) ([]*providerpb.AttributePath, error) {
	if ps == nil {
		return nil, nil
	}
	out := make([]*providerpb.AttributePath, 0, len(ps))
	for _, p := range ps {
		ap, err := encodePath(p)
		if err != nil {
			return nil, err
		}
		if ap == nil {
			ap = &providerpb.AttributePath{}
		}
		out = append(out, ap)
	}
	return out, nil
}

func decodePaths(aps []*providerpb.AttributePath) ([]cty.Path, error) {
	if len(aps) == 0 {
		return nil, nil
	}
	out := make([]cty.Path, 0, len(aps))
	for _, ap := range aps {
		p, err := decodePath(ap)
		if err != nil {
			return nil, err
		}
		if p == nil {
			p = cty.Path{}
		}
		out = append(out, p)
	}
	return out, nil
}

// encodeDiags encodes diagnostics. A path that cannot be encoded is dropped
// and named in the detail instead, so that the diagnostic itself survives.
func encodeDiags(ds providers.Diagnostics) []*providerpb.Diagnostic {
	if len(ds) == 0 {
		return nil
	}
	out := make([]*providerpb.Diagnostic, 0, len(ds))
	for _, d := range ds {
		pd := &providerpb.Diagnostic{Summary: d.Summary, Detail: d.Detail}
		switch d.Severity {
		case providers.Error:
			pd.Severity = providerpb.Diagnostic_SEVERITY_ERROR
		case providers.Warning:
			pd.Severity = providerpb.Diagnostic_SEVERITY_WARNING
		}
		ap, err := encodePath(d.Path)
		if err != nil {
			pd.Detail = joinDetail(pd.Detail, fmt.Sprintf("(the attribute path of this diagnostic could not be sent: %v)", err))
		}
		pd.Attribute = ap
		out = append(out, pd)
	}
	return out
}

// decodeDiags decodes diagnostics. A diagnostic without a known severity is
// an error, so that a problem is never silently ignored.
func decodeDiags(pds []*providerpb.Diagnostic) providers.Diagnostics {
	if len(pds) == 0 {
		return nil
	}
	out := make(providers.Diagnostics, 0, len(pds))
	for _, pd := range pds {
		d := providers.Diagnostic{Severity: providers.Error, Summary: pd.GetSummary(), Detail: pd.GetDetail()}
		if pd.GetSeverity() == providerpb.Diagnostic_SEVERITY_WARNING {
			d.Severity = providers.Warning
		}
		p, err := decodePath(pd.GetAttribute())
		if err != nil {
			d.Detail = joinDetail(d.Detail, fmt.Sprintf("(the attribute path of this diagnostic could not be read: %v)", err))
		}
		d.Path = p
		out = append(out, d)
	}
	return out
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

func encodeOwner(o providers.Owner) *providerpb.Owner {
	return &providerpb.Owner{Address: o.Address, Token: o.Token}
}

func decodeOwner(o *providerpb.Owner) providers.Owner {
	return providers.Owner{Address: o.GetAddress(), Token: o.GetToken()}
}

// encodeType encodes a type as cty's type JSON; cty.NilType encodes as nil.
func encodeType(t cty.Type) ([]byte, error) {
	if t == cty.NilType {
		return nil, nil
	}
	return ctyjson.MarshalType(t)
}

func decodeType(b []byte) (cty.Type, error) {
	if len(b) == 0 {
		return cty.NilType, nil
	}
	return ctyjson.UnmarshalType(b)
}

// encodeSchema encodes the kinds of a schema.
func encodeSchema(kinds map[string]*providers.Kind) (map[string]*providerpb.Kind, error) {
	if kinds == nil {
		return nil, nil
	}
	out := make(map[string]*providerpb.Kind, len(kinds))
	for name, k := range kinds {
		pk := &providerpb.Kind{}
		if k != nil {
			pk.Description = k.Description
			pk.Importable = k.Importable
			pk.ReadsOutside = k.ReadsOutside
			pk.DestroyWarning = k.DestroyWarning
			pk.Highlights = k.Highlights
			if k.Block != nil {
				b, err := encodeBlock(k.Block)
				if err != nil {
					return nil, fmt.Errorf("kind %s: %w", name, err)
				}
				pk.Block = b
			}
		}
		out[name] = pk
	}
	return out, nil
}

func encodeBlock(b *providers.Block) (*providerpb.Block, error) {
	out := &providerpb.Block{}
	if len(b.Attributes) > 0 {
		out.Attributes = make(map[string]*providerpb.Attribute, len(b.Attributes))
	}
	for name, a := range b.Attributes {
		pa := &providerpb.Attribute{}
		if a != nil {
			t, err := encodeType(a.Type)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: type: %w", name, err)
			}
			pa = &providerpb.Attribute{
				Type:        t,
				Description: a.Description,
				Required:    a.Required,
				Optional:    a.Optional,
				Computed:    a.Computed,
				Sensitive:   a.Sensitive,
				ForceNew:    a.ForceNew,
			}
		}
		out.Attributes[name] = pa
	}
	if len(b.Blocks) > 0 {
		out.Blocks = make(map[string]*providerpb.NestedBlock, len(b.Blocks))
	}
	for name, nb := range b.Blocks {
		pnb := &providerpb.NestedBlock{}
		if nb != nil {
			child, err := encodeBlock(&nb.Block)
			if err != nil {
				return nil, fmt.Errorf("block %s: %w", name, err)
			}
			pnb = &providerpb.NestedBlock{
				Nesting:  providerpb.NestedBlock_Nesting(nb.Nesting),
				Block:    child,
				MinItems: int64(nb.MinItems),
				MaxItems: int64(nb.MaxItems),
			}
		}
		out.Blocks[name] = pnb
	}
	return out, nil
}

// decodeSchema decodes the kinds of a schema.
func decodeSchema(pks map[string]*providerpb.Kind) (map[string]*providers.Kind, error) {
	if pks == nil {
		return nil, nil
	}
	out := make(map[string]*providers.Kind, len(pks))
	for name, pk := range pks {
		k := &providers.Kind{Description: pk.GetDescription(), Importable: pk.GetImportable(), ReadsOutside: pk.GetReadsOutside(), DestroyWarning: pk.GetDestroyWarning(), Highlights: pk.GetHighlights()}
		if pk.GetBlock() != nil {
			b, err := decodeBlock(pk.GetBlock())
			if err != nil {
				return nil, fmt.Errorf("kind %s: %w", name, err)
			}
			k.Block = &b
		}
		out[name] = k
	}
	return out, nil
}

func decodeBlock(pb *providerpb.Block) (providers.Block, error) {
	var out providers.Block
	if len(pb.GetAttributes()) > 0 {
		out.Attributes = make(map[string]*providers.Attribute, len(pb.GetAttributes()))
	}
	for name, pa := range pb.GetAttributes() {
		t, err := decodeType(pa.GetType())
		if err != nil {
			return out, fmt.Errorf("attribute %s: type: %w", name, err)
		}
		out.Attributes[name] = &providers.Attribute{
			Type:        t,
			Description: pa.GetDescription(),
			Required:    pa.GetRequired(),
			Optional:    pa.GetOptional(),
			Computed:    pa.GetComputed(),
			Sensitive:   pa.GetSensitive(),
			ForceNew:    pa.GetForceNew(),
		}
	}
	if len(pb.GetBlocks()) > 0 {
		out.Blocks = make(map[string]*providers.NestedBlock, len(pb.GetBlocks()))
	}
	for name, pnb := range pb.GetBlocks() {
		child, err := decodeBlock(pnb.GetBlock())
		if err != nil {
			return out, fmt.Errorf("block %s: %w", name, err)
		}
		out.Blocks[name] = &providers.NestedBlock{
			Nesting:  providers.Nesting(pnb.GetNesting()),
			Block:    child,
			MinItems: clampInt(pnb.GetMinItems()),
			MaxItems: clampInt(pnb.GetMaxItems()),
		}
	}
	return out, nil
}

func clampInt(i int64) int {
	switch {
	case i > math.MaxInt32:
		return math.MaxInt32
	case i < 0:
		return 0
	}
	return int(i)
}
