package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Network is what the store records about one network.
type Network struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// NetworkRequest says which subnet EnsureNetwork should record.
type NetworkRequest struct {
	// Subnet is the subnet the network wants; zero picks one from Pool.
	Subnet netip.Prefix
	// Gateway is the gateway; zero means DefaultGateway(Subnet).
	Gateway netip.Addr
	// Pool and Bits say where to pick a subnet from, and how large, when
	// Subnet is zero (for example 10.89.0.0/16 and 24).
	Pool netip.Prefix
	Bits int
	// Avoid lists prefixes, besides the subnets of the store's other
	// networks, that the subnet must not overlap: typically the
	// destinations of the host's routes (without the network's own).
	Avoid []netip.Prefix
}

// networkState is the content of networks/<name>.json.
type networkState struct {
	Version   int                   `json:"version"`
	Network   string                `json:"network"`
	Subnet    netip.Prefix          `json:"subnet"`
	Gateway   netip.Addr            `json:"gateway"`
	Addresses map[string]netip.Addr `json:"addresses"`
}

func (s *Store) networkPath(name string) string {
	return filepath.Join(s.dir, networksDir, name+".json")
}

// readNetwork reads the state of a network and reports whether it is
// recorded. A file that decodes to impossible state wraps ErrCorrupt.
func (s *Store) readNetwork(name string) (*networkState, bool, error) {
	path := s.networkPath(name)
	var st networkState
	ok, err := readJSON(path, &st)
	if err != nil || !ok {
		return nil, ok, err
	}
	if err := st.check(name); err != nil {
		return nil, true, fmt.Errorf("read %s: %w: %w", path, ErrCorrupt, err)
	}
	return &st, true, nil
}

// check verifies that a decoded state is possible.
func (st *networkState) check(name string) error {
	if st.Version != version {
		return fmt.Errorf("unknown version %d (this berth knows version %d)", st.Version, version)
	}
	if st.Network != name {
		return fmt.Errorf("file records network %q", st.Network)
	}
	if !st.Gateway.IsValid() {
		return errors.New("no gateway")
	}
	if err := ValidateNetwork(st.Subnet, st.Gateway); err != nil {
		return err
	}
	held := make(map[netip.Addr]string, len(st.Addresses))
	for _, owner := range sortedKeys(st.Addresses) {
		a := st.Addresses[owner]
		if owner == "" {
			return errors.New("an address has an empty owner")
		}
		if err := checkHost(st.Subnet, st.Gateway, a); err != nil {
			return fmt.Errorf("owner %q: %w", owner, err)
		}
		if other, ok := held[a]; ok {
			return fmt.Errorf("address %s is held by both %q and %q", a, other, owner)
		}
		held[a] = owner
	}
	if st.Addresses == nil {
		st.Addresses = map[string]netip.Addr{}
	}
	return nil
}

// checkHost checks that a is an address that may be handed to an owner.
func checkHost(subnet netip.Prefix, gateway, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("invalid address")
	case !a.Is4() || !subnet.Contains(a):
		return fmt.Errorf("address %s is outside subnet %s", a, subnet)
	case a == subnet.Addr():
		return fmt.Errorf("address %s is the network address of subnet %s", a, subnet)
	case a == broadcast(subnet):
		return fmt.Errorf("address %s is the broadcast address of subnet %s", a, subnet)
	case a == gateway:
		return fmt.Errorf("address %s is the gateway of subnet %s", a, subnet)
	}
	return nil
}

// Networks returns every recorded network by name.
func (s *Store) Networks() (map[string]Network, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, networksDir))
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	nets := make(map[string]Network)
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") || checkName(name) != nil {
			continue
		}
		st, ok, err := s.readNetwork(name)
		if err != nil {
			return nil, fmt.Errorf("list networks: %w", err)
		}
		if ok {
			nets[name] = Network{Subnet: st.Subnet, Gateway: st.Gateway}
		}
	}
	return nets, nil
}

// EnsureNetwork records a network's subnet and gateway, or returns what is
// recorded. A recorded network keeps its subnet: a request without Subnet
// returns it (so a picked subnet is stable), and a request with another
// subnet or gateway is an error wrapping ErrConflict; the caller drops the
// network first to change it. A new network's subnet, given or picked,
// must not overlap the subnet of another recorded network or a prefix of
// Avoid (an error wrapping ErrInUse names it).
func (s *Store) EnsureNetwork(ctx context.Context, name string, req NetworkRequest) (Network, error) {
	fail := func(err error) (Network, error) {
		return Network{}, fmt.Errorf("network %q: %w", name, err)
	}
	if err := checkName(name); err != nil {
		return Network{}, err
	}
	if req.Subnet.IsValid() {
		if err := ValidateNetwork(req.Subnet, req.Gateway); err != nil {
			return fail(err)
		}
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	st, ok, err := s.readNetwork(name)
	if err != nil {
		return fail(err)
	}
	if ok {
		if req.Subnet.IsValid() && req.Subnet != st.Subnet {
			return fail(fmt.Errorf("subnet %s %w (subnet %s); drop the network to change it", req.Subnet, ErrConflict, st.Subnet))
		}
		if gw := orDefault(req.Gateway, req.Subnet); gw.IsValid() && gw != st.Gateway {
			return fail(fmt.Errorf("gateway %s %w (gateway %s); drop the network to change it", gw, ErrConflict, st.Gateway))
		}
		return Network{Subnet: st.Subnet, Gateway: st.Gateway}, nil
	}
	others, err := s.Networks()
	if err != nil {
		return fail(err)
	}
	subnet := req.Subnet
	if subnet.IsValid() {
		for _, other := range sortedKeys(others) {
			if Overlaps(subnet, others[other].Subnet) {
				return fail(fmt.Errorf("subnet %s overlaps subnet %s, %w by network %q", subnet, others[other].Subnet, ErrInUse, other))
			}
		}
		for _, p := range req.Avoid {
			if Overlaps(subnet, p) {
				return fail(fmt.Errorf("subnet %s overlaps %s, %w on the host", subnet, p, ErrInUse))
			}
		}
	} else {
		if !req.Pool.IsValid() {
			return fail(errors.New("no subnet given and no pool to pick one from"))
		}
		taken := append([]netip.Prefix(nil), req.Avoid...)
		for _, n := range others {
			taken = append(taken, n.Subnet)
		}
		subnet, err = PickSubnet(taken, req.Pool, req.Bits)
		if err != nil {
			return fail(err)
		}
	}
	gw := orDefault(req.Gateway, subnet)
	if err := ValidateNetwork(subnet, gw); err != nil {
		return fail(err)
	}
	st = &networkState{Version: version, Network: name, Subnet: subnet, Gateway: gw, Addresses: map[string]netip.Addr{}}
	if err := writeJSON(s.networkPath(name), st); err != nil {
		return fail(err)
	}
	return Network{Subnet: subnet, Gateway: gw}, nil
}

// DropNetwork forgets a network and every address in it. Dropping a
// network that is not recorded is not an error. Call it only once no
// address of the network is configured anywhere.
func (s *Store) DropNetwork(ctx context.Context, network string) error {
	if err := checkName(network); err != nil {
		return err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return fmt.Errorf("drop network %q: %w", network, err)
	}
	defer unlock()
	if err := removeFile(s.networkPath(network)); err != nil {
		return fmt.Errorf("drop network %q: %w", network, err)
	}
	return nil
}

// Allocate returns the address of owner in network, handing it one if it
// has none. The network is recorded with subnet and gateway (zero means
// DefaultGateway(subnet)) on first use, and later calls must pass the same
// ones (or the error wraps ErrConflict). With want zero, a new owner gets
// the lowest free host address; otherwise it gets want, which must be a
// host address of the subnet other than the gateway and not held by
// another owner (the error then wraps ErrInUse and names the owner). An
// owner that already holds an address gets it back; asking it for another
// one is an error wrapping ErrConflict. A subnet without a free address
// gives an error wrapping ErrFull. The allocation is on disk when
// Allocate returns.
func (s *Store) Allocate(ctx context.Context, network string, subnet netip.Prefix, gateway netip.Addr, owner string, want netip.Addr) (netip.Addr, error) {
	fail := func(err error) (netip.Addr, error) {
		return netip.Addr{}, fmt.Errorf("allocate address for %q in network %q: %w", owner, network, err)
	}
	if err := checkName(network); err != nil {
		return netip.Addr{}, err
	}
	if owner == "" {
		return fail(errors.New("empty owner"))
	}
	if err := ValidateNetwork(subnet, gateway); err != nil {
		return fail(err)
	}
	gateway = orDefault(gateway, subnet)
	if want.IsValid() {
		if err := checkHost(subnet, gateway, want); err != nil {
			return fail(err)
		}
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	st, ok, err := s.readNetwork(network)
	if err != nil {
		return fail(err)
	}
	if !ok {
		st = &networkState{Version: version, Network: network, Subnet: subnet, Gateway: gateway, Addresses: map[string]netip.Addr{}}
	} else if st.Subnet != subnet {
		return fail(fmt.Errorf("subnet %s %w (subnet %s)", subnet, ErrConflict, st.Subnet))
	} else if st.Gateway != gateway {
		return fail(fmt.Errorf("gateway %s %w (gateway %s)", gateway, ErrConflict, st.Gateway))
	}
	if have, ok := st.Addresses[owner]; ok {
		if want.IsValid() && want != have {
			return fail(fmt.Errorf("wants %s but already holds %s: %w; release it first", want, have, ErrConflict))
		}
		return have, nil
	}
	held := make(map[netip.Addr]string, len(st.Addresses))
	for o, a := range st.Addresses {
		held[a] = o
	}
	addr := want
	if addr.IsValid() {
		if other, ok := held[addr]; ok {
			return fail(fmt.Errorf("address %s is %w by owner %q", addr, ErrInUse, other))
		}
	} else {
		addr, err = lowestFree(subnet, gateway, held)
		if err != nil {
			return fail(err)
		}
	}
	st.Addresses[owner] = addr
	if err := writeJSON(s.networkPath(network), st); err != nil {
		return fail(err)
	}
	return addr, nil
}

// lowestFree returns the lowest host address of subnet that is neither the
// gateway nor held.
func lowestFree(subnet netip.Prefix, gateway netip.Addr, held map[netip.Addr]string) (netip.Addr, error) {
	n := usable(subnet)
	if len(held) < n {
		last := broadcast(subnet)
		for a := subnet.Addr().Next(); a != last; a = a.Next() {
			if _, ok := held[a]; !ok && a != gateway {
				return a, nil
			}
		}
	}
	plural := "es"
	if n == 1 {
		plural = ""
	}
	return netip.Addr{}, fmt.Errorf("subnet %s (%d usable address%s) is %w", subnet, n, plural, ErrFull)
}

// Release frees the address of owner in network. Releasing an owner
// without an address, or in a network that is not recorded, is not an
// error. Call it only once the address is configured nowhere any more.
func (s *Store) Release(ctx context.Context, network, owner string) error {
	if err := checkName(network); err != nil {
		return err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return fmt.Errorf("release address of %q in network %q: %w", owner, network, err)
	}
	defer unlock()
	st, ok, err := s.readNetwork(network)
	if err != nil {
		return fmt.Errorf("release address of %q in network %q: %w", owner, network, err)
	}
	if !ok {
		return nil
	}
	if _, ok := st.Addresses[owner]; !ok {
		return nil
	}
	delete(st.Addresses, owner)
	if err := writeJSON(s.networkPath(network), st); err != nil {
		return fmt.Errorf("release address of %q in network %q: %w", owner, network, err)
	}
	return nil
}

// Lookup returns the address owner holds in network, and whether it holds
// one.
func (s *Store) Lookup(network, owner string) (netip.Addr, bool, error) {
	if err := checkName(network); err != nil {
		return netip.Addr{}, false, err
	}
	st, ok, err := s.readNetwork(network)
	if err != nil || !ok {
		return netip.Addr{}, false, err
	}
	a, ok := st.Addresses[owner]
	return a, ok, nil
}

// Owners returns the address of every owner in network; it is empty for a
// network that is not recorded.
func (s *Store) Owners(network string) (map[string]netip.Addr, error) {
	if err := checkName(network); err != nil {
		return nil, err
	}
	st, ok, err := s.readNetwork(network)
	if err != nil {
		return nil, err
	}
	if !ok {
		return map[string]netip.Addr{}, nil
	}
	return st.Addresses, nil
}

func orDefault(gateway netip.Addr, subnet netip.Prefix) netip.Addr {
	if gateway.IsValid() {
		return gateway
	}
	return DefaultGateway(subnet)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
