package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// FuzzAllocateRelease runs sequences of Allocate, Release and reopen on a
// /29 through two Stores on one directory, and checks every result against
// a model: allocation is the lowest free address, idempotent per owner,
// and no address is ever held twice.
func FuzzAllocateRelease(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 2, 1, 0, 3, 0, 4})
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 2, 3, 0, 6})
	f.Add([]byte{1, 0x28, 1, 0x21, 129, 0x11, 0, 2, 3, 0, 2, 0, 0, 1})
	f.Add([]byte{1, 0x38, 1, 0x20, 1, 0x00, 1, 0x3f, 130, 1, 128, 1})
	subnet, gateway := pfx("10.0.0.0/29"), ip("10.0.0.4")
	hosts := []netip.Addr{ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.5"), ip("10.0.0.6")}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 80 {
			ops = ops[:80] // every step syncs to disk
		}
		dir := t.TempDir()
		var stores [2]*Store
		for i := range stores {
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			stores[i] = s
		}
		ctx := t.Context()
		model := map[string]netip.Addr{}
		holder := func(a netip.Addr) (string, bool) {
			for o, b := range model {
				if a == b {
					return o, true
				}
			}
			return "", false
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			s := stores[op>>7]
			owner := fmt.Sprint("o", arg&7)
			switch op & 3 {
			case 0, 1:
				var want netip.Addr
				if op&3 == 1 {
					want = fromU32(0x0a000000 | uint32(arg>>3&7)) // 10.0.0.0 to 10.0.0.7
				}
				got, err := s.Allocate(ctx, "n", subnet, gateway, owner, want)
				have, held := model[owner]
				other, taken := holder(want)
				switch {
				case want.IsValid() && (want == gateway || want == subnet.Addr() || want == broadcast(subnet)):
					if err == nil {
						t.Fatalf("step %d: %s got %s, a reserved address", i, owner, got)
					}
				case held && want.IsValid() && want != have:
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("step %d: %s holds %s, wants %s: %s, %v", i, owner, have, want, got, err)
					}
				case held:
					if err != nil || got != have {
						t.Fatalf("step %d: %s holds %s, got %s, %v", i, owner, have, got, err)
					}
				case want.IsValid() && taken:
					if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("%q", other)) {
						t.Fatalf("step %d: %s wants %s held by %s: %s, %v", i, owner, want, other, got, err)
					}
				case want.IsValid():
					if err != nil || got != want {
						t.Fatalf("step %d: %s wants free %s: %s, %v", i, owner, want, got, err)
					}
					model[owner] = got
				default:
					var lowest netip.Addr
					for _, h := range hosts {
						if _, ok := holder(h); !ok {
							lowest = h
							break
						}
					}
					if !lowest.IsValid() {
						if !errors.Is(err, ErrFull) {
							t.Fatalf("step %d: %s on a full subnet: %s, %v", i, owner, got, err)
						}
						break
					}
					if err != nil || got != lowest {
						t.Fatalf("step %d: %s got %s, %v; want %s", i, owner, got, err, lowest)
					}
					model[owner] = got
				}
			case 2:
				if err := s.Release(ctx, "n", owner); err != nil {
					t.Fatal(err)
				}
				delete(model, owner)
			case 3:
				r, err := Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				stores[op>>7] = r
			}
			owners, err := stores[arg&1].Owners("n")
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(owners) != fmt.Sprint(model) {
				t.Fatalf("step %d: store %v, model %v", i, owners, model)
			}
			seen := map[netip.Addr]string{}
			for o, a := range owners {
				if p, dup := seen[a]; dup {
					t.Fatalf("step %d: %s held by %s and %s", i, a, p, o)
				}
				seen[a] = o
			}
		}
	})
}
