package firewall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/berthhq/berth/providers/linux/ident"
	"github.com/google/nftables"
)

// DefaultTable is the name of berth's table when Open is given none.
const DefaultTable = "berth"

// validTableName reports whether s can name berth's nftables table: up
// to 64 letters, digits, '_' and '-', starting with a letter.
func validTableName(s string) bool { return ident.Valid(s, 64, "", "_-") && !ident.IsDigit(s[0]) }

// Firewall is berth's table in one network namespace. Its methods are safe
// for concurrent use; they are serialised.
type Firewall struct {
	table string
	ns    *os.File // the network namespace, held open
	fd    int

	mu sync.Mutex
}

// Open returns the Firewall for the table named table (DefaultTable if
// empty) in the network namespace of the calling thread. It writes
// nothing: Ensure creates the table. Close releases the namespace.
func Open(ctx context.Context, table string) (*Firewall, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if table == "" {
		table = DefaultTable
	}
	if !validTableName(table) {
		return nil, fmt.Errorf("open firewall: invalid table name %q (a letter, then letters, digits, '_' or '-', at most 64)", table)
	}
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open firewall: network namespace: %w", err)
	}
	return &Firewall{table: table, ns: ns, fd: int(ns.Fd())}, nil
}

// Close releases the network namespace held by f. The table stays.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ns == nil {
		return nil
	}
	err := f.ns.Close()
	f.ns = nil
	return err
}

// Table returns the name of f's table.
func (f *Firewall) Table() string { return f.table }

func (f *Firewall) tbl() *nftables.Table {
	return &nftables.Table{Name: f.table, Family: nftables.TableFamilyIPv4}
}

// reader returns a connection for dumps: one socket for a whole read.
// read runs fn with a connection that reads the table, under the
// Firewall's lock; what names the reading in errors.
func (f *Firewall) read(ctx context.Context, what string, fn func(c *nftables.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.reader()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer c.CloseLasting()
	if err := fn(c); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (f *Firewall) reader() (*nftables.Conn, error) {
	if f.ns == nil {
		return nil, errors.New("firewall is closed")
	}
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(f.fd))
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

// writer returns a connection for one batch; Flush opens and closes its
// own socket, so that no acknowledgement is ever left to a later read.
func (f *Firewall) writer() (*nftables.Conn, error) {
	if f.ns == nil {
		return nil, errors.New("firewall is closed")
	}
	return nftables.New(nftables.WithNetNSFd(f.fd))
}

// live is what a read found of berth's table.
type live struct {
	exists bool
	chains map[string]*nftables.Chain
	sets   map[string]*nftables.Set
}

func (f *Firewall) readLive(c *nftables.Conn) (*live, error) {
	l := &live{chains: map[string]*nftables.Chain{}, sets: map[string]*nftables.Set{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == f.table {
			l.exists = true
		}
	}
	if !l.exists {
		return l, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == f.table {
			l.chains[ch.Name] = ch
		}
	}
	sets, err := c.GetSets(f.tbl())
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		l.sets[s.Name] = s
	}
	return l, nil
}

func (f *Firewall) rules(c *nftables.Conn, chain string) ([]*nftables.Rule, error) {
	rs, err := c.GetRules(f.tbl(), f.chain(chain))
	if err != nil {
		return nil, fmt.Errorf("list rules of chain %s: %w", chain, err)
	}
	return rs, nil
}

// elements returns the elements of the set name, none if l has no such set.
func (f *Firewall) elements(c *nftables.Conn, l *live, name string) ([]nftables.SetElement, error) {
	if _, ok := l.sets[name]; !ok {
		return nil, nil
	}
	es, err := c.GetSetElements(&nftables.Set{Table: f.tbl(), Name: name})
	if err != nil {
		return nil, fmt.Errorf("list elements of %s: %w", name, err)
	}
	return es, nil
}

// Ensure creates berth's table, its base chains and maps, and repairs
// whatever of them differs from what berth writes (a rule deleted or
// edited by hand, a chain with another hook or policy), in one batch. It
// writes nothing when the base is intact. It leaves networks and
// published ports alone: AddNetwork and Publish restore those.
func (f *Firewall) Ensure(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ensure()
}

// Check reports how the base of berth's table differs from what Ensure
// writes, one sentence each; none when it is intact.
func (f *Firewall) Check(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.reader()
	if err != nil {
		return nil, fmt.Errorf("check table %s: %w", f.table, err)
	}
	defer c.CloseLasting()
	p, err := f.planBase(c)
	if err != nil {
		return nil, fmt.Errorf("check table %s: %w", f.table, err)
	}
	return p.problems, nil
}

func (f *Firewall) ensure() error {
	c, err := f.reader()
	if err != nil {
		return fmt.Errorf("ensure table %s: %w", f.table, err)
	}
	defer c.CloseLasting()
	p, err := f.planBase(c)
	if err != nil {
		return fmt.Errorf("ensure table %s: %w", f.table, err)
	}
	if len(p.problems) == 0 {
		return nil
	}
	w, err := f.writer()
	if err != nil {
		return fmt.Errorf("ensure table %s: %w", f.table, err)
	}
	if err := p.apply(w); err != nil {
		return fmt.Errorf("ensure table %s: %w", f.table, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("ensure table %s: %w", f.table, err)
	}
	return nil
}

// basePlan is the difference between the live base and the skeleton, and
// the batch that removes it.
type basePlan struct {
	f        *Firewall
	problems []string
	flush    []string // chains to flush first
	delete   []string // chains to delete, then create again
	delSets  []string // sets to delete, then create again
	addSets  []*nftables.Set
	addChain []*nftables.Chain
	rules    []baseChain // chains whose rules to write
	newTable bool
}

func (f *Firewall) planBase(c *nftables.Conn) (*basePlan, error) {
	l, err := f.readLive(c)
	if err != nil {
		return nil, err
	}
	p := &basePlan{f: f}
	if !l.exists {
		p.problems = append(p.problems, fmt.Sprintf("table ip %s is missing", f.table))
		p.newTable = true
		p.addSets = f.sets()
		for _, b := range f.skeleton() {
			p.addChain = append(p.addChain, b.chain)
			p.rules = append(p.rules, b)
		}
		return p, nil
	}
	rebuildSets := false
	for _, want := range f.sets() {
		got, ok := l.sets[want.Name]
		switch {
		case !ok:
			p.problems = append(p.problems, fmt.Sprintf("set %s is missing", want.Name))
			p.addSets = append(p.addSets, want)
		case !sameSet(got, want):
			p.problems = append(p.problems, fmt.Sprintf("set %s has another type or flags", want.Name))
			p.delSets = append(p.delSets, want.Name)
			p.addSets = append(p.addSets, want)
			rebuildSets = true
		}
	}
	if rebuildSets {
		// Rules that refer to a set must go before it can: flush every
		// chain but the ports' (which only refer to their own maps).
		// Networks then show drift until AddNetwork.
		for name := range l.chains {
			if !isPortChain(name) && !isSkeleton(name) {
				p.flush = append(p.flush, name)
			}
		}
		sort.Strings(p.flush)
	}
	for _, b := range f.skeleton() {
		got, ok := l.chains[b.chain.Name]
		if !ok {
			p.problems = append(p.problems, fmt.Sprintf("chain %s is missing", b.chain.Name))
			p.addChain = append(p.addChain, b.chain)
			p.rules = append(p.rules, b)
			continue
		}
		rewrite := rebuildSets
		switch {
		case !sameHook(got, b.chain):
			p.problems = append(p.problems, fmt.Sprintf("chain %s has another type, hook or priority", b.chain.Name))
			p.delete = append(p.delete, b.chain.Name)
			p.addChain = append(p.addChain, b.chain)
			rewrite = true
		case !samePolicy(got, b.chain):
			p.problems = append(p.problems, fmt.Sprintf("chain %s has another policy", b.chain.Name))
			p.addChain = append(p.addChain, b.chain)
		}
		rs, err := f.rules(c, b.chain.Name)
		if err != nil {
			return nil, err
		}
		if d := diffRules(rs, b.rules); d != "" {
			p.problems = append(p.problems, fmt.Sprintf("chain %s: %s", b.chain.Name, d))
			rewrite = true
		}
		if rewrite {
			p.flush = append(p.flush, b.chain.Name)
			p.rules = append(p.rules, b)
		}
	}
	if len(p.delete) > 0 {
		// A chain that is deleted and created again may be jumped to
		// from another skeleton chain: rewrite them all.
		p.flush, p.rules = nil, nil
		for _, b := range f.skeleton() {
			if _, ok := l.chains[b.chain.Name]; ok {
				p.flush = append(p.flush, b.chain.Name)
			}
			p.rules = append(p.rules, b)
		}
	}
	return p, nil
}

func (p *basePlan) apply(w *nftables.Conn) error {
	f := p.f
	w.AddTable(f.tbl())
	for _, name := range p.flush {
		w.FlushChain(f.chain(name))
	}
	for _, name := range p.delete {
		w.DelChain(f.chain(name))
	}
	for _, name := range p.delSets {
		w.DelSet(&nftables.Set{Table: f.tbl(), Name: name})
	}
	for _, s := range p.addSets {
		if err := w.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	for _, ch := range p.addChain {
		w.AddChain(ch)
	}
	for _, b := range p.rules {
		for _, r := range b.rules {
			w.AddRule(&nftables.Rule{Table: f.tbl(), Chain: b.chain, Exprs: r.exprs, UserData: comment(r.comment)})
		}
	}
	return nil
}

func isSkeleton(name string) bool {
	switch name {
	case chainPrerouting, chainOutput, chainPostrouting, chainForward, chainInput, chainPorts:
		return true
	}
	return false
}

func sameSet(got, want *nftables.Set) bool {
	if got.IsMap != want.IsMap || got.Interval != want.Interval || got.Concatenation != want.Concatenation ||
		got.Constant != want.Constant || got.Anonymous != want.Anonymous {
		return false
	}
	// google/nftables v0.3.0 overwrites the key type of verdict maps
	// with the data type when it decodes them: compare key types of
	// plain sets only.
	if !want.IsMap && (got.KeyType.Name != want.KeyType.Name || got.KeyType.Bytes != want.KeyType.Bytes) {
		return false
	}
	return true
}

func sameHook(got, want *nftables.Chain) bool {
	if (got.Hooknum == nil) != (want.Hooknum == nil) || got.Type != want.Type {
		return false
	}
	if want.Hooknum == nil {
		return true
	}
	return got.Priority != nil && *got.Hooknum == *want.Hooknum && *got.Priority == *want.Priority
}

func samePolicy(got, want *nftables.Chain) bool {
	if want.Policy == nil {
		return true
	}
	return got.Policy != nil && *got.Policy == *want.Policy
}

// diffRules describes how the live rules differ from want, "" if not.
func diffRules(got []*nftables.Rule, want []ruleSpec) string {
	n := len(got)
	if len(want) > n {
		n = len(want)
	}
	for i := 0; i < n; i++ {
		switch {
		case i >= len(got):
			return fmt.Sprintf("rule %d (%s) is missing", i+1, want[i].comment)
		case i >= len(want):
			return fmt.Sprintf("rule %d is not berth's", i+1)
		case !sameRule(got[i], want[i]):
			return fmt.Sprintf("rule %d (%s) differs", i+1, want[i].comment)
		}
	}
	return ""
}

// Destroy deletes berth's table with everything in it, and nothing else.
// It is not an error if the table does not exist.
func (f *Firewall) Destroy(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, err := f.writer()
	if err != nil {
		return fmt.Errorf("destroy table %s: %w", f.table, err)
	}
	// Adding first makes the delete valid whether or not the table
	// exists; both happen in one batch.
	w.AddTable(f.tbl())
	w.DelTable(f.tbl())
	if err := w.Flush(); err != nil {
		return fmt.Errorf("destroy table %s: %w", f.table, err)
	}
	return nil
}
