package shim

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// output connects a container's stdout and stderr to its log through two
// FIFOs in the container directory. The container writes to its end opened
// read-write, so that a shim that dies never makes its writes fail with
// EPIPE or kill it with SIGPIPE (they only block once the pipe is full),
// and a new shim opens the same FIFOs and goes on reading.
type output struct {
	// Stdout and Stderr are the container's ends.
	Stdout, Stderr *os.File
	readers        []*os.File
	wg             sync.WaitGroup
}

// openOutput opens (making them when needed) the FIFOs of d and starts
// copying what arrives into logs. withWriters also opens the container's
// ends, for a container about to start.
func openOutput(d Dir, logs *logFile, withWriters bool) (*output, error) {
	o := &output{}
	for _, stream := range []string{"stdout", "stderr"} {
		path := filepath.Join(string(d), stream+".fifo")
		if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
			o.close()
			return nil, &os.PathError{Op: "mkfifo", Path: path, Err: err}
		}
		// Read-write: opening does not wait for a writer, and the reader
		// never sees end of file while the shim lives.
		r, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			o.close()
			return nil, err
		}
		o.readers = append(o.readers, r)
		w := logs.stream(stream)
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			_, _ = io.Copy(w, r)
			w.Close()
		}()
		if withWriters {
			cw, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				o.close()
				return nil, err
			}
			if stream == "stdout" {
				o.Stdout = cw
			} else {
				o.Stderr = cw
			}
		}
	}
	return o, nil
}

// closeWriters closes the shim's copies of the container's ends, once the
// container has them.
func (o *output) closeWriters() {
	for _, f := range []*os.File{o.Stdout, o.Stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// drain reads what the container left in the pipes after it exited, then
// stops the copies.
func (o *output) drain() {
	for _, r := range o.readers {
		_ = r.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	}
	o.wg.Wait()
	o.close()
}

func (o *output) close() {
	o.closeWriters()
	for _, r := range o.readers {
		r.Close()
	}
}
