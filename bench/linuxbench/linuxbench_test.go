package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"none", nil, summary{}},
		{"one", ms(7), summary{N: 1, Median: 7 * time.Millisecond, P90: 7 * time.Millisecond, Min: 7 * time.Millisecond}},
		{"odd, unsorted", ms(5, 1, 3), summary{N: 3, Median: 3 * time.Millisecond, P90: 5 * time.Millisecond, Min: time.Millisecond}},
		{"even takes the middle mean", ms(4, 1, 2, 3), summary{N: 4, Median: 2500 * time.Microsecond, P90: 4 * time.Millisecond, Min: time.Millisecond}},
		{"p90 is the nearest rank", ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), summary{N: 10, Median: 5500 * time.Microsecond, P90: 9 * time.Millisecond, Min: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("summarize reordered its input")
			}
		})
	}
}

func TestMedianInt64(t *testing.T) {
	tests := []struct {
		in   []int64
		want int64
	}{
		{nil, 0},
		{[]int64{3}, 3},
		{[]int64{9, 1, 5}, 5},
		{[]int64{10, 2, 4, 8}, 6},
	}
	for _, tt := range tests {
		if got := medianInt64(tt.in); got != tt.want {
			t.Errorf("medianInt64(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", nil},
		{"sleep\x001000\x00", []string{"sleep", "1000"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"noterminator", []string{"noterminator"}},
	}
	for _, tt := range tests {
		if got := splitCmdline([]byte(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseKiB(t *testing.T) {
	status := "Name:\tshim\nVmPeak:\t  100 kB\nVmRSS:\t   20984 kB\nRssAnon:\t    3632 kB\nRssFile:\t   17352 kB\nThreads:\t7\n"
	tests := []struct {
		name    string
		in      string
		keys    []string
		want    map[string]int64
		wantErr string
	}{
		{"status", status, []string{"VmRSS", "RssAnon", "RssFile"}, map[string]int64{"VmRSS": 20984, "RssAnon": 3632, "RssFile": 17352}, ""},
		{"key is matched whole", "Pss_Anon: 5 kB\nPss: 7 kB\n", []string{"Pss"}, map[string]int64{"Pss": 7}, ""},
		{"missing key", status, []string{"Pss"}, nil, "no Pss line"},
		{"bad unit", "Pss: 7 MB\n", []string{"Pss"}, nil, "malformed"},
		{"bad number", "Pss: x kB\n", []string{"Pss"}, nil, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKiB(strings.NewReader(tt.in), tt.keys...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestInCgroup(t *testing.T) {
	v1 := "4:memory:/berth-bench/abc\n1:cpu:/berth-bench/abc\n0::/berth-bench/abc\n"
	tests := []struct {
		text, parent string
		want         bool
	}{
		{v1, "/berth-bench", true},
		{v1, "/berth-bench/", true},
		{v1, "/berth", false},
		{"4:memory:/berth-bench-runc/bench\n", "/berth-bench", false},
		{"4:memory:/berth-bench-runc/bench\n", "/berth-bench-runc", true},
		{"0::/\n", "/berth-bench", false},
	}
	for _, tt := range tests {
		if got := inCgroup(tt.text, tt.parent); got != tt.want {
			t.Errorf("inCgroup(%q, %q) = %v, want %v", tt.text, tt.parent, got, tt.want)
		}
	}
}

func TestShimMatchers(t *testing.T) {
	berth := isBerthShim("/tmp/w/state/")
	docker := isDockerShim([]string{"abc"})
	tests := []struct {
		args          []string
		berth, docker bool
	}{
		{[]string{"/tmp/w/berth", "__shim", "/tmp/w/state/providers/linux/containers/1"}, true, false},
		{[]string{"/tmp/w/berth", "__shim", "/tmp/other/state/providers/linux/containers/1"}, false, false},
		{[]string{"/tmp/w/berth", "apply", "/tmp/w/state/x"}, false, false},
		{[]string{"/tmp/w/berth", "__shim"}, false, false},
		{[]string{"/tmp/w/berth-shim", "/tmp/w/state/providers/linux/containers/1"}, true, false},
		{[]string{"/tmp/w/berth-shim", "/tmp/other/state/providers/linux/containers/1"}, false, false},
		{[]string{"/tmp/w/berth", "/tmp/w/state/providers/linux/containers/1"}, false, false},
		{[]string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "abc", "-address", "/x"}, false, true},
		{[]string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "abd"}, false, false},
		{[]string{"/usr/bin/containerd-shim-runc-v2", "-id"}, false, false},
		{[]string{"/usr/bin/containerd", "-id", "abc"}, false, false},
		{nil, false, false},
	}
	for _, tt := range tests {
		if got := berth(tt.args); got != tt.berth {
			t.Errorf("isBerthShim(%q) = %v, want %v", tt.args, got, tt.berth)
		}
		if got := docker(tt.args); got != tt.docker {
			t.Errorf("isDockerShim(%q) = %v, want %v", tt.args, got, tt.docker)
		}
	}
}

func TestTargets(t *testing.T) {
	start := func(berth, runc, docker time.Duration) []namedSummary {
		return []namedSummary{{"berth", summary{N: 1, Median: berth}}, {"runc", summary{N: 1, Median: runc}}, {"docker", summary{N: 1, Median: docker}}}
	}
	tests := []struct {
		name string
		r    repResult
		want []bool
	}{
		{"all hold", repResult{
			Start: start(40*time.Millisecond, 20*time.Millisecond, 120*time.Millisecond),
			Plan:  summary{N: 1, Median: 299 * time.Millisecond},
			Shim:  memUsage{RSS: 14000, PSS: 13000},
		}, []bool{true, true, true, true, true}},
		{"all fail", repResult{
			Start: start(41*time.Millisecond, 20*time.Millisecond, 120*time.Millisecond),
			Plan:  summary{N: 1, Median: 300 * time.Millisecond},
			Shim:  memUsage{RSS: 15000, PSS: 14700},
		}, []bool{false, false, false, false, false}},
		{"nothing measured fails", repResult{
			Start: start(0, 0, 0),
		}, []bool{false, false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := targetsOf(tt.r)
			if len(ts) != len(tt.want) {
				t.Fatalf("%d targets, want %d", len(ts), len(tt.want))
			}
			for i, tg := range ts {
				if tg.Pass != tt.want[i] {
					t.Errorf("%s (%s): pass = %v, want %v", tg.Name, tg.Value, tg.Pass, tt.want[i])
				}
			}
		})
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	printTable(&b, [][]string{{"name", "median"}, {"berth apply", "1.0 ms"}, {"x", "100.0 ms"}})
	want := "name           median\nberth apply    1.0 ms\nx            100.0 ms\n"
	if b.String() != want {
		t.Errorf("printTable =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestProcOfSelf(t *testing.T) {
	self := os.Getpid()
	pids, err := findProcs("/proc", func(args []string) bool {
		return len(args) > 0 && args[0] == os.Args[0]
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, self) {
		t.Errorf("findProcs did not find this test (pid %d) among %v", self, pids)
	}
	m, err := readMem("/proc", self)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.PSS <= 0 || m.Anon+m.File > m.RSS+64 || m.Anon+m.File < m.RSS-64 {
		t.Errorf("readMem = %+v: want positive RSS and PSS, RSS = anon + file", m)
	}
}
