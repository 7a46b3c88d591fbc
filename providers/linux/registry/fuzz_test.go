package registry

import "testing"

// FuzzParseReference checks that ParseReference never panics and that the
// String of a parsed reference parses back to the same reference.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.35", "docker.io/library/busybox:latest", "index.docker.io/x",
		"127.0.0.1:5000/tools/busybox:1.35", "localhost/app", "[::1]:5000/app:1",
		"busybox@" + testDigest, "a/b:c@" + testDigest, "Foo/bar", "a__b/c--d.e:_x",
		"registry.example.com:443/a/b/c", "x:", "@", ":", "/", "a//b", "[", "[]:1/a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseReference(s)
		if err != nil {
			return
		}
		if ref.Registry() == "" || ref.Repository() == "" || ref.Tag() == "" && ref.Digest() == "" {
			t.Fatalf("ParseReference(%q) = %#v: a part is missing", s, ref)
		}
		str := ref.String()
		back, err := ParseReference(str)
		if err != nil {
			t.Fatalf("ParseReference(%q) = %q, which does not parse: %v", s, str, err)
		}
		if back != ref {
			t.Fatalf("ParseReference(%q) = %#v, String %q parses to %#v", s, ref, str, back)
		}
		if back.String() != str {
			t.Fatalf("String not stable: %q then %q", str, back.String())
		}
	})
}
