package netdev

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

func FuzzResolvConf(f *testing.F) {
	f.Add([]byte("search a b\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n"), "")
	f.Add([]byte("nameserver ::1\n"), "1.1.1.1")
	f.Add([]byte("nameserver\r\n\n\n# x\n"), "bad\nnameserver 1.2.3.4")
	f.Add([]byte{}, "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, host []byte, dns string) {
		var dnsList []string
		if dns != "" {
			dnsList = strings.Split(dns, ",")
		}
		asked := map[string]bool{}
		for _, d := range dnsList {
			if a, err := netip.ParseAddr(strings.TrimSpace(d)); err == nil && safeAddr(a) {
				asked[a.String()] = true
			}
		}
		out := ResolvConf(host, dnsList)
		if len(out) == 0 || out[len(out)-1] != '\n' {
			t.Fatalf("output does not end with a newline: %q", out)
		}
		var servers []string
		for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "nameserver" {
				continue
			}
			if len(f) != 2 || line != "nameserver "+f[1] {
				t.Fatalf("malformed nameserver line %q", line)
			}
			a, err := netip.ParseAddr(f[1])
			if err != nil {
				t.Fatalf("nameserver line with no address: %q", line)
			}
			servers = append(servers, f[1])
			// Loopback servers only when the caller asked for them.
			if a.Unmap().IsLoopback() && !asked[f[1]] {
				t.Fatalf("loopback nameserver %s kept from the host", f[1])
			}
		}
		if len(servers) == 0 {
			t.Fatalf("no nameserver in %q", out)
		}
		if len(asked) > 0 {
			for _, s := range servers {
				if !asked[s] {
					t.Fatalf("nameserver %s kept although dns overrides", s)
				}
			}
		}
		// Every line of the host's that is not a nameserver line is kept.
		text := strings.ReplaceAll(string(host), "\r\n", "\n")
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "nameserver" {
				continue
			}
			if line != "" && !bytes.Contains(out, []byte(line+"\n")) {
				t.Fatalf("host line %q lost", line)
			}
		}
		// Deterministic.
		if again := ResolvConf(host, dnsList); !bytes.Equal(again, out) {
			t.Fatal("not deterministic")
		}
	})
}

func FuzzHosts(f *testing.F) {
	f.Add("10.0.0.1", "web web-1", "10.0.0.2", "web\nevil")
	f.Add("::1", "", "fd00::1", "a b c")
	f.Fuzz(func(t *testing.T, a1, n1, a2, n2 string) {
		var entries []HostEntry
		for _, e := range [][2]string{{a1, n1}, {a2, n2}} {
			addr, _ := netip.ParseAddr(e[0])
			entries = append(entries, HostEntry{Addr: addr, Names: strings.Split(e[1], " ")})
		}
		out := string(Hosts(entries))
		if !strings.HasPrefix(out, localhost) || !strings.HasSuffix(out, "\n") {
			t.Fatalf("bad frame: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(out, localhost), "\n"), "\n")
		if lines[0] == "" {
			lines = nil
		}
		if len(lines) > 2 {
			t.Fatalf("%d lines for 2 entries: %q", len(lines), out)
		}
		for _, l := range lines {
			addr, names, ok := strings.Cut(l, "\t")
			if !ok {
				t.Fatalf("line without tab: %q", l)
			}
			if _, err := netip.ParseAddr(addr); err != nil {
				t.Fatalf("line with bad address: %q", l)
			}
			for _, n := range strings.Split(names, " ") {
				if !validHostName(n) {
					t.Fatalf("invalid name %q written", n)
				}
			}
		}
	})
}
