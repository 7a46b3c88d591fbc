package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Port is a host port recorded for a key.
type Port struct {
	// Proto is "tcp" or "udp".
	Proto string `json:"proto"`
	// HostIP is the host address the port is published on; the zero Addr
	// and the unspecified addresses mean every address.
	HostIP netip.Addr `json:"host_ip"`
	Port   int        `json:"port"`
}

// String returns the port as host:port/proto.
func (p Port) String() string {
	host := "*"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
		if p.HostIP.Is6() {
			host = "[" + host + "]"
		}
	}
	return host + ":" + strconv.Itoa(p.Port) + "/" + p.Proto
}

// overlaps reports whether p and q cannot both be published at once: same
// protocol and port on host addresses that share an address.
func (p Port) overlaps(q Port) bool {
	if p.Proto != q.Proto || p.Port != q.Port {
		return false
	}
	a, b := wildcard(p.HostIP), wildcard(q.HostIP)
	switch {
	case a == b:
		return true
	case a.IsUnspecified() && (a.Is6() || b.Is4()):
		return true
	case b.IsUnspecified() && (b.Is6() || a.Is4()):
		return true
	}
	return false
}

// wildcard maps the zero Addr to :: (every address, both families) and
// unmaps IPv4-mapped IPv6 addresses.
func wildcard(a netip.Addr) netip.Addr {
	if !a.IsValid() {
		return netip.IPv6Unspecified()
	}
	return a.Unmap()
}

// portsState is the content of ports.json.
type portsState struct {
	Version int             `json:"version"`
	Ports   map[string]Port `json:"ports"`
}

func (s *Store) portsPath() string { return filepath.Join(s.dir, portsFile) }

func (s *Store) readPorts() (*portsState, error) {
	path := s.portsPath()
	st := &portsState{Version: version}
	ok, err := readJSON(path, st)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := st.check(); err != nil {
			return nil, fmt.Errorf("read %s: %w: %w", path, ErrCorrupt, err)
		}
	}
	if st.Ports == nil {
		st.Ports = map[string]Port{}
	}
	return st, nil
}

func (st *portsState) check() error {
	if st.Version != version {
		return fmt.Errorf("unknown version %d (this berth knows version %d)", st.Version, version)
	}
	keys := sortedKeys(st.Ports)
	for i, k := range keys {
		p := st.Ports[k]
		if k == "" {
			return errors.New("a port has an empty key")
		}
		if err := checkPort(p.Proto, p.Port); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		for _, k2 := range keys[i+1:] {
			if p.overlaps(st.Ports[k2]) {
				return fmt.Errorf("keys %q and %q both hold %s", k, k2, p)
			}
		}
	}
	return nil
}

func checkPort(proto string, port int) error {
	if proto != "tcp" && proto != "udp" {
		return fmt.Errorf("protocol %q is not tcp or udp", proto)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is outside 1-65535", port)
	}
	return nil
}

// holder returns the key, other than key, that holds a port overlapping p.
func (st *portsState) holder(key string, p Port) (string, bool) {
	for _, k := range sortedKeys(st.Ports) {
		if k != key && st.Ports[k].overlaps(p) {
			return k, true
		}
	}
	return "", false
}

// AllocatePort returns the host port of key, handing it a random free port
// of [lo, hi] on hostIP for proto ("tcp" or "udp") if it has none. A key
// that holds a port in [lo, hi] for the same protocol and host address
// gets it back without any check, so that a published port stays stable
// across restarts and in-place updates. A port is free when no other key
// holds it on an overlapping host address and it can be bound on hostIP
// right now (the check binds a socket and closes it at once; it runs in
// the caller's network namespace). The error wraps ErrFull when no port
// of the range is free.
func (s *Store) AllocatePort(ctx context.Context, key, proto string, hostIP netip.Addr, lo, hi int) (int, error) {
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("allocate %s host port for %q: %w", proto, key, err)
	}
	if key == "" {
		return fail(errors.New("empty key"))
	}
	if err := checkPort(proto, lo); err != nil {
		return fail(err)
	}
	if err := checkPort(proto, hi); err != nil {
		return fail(err)
	}
	if lo > hi {
		return fail(fmt.Errorf("empty port range %d-%d", lo, hi))
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	st, err := s.readPorts()
	if err != nil {
		return fail(err)
	}
	old, had := st.Ports[key]
	if had && old.Proto == proto && old.HostIP == hostIP && old.Port >= lo && old.Port <= hi {
		return old.Port, nil
	}
	byPort := make(map[int][]Port)
	for k, p := range st.Ports {
		if k != key && p.Proto == proto {
			byPort[p.Port] = append(byPort[p.Port], p)
		}
	}
	try := func(port int) (bool, error) {
		p := Port{Proto: proto, HostIP: hostIP, Port: port}
		for _, q := range byPort[port] {
			if q.overlaps(p) {
				return false, nil
			}
		}
		return bindable(p)
	}
	n := hi - lo + 1
	start := rand.IntN(n)
	found := 0
	// A key whose protocol or host address changed keeps its port if it can.
	if had && old.Port >= lo && old.Port <= hi {
		ok, err := try(old.Port)
		if err != nil {
			return fail(err)
		}
		if ok {
			found = old.Port
		}
	}
	for i := 0; found == 0 && i < n; i++ {
		if i%256 == 0 && ctx.Err() != nil {
			return fail(ctx.Err())
		}
		port := lo + (start+i)%n
		ok, err := try(port)
		if err != nil {
			return fail(err)
		}
		if ok {
			found = port
		}
	}
	if found == 0 {
		return fail(fmt.Errorf("port range %d-%d on %s (%d ports) is %w", lo, hi, hostName(hostIP), n, ErrFull))
	}
	st.Ports[key] = Port{Proto: proto, HostIP: hostIP, Port: found}
	if err := writeJSON(s.portsPath(), st); err != nil {
		return fail(err)
	}
	return found, nil
}

// ReservePort records port as the host port of key, for a port the user
// chose. It does not bind the port. The error wraps ErrInUse and names the
// key when another key holds the port on an overlapping host address.
func (s *Store) ReservePort(ctx context.Context, key, proto string, hostIP netip.Addr, port int) error {
	p := Port{Proto: proto, HostIP: hostIP, Port: port}
	fail := func(err error) error {
		return fmt.Errorf("reserve host port %s for %q: %w", p, key, err)
	}
	if key == "" {
		return fail(errors.New("empty key"))
	}
	if err := checkPort(proto, port); err != nil {
		return fail(err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	st, err := s.readPorts()
	if err != nil {
		return fail(err)
	}
	if other, held := st.holder(key, p); held {
		return fail(fmt.Errorf("%w by %q", ErrInUse, other))
	}
	if old, ok := st.Ports[key]; ok && old == p {
		return nil
	}
	st.Ports[key] = p
	if err := writeJSON(s.portsPath(), st); err != nil {
		return fail(err)
	}
	return nil
}

// ReleasePort forgets the host ports of keys. Keys without a port are
// ignored.
func (s *Store) ReleasePort(ctx context.Context, keys ...string) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return fmt.Errorf("release host ports: %w", err)
	}
	defer unlock()
	st, err := s.readPorts()
	if err != nil {
		return fmt.Errorf("release host ports: %w", err)
	}
	changed := false
	for _, k := range keys {
		if _, ok := st.Ports[k]; ok {
			delete(st.Ports, k)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := writeJSON(s.portsPath(), st); err != nil {
		return fmt.Errorf("release host ports: %w", err)
	}
	return nil
}

// Ports returns every recorded host port by key.
func (s *Store) Ports() (map[string]Port, error) {
	st, err := s.readPorts()
	if err != nil {
		return nil, err
	}
	return st.Ports, nil
}

// bindable reports whether p can be bound right now, by binding it and
// closing the socket. Only "address in use" means no; any other failure
// (an address that is not the host's, a missing permission) is an error,
// since every other port would fail the same way.
func bindable(p Port) (bool, error) {
	network, addr := p.Proto, ":"+strconv.Itoa(p.Port)
	if p.HostIP.IsValid() {
		ip := p.HostIP.Unmap()
		if ip.Is4() {
			network += "4"
		} else {
			network += "6"
		}
		addr = netip.AddrPortFrom(ip, uint16(p.Port)).String()
	}
	var err error
	if p.Proto == "tcp" {
		var l net.Listener
		if l, err = net.Listen(network, addr); err == nil {
			l.Close()
		}
	} else {
		var c net.PacketConn
		if c, err = net.ListenPacket(network, addr); err == nil {
			c.Close()
		}
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return false, nil
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return false, fmt.Errorf("host address %s is not an address of this host: %w", p.HostIP, err)
	}
	return false, err
}

func hostName(ip netip.Addr) string {
	if !ip.IsValid() {
		return "every address"
	}
	return ip.String()
}

// Default ephemeral port range, used when the kernel's cannot be read.
const (
	DefaultPortLo = 32768
	DefaultPortHi = 60999
)

const portRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// PortRange returns the kernel's ephemeral port range, from which random
// host ports are taken, as Docker does. It always returns a usable range:
// when the kernel's cannot be read it returns DefaultPortLo-DefaultPortHi
// together with an error saying why, which the caller may log.
func PortRange() (lo, hi int, err error) {
	return portRangeFrom(portRangeFile)
}

func portRangeFrom(path string) (lo, hi int, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		lo, hi, err = parsePortRange(string(b))
	}
	if err != nil {
		return DefaultPortLo, DefaultPortHi, fmt.Errorf("read port range: %w", err)
	}
	return lo, hi, nil
}

func parsePortRange(s string) (lo, hi int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("malformed port range %q", s)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("malformed port range %q", s)
	}
	return lo, hi, nil
}
