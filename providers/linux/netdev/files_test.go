package netdev

import (
	"net/netip"
	"strings"
	"testing"
)

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name string
		host string
		dns  []string
		want string
	}{
		{
			name: "loopback dropped, rest kept",
			host: "# from dhcp\nsearch example.com corp\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0 trust-ad\n",
			want: "# from dhcp\nsearch example.com corp\nnameserver 10.0.0.2\noptions edns0 trust-ad\n",
		},
		{
			name: "only loopback: fallback",
			host: "nameserver 127.0.0.1\nnameserver ::1\nsearch lan\n",
			want: "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\n",
		},
		{
			name: "any 127/8 address",
			host: "nameserver 127.1.2.3\nnameserver 1.1.1.1\n",
			want: "nameserver 1.1.1.1\n",
		},
		{
			name: "empty host file",
			host: "",
			want: "nameserver 8.8.8.8\nnameserver 8.8.4.4\n",
		},
		{
			name: "no nameserver line: appended",
			host: "search a.example\noptions ndots:2",
			want: "search a.example\noptions ndots:2\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n",
		},
		{
			name: "dns overrides, search and options kept",
			host: "search corp\nnameserver 10.0.0.2\noptions rotate\nnameserver 10.0.0.3\n",
			dns:  []string{"1.1.1.1", "2606:4700:4700::1111"},
			want: "search corp\nnameserver 1.1.1.1\nnameserver 2606:4700:4700::1111\noptions rotate\n",
		},
		{
			name: "dns may be loopback when asked for",
			host: "nameserver 10.0.0.2\n",
			dns:  []string{"127.0.0.11"},
			want: "nameserver 127.0.0.11\n",
		},
		{
			name: "invalid dns entries skipped, no injection",
			host: "nameserver 10.0.0.2\n",
			dns:  []string{"1.1.1.1\nsearch evil", "not-an-ip", " 9.9.9.9 "},
			want: "nameserver 9.9.9.9\n",
		},
		{
			name: "only invalid dns: host's",
			host: "nameserver 10.0.0.2\n",
			dns:  []string{"nope"},
			want: "nameserver 10.0.0.2\n",
		},
		{
			name: "IPv6 and tabs, malformed nameserver lines dropped",
			host: "nameserver\tfd00::53\nnameserver\nnameserver bogus\n;comment\n",
			want: "nameserver fd00::53\n;comment\n",
		},
		{
			name: "CRLF",
			host: "search x\r\nnameserver 10.1.1.1\r\n",
			want: "search x\nnameserver 10.1.1.1\n",
		},
		{
			name: "commented nameserver kept as a comment",
			host: "# nameserver 127.0.0.1\nnameserver 10.0.0.9\n",
			want: "# nameserver 127.0.0.1\nnameserver 10.0.0.9\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(ResolvConf([]byte(tt.host), tt.dns)); got != tt.want {
				t.Errorf("ResolvConf =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

const localhost = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"

func TestHosts(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name    string
		entries []HostEntry
		want    string
	}{
		{name: "none", want: localhost},
		{
			name: "names and aliases, replicas",
			entries: []HostEntry{
				{Addr: a("10.89.0.2"), Names: []string{"web", "web-1", "www"}},
				{Addr: a("10.89.0.3"), Names: []string{"web", "web-2", "www"}},
				{Addr: a("10.89.0.4"), Names: []string{"db"}},
			},
			want: localhost +
				"10.89.0.2\tweb web-1 www\n" +
				"10.89.0.3\tweb web-2 www\n" +
				"10.89.0.4\tdb\n",
		},
		{
			name: "one address in two entries: one line",
			entries: []HostEntry{
				{Addr: a("10.0.0.5"), Names: []string{"db.local"}},
				{Addr: a("10.89.0.2"), Names: []string{"app"}},
				{Addr: a("10.0.0.5"), Names: []string{"db.local", "database"}},
			},
			want: localhost + "10.0.0.5\tdb.local database\n10.89.0.2\tapp\n",
		},
		{
			name: "invalid names and addresses skipped",
			entries: []HostEntry{
				{Addr: a("10.0.0.1"), Names: []string{"ok_name", "bad name", "evil\n1.2.3.4 bank", "-dash", ".dot", "#c", ""}},
				{Addr: netip.Addr{}, Names: []string{"nowhere"}},
				{Addr: a("10.0.0.2"), Names: []string{"bad name"}},
				{Addr: a("::ffff:10.0.0.3"), Names: []string{"mapped"}},
				{Addr: a("fd00::2"), Names: []string{"six"}},
			},
			want: localhost + "10.0.0.1\tok_name\n10.0.0.3\tmapped\nfd00::2\tsix\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Hosts(tt.entries)); got != tt.want {
				t.Errorf("Hosts =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestValidHostName(t *testing.T) {
	if !validHostName(strings.Repeat("a", maxHostName)) || validHostName(strings.Repeat("a", maxHostName+1)) {
		t.Error("length limit")
	}
}
