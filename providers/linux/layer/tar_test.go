package layer

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"
)

// testTime is the modification time of entries built by the helpers below.
var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// dirE, fileE, … build tar headers for test archives.
func dirE(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testTime}
}

func fileE(name, body string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: testTime, Linkname: body}
}

func symE(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}
}

func linkE(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: testTime}
}

func fifoE(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: mode, ModTime: testTime}
}

func charE(name string, major, minor int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: testTime}
}

// owned sets the owner of h and returns it.
func owned(h *tar.Header, uid, gid int) *tar.Header {
	h.Uid, h.Gid = uid, gid
	return h
}

// withXattr adds an extended attribute PAX record to h and returns it.
func withXattr(h *tar.Header, name, value string) *tar.Header {
	if h.PAXRecords == nil {
		h.PAXRecords = map[string]string{}
	}
	h.PAXRecords["SCHILY.xattr."+name] = value
	h.Format = tar.FormatPAX
	return h
}

// buildTar writes the headers as a tar stream. For regular files built by
// fileE, the body travels in Linkname and is moved to the data.
func buildTar(t testing.TB, entries ...*tar.Header) []byte {
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
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatalf("write %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
