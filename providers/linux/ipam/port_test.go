package ipam

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// holdPort binds a free port on 127.0.0.1 for proto and returns it, the
// socket that holds it, after checking that the next port is free on every
// address, so that [port, port+1] is a range with exactly one free port.
func holdPort(t *testing.T, proto string) (int, io.Closer) {
	t.Helper()
	for range 50 {
		var c io.Closer
		var port int
		if proto == "tcp" {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			c, port = l, l.Addr().(*net.TCPAddr).Port
		} else {
			l, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			c, port = l, l.LocalAddr().(*net.UDPAddr).Port
		}
		if port < 65535 {
			if ok, _ := bindable(Port{Proto: proto, Port: port + 1}); ok {
				t.Cleanup(func() { c.Close() })
				return port, c
			}
		}
		c.Close()
	}
	t.Fatal("no pair of ports found")
	return 0, nil
}

func TestAllocatePortSkipsBound(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		for _, host := range []string{"127.0.0.1", "0.0.0.0", ""} {
			t.Run(proto+" "+host, func(t *testing.T) {
				var hostIP netip.Addr
				if host != "" {
					hostIP = ip(host)
				}
				s := newStore(t)
				ctx := t.Context()
				p, holder := holdPort(t, proto)
				got, err := s.AllocatePort(ctx, "a", proto, hostIP, p, p+1)
				if err != nil || got != p+1 {
					t.Fatalf("a: %d, %v; want %d (port %d is bound)", got, err, p+1, p)
				}
				_, err = s.AllocatePort(ctx, "b", proto, hostIP, p, p+1)
				if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), fmt.Sprintf("port range %d-%d", p, p+1)) {
					t.Fatalf("b while both are taken: %v", err)
				}
				holder.Close()
				if got, err := s.AllocatePort(ctx, "b", proto, hostIP, p, p+1); err != nil || got != p {
					t.Errorf("b after the listener closed: %d, %v; want %d", got, err, p)
				}
				if got, err := s.AllocatePort(ctx, "a", proto, hostIP, p, p+1); err != nil || got != p+1 {
					t.Errorf("a again: %d, %v", got, err)
				}
			})
		}
	}
}

func TestAllocatePortStable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	lo, hi, err := PortRange()
	if err != nil {
		t.Log(err)
	}
	loop := ip("127.0.0.1")
	ports := map[int]string{}
	for i := range 20 {
		key := fmt.Sprintf("tok%d/80/tcp", i)
		p, err := s.AllocatePort(ctx, key, "tcp", loop, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p > hi {
			t.Errorf("%s got %d outside %d-%d", key, p, lo, hi)
		}
		if other, ok := ports[p]; ok {
			t.Errorf("%d handed to %s and %s", p, key, other)
		}
		ports[p] = key
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for p, key := range ports {
		got, err := s2.AllocatePort(ctx, key, "tcp", loop, lo, hi)
		if err != nil || got != p {
			t.Errorf("%s after reopen: %d, %v; want %d", key, got, err, p)
		}
	}
	listed, err := s2.Ports()
	if err != nil || len(listed) != len(ports) {
		t.Fatalf("ports: %v, %v", listed, err)
	}
	for p, key := range ports {
		if listed[key] != (Port{Proto: "tcp", HostIP: loop, Port: p}) {
			t.Errorf("listed %s as %v", key, listed[key])
		}
	}
	// A key whose host address changes keeps its port when it can.
	var key string
	var p int
	for p, key = range ports {
		break
	}
	if got, err := s2.AllocatePort(ctx, key, "tcp", netip.Addr{}, lo, hi); err != nil || got != p {
		t.Errorf("%s on every address: %d, %v; want %d", key, got, err, p)
	}
	// A key whose port falls outside a new range gets a port inside it.
	nlo, nhi := lo, hi
	if p-lo > hi-p {
		nhi = p - 1
	} else {
		nlo = p + 1
	}
	got, err := s2.AllocatePort(ctx, key, "tcp", netip.Addr{}, nlo, nhi)
	if err != nil || got < nlo || got > nhi {
		t.Errorf("%s in %d-%d: %d, %v", key, nlo, nhi, got, err)
	}
}

func TestReservePort(t *testing.T) {
	type rec struct {
		key, proto, host string
		port             int
	}
	tests := []struct {
		name  string
		have  rec
		try   rec
		owner string // the key the error names; empty: no conflict
	}{
		{"wildcard v4 against loopback", rec{"x", "tcp", "0.0.0.0", 8080}, rec{"y", "tcp", "127.0.0.1", 8080}, "x"},
		{"loopback against wildcard v4", rec{"x", "tcp", "127.0.0.1", 8080}, rec{"y", "tcp", "0.0.0.0", 8080}, "x"},
		{"every address against loopback", rec{"x", "tcp", "", 8080}, rec{"y", "tcp", "127.0.0.1", 8080}, "x"},
		{"every address against v6", rec{"x", "udp", "", 53}, rec{"y", "udp", "::1", 53}, "x"},
		{"wildcard v6 against v4", rec{"x", "tcp", "::", 80}, rec{"y", "tcp", "10.0.0.1", 80}, "x"},
		{"same address", rec{"x", "udp", "10.0.0.1", 53}, rec{"y", "udp", "10.0.0.1", 53}, "x"},
		{"mapped address", rec{"x", "tcp", "10.0.0.1", 80}, rec{"y", "tcp", "::ffff:10.0.0.1", 80}, "x"},
		{"two host addresses", rec{"x", "tcp", "127.0.0.1", 8080}, rec{"y", "tcp", "127.0.0.2", 8080}, ""},
		{"tcp and udp", rec{"x", "tcp", "0.0.0.0", 53}, rec{"y", "udp", "0.0.0.0", 53}, ""},
		{"other port", rec{"x", "tcp", "0.0.0.0", 80}, rec{"y", "tcp", "0.0.0.0", 81}, ""},
		{"wildcard v4 against v6", rec{"x", "tcp", "0.0.0.0", 80}, rec{"y", "tcp", "::1", 80}, ""},
		{"same key moves", rec{"x", "tcp", "0.0.0.0", 80}, rec{"x", "tcp", "0.0.0.0", 80}, ""},
	}
	addr := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return ip(s)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			if err := s.ReservePort(ctx, tt.have.key, tt.have.proto, addr(tt.have.host), tt.have.port); err != nil {
				t.Fatal(err)
			}
			err := s.ReservePort(ctx, tt.try.key, tt.try.proto, addr(tt.try.host), tt.try.port)
			if tt.owner == "" {
				if err != nil {
					t.Fatal(err)
				}
				ports, _ := s.Ports()
				if ports[tt.try.key].Port != tt.try.port {
					t.Errorf("ports %v", ports)
				}
				return
			}
			if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("in use by %q", tt.owner)) {
				t.Errorf("error %v, want ErrInUse naming %q", err, tt.owner)
			}
		})
	}
}

func TestAllocatePortAvoidsReserved(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	p, holder := holdPort(t, "tcp")
	holder.Close()
	if err := s.ReservePort(ctx, "fixed", "tcp", netip.Addr{}, p); err != nil {
		t.Fatal(err)
	}
	// The port is bindable, but another key holds it.
	if got, err := s.AllocatePort(ctx, "random", "tcp", ip("127.0.0.1"), p, p); !errors.Is(err, ErrFull) {
		t.Errorf("reserved port handed out: %d, %v", got, err)
	}
	// The same key gets its reserved port.
	if got, err := s.AllocatePort(ctx, "fixed", "tcp", netip.Addr{}, p, p); err != nil || got != p {
		t.Errorf("the holder: %d, %v", got, err)
	}
	if err := s.ReleasePort(ctx, "fixed", "nobody"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AllocatePort(ctx, "random", "tcp", ip("127.0.0.1"), p, p); err != nil || got != p {
		t.Errorf("after release: %d, %v", got, err)
	}
	if ports, err := s.Ports(); err != nil || len(ports) != 1 {
		t.Errorf("ports %v, %v", ports, err)
	}
}

func TestAllocatePortErrors(t *testing.T) {
	tests := []struct {
		name, key, proto, host string
		lo, hi                 int
		text                   string
	}{
		{"empty key", "", "tcp", "127.0.0.1", 40000, 40010, "empty key"},
		{"sctp", "k", "sctp", "127.0.0.1", 40000, 40010, `protocol "sctp"`},
		{"port zero", "k", "tcp", "127.0.0.1", 0, 10, "port 0 is outside"},
		{"port too high", "k", "tcp", "127.0.0.1", 60000, 70000, "port 70000 is outside"},
		{"empty range", "k", "udp", "127.0.0.1", 40010, 40000, "empty port range"},
		{"not a host address", "k", "tcp", "192.0.2.77", 40000, 40010, "192.0.2.77 is not an address of this host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.AllocatePort(t.Context(), tt.key, tt.proto, ip(tt.host), tt.lo, tt.hi)
			if err == nil || !strings.Contains(err.Error(), tt.text) || errors.Is(err, ErrFull) {
				t.Errorf("error %v, want one containing %q", err, tt.text)
			}
			if ports, err := s.Ports(); err != nil || len(ports) != 0 {
				t.Errorf("ports %v, %v", ports, err)
			}
		})
	}
}

func TestPortsCorrupt(t *testing.T) {
	tests := []struct{ name, content, text string }{
		{"torn", `{"version":1,"ports":{"a":{"pro`, "unexpected end of JSON input"},
		{"bad protocol", `{"version":1,"ports":{"a":{"proto":"icmp","port":80}}}`, `protocol "icmp"`},
		{"bad port", `{"version":1,"ports":{"a":{"proto":"tcp","port":0}}}`, "port 0"},
		{"held twice", `{"version":1,"ports":{"a":{"proto":"tcp","port":80},"b":{"proto":"tcp","host_ip":"127.0.0.1","port":80}}}`, `keys "a" and "b"`},
		{"version", `{"version":2,"ports":{}}`, "unknown version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			path := filepath.Join(s.Dir(), portsFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.text) {
					t.Errorf("%s: error %v, want ErrCorrupt naming %s and %q", op, err, path, tt.text)
				}
			}
			_, err := s.AllocatePort(ctx, "k", "tcp", ip("127.0.0.1"), 40000, 40010)
			check("allocate", err)
			check("reserve", s.ReservePort(ctx, "k", "tcp", netip.Addr{}, 80))
			check("release", s.ReleasePort(ctx, "a"))
			_, err = s.Ports()
			check("ports", err)
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Errorf("the file was changed to %q", b)
			}
		})
	}
}

func TestPortString(t *testing.T) {
	tests := map[string]Port{
		"*:80/tcp":         {Proto: "tcp", Port: 80},
		"127.0.0.1:53/udp": {Proto: "udp", HostIP: ip("127.0.0.1"), Port: 53},
		"[::1]:8080/tcp":   {Proto: "tcp", HostIP: ip("::1"), Port: 8080},
	}
	for want, p := range tests {
		if got := p.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", p, got, want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"1024 65535", 1024, 65535, true},
		{"40000 40000\n", 40000, 40000, true},
		{"", 0, 0, false},
		{"32768", 0, 0, false},
		{"60999 32768", 0, 0, false},
		{"0 100", 0, 0, false},
		{"1 65536", 0, 0, false},
		{"a b", 0, 0, false},
		{"1 2 3", 0, 0, false},
	}
	for _, tt := range tests {
		lo, hi, err := parsePortRange(tt.in)
		if tt.ok != (err == nil) || lo != tt.lo || hi != tt.hi {
			t.Errorf("parsePortRange(%q) = %d, %d, %v", tt.in, lo, hi, err)
		}
	}
}

func TestPortRange(t *testing.T) {
	lo, hi, err := portRangeFrom(filepath.Join(t.TempDir(), "missing"))
	if err == nil || lo != DefaultPortLo || hi != DefaultPortHi {
		t.Errorf("missing file: %d, %d, %v", lo, hi, err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("x\n"), 0o600)
	lo, hi, err = portRangeFrom(bad)
	if err == nil || lo != DefaultPortLo || hi != DefaultPortHi {
		t.Errorf("malformed file: %d, %d, %v", lo, hi, err)
	}
	b, rerr := os.ReadFile(portRangeFile)
	if rerr != nil {
		t.Skipf("no %s: %v", portRangeFile, rerr)
	}
	wlo, whi, _ := parsePortRange(string(b))
	lo, hi, err = PortRange()
	if err != nil || lo != wlo || hi != whi {
		t.Errorf("PortRange() = %d, %d, %v; the kernel says %q", lo, hi, err, b)
	}
}
