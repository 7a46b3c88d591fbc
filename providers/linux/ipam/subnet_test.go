package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidateNetwork(t *testing.T) {
	tests := []struct {
		subnet  string
		gateway string
		text    string // empty: valid
	}{
		{"10.89.0.0/24", "", ""},
		{"10.89.0.0/24", "10.89.0.1", ""},
		{"10.89.0.0/24", "10.89.0.254", ""},
		{"10.0.0.0/8", "", ""},
		{"10.89.0.0/30", "10.89.0.2", ""},
		{"10.0.0.0/7", "", "prefix length must be between /8 and /30"},
		{"10.89.0.0/31", "", "prefix length must be between /8 and /30"},
		{"10.89.0.0/32", "", "prefix length"},
		{"10.89.0.1/24", "", "has host bits set: did you mean 10.89.0.0/24"},
		{"fd00::/64", "", "only IPv4 subnets"},
		{"::ffff:10.0.0.0/104", "", "only IPv4 subnets"},
		{"10.89.0.0/24", "10.89.1.1", "gateway 10.89.1.1 is outside subnet 10.89.0.0/24"},
		{"10.89.0.0/24", "10.89.0.0", "is the network address"},
		{"10.89.0.0/24", "10.89.0.255", "is the broadcast address"},
		{"10.89.0.0/24", "fd00::1", "only IPv4 gateways"},
		{"10.89.0.0/24", "::ffff:10.89.0.1", "only IPv4 gateways"},
	}
	for _, tt := range tests {
		t.Run(tt.subnet+" "+tt.gateway, func(t *testing.T) {
			var gw netip.Addr
			if tt.gateway != "" {
				gw = ip(tt.gateway)
			}
			err := ValidateNetwork(pfx(tt.subnet), gw)
			if tt.text == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %v, want one containing %q", err, tt.text)
			}
		})
	}
	if err := ValidateNetwork(netip.Prefix{}, netip.Addr{}); err == nil {
		t.Error("the zero prefix is valid")
	}
}

func TestDefaultGateway(t *testing.T) {
	tests := map[string]string{
		"10.89.0.0/24":   "10.89.0.1",
		"10.89.0.77/24":  "10.89.0.1",
		"172.16.0.0/12":  "172.16.0.1",
		"192.168.4.8/30": "192.168.4.9",
	}
	for subnet, want := range tests {
		if got := DefaultGateway(pfx(subnet)); got != ip(want) {
			t.Errorf("DefaultGateway(%s) = %s, want %s", subnet, got, want)
		}
	}
	if got := DefaultGateway(netip.Prefix{}); got.IsValid() {
		t.Errorf("DefaultGateway of the zero prefix = %s", got)
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.89.0.0/24", "10.89.0.0/24", true},
		{"10.89.0.0/24", "10.89.0.128/25", true},
		{"10.0.0.0/8", "10.89.3.0/24", true},
		{"10.89.0.0/24", "10.89.1.0/24", false},
		{"10.89.0.0/23", "10.89.1.0/24", true},
		{"10.89.0.0/24", "0.0.0.0/0", true},
		{"10.89.0.0/24", "fd00::/8", false},
		{"10.89.0.5/24", "10.89.0.200/32", true},
	}
	for _, tt := range tests {
		if got := Overlaps(pfx(tt.a), pfx(tt.b)); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v", tt.a, tt.b, got)
		}
		if got := Overlaps(pfx(tt.b), pfx(tt.a)); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v", tt.b, tt.a, got)
		}
	}
	if Overlaps(netip.Prefix{}, pfx("10.0.0.0/8")) {
		t.Error("the zero prefix overlaps")
	}
}

func TestPickSubnet(t *testing.T) {
	pool := "10.89.0.0/16"
	tests := []struct {
		name  string
		taken []string
		pool  string
		bits  int
		want  string
		text  string // error
	}{
		{"nothing taken", nil, pool, 24, "10.89.0.0/24", ""},
		{"first taken", []string{"10.89.0.0/24"}, pool, 24, "10.89.1.0/24", ""},
		{"gap", []string{"10.89.0.0/24", "10.89.2.0/24"}, pool, 24, "10.89.1.0/24", ""},
		{"small route inside", []string{"10.89.0.77/32"}, pool, 24, "10.89.1.0/24", ""},
		{"large route", []string{"10.89.0.0/20"}, pool, 24, "10.89.16.0/24", ""},
		{"unaligned route", []string{"10.89.0.0/24", "10.89.1.128/25", "10.89.2.0/23"}, pool, 24, "10.89.4.0/24", ""},
		{"default route ignored", []string{"0.0.0.0/0"}, pool, 24, "10.89.0.0/24", ""},
		{"ipv6 ignored", []string{"::/0", "fd00::/8"}, pool, 24, "10.89.0.0/24", ""},
		{"covering route", []string{"10.0.0.0/8"}, pool, 24, "", "pool 10.89.0.0/16 (256 subnets of /24) is full"},
		{"last one", []string{"10.89.0.0/17", "10.89.128.0/18", "10.89.192.0/19", "10.89.224.0/20", "10.89.240.0/21", "10.89.248.0/22", "10.89.252.0/23", "10.89.254.0/24"}, pool, 24, "10.89.255.0/24", ""},
		{"smaller subnets", []string{"10.89.0.0/28"}, pool, 28, "10.89.0.16/28", ""},
		{"whole pool", nil, pool, 16, "10.89.0.0/16", ""},
		{"unmasked pool", nil, "10.89.7.7/16", 24, "10.89.0.0/24", ""},
		{"top of the address space", []string{"255.255.255.0/24"}, "255.255.254.0/23", 24, "255.255.254.0/24", ""},
		{"top full", []string{"255.255.254.0/24", "255.255.255.0/25"}, "255.255.254.0/23", 24, "", "is full"},
		{"bits shorter than the pool", nil, pool, 15, "", "cannot split pool"},
		{"bits too long", nil, pool, 31, "", "cannot split pool"},
		{"ipv6 pool", nil, "fd00::/48", 64, "", "not an IPv4 prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var taken []netip.Prefix
			for _, s := range tt.taken {
				taken = append(taken, pfx(s))
			}
			got, err := PickSubnet(taken, pfx(tt.pool), tt.bits)
			if tt.text != "" {
				if err == nil || !strings.Contains(err.Error(), tt.text) {
					t.Fatalf("got %s, %v; want an error containing %q", got, err, tt.text)
				}
				if strings.Contains(tt.text, "full") && !errors.Is(err, ErrFull) {
					t.Errorf("error %v is not ErrFull", err)
				}
				return
			}
			if err != nil || got != pfx(tt.want) {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
			for _, p := range taken {
				if p.Bits() > 0 && Overlaps(got, p) {
					t.Errorf("%s overlaps taken %s", got, p)
				}
			}
		})
	}
}

// TestPickSubnetManyTaken checks that PickSubnet finds the only free
// subnet of a large pool when nearly every candidate is taken.
func TestPickSubnetManyTaken(t *testing.T) {
	var taken []netip.Prefix
	for i := range 1 << 16 {
		if i == 54321 {
			continue
		}
		taken = append(taken, netip.PrefixFrom(fromU32(0x0a000000|uint32(i)<<8), 24))
	}
	// Reverse the order: PickSubnet must not rely on sorted input.
	for i, j := 0, len(taken)-1; i < j; i, j = i+1, j-1 {
		taken[i], taken[j] = taken[j], taken[i]
	}
	got, err := PickSubnet(taken[:200], pfx("10.0.0.0/8"), 24)
	if err != nil || got != pfx("10.0.0.0/24") {
		t.Errorf("with the top 200 taken: %s, %v", got, err)
	}
	got, err = PickSubnet(taken, pfx("10.0.0.0/16"), 24)
	if !errors.Is(err, ErrFull) {
		t.Errorf("10.0.0.0/16 fully taken: %s, %v", got, err)
	}
	got, err = PickSubnet(taken[len(taken)-54400:], pfx("10.0.0.0/8"), 24)
	// The last 54400 of the reversed list are 10.0.0.0 .. 10.212.127.0
	// without 10.212.49.0 (i = 54321).
	if err != nil || got != pfx("10.212.49.0/24") {
		t.Errorf("with one gap: %s, %v", got, err)
	}
}
