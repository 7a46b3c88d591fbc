package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memUsage is the resident memory of one process, in KiB.
type memUsage struct {
	// RSS is VmRSS of /proc/PID/status; Anon and File are its anonymous
	// and file-backed parts (RssAnon, RssFile).
	RSS, Anon, File int64
	// PSS is Pss of /proc/PID/smaps_rollup: shared pages divided among
	// the processes that map them.
	PSS int64
}

// splitCmdline splits the contents of /proc/PID/cmdline into arguments.
func splitCmdline(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// findProcs returns the PIDs of the processes whose command line match
// accepts. Processes that end while it reads are skipped.
func findProcs(procRoot string, match func(args []string) bool) ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if match(splitCmdline(b)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// readMem reads the resident memory of process pid.
func readMem(procRoot string, pid int) (memUsage, error) {
	var m memUsage
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := readKiB(filepath.Join(dir, "status"), "VmRSS", "RssAnon", "RssFile")
	if err != nil {
		return m, err
	}
	rollup, err := readKiB(filepath.Join(dir, "smaps_rollup"), "Pss")
	if err != nil {
		return m, err
	}
	return memUsage{RSS: status["VmRSS"], Anon: status["RssAnon"], File: status["RssFile"], PSS: rollup["Pss"]}, nil
}

// readKiB reads the "Key: N kB" lines named by keys from a /proc file; it
// fails when one of them is missing.
func readKiB(path string, keys ...string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read memory: %w", err)
	}
	defer f.Close()
	out, err := parseKiB(f, keys...)
	if err != nil {
		return nil, fmt.Errorf("read memory of %s: %w", path, err)
	}
	return out, nil
}

// parseKiB reads the "Key: N kB" lines named by keys from r.
func parseKiB(r io.Reader, keys ...string) (map[string]int64, error) {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !want[k] {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return nil, fmt.Errorf("malformed line %q", sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("malformed line %q: %w", sc.Text(), err)
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("no %s line", k)
		}
	}
	return out, nil
}
