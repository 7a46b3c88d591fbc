package ipam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// Limits on the prefix length of a network's subnet: a /30 is the smallest
// subnet with a gateway and one container, a /8 the largest accepted.
const (
	MinBits = 8
	MaxBits = 30
)

// ValidateNetwork checks a network's subnet and optional gateway: the
// subnet must be IPv4, written with its host bits zero, with a prefix
// length between MinBits and MaxBits; a gateway, when valid, must lie in
// the subnet and be neither its network nor its broadcast address.
func ValidateNetwork(subnet netip.Prefix, gateway netip.Addr) error {
	if !subnet.IsValid() {
		return errors.New("invalid subnet")
	}
	if !subnet.Addr().Is4() {
		return fmt.Errorf("subnet %s: only IPv4 subnets are supported", subnet)
	}
	if b := subnet.Bits(); b < MinBits || b > MaxBits {
		return fmt.Errorf("subnet %s: prefix length must be between /%d and /%d", subnet, MinBits, MaxBits)
	}
	if m := subnet.Masked(); m != subnet {
		return fmt.Errorf("subnet %s has host bits set: did you mean %s", subnet, m)
	}
	if !gateway.IsValid() {
		return nil
	}
	if !gateway.Is4() {
		return fmt.Errorf("gateway %s: only IPv4 gateways are supported", gateway)
	}
	if !subnet.Contains(gateway) {
		return fmt.Errorf("gateway %s is outside subnet %s", gateway, subnet)
	}
	if gateway == subnet.Addr() {
		return fmt.Errorf("gateway %s is the network address of subnet %s", gateway, subnet)
	}
	if gateway == broadcast(subnet) {
		return fmt.Errorf("gateway %s is the broadcast address of subnet %s", gateway, subnet)
	}
	return nil
}

// DefaultGateway returns the first host address of subnet, the gateway a
// network gets when none is given. It returns the zero Addr for an invalid
// subnet.
func DefaultGateway(subnet netip.Prefix) netip.Addr {
	if !subnet.IsValid() {
		return netip.Addr{}
	}
	return subnet.Masked().Addr().Next()
}

// Overlaps reports whether the prefixes a and b share any address. Prefixes
// of different address families never overlap.
func Overlaps(a, b netip.Prefix) bool {
	return a.IsValid() && b.IsValid() && a.Overlaps(b)
}

// PickSubnet returns the first /bits subnet of pool, in address order, that
// overlaps none of taken. Taken holds the subnets of the other networks
// and the destinations of the host's routes; default routes (/0) and
// prefixes of another address family are ignored. The error wraps ErrFull
// when every candidate overlaps something.
func PickSubnet(taken []netip.Prefix, pool netip.Prefix, bits int) (netip.Prefix, error) {
	if !pool.IsValid() || !pool.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("pick subnet: pool %s is not an IPv4 prefix", pool)
	}
	pool = pool.Masked()
	if bits < max(pool.Bits(), MinBits) || bits > MaxBits {
		return netip.Prefix{}, fmt.Errorf("pick subnet: cannot split pool %s into /%d subnets", pool, bits)
	}
	step := uint64(1) << (32 - bits)
	first := uint64(u32(pool.Addr()))
	end := first + uint64(1)<<(32-pool.Bits()) // one past the pool
	// Sweep the taken ranges in address order: a candidate is free when
	// every range before it ends at or before it and the next one starts
	// after it.
	type span struct{ lo, hi uint64 } // [lo, hi)
	spans := make([]span, 0, len(taken))
	for _, t := range taken {
		if !t.IsValid() || !t.Addr().Is4() || t.Bits() == 0 {
			continue
		}
		t = t.Masked()
		lo := uint64(u32(t.Addr()))
		spans = append(spans, span{lo, lo + uint64(1)<<(32-t.Bits())})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	c := first
	for _, sp := range spans {
		if c >= end || sp.lo >= c+step {
			break
		}
		if sp.hi > c {
			c = first + (sp.hi-first+step-1)/step*step
		}
	}
	if c < end {
		return netip.PrefixFrom(fromU32(uint32(c)), bits), nil
	}
	return netip.Prefix{}, fmt.Errorf("pick subnet: pool %s (%d subnets of /%d) is %w", pool, (end-first)/step, bits, ErrFull)
}

// broadcast returns the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	p = p.Masked()
	return fromU32(u32(p.Addr()) | (uint32(1)<<(32-p.Bits()) - 1))
}

// usable returns the number of addresses of subnet that can be handed to
// owners: all but the network address, the broadcast address and the
// gateway.
func usable(subnet netip.Prefix) int {
	return 1<<(32-subnet.Bits()) - 3
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func fromU32(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}
