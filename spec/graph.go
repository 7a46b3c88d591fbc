package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Graph is the dependency graph of a configuration: its nodes are resources
// ("container.web"), locals ("local.x") and outputs ("output.y"); an edge
// from a to b means a depends on b.
type Graph struct {
	nodes map[string]bool
	deps  map[string]map[string]hcl.Range
}

// NewGraph returns an empty graph.
func NewGraph() *Graph {
	return &Graph{nodes: map[string]bool{}, deps: map[string]map[string]hcl.Range{}}
}

// Add adds a node.
func (g *Graph) Add(n string) { g.nodes[n] = true }

// Connect records that from depends on to, because of a reference at rng.
func (g *Graph) Connect(from, to string, rng hcl.Range) {
	g.Add(from)
	g.Add(to)
	if g.deps[from] == nil {
		g.deps[from] = map[string]hcl.Range{}
	}
	if _, ok := g.deps[from][to]; !ok {
		g.deps[from][to] = rng
	}
}

// Nodes returns every node, sorted.
func (g *Graph) Nodes() []string {
	out := make([]string, 0, len(g.nodes))
	for n := range g.nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DependsOn returns the direct dependencies of n, sorted.
func (g *Graph) DependsOn(n string) []string {
	out := make([]string, 0, len(g.deps[n]))
	for d := range g.deps[n] {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Dependents returns, for each node, the nodes that depend on it directly.
func (g *Graph) Dependents() map[string][]string {
	out := map[string][]string{}
	for from, ds := range g.deps {
		for to := range ds {
			out[to] = append(out[to], from)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// Order returns the nodes in an order where every node follows its
// dependencies, or an error diagnostic naming a cycle.
func (g *Graph) Order() ([]string, hcl.Diagnostics) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var order []string
	var stack []string
	var cycle []string
	var visit func(n string) bool
	visit = func(n string) bool {
		switch state[n] {
		case done:
			return true
		case visiting:
			for i, s := range stack {
				if s == n {
					cycle = append(append([]string{}, stack[i:]...), n)
					break
				}
			}
			return false
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range g.DependsOn(n) {
			if !visit(d) {
				return false
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		order = append(order, n)
		return true
	}
	for _, n := range g.Nodes() {
		if !visit(n) {
			rng := g.deps[cycle[0]][cycle[1]]
			return nil, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Dependency cycle",
				Detail:   fmt.Sprintf("These depend on each other in a cycle: %s. Break the cycle by removing one of the references.", strings.Join(cycle, " → ")),
				Subject:  rng.Ptr(),
			}}
		}
	}
	return order, nil
}
