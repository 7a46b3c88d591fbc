package reconciler

import (
	"context"
	"sort"
	"sync"
)

// walker runs a function for every node of a dependency graph, each node
// after the nodes it depends on, up to a number at once. A node whose
// dependency failed is not run: skip is called for it with the name of the
// failed node, and it counts as failed for its own dependents.
type walker struct {
	deps        map[string][]string // node → nodes it waits for
	parallelism int
}

func (w *walker) run(ctx context.Context, fn func(ctx context.Context, node string) error, skip func(node, cause string)) {
	dependents := map[string][]string{}
	waiting := map[string]int{}
	for n, ds := range w.deps {
		if _, ok := waiting[n]; !ok {
			waiting[n] = 0
		}
		for _, d := range ds {
			if _, ok := w.deps[d]; !ok {
				continue // not a node of this walk
			}
			dependents[d] = append(dependents[d], n)
			waiting[n]++
		}
	}
	par := w.parallelism
	if par < 1 {
		par = 1
	}
	sem := make(chan struct{}, par)
	var mu sync.Mutex
	var wg sync.WaitGroup
	failedBy := map[string]string{} // node → the failed node that caused it
	var start func(n string)
	finish := func(n string, cause string) {
		mu.Lock()
		var ready []string
		for _, d := range dependents[n] {
			if cause != "" {
				if _, ok := failedBy[d]; !ok {
					failedBy[d] = cause
				}
			}
			waiting[d]--
			if waiting[d] == 0 {
				ready = append(ready, d)
			}
		}
		mu.Unlock()
		for _, d := range ready {
			start(d)
		}
	}
	started := map[string]bool{}
	start = func(n string) {
		mu.Lock()
		started[n] = true
		cause, failed := failedBy[n]
		mu.Unlock()
		if failed {
			skip(n, cause)
			finish(n, cause)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			select {
			case sem <- struct{}{}:
				if err = ctx.Err(); err == nil {
					err = fn(ctx, n)
				}
				<-sem
			case <-ctx.Done():
				err = ctx.Err()
			}
			cause := ""
			if err != nil {
				cause = n
			}
			finish(n, cause)
		}()
	}
	var roots []string
	for n, c := range waiting {
		if c == 0 {
			roots = append(roots, n)
		}
	}
	for _, n := range roots {
		start(n)
	}
	wg.Wait()
	// Nodes in a cycle never become ready: report them rather than drop
	// them silently.
	var stuck []string
	for n := range waiting {
		if !started[n] {
			stuck = append(stuck, n)
		}
	}
	sort.Strings(stuck)
	for _, n := range stuck {
		skip(n, "")
	}
}
