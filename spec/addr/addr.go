// Package addr defines the addresses of resources and resource instances, such as
// container.web, container.web[0] and container.web["blue"].
//
// Addresses are immutable values. String and Parse round-trip: for every valid
// address a, Parse(a.String()) returns a value equal to a.
package addr

import (
	"fmt"
	"strconv"
	"strings"
)

// Resource is the address of a resource block: its kind and its name.
type Resource struct {
	Kind string
	Name string
}

// String returns the address in its canonical form, KIND.NAME.
func (r Resource) String() string { return r.Kind + "." + r.Name }

// Instance returns the address of the instance of r with the given key.
func (r Resource) Instance(k Key) Instance { return Instance{Resource: r, Key: k} }

// KeyType tells which kind of instance key a Key holds.
type KeyType int

const (
	// NoKeyType is the key of a resource without count or for_each.
	NoKeyType KeyType = iota
	// IntKeyType is the key of an instance of a resource with count.
	IntKeyType
	// StringKeyType is the key of an instance of a resource with for_each.
	StringKeyType
)

// Key is an instance key: none, an integer (count) or a string (for_each).
// The zero Key is NoKey.
type Key struct {
	typ KeyType
	i   int
	s   string
}

// NoKey is the key of a resource that has neither count nor for_each.
var NoKey = Key{}

// IntKey returns the key of instance i of a resource with count.
func IntKey(i int) Key { return Key{typ: IntKeyType, i: i} }

// StringKey returns the key of instance s of a resource with for_each.
func StringKey(s string) Key { return Key{typ: StringKeyType, s: s} }

// Type reports which kind of key k is.
func (k Key) Type() KeyType { return k.typ }

// Int returns the integer of an IntKey and 0 for other keys.
func (k Key) Int() int { return k.i }

// Str returns the string of a StringKey and "" for other keys.
func (k Key) Str() string { return k.s }

// String returns the key as it is written after an address: "", "[0]" or `["blue"]`.
func (k Key) String() string {
	switch k.typ {
	case IntKeyType:
		return "[" + strconv.Itoa(k.i) + "]"
	case StringKeyType:
		return "[" + strconv.Quote(k.s) + "]"
	}
	return ""
}

// Less reports whether k sorts before o: no key, then integers in order, then
// strings in order.
func (k Key) Less(o Key) bool {
	if k.typ != o.typ {
		return k.typ < o.typ
	}
	if k.typ == IntKeyType {
		return k.i < o.i
	}
	return k.s < o.s
}

// Instance is the address of one instance of a resource.
type Instance struct {
	Resource
	Key Key
}

// String returns the address in its canonical form, e.g. container.web["blue"].
func (i Instance) String() string { return i.Resource.String() + i.Key.String() }

// Less reports whether i sorts before o.
func (i Instance) Less(o Instance) bool {
	if i.Kind != o.Kind {
		return i.Kind < o.Kind
	}
	if i.Name != o.Name {
		return i.Name < o.Name
	}
	return i.Key.Less(o.Key)
}

// ValidName reports whether s is a valid kind or resource name: a letter or
// underscore followed by letters, digits, underscores and dashes.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case i > 0 && (r == '-' || (r >= '0' && r <= '9')):
		default:
			return false
		}
	}
	return true
}

// ParseResource parses an address of the form KIND.NAME.
func ParseResource(s string) (Resource, error) {
	kind, name, ok := strings.Cut(s, ".")
	if !ok {
		return Resource{}, fmt.Errorf("invalid address %q: want KIND.NAME, such as container.web", s)
	}
	if !ValidName(kind) {
		return Resource{}, fmt.Errorf("invalid address %q: %q is not a valid resource kind", s, kind)
	}
	if !ValidName(name) {
		return Resource{}, fmt.Errorf("invalid address %q: %q is not a valid resource name", s, name)
	}
	return Resource{Kind: kind, Name: name}, nil
}

// Parse parses an instance address: KIND.NAME, KIND.NAME[N] or KIND.NAME["KEY"].
func Parse(s string) (Instance, error) {
	base, rest, hasKey := strings.Cut(s, "[")
	r, err := ParseResource(base)
	if err != nil {
		return Instance{}, err
	}
	if !hasKey {
		return Instance{Resource: r}, nil
	}
	if !strings.HasSuffix(rest, "]") {
		return Instance{}, fmt.Errorf("invalid address %q: missing closing bracket", s)
	}
	inner := rest[:len(rest)-1]
	if strings.HasPrefix(inner, `"`) {
		k, err := strconv.Unquote(inner)
		if err != nil {
			return Instance{}, fmt.Errorf("invalid address %q: bad string key: %w", s, err)
		}
		return Instance{Resource: r, Key: StringKey(k)}, nil
	}
	n, err := strconv.Atoi(inner)
	if err != nil || n < 0 || strconv.Itoa(n) != inner {
		return Instance{}, fmt.Errorf("invalid address %q: key must be a non-negative integer or a quoted string", s)
	}
	return Instance{Resource: r, Key: IntKey(n)}, nil
}
