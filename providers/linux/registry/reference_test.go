package registry

import (
	"strings"
	"testing"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in                          string
		registry, repo, tag, digest string
		str                         string
	}{
		{in: "busybox", registry: "docker.io", repo: "library/busybox", tag: "latest", str: "docker.io/library/busybox:latest"},
		{in: "busybox:1.35", registry: "docker.io", repo: "library/busybox", tag: "1.35", str: "docker.io/library/busybox:1.35"},
		{in: "library/busybox", registry: "docker.io", repo: "library/busybox", tag: "latest", str: "docker.io/library/busybox:latest"},
		{in: "docker.io/busybox", registry: "docker.io", repo: "library/busybox", tag: "latest", str: "docker.io/library/busybox:latest"},
		{in: "index.docker.io/busybox", registry: "docker.io", repo: "library/busybox", tag: "latest", str: "docker.io/library/busybox:latest"},
		{in: "someone/app:v2", registry: "docker.io", repo: "someone/app", tag: "v2", str: "docker.io/someone/app:v2"},
		{in: "127.0.0.1:5000/tools/busybox:1.35", registry: "127.0.0.1:5000", repo: "tools/busybox", tag: "1.35", str: "127.0.0.1:5000/tools/busybox:1.35"},
		{in: "localhost/app", registry: "localhost", repo: "app", tag: "latest", str: "localhost/app:latest"},
		{in: "localhost:5000/app", registry: "localhost:5000", repo: "app", tag: "latest", str: "localhost:5000/app:latest"},
		{in: "registry.example.com/a/b/c:1", registry: "registry.example.com", repo: "a/b/c", tag: "1", str: "registry.example.com/a/b/c:1"},
		{in: "[::1]:5000/app:1", registry: "[::1]:5000", repo: "app", tag: "1", str: "[::1]:5000/app:1"},
		{in: "busybox@" + testDigest, registry: "docker.io", repo: "library/busybox", digest: testDigest, str: "docker.io/library/busybox@" + testDigest},
		{in: "busybox:1.35@" + testDigest, registry: "docker.io", repo: "library/busybox", tag: "1.35", digest: testDigest, str: "docker.io/library/busybox:1.35@" + testDigest},
		{in: "127.0.0.1:5000/app@" + testDigest, registry: "127.0.0.1:5000", repo: "app", digest: testDigest, str: "127.0.0.1:5000/app@" + testDigest},
		{in: "my_org/my-app__x.y:Tag_1.0-rc", registry: "docker.io", repo: "my_org/my-app__x.y", tag: "Tag_1.0-rc", str: "docker.io/my_org/my-app__x.y:Tag_1.0-rc"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ref, err := ParseReference(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if ref.Registry() != tc.registry || ref.Repository() != tc.repo || ref.Tag() != tc.tag || ref.Digest() != tc.digest {
				t.Errorf("got registry %q repo %q tag %q digest %q", ref.Registry(), ref.Repository(), ref.Tag(), ref.Digest())
			}
			if ref.String() != tc.str {
				t.Errorf("String() = %q, want %q", ref.String(), tc.str)
			}
			if ref.Name() != tc.registry+"/"+tc.repo {
				t.Errorf("Name() = %q", ref.Name())
			}
			back, err := ParseReference(ref.String())
			if err != nil || back != ref {
				t.Errorf("round trip: %v, %v", back, err)
			}
		})
	}
}

func TestParseReferenceErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", "empty"},
		{"Busybox", "must be lowercase"},
		{"busybox:", "empty tag"},
		{"busybox:-x", "tag"},
		{"busybox:" + strings.Repeat("a", 129), "longer than 128"},
		{"busybox@sha256:abc", "64 lowercase hex"},
		{"busybox@md5:0123", "unsupported digest algorithm"},
		{"busybox@" + strings.ToUpper(testDigest), "unsupported digest algorithm"},
		{"https://registry.example.com/app", "without a scheme"},
		{"registry.example.com:/app", "empty port"},
		{"registry.example.com:99999/app", "invalid port"},
		{"registry.example.com:5x/app", "invalid port"},
		{"-bad.example.com/app", "invalid host name"},
		{"[::1/app", "unclosed"},
		{"registry.example.com/", "no repository"},
		{"a//b", "empty path component"},
		{"a/b-/c", "path component"},
		{"a/.b", "path component"},
		{"bus box", "white space"},
		{"busybox\n", "white space"},
		{"registry.example.com/" + strings.Repeat("a", 250), "more than 255"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseReference(tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid image reference ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
		})
	}
}
