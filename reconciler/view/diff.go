package view

import (
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/berthhq/berth/spec/marks"
	"github.com/zclconf/go-cty/cty"
)

// sym is the change symbol shown at the start of a line.
type sym int

const (
	symNone sym = iota
	symCreate
	symUpdate
	symDelete
)

// maxLCS bounds the size of the table used to diff two lists element by
// element; longer lists are compared position by position.
const maxLCS = 1 << 20

// differ renders the difference between two values as lines in Terraform's
// shape. Entries at depth d start with 4d+2 spaces and a symbol; the closing
// bracket of a group whose entries are at depth d is indented by 4d.
type differ struct {
	opts Options
	// full shows unchanged attributes and blocks instead of counting them as
	// hidden; replacements are shown in full.
	full bool
	// forces lists the paths that force a replacement.
	forces []cty.Path
}

// entry is one attribute or block of a group being laid out.
type entry struct {
	sym  sym
	name string
	// lines holds, for an attribute, the value: lines[0] follows "name = "
	// and the others are complete lines. For a block it holds the complete
	// lines of the body, without the braces.
	lines []string
	note  string
	block bool
}

func (d *differ) mark(s sym) string {
	switch s {
	case symCreate:
		return d.opts.paint("+", ansiGreen)
	case symUpdate:
		return d.opts.paint("~", ansiYellow)
	case symDelete:
		return d.opts.paint("-", ansiRed)
	}
	return " "
}

// prefix returns the start of an entry line at depth.
func (d *differ) prefix(depth int, s sym) string {
	return indent(4*depth+2) + d.mark(s) + " "
}

// closer returns the indentation of the closing bracket of a group whose
// entries are at depth.
func closer(depth int) string { return indent(4 * depth) }

// comment returns a comment line among the entries at depth.
func comment(depth int, text string) string { return indent(4*depth+4) + "# " + text }

// note returns the "# forces replacement" annotation of a changed path.
func (d *differ) note(path cty.Path, s sym) string {
	if s == symNone {
		return ""
	}
	for _, p := range d.forces {
		if p.Equals(path) {
			return " " + d.opts.paint("# forces replacement", ansiRed)
		}
	}
	return ""
}

// layout renders attribute entries, aligning their equals signs, then a
// count of hidden attributes, then block entries, then a count of hidden
// blocks.
func (d *differ) layout(depth int, attrs, blocks []entry, hidAttrs, hidBlocks int, attrWord, blockWord string) []string {
	width := 0
	for _, e := range attrs {
		if n := len([]rune(e.name)); n > width {
			width = n
		}
	}
	var out []string
	for _, e := range attrs {
		lines := e.lines
		if len(lines) == 0 {
			lines = []string{"null"}
		}
		out = append(out, d.prefix(depth, e.sym)+pad(e.name, width)+" = "+lines[0]+e.note)
		out = append(out, lines[1:]...)
	}
	if hidAttrs > 0 {
		out = append(out, comment(depth, "("+plural(hidAttrs, "unchanged "+attrWord+" hidden", "unchanged "+attrWord+"s hidden")+")"))
	}
	for _, e := range blocks {
		if len(out) > 0 {
			out = append(out, "")
		}
		if len(e.lines) == 0 {
			out = append(out, d.prefix(depth, e.sym)+e.name+" {}"+e.note)
			continue
		}
		out = append(out, d.prefix(depth, e.sym)+e.name+" {"+e.note)
		out = append(out, e.lines...)
		out = append(out, closer(depth+1)+"}")
	}
	if hidBlocks > 0 {
		if len(out) > 0 {
			out = append(out, "")
		}
		out = append(out, comment(depth, "("+plural(hidBlocks, "unchanged "+blockWord+" hidden", "unchanged "+blockWord+"s hidden")+")"))
	}
	return out
}

// body renders the attributes of the objects b and a as entries at depth.
func (d *differ) body(depth int, path cty.Path, b, a cty.Value) []string {
	var attrs, blocks []entry
	hidAttrs, hidBlocks := 0, 0
	for _, name := range attrNames(b, a) {
		as, bs, ha, hb := d.attribute(depth, appendPath(path, cty.GetAttrStep{Name: name}), name, attrOf(b, name), attrOf(a, name))
		attrs = append(attrs, as...)
		blocks = append(blocks, bs...)
		hidAttrs += ha
		hidBlocks += hb
	}
	return d.layout(depth, attrs, blocks, hidAttrs, hidBlocks, "attribute", "block")
}

// attribute renders one attribute of an object: objects and lists or sets
// of objects become nested blocks, everything else an attribute.
func (d *differ) attribute(depth int, path cty.Path, name string, b, a cty.Value) (attrs, blocks []entry, hidAttrs, hidBlocks int) {
	b, a = norm(b), norm(a)
	if b.IsNull() && a.IsNull() {
		return nil, nil, 0, 0
	}
	if !isSensitive(b) && !isSensitive(a) && b.IsKnown() && a.IsKnown() {
		switch {
		case pairOf(b, a, isObjectType):
			if e, ok := d.block(depth, path, name, b, a); ok {
				return nil, []entry{e}, 0, 0
			}
			return nil, nil, 0, 1
		case pairOf(b, a, isObjectListType):
			return d.blockList(depth, path, name, b, a)
		}
	}
	s := change(b, a)
	if s == symNone && !d.full {
		return nil, nil, 1, 0
	}
	return []entry{{sym: s, name: name, lines: d.value(depth, path, s, b, a), note: d.note(path, s)}}, nil, 0, 0
}

// block renders a nested block; ok is false when it is unchanged and hidden.
func (d *differ) block(depth int, path cty.Path, name string, b, a cty.Value) (e entry, ok bool) {
	s := change(b, a)
	if s == symNone && !d.full {
		return entry{}, false
	}
	return entry{block: true, sym: s, name: name, lines: d.body(depth+1, path, b, a), note: d.note(path, s)}, true
}

// blockList renders a list or set of objects as repeated blocks: list
// elements are paired by position, set elements by equality.
func (d *differ) blockList(depth int, path cty.Path, name string, b, a cty.Value) (attrs, blocks []entry, hidAttrs, hidBlocks int) {
	type pair struct {
		b, a cty.Value
		step cty.PathStep
	}
	var pairs []pair
	bl, al := elements(b), elements(a)
	null := cty.NullVal(cty.DynamicPseudoType)
	if isSet(b) || isSet(a) {
		used := make([]bool, len(al))
	next:
		for _, be := range bl {
			for j, ae := range al {
				if !used[j] && same(be, ae) {
					used[j] = true
					pairs = append(pairs, pair{be, ae, cty.IndexStep{Key: unmarked(be)}})
					continue next
				}
			}
			pairs = append(pairs, pair{be, null, cty.IndexStep{Key: unmarked(be)}})
		}
		for j, ae := range al {
			if !used[j] {
				pairs = append(pairs, pair{null, ae, cty.IndexStep{Key: unmarked(ae)}})
			}
		}
	} else {
		for i := 0; i < len(bl) || i < len(al); i++ {
			p := pair{null, null, cty.IndexStep{Key: cty.NumberIntVal(int64(i))}}
			if i < len(bl) {
				p.b = bl[i]
			}
			if i < len(al) {
				p.a = al[i]
			}
			pairs = append(pairs, p)
		}
	}
	for _, p := range pairs {
		ep := appendPath(path, p.step)
		if isSensitive(p.b) || isSensitive(p.a) || !p.b.IsKnown() || !p.a.IsKnown() {
			s := change(p.b, p.a)
			if s == symNone && !d.full {
				hidAttrs++
				continue
			}
			attrs = append(attrs, entry{sym: s, name: name, lines: d.value(depth, ep, s, p.b, p.a), note: d.note(ep, s)})
			continue
		}
		if e, ok := d.block(depth, ep, name, p.b, p.a); ok {
			blocks = append(blocks, e)
		} else {
			hidBlocks++
		}
	}
	return attrs, blocks, hidAttrs, hidBlocks
}

// value renders the value of an attribute or element whose change is s.
func (d *differ) value(depth int, path cty.Path, s sym, b, a cty.Value) []string {
	switch s {
	case symNone:
		return d.whole(depth, a, symNone)
	case symCreate:
		return d.whole(depth, a, symCreate)
	case symDelete:
		lines := d.whole(depth, b, symDelete)
		lines[len(lines)-1] += " -> null"
		return lines
	}
	if isSensitive(b) || isSensitive(a) {
		return []string{marks.Redacted}
	}
	if !a.IsKnown() {
		old := d.whole(depth, b, symNone)
		if len(old) == 1 {
			return []string{old[0] + " -> (known after apply)"}
		}
		return []string{"(known after apply)"}
	}
	if b.IsKnown() {
		switch kb, ka := kindOf(b), kindOf(a); {
		case kb == kindMap && ka == kindMap:
			return d.keyed(depth, path, b, a, true)
		case kb == kindObject && ka == kindObject:
			return d.keyed(depth, path, b, a, false)
		case kb == kindList && ka == kindList:
			return d.list(depth, b, a)
		}
	}
	old, nw := d.whole(depth, b, symNone), d.whole(depth, a, symNone)
	old[len(old)-1] += " -> " + nw[0]
	return append(old, nw[1:]...)
}

// keyed renders the difference of two maps (quoted keys) or two objects
// shown as values, entry by entry.
func (d *differ) keyed(depth int, path cty.Path, b, a cty.Value, isMap bool) []string {
	bk, bv := keyedElements(b)
	ak, av := keyedElements(a)
	keys := unionSorted(bk, ak)
	var es []entry
	hidden := 0
	for _, k := range keys {
		bx, inB := bv[k]
		ax, inA := av[k]
		var step cty.PathStep = cty.GetAttrStep{Name: k}
		name := k
		if isMap {
			step = cty.IndexStep{Key: cty.StringVal(k)}
			name = strconv.Quote(k)
		}
		p := appendPath(path, step)
		var s sym
		switch {
		case inB && inA:
			if !isMap && bx.IsNull() && ax.IsNull() {
				continue
			}
			s = change(bx, ax)
		case inA:
			s, bx = symCreate, cty.NullVal(cty.DynamicPseudoType)
		default:
			s, ax = symDelete, cty.NullVal(cty.DynamicPseudoType)
		}
		if s == symNone && !d.full {
			hidden++
			continue
		}
		es = append(es, entry{sym: s, name: name, lines: d.value(depth+1, p, s, bx, ax), note: d.note(p, s)})
	}
	word := "attribute"
	if isMap {
		word = "element"
	}
	out := []string{"{"}
	out = append(out, d.layout(depth+1, es, nil, hidden, 0, word, "")...)
	return append(out, closer(depth+1)+"}")
}

// list renders the difference of two lists, sets or tuples element by
// element.
func (d *differ) list(depth int, b, a cty.Value) []string {
	type op struct {
		s sym
		v cty.Value
	}
	var ops []op
	bl, al := elements(b), elements(a)
	switch {
	case isSet(b) || isSet(a):
		used := make([]bool, len(al))
	next:
		for _, be := range bl {
			for j, ae := range al {
				if !used[j] && same(be, ae) {
					used[j] = true
					ops = append(ops, op{symNone, ae})
					continue next
				}
			}
			ops = append(ops, op{symDelete, be})
		}
		for j, ae := range al {
			if !used[j] {
				ops = append(ops, op{symCreate, ae})
			}
		}
	case len(bl)*len(al) <= maxLCS:
		// Longest common subsequence, then walk it.
		n, m := len(bl), len(al)
		t := make([][]int, n+1)
		for i := range t {
			t[i] = make([]int, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if same(bl[i], al[j]) {
					t[i][j] = t[i+1][j+1] + 1
				} else {
					t[i][j] = max(t[i+1][j], t[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && same(bl[i], al[j]):
				ops = append(ops, op{symNone, al[j]})
				i++
				j++
			case i < n && (j == m || t[i+1][j] >= t[i][j+1]):
				ops = append(ops, op{symDelete, bl[i]})
				i++
			default:
				ops = append(ops, op{symCreate, al[j]})
				j++
			}
		}
	default:
		for i := 0; i < len(bl) || i < len(al); i++ {
			switch {
			case i < len(bl) && i < len(al) && same(bl[i], al[i]):
				ops = append(ops, op{symNone, al[i]})
			default:
				if i < len(bl) {
					ops = append(ops, op{symDelete, bl[i]})
				}
				if i < len(al) {
					ops = append(ops, op{symCreate, al[i]})
				}
			}
		}
	}
	out := []string{"["}
	for _, o := range ops {
		lines := d.whole(depth+1, o.v, o.s)
		lines[0] = d.prefix(depth+1, o.s) + lines[0]
		lines[len(lines)-1] += ","
		out = append(out, lines...)
	}
	return append(out, closer(depth+1)+"]")
}

// whole renders a complete value of an entry at depth; the entries of a
// multi-line collection are at depth+1 and carry the symbol s. It never
// returns an empty slice.
func (d *differ) whole(depth int, v cty.Value, s sym) []string {
	v = norm(v)
	switch {
	case isSensitive(v):
		return []string{marks.Redacted}
	case !v.IsKnown():
		return []string{"(known after apply)"}
	case v.IsNull():
		return []string{"null"}
	}
	switch kindOf(v) {
	case kindPrimitive:
		return []string{primitive(v)}
	case kindList:
		es := elements(v)
		if len(es) == 0 {
			return []string{"[]"}
		}
		simple := true
		for _, e := range es {
			if !isSimple(e) {
				simple = false
				break
			}
		}
		if simple {
			parts := make([]string, len(es))
			for i, e := range es {
				parts[i] = d.whole(depth+1, e, s)[0]
			}
			return []string{"[" + strings.Join(parts, ", ") + "]"}
		}
		out := []string{"["}
		for _, e := range es {
			lines := d.whole(depth+1, e, s)
			lines[0] = d.prefix(depth+1, s) + lines[0]
			lines[len(lines)-1] += ","
			out = append(out, lines...)
		}
		return append(out, closer(depth+1)+"]")
	case kindMap, kindObject:
		isMap := kindOf(v) == kindMap
		keys, vals := keyedElements(v)
		var es []entry
		for _, k := range keys {
			e := vals[k]
			if !isMap && e.IsNull() {
				continue
			}
			name := k
			if isMap {
				name = strconv.Quote(k)
			}
			es = append(es, entry{sym: s, name: name, lines: d.whole(depth+1, e, s)})
		}
		if len(es) == 0 {
			return []string{"{}"}
		}
		out := []string{"{"}
		out = append(out, d.layout(depth+1, es, nil, 0, 0, "", "")...)
		return append(out, closer(depth+1)+"}")
	}
	return []string{"(value of type " + v.Type().FriendlyName() + ")"}
}

// primitive formats a known, non-null string, number or bool.
func primitive(v cty.Value) string {
	v, _ = v.Unmark()
	switch v.Type() {
	case cty.String:
		return strconv.Quote(v.AsString())
	case cty.Number:
		return formatNumber(v.AsBigFloat())
	case cty.Bool:
		if v.True() {
			return "true"
		}
		return "false"
	}
	return "(value of type " + v.Type().FriendlyName() + ")"
}

// formatNumber formats a number in decimal notation.
func formatNumber(f *big.Float) string {
	if f.IsInf() {
		if f.Sign() < 0 {
			return "-Infinity"
		}
		return "Infinity"
	}
	return f.Text('f', -1)
}

// valueKind classifies values for rendering.
type valueKind int

const (
	kindOther valueKind = iota
	kindPrimitive
	kindList
	kindMap
	kindObject
)

func kindOf(v cty.Value) valueKind {
	ty := v.Type()
	switch {
	case ty.IsPrimitiveType():
		return kindPrimitive
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		return kindList
	case ty.IsMapType():
		return kindMap
	case ty.IsObjectType():
		return kindObject
	}
	return kindOther
}

// isSimple reports whether v renders on one short line inside a list.
func isSimple(v cty.Value) bool {
	return isSensitive(v) || !v.IsKnown() || v.IsNull() || kindOf(v) == kindPrimitive
}

// norm turns the invalid cty.NilVal into a null value.
func norm(v cty.Value) cty.Value {
	if v.Type() == cty.NilType {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return v
}

// isSensitive reports whether v itself carries the sensitive mark.
func isSensitive(v cty.Value) bool { return v.HasMark(marks.Sensitive) }

// unmarked returns v without its own marks.
func unmarked(v cty.Value) cty.Value {
	u, _ := v.Unmark()
	return u
}

// change returns the symbol of the change from b to a.
func change(b, a cty.Value) sym {
	bn, an := b.IsNull(), a.IsNull()
	switch {
	case bn && an:
		return symNone
	case bn:
		return symCreate
	case an:
		return symDelete
	case same(b, a):
		return symNone
	}
	return symUpdate
}

// same reports whether b and a are known, equal and equally marked.
func same(b, a cty.Value) bool {
	b, a = norm(b), norm(a)
	if b.IsNull() && a.IsNull() {
		return b.HasSameMarks(a)
	}
	if !b.IsWhollyKnown() || !a.IsWhollyKnown() {
		return false
	}
	return b.RawEquals(a)
}

// pairOf reports whether b and a both satisfy is, or are null of an unknown
// type, and at least one of them is not null.
func pairOf(b, a cty.Value, is func(cty.Type) bool) bool {
	ok := func(v cty.Value) bool {
		return is(v.Type()) || (v.IsNull() && v.Type() == cty.DynamicPseudoType)
	}
	if !ok(b) || !ok(a) || (b.IsNull() && a.IsNull()) {
		return false
	}
	if !b.IsNull() && !a.IsNull() && isSet(b) != isSet(a) {
		return false
	}
	return true
}

func isObjectType(t cty.Type) bool { return t.IsObjectType() }

func isObjectListType(t cty.Type) bool {
	return (t.IsListType() || t.IsSetType()) && t.ElementType().IsObjectType()
}

func isSet(v cty.Value) bool { return v.Type().IsSetType() }

// attrNames returns the attribute names of the object types of b and a,
// sorted.
func attrNames(b, a cty.Value) []string {
	seen := map[string]bool{}
	var names []string
	for _, v := range []cty.Value{b, a} {
		if ty := v.Type(); ty.IsObjectType() {
			for n := range ty.AttributeTypes() {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

// attrOf returns the attribute name of the object v, keeping v's marks: a
// null when v is null or has no such attribute, an unknown when v is
// unknown.
func attrOf(v cty.Value, name string) cty.Value {
	v = norm(v)
	u, m := v.Unmark()
	ty := u.Type()
	if !ty.IsObjectType() || !ty.HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType).WithMarks(m)
	}
	at := ty.AttributeType(name)
	switch {
	case u.IsNull():
		return cty.NullVal(at).WithMarks(m)
	case !u.IsKnown():
		return cty.UnknownVal(at).WithMarks(m)
	}
	return u.GetAttr(name).WithMarks(m)
}

// elements returns the elements of a known, non-null list, set or tuple,
// each carrying the collection's marks as well as its own.
func elements(v cty.Value) []cty.Value {
	v = norm(v)
	u, m := v.Unmark()
	if u.IsNull() || !u.IsKnown() || kindOf(u) != kindList {
		return nil
	}
	var out []cty.Value
	for it := u.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, e.WithMarks(m))
	}
	return out
}

// keyedElements returns the sorted keys and the elements of a known,
// non-null map or object, each carrying the collection's marks as well as
// its own.
func keyedElements(v cty.Value) ([]string, map[string]cty.Value) {
	v = norm(v)
	u, m := v.Unmark()
	vals := map[string]cty.Value{}
	if u.IsNull() || !u.IsKnown() {
		return nil, vals
	}
	if k := kindOf(u); k != kindMap && k != kindObject {
		return nil, vals
	}
	var keys []string
	for it := u.ElementIterator(); it.Next(); {
		k, e := it.Element()
		ks := k.AsString()
		keys = append(keys, ks)
		vals[ks] = e.WithMarks(m)
	}
	sort.Strings(keys)
	return keys, vals
}

// unionSorted returns the sorted union of two string slices.
func unionSorted(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// appendPath returns a new path: p followed by s.
func appendPath(p cty.Path, s cty.PathStep) cty.Path {
	out := make(cty.Path, len(p), len(p)+1)
	copy(out, p)
	return append(out, s)
}
