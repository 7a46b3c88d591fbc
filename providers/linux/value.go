package linux

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// obj reads the attributes of an object value, treating null and unknown
// attributes as unset.
type obj struct{ v cty.Value }

func (o obj) get(name string) cty.Value {
	if o.v == cty.NilVal || o.v.IsNull() || !o.v.IsKnown() || !o.v.Type().IsObjectType() || !o.v.Type().HasAttribute(name) {
		return cty.NilVal
	}
	a := o.v.GetAttr(name)
	if a.IsNull() || !a.IsKnown() {
		return cty.NilVal
	}
	return a
}

// known reports whether the attribute is set and known.
func (o obj) set(name string) bool { return o.get(name) != cty.NilVal }

// unknown reports whether the attribute is not yet known.
func (o obj) unknown(name string) bool {
	if o.v == cty.NilVal || o.v.IsNull() || !o.v.IsKnown() || !o.v.Type().HasAttribute(name) {
		return false
	}
	return !o.v.GetAttr(name).IsKnown()
}

func (o obj) str(name string) string {
	a := o.get(name)
	if a == cty.NilVal || a.Type() != cty.String {
		return ""
	}
	return a.AsString()
}

func (o obj) boolean(name string, def bool) bool {
	a := o.get(name)
	if a == cty.NilVal || a.Type() != cty.Bool {
		return def
	}
	return a.True()
}

func (o obj) num(name string) (*big.Float, bool) {
	a := o.get(name)
	if a == cty.NilVal || a.Type() != cty.Number {
		return nil, false
	}
	return a.AsBigFloat(), true
}

func (o obj) integer(name string) (int64, bool) {
	f, ok := o.num(name)
	if !ok {
		return 0, false
	}
	i, _ := f.Int64()
	return i, true
}

func (o obj) float(name string) (float64, bool) {
	f, ok := o.num(name)
	if !ok {
		return 0, false
	}
	x, _ := f.Float64()
	return x, true
}

func (o obj) strings(name string) []string {
	a := o.get(name)
	if a == cty.NilVal || !(a.Type().IsListType() || a.Type().IsTupleType() || a.Type().IsSetType()) {
		return nil
	}
	out := []string{}
	for it := a.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			out = append(out, e.AsString())
		}
	}
	return out
}

func (o obj) stringMap(name string) map[string]string {
	a := o.get(name)
	if a == cty.NilVal || !(a.Type().IsMapType() || a.Type().IsObjectType()) {
		return nil
	}
	out := map[string]string{}
	for it := a.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			out[k.AsString()] = e.AsString()
		}
	}
	return out
}

// block returns a nested single block, or an empty obj.
func (o obj) block(name string) obj {
	a := o.get(name)
	if a == cty.NilVal {
		return obj{}
	}
	return obj{a}
}

// blocks returns the elements of a nested list block.
func (o obj) blocks(name string) []obj {
	a := o.get(name)
	if a == cty.NilVal || !(a.Type().IsListType() || a.Type().IsTupleType()) {
		return nil
	}
	var out []obj
	for it := a.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, obj{e})
	}
	return out
}

// isNull reports whether the object itself is absent.
func (o obj) isNull() bool { return o.v == cty.NilVal || o.v.IsNull() }

// with returns v with the attribute name replaced by a.
func with(v cty.Value, name string, a cty.Value) cty.Value {
	m := v.AsValueMap()
	if m == nil {
		m = map[string]cty.Value{}
	}
	m[name] = a
	return cty.ObjectVal(m)
}

// sizeUnits are the units a size may carry, all binary as with Docker.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// parseSize reads a size such as "64M", "1g", "512KiB" or "1048576".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid size %q: use a number with an optional unit b, k, m, g or t (binary, like Docker), e.g. \"64M\"", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q: use a number with an optional unit b, k, m, g or t (binary, like Docker), e.g. \"64M\"", s)
	}
	n := int64(f * float64(mult))
	return n, nil
}

// formatSize writes n bytes in the largest unit that divides it exactly.
func formatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseDuration reads a duration such as "5s" or "1m30s".
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q: use a number with a unit, e.g. \"5s\", \"500ms\" or \"1m\"", s)
	}
	return d, nil
}

// sortedEnv returns the entries of m as KEY=VALUE, sorted by key.
func sortedEnv(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+m[k])
	}
	return out
}

// mergeEnv overrides the image's environment with the container's, as
// Docker does: a variable of the container replaces the image's one of the
// same name in place, new ones come after.
func mergeEnv(image []string, own map[string]string) []string {
	out := append([]string(nil), image...)
	for _, kv := range sortedEnv(own) {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// commandLine combines entrypoints and commands as Docker does: a
// container's entrypoint replaces the image's and drops the image's
// command; a container's command replaces the image's command.
func commandLine(imgEntry, imgCmd, entry, cmd []string, entrySet, cmdSet bool) []string {
	ep, c := splitCommand(imgEntry, imgCmd, entry, cmd, entrySet, cmdSet)
	return append(append([]string(nil), ep...), c...)
}

// splitCommand is commandLine's entrypoint and command, apart.
func splitCommand(imgEntry, imgCmd, entry, cmd []string, entrySet, cmdSet bool) ([]string, []string) {
	ep, c := imgEntry, imgCmd
	if entrySet {
		ep, c = entry, nil
	}
	if cmdSet {
		c = cmd
	}
	return ep, c
}
