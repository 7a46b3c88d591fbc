package layer

import (
	"bytes"
	"context"
	"testing"
)

// FuzzUnpack extracts arbitrary streams into <sandbox>/root and checks that
// nothing outside root was created, changed or removed. The seeds are the
// hostile archives and a few good ones. As root (as in CI) every operation
// runs; without root, chown and trusted.* failures are tolerated so that the
// escape checks still cover the rest of the extraction.
func FuzzUnpack(f *testing.F) {
	for _, seed := range hostileSeeds(f) {
		f.Add(seed)
	}
	f.Add(buildTar(f,
		dirE("etc/", 0o755), fileE("etc/passwd", "root:x:0:0\n", 0o644), symE("lib", "usr/lib"),
		linkE("etc/passwd-", "etc/passwd"), fileE(".wh.gone", "", 0), fileE("etc/.wh..wh..opq", "", 0),
		fifoE("run/fifo", 0o600), charE("dev/null", 1, 3)))
	f.Add(buildTar(f, symE("a", "."), symE("b", "a/.."), fileE("a/x", "x", 0o644), linkE("c", "b")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t)
		_, _ = unpack(context.Background(), s.root, bytes.NewReader(data), unprivileged())
		s.check(t)
	})
}
