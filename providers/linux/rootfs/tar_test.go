package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// file, dir, whiteout and opaque build tar headers for test layers; a
// regular file's body travels in Linkname until tarLayer writes it.
func file(name, body string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), Linkname: body, ModTime: time.Unix(1700000000, 0)}
}

func dir(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: time.Unix(1700000000, 0)}
}

func whiteout(name string) *tar.Header { return file(name, "") }

// testLayer is a layer built in memory, counting how often it is opened.
type testLayer struct {
	data  []byte
	opens atomic.Int32
}

func newTestLayer(t testing.TB, entries ...*tar.Header) *testLayer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := *e
		var body string
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &testLayer{data: buf.Bytes()}
}

func (l *testLayer) diffID() string {
	sum := sha256.Sum256(l.data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// layer returns the Layer to pass to Prepare, with the true DiffID.
func (l *testLayer) layer() Layer {
	return Layer{DiffID: l.diffID(), Open: func(context.Context) (io.ReadCloser, error) {
		l.opens.Add(1)
		return io.NopCloser(bytes.NewReader(l.data)), nil
	}}
}
