package agent

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// MaxBundle is the largest configuration bundle, compressed, that the
// API accepts; MaxBundleFiles and maxBundleExpanded bound what it may
// expand to.
const (
	MaxBundle         = 16 << 20
	MaxBundleFiles    = 10000
	maxBundleExpanded = 64 << 20
)

// WriteBundle writes the configuration directory dir to w as a gzipped
// tar of its regular files and directories. Hidden entries (.git,
// .terraform-like caches) are left out; symbolic links are refused, as
// the receiving agent could not follow them.
func WriteBundle(w io.Writer, dir string) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case info.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
		case info.Mode().IsRegular():
			n++
			if n > MaxBundleFiles {
				return fmt.Errorf("%s has more than %d files", dir, MaxBundleFiles)
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: info.Size()}); err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			return err
		}
		return fmt.Errorf("%s is neither a regular file nor a directory; a configuration bundle holds only those", p)
	})
	if err != nil {
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// ReadBundle unpacks a bundle written by WriteBundle into dir, which must
// exist and be empty. Only regular files and directories are accepted,
// every name must stay inside dir, and the sizes are bounded.
func ReadBundle(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("bundle is not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	var total int64
	files := 0
	// Every directory made counts against MaxBundleFiles, whether an
	// entry names it or a file's path implies it.
	made := map[string]bool{}
	mkdirs := func(rel string) error {
		var parts []string
		for d := rel; d != "." && d != "/" && !made[d]; d = path.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			files++
			if files > MaxBundleFiles {
				return fmt.Errorf("bundle is too large (more than %d files and directories)", MaxBundleFiles)
			}
			if err := os.Mkdir(filepath.Join(dir, filepath.FromSlash(parts[i])), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			made[parts[i]] = true
		}
		return nil
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read bundle: %w", err)
		}
		name := path.Clean(strings.TrimSuffix(h.Name, "/"))
		if name == "." || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || strings.ContainsRune(name, 0) || strings.Contains(name, "\\") {
			return fmt.Errorf("bundle entry %q is outside the configuration", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		// Parents are made by this loop only, as directories: no entry
		// can make a path component a link.
		switch h.Typeflag {
		case tar.TypeDir:
			if err := mkdirs(name); err != nil {
				return err
			}
		case tar.TypeReg:
			files++
			total += h.Size
			if files > MaxBundleFiles || total > maxBundleExpanded || h.Size < 0 {
				return fmt.Errorf("bundle is too large (more than %d files or %d MiB)", MaxBundleFiles, maxBundleExpanded>>20)
			}
			if err := mkdirs(path.Dir(name)); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_TRUNC|noFollow, os.FileMode(h.Mode&0o755)|0o600)
			if err != nil {
				return fmt.Errorf("bundle entry %q: %w", h.Name, err)
			}
			_, err = io.CopyN(f, tr, h.Size)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("bundle entry %q: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("bundle entry %q is not a regular file or directory", h.Name)
		}
	}
}
