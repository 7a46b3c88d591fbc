package registry

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultRegistry is the registry of references that name none, as in
// docker.
const DefaultRegistry = "docker.io"

// Limits of the reference grammar (docker's distribution/reference).
const (
	maxNameLength = 255
	maxTagLength  = 128
)

// Reference is a parsed, normalised image reference: a registry, a
// repository, and a tag, a digest or both. The zero Reference is invalid.
// References are comparable with ==.
type Reference struct {
	registry   string
	repository string
	tag        string
	digest     string
}

// Registry returns the registry host[:port] ("docker.io", "127.0.0.1:5000").
func (r Reference) Registry() string { return r.registry }

// Repository returns the repository path ("library/busybox", "tools/app").
func (r Reference) Repository() string { return r.repository }

// Tag returns the tag, "" for a reference by digest only.
func (r Reference) Tag() string { return r.tag }

// Digest returns the digest ("sha256:…"), "" for a reference by tag only.
func (r Reference) Digest() string { return r.digest }

// Name returns the registry and the repository
// ("docker.io/library/busybox").
func (r Reference) Name() string { return r.registry + "/" + r.repository }

// String returns the full normalised reference: Name, then ":tag" and
// "@digest" when the reference has them
// ("docker.io/library/busybox:latest", "127.0.0.1:5000/app@sha256:…").
// ParseReference of it returns the same Reference.
func (r Reference) String() string {
	if r.registry == "" {
		return ""
	}
	s := r.Name()
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest
	}
	return s
}

// ParseReference parses an image reference the way docker does:
// [registry/]repository[:tag][@digest]. The first path component is the
// registry when it contains a "." or a ":" or is "localhost"; otherwise the
// registry is docker.io, where a one-component repository gets the
// "library/" prefix ("busybox" is "docker.io/library/busybox:latest"). A
// reference without tag and digest gets the tag "latest". Repository names
// are lowercase; the only digest algorithm accepted is sha256.
func ParseReference(s string) (Reference, error) {
	fail := func(format string, args ...any) (Reference, error) {
		return Reference{}, fmt.Errorf("invalid image reference %q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty")
	}
	if len(s) > maxNameLength+maxTagLength+80 {
		return fail("longer than %d characters", maxNameLength+maxTagLength+80)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }); i >= 0 {
		return fail("it contains white space, control or non-ASCII characters")
	}
	if strings.Contains(s, "://") {
		return fail("give registry/repository:tag without a scheme such as https://")
	}
	var ref Reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		ref.digest = rest[i+1:]
		rest = rest[:i]
		if err := checkDigest(ref.digest); err != nil {
			return fail("%s", err)
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		ref.tag = rest[i+1:]
		rest = rest[:i]
		if err := checkTag(ref.tag); err != nil {
			return fail("%s", err)
		}
	}
	path := rest
	ref.registry = DefaultRegistry
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		first := rest[:i]
		if strings.ContainsAny(first, ".:[") || first == "localhost" || strings.ToLower(first) != first {
			ref.registry, path = first, rest[i+1:]
			if err := checkRegistry(ref.registry); err != nil {
				return fail("%s", err)
			}
		}
	}
	if ref.registry == "index.docker.io" {
		ref.registry = DefaultRegistry
	}
	if path == "" {
		return fail("no repository name")
	}
	if err := checkRepository(path); err != nil {
		return fail("%s", err)
	}
	if ref.registry == DefaultRegistry && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	ref.repository = path
	if n := len(ref.Name()); n > maxNameLength {
		return fail("the name is %d characters long, more than %d", n, maxNameLength)
	}
	if ref.tag == "" && ref.digest == "" {
		ref.tag = "latest"
	}
	return ref, nil
}

// checkDigest accepts sha256:<64 lowercase hex digits>.
func checkDigest(d string) error {
	alg, h, ok := strings.Cut(d, ":")
	if !ok {
		return fmt.Errorf("digest %q is not algorithm:hex", d)
	}
	if alg != "sha256" {
		return fmt.Errorf("unsupported digest algorithm %q: only sha256 is supported", alg)
	}
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return fmt.Errorf("digest %q does not have 64 lowercase hex digits", d)
	}
	return nil
}

// checkTag accepts [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func checkTag(t string) error {
	if t == "" {
		return fmt.Errorf("empty tag after \":\"")
	}
	if len(t) > maxTagLength {
		return fmt.Errorf("tag is longer than %d characters", maxTagLength)
	}
	for i, c := range t {
		word := c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !word && (i == 0 || c != '.' && c != '-') {
			return fmt.Errorf("tag %q may only hold letters, digits, '_', '.' and '-', and not start with '.' or '-'", t)
		}
	}
	return nil
}

// checkRegistry accepts host[:port], host being dot-separated DNS labels or
// a bracketed IPv6 address.
func checkRegistry(r string) error {
	host, port := r, ""
	if strings.HasPrefix(r, "[") {
		end := strings.IndexByte(r, ']')
		if end < 0 {
			return fmt.Errorf("registry %q: unclosed '['", r)
		}
		host, port = r[:end+1], r[end+1:]
		inner := host[1 : len(host)-1]
		if inner == "" || strings.Trim(inner, "0123456789abcdefABCDEF:") != "" {
			return fmt.Errorf("registry %q: invalid IPv6 address", r)
		}
		if port != "" {
			if !strings.HasPrefix(port, ":") {
				return fmt.Errorf("registry %q: unexpected text after the IPv6 address", r)
			}
			port = port[1:]
			if port == "" {
				return fmt.Errorf("registry %q: empty port", r)
			}
		}
	} else {
		h, p, hasPort := strings.Cut(r, ":")
		host, port = h, p
		if hasPort && port == "" {
			return fmt.Errorf("registry %q: empty port", r)
		}
		for _, label := range strings.Split(host, ".") {
			if !validLabel(label) {
				return fmt.Errorf("registry %q: invalid host name", r)
			}
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("registry %q: invalid port %q", r, port)
		}
	}
	return nil
}

// validLabel reports whether l is a DNS label: letters and digits, with
// hyphens inside.
func validLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range l {
		if !(c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// checkRepository accepts slash-separated components of lowercase letters
// and digits, separated inside a component by '.', '_', "__" or dashes.
func checkRepository(p string) error {
	for _, comp := range strings.Split(p, "/") {
		if comp == "" {
			return fmt.Errorf("repository %q has an empty path component", p)
		}
		if strings.ToLower(comp) != comp {
			return fmt.Errorf("repository name %q must be lowercase", p)
		}
		if !validComponent(comp) {
			return fmt.Errorf("repository path component %q may only hold lowercase letters, digits and separators ('.', '_', '__', '-') between them", comp)
		}
	}
	return nil
}

// validComponent matches [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func validComponent(c string) bool {
	alnum := func(b byte) bool { return '0' <= b && b <= '9' || 'a' <= b && b <= 'z' }
	i := 0
	for {
		start := i
		for i < len(c) && alnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		switch {
		case c[i] == '.':
			i++
		case strings.HasPrefix(c[i:], "__"):
			i += 2
		case c[i] == '_':
			i++
		case c[i] == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}
