package shim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Default log caps, as Docker's json-file driver with max-size=10m,
// max-file=3.
const (
	defaultLogSize  = 10 << 20
	defaultLogFiles = 3
	maxLine         = 16 << 10
)

// Entry is one line of a container's output.
type Entry struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Log    string    `json:"log"`
}

// logFile writes entries as JSON lines to a file and rotates it when it
// grows past its cap.
type logFile struct {
	mu    sync.Mutex
	path  string
	cfg   LogConfig
	f     *os.File
	size  int64
	clock func() time.Time
}

func openLog(path string, cfg LogConfig) (*logFile, error) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = defaultLogSize
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = defaultLogFiles
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &logFile{path: path, cfg: cfg, f: f, size: fi.Size(), clock: time.Now}, nil
}

func (l *logFile) write(stream, line string) {
	b, _ := json.Marshal(Entry{Time: l.clock().UTC(), Stream: stream, Log: line})
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size > 0 && l.size+int64(len(b)) > l.cfg.MaxSize {
		l.rotate()
	}
	if l.f == nil {
		return
	}
	n, _ := l.f.Write(b)
	l.size += int64(n)
}

// rotate shifts container.log to .1, .1 to .2, ..., dropping the oldest.
func (l *logFile) rotate() {
	l.f.Close()
	l.f = nil
	for i := l.cfg.MaxFiles - 1; i >= 1; i-- {
		src := l.path
		if i > 1 {
			src += "." + strconv.Itoa(i-1)
		}
		_ = os.Rename(src, l.path+"."+strconv.Itoa(i))
	}
	if l.cfg.MaxFiles == 1 {
		_ = os.Remove(l.path)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	l.f, l.size = f, 0
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// stream returns a writer whose lines become entries of the given stream.
// Close flushes a last line without a newline.
func (l *logFile) stream(name string) io.WriteCloser {
	return &lineWriter{log: l, name: name}
}

// lineWriter splits what a container writes into lines; a line longer
// than maxLine is cut into pieces.
type lineWriter struct {
	log  *logFile
	name string
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.write(w.name, string(w.buf[:i+1]))
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= maxLine {
		w.log.write(w.name, string(w.buf[:maxLine]))
		w.buf = w.buf[maxLine:]
	}
	return len(p), nil
}

func (w *lineWriter) Close() error {
	if len(w.buf) > 0 {
		w.log.write(w.name, string(w.buf))
		w.buf = nil
	}
	return nil
}

// LogOptions select the entries that ReadLogs gives.
type LogOptions struct {
	// Tail keeps only the last Tail entries; negative means all.
	Tail int
	// Since drops entries older than it.
	Since time.Time
	// Follow keeps reading new entries until ctx ends.
	Follow bool
}

// ReadLogs calls fn with the container's log entries, oldest first.
func (d Dir) ReadLogs(ctx context.Context, opts LogOptions, fn func(Entry) error) error {
	base := d.LogPath()
	var files []string
	for i := 64; i >= 1; i-- {
		p := base + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	var entries []Entry
	keep := func(e Entry) {
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return
		}
		entries = append(entries, e)
		if opts.Tail >= 0 && len(entries) > opts.Tail {
			entries = entries[1:]
		}
	}
	for _, p := range files {
		if err := scanLog(p, 0, keep); err != nil {
			return err
		}
	}
	f, err := os.Open(base)
	if errors.Is(err, os.ErrNotExist) {
		f = nil
	} else if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	var off int64
	if f != nil {
		off, err = scanReader(f, keep)
		if err != nil {
			f.Close()
			return err
		}
	}
	for _, e := range entries {
		if err := fn(e); err != nil {
			if f != nil {
				f.Close()
			}
			return err
		}
	}
	if !opts.Follow {
		if f != nil {
			f.Close()
		}
		return nil
	}
	return d.follow(ctx, f, off, opts, fn)
}

// follow polls the current log file for new entries, and reopens it when
// it was rotated.
func (d Dir) follow(ctx context.Context, f *os.File, off int64, opts LogOptions, fn func(Entry) error) error {
	base := d.LogPath()
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var ferr error
	emit := func(e Entry) {
		if ferr == nil && (opts.Since.IsZero() || !e.Time.Before(opts.Since)) {
			ferr = fn(e)
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if f == nil {
			var err error
			if f, err = os.Open(base); err != nil {
				f = nil
			}
			off = 0
		}
		if f != nil {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				n, err := scanReader(f, emit)
				if err != nil {
					return err
				}
				off += n
			}
			if ferr != nil {
				return ferr
			}
			// Rotated: the path now names another file.
			if fi, err := os.Stat(base); err == nil {
				if cur, err := f.Stat(); err == nil && !os.SameFile(fi, cur) {
					f.Close()
					f = nil
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func scanLog(path string, _ int64, fn func(Entry)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	defer f.Close()
	_, err = scanReader(f, fn)
	return err
}

// scanReader reads complete JSON lines from r and returns how many bytes
// they took; a partial last line is left for later.
func scanReader(r io.Reader, fn func(Entry)) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var n int64
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			n += int64(len(line))
			var e Entry
			if json.Unmarshal(line, &e) == nil {
				fn(e)
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read logs: %w", err)
		}
	}
}

// LastLines returns the last n lines of output of the container, for error
// messages.
func (d Dir) LastLines(n int) string {
	var b bytes.Buffer
	_ = d.ReadLogs(context.Background(), LogOptions{Tail: n}, func(e Entry) error {
		b.WriteString(e.Log)
		if len(e.Log) == 0 || e.Log[len(e.Log)-1] != '\n' {
			b.WriteByte('\n')
		}
		return nil
	})
	return b.String()
}
