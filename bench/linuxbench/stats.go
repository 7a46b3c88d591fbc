package main

import (
	"math"
	"slices"
	"time"
)

// summary is the distribution of one contender's timed runs.
type summary struct {
	N      int
	Median time.Duration
	P90    time.Duration
	Min    time.Duration
}

// summarize returns the median (the mean of the two middle values for an
// even count), the nearest-rank 90th percentile and the minimum of ds.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.9*float64(n))) - 1
	return summary{N: n, Median: med, P90: s[rank], Min: s[0]}
}

// medianInt64 returns the median of vs (the mean of the two middle values
// for an even count), or 0 for none.
func medianInt64(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

// ratio returns a/b, or NaN when b is zero.
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
