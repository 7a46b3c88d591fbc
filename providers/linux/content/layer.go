package content

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// compression is the compression of a blob, found from its first bytes.
type compression int

const (
	uncompressed compression = iota
	gzipped
	zstded
)

const (
	gzipMagic = "\x1f\x8b"
	zstdMagic = "\x28\xb5\x2f\xfd"
)

// sniff returns the compression of the stream br starts with.
func sniff(br *bufio.Reader) compression {
	head, _ := br.Peek(4)
	switch {
	case strings.HasPrefix(string(head), gzipMagic):
		return gzipped
	case strings.HasPrefix(string(head), zstdMagic):
		return zstded
	}
	return uncompressed
}

// decompress returns the uncompressed stream of r (gzip, zstd or plain,
// whatever its first bytes say). Closing the result does not close r.
func decompress(r io.Reader) (io.ReadCloser, compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	c := sniff(br)
	switch c {
	case gzipped:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("gzip: %w", err)
		}
		return zr, c, nil
	case zstded:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, c, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), c, nil
	}
	return io.NopCloser(br), c, nil
}

// OpenLayer opens the uncompressed tar stream of a stored layer: the blob
// gunzipped or zstd-decoded when it is compressed (whatever its media type
// says, the content decides), as is otherwise. The stream is not checked
// against l.DiffID: the reader (the unpacker) hashes what it extracts.
func (s *Store) OpenLayer(ctx context.Context, l Layer) (io.ReadCloser, error) {
	f, err := s.Blob(l.Digest)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	rc, _, err := decompress(ctxReader{ctx, f})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	return layerReader{rc, f}, nil
}

// layerReader closes the decompressor and the blob file.
type layerReader struct {
	io.ReadCloser
	file io.Closer
}

func (l layerReader) Close() error {
	err := l.ReadCloser.Close()
	if ferr := l.file.Close(); err == nil {
		err = ferr
	}
	return err
}
