package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a second berth process: it
// allocates addresses in the store named by the variable and prints them.
const helperEnv = "BERTH_IPAM_TEST_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helper(dir))
	}
	os.Exit(m.Run())
}

func helper(dir string) int {
	s, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	got := map[string]netip.Addr{}
	for i := range 40 {
		owner := fmt.Sprintf("pid%d-%d", os.Getpid(), i)
		a, err := s.Allocate(context.Background(), "net", pfx("10.1.0.0/24"), netip.Addr{}, owner, netip.Addr{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		got[owner] = a
	}
	if err := json.NewEncoder(os.Stdout).Encode(got); err != nil {
		return 1
	}
	return 0
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAllocateOrder(t *testing.T) {
	tests := []struct {
		name    string
		subnet  string
		gateway string
		n       int
		want    []string
	}{
		{"default gateway", "10.89.0.0/24", "", 3, []string{"10.89.0.2", "10.89.0.3", "10.89.0.4"}},
		{"gateway in the middle", "10.89.0.0/29", "10.89.0.3", 5, []string{"10.89.0.1", "10.89.0.2", "10.89.0.4", "10.89.0.5", "10.89.0.6"}},
		{"gateway last host", "192.168.7.0/30", "192.168.7.2", 1, []string{"192.168.7.1"}},
		{"crosses an octet", "10.0.0.0/23", "", 1, []string{"10.0.0.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			var gw netip.Addr
			if tt.gateway != "" {
				gw = ip(tt.gateway)
			}
			var got []string
			for i := range tt.n {
				a, err := s.Allocate(t.Context(), "n", pfx(tt.subnet), gw, fmt.Sprint("c", i), netip.Addr{})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, a.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAllocateCrossesOctets(t *testing.T) {
	s := newStore(t)
	var last netip.Addr
	for i := range 300 {
		a, err := s.Allocate(t.Context(), "n", pfx("10.0.0.0/23"), netip.Addr{}, fmt.Sprint("c", i), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		last = a
	}
	// .0 network, .1 gateway, then 300 addresses: 10.0.0.2 .. 10.0.1.45.
	if last != ip("10.0.1.45") {
		t.Errorf("300th address %s, want 10.0.1.45", last)
	}
}

func TestAllocateIdempotent(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sub := pfx("10.89.0.0/24")
	a, err := s.Allocate(ctx, "n", sub, netip.Addr{}, "web", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Allocate(ctx, "n", sub, netip.Addr{}, "db", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []netip.Addr{{}, a} {
		b, err := s.Allocate(ctx, "n", sub, netip.Addr{}, "web", want)
		if err != nil || b != a {
			t.Errorf("again with want %v: %s, %v; want %s", want, b, err, a)
		}
	}
	_, err = s.Allocate(ctx, "n", sub, netip.Addr{}, "web", ip("10.89.0.50"))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), a.String()) {
		t.Errorf("another address for the same owner: %v", err)
	}
	owners, err := s.Owners("n")
	if err != nil || len(owners) != 2 || owners["web"] != a {
		t.Errorf("owners %v, %v", owners, err)
	}
}

func TestAllocateWant(t *testing.T) {
	sub := pfx("10.89.0.0/24")
	tests := []struct {
		name    string
		want    string
		wantErr string
		is      error
	}{
		{"free", "10.89.0.77", "", nil},
		{"outside the subnet", "10.90.0.7", "outside subnet 10.89.0.0/24", nil},
		{"ipv6", "fd00::7", "outside subnet", nil},
		{"gateway", "10.89.0.1", "is the gateway", nil},
		{"network address", "10.89.0.0", "is the network address", nil},
		{"broadcast", "10.89.0.255", "is the broadcast address", nil},
		{"held by another owner", "10.89.0.2", `in use by owner "db"`, ErrInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			if a, err := s.Allocate(ctx, "n", sub, netip.Addr{}, "db", netip.Addr{}); err != nil || a != ip("10.89.0.2") {
				t.Fatalf("db: %s, %v", a, err)
			}
			got, err := s.Allocate(ctx, "n", sub, netip.Addr{}, "web", ip(tt.want))
			if tt.wantErr == "" {
				if err != nil || got != ip(tt.want) {
					t.Fatalf("got %s, %v", got, err)
				}
				// The next owner without a wish still gets the lowest.
				if a, err := s.Allocate(ctx, "n", sub, netip.Addr{}, "x", netip.Addr{}); err != nil || a != ip("10.89.0.3") {
					t.Errorf("next: %s, %v", a, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if _, ok, _ := s.Lookup("n", "web"); ok {
				t.Error("a refused owner holds an address")
			}
		})
	}
}

func TestAllocateFull(t *testing.T) {
	tests := []struct {
		subnet string
		n      int
		text   string
	}{
		{"10.89.0.0/30", 1, "subnet 10.89.0.0/30 (1 usable address) is full"},
		{"10.89.0.8/29", 5, "subnet 10.89.0.8/29 (5 usable addresses) is full"},
	}
	for _, tt := range tests {
		t.Run(tt.subnet, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			seen := map[netip.Addr]bool{}
			for i := range tt.n {
				a, err := s.Allocate(ctx, "n", pfx(tt.subnet), netip.Addr{}, fmt.Sprint("c", i), netip.Addr{})
				if err != nil {
					t.Fatal(err)
				}
				if seen[a] {
					t.Fatalf("%s handed out twice", a)
				}
				seen[a] = true
			}
			_, err := s.Allocate(ctx, "n", pfx(tt.subnet), netip.Addr{}, "one-too-many", netip.Addr{})
			if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %v, want ErrFull with %q", err, tt.text)
			}
			// An owner that holds an address still gets it on a full subnet.
			if _, err := s.Allocate(ctx, "n", pfx(tt.subnet), netip.Addr{}, "c0", netip.Addr{}); err != nil {
				t.Errorf("holder on a full subnet: %v", err)
			}
			if err := s.Release(ctx, "n", "c0"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Allocate(ctx, "n", pfx(tt.subnet), netip.Addr{}, "one-too-many", netip.Addr{}); err != nil {
				t.Errorf("after a release: %v", err)
			}
		})
	}
}

func TestReleaseReuse(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sub := pfx("10.89.0.0/24")
	alloc := func(owner string) netip.Addr {
		t.Helper()
		a, err := s.Allocate(ctx, "n", sub, netip.Addr{}, owner, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	alloc("a")
	b := alloc("b")
	alloc("c")
	if err := s.Release(ctx, "n", "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Lookup("n", "b"); ok || err != nil {
		t.Errorf("b still holds an address: %v", err)
	}
	if d := alloc("d"); d != b {
		t.Errorf("d got %s, want the released %s", d, b)
	}
	for _, tt := range [][2]string{{"n", "nobody"}, {"unknown", "b"}} {
		if err := s.Release(ctx, tt[0], tt[1]); err != nil {
			t.Errorf("release %v: %v", tt, err)
		}
	}
	if err := s.DropNetwork(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if owners, err := s.Owners("n"); err != nil || len(owners) != 0 {
		t.Errorf("owners after drop: %v, %v", owners, err)
	}
	if err := s.DropNetwork(ctx, "n"); err != nil {
		t.Errorf("second drop: %v", err)
	}
	// A dropped network may come back with another subnet.
	if a, err := s.Allocate(ctx, "n", pfx("10.7.0.0/24"), netip.Addr{}, "a", netip.Addr{}); err != nil || a != ip("10.7.0.2") {
		t.Errorf("after drop: %s, %v", a, err)
	}
}

func TestAllocateSubnetMismatch(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Allocate(ctx, "n", pfx("10.89.0.0/24"), netip.Addr{}, "a", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		subnet, gateway string
	}{{"10.89.1.0/24", ""}, {"10.89.0.0/25", ""}, {"10.89.0.0/24", "10.89.0.254"}} {
		var gw netip.Addr
		if tt.gateway != "" {
			gw = ip(tt.gateway)
		}
		_, err := s.Allocate(ctx, "n", pfx(tt.subnet), gw, "b", netip.Addr{})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("%v: error %v, want ErrConflict", tt, err)
		}
	}
}

func TestAllocateInvalidInput(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	tests := []struct {
		name, network, subnet, owner, text string
	}{
		{"empty network", "", "10.0.0.0/24", "a", "empty network name"},
		{"path in the name", "../x", "10.0.0.0/24", "a", "invalid network name"},
		{"dot name", ".lock", "10.0.0.0/24", "a", "invalid network name"},
		{"empty owner", "n", "10.0.0.0/24", "", "empty owner"},
		{"host bits", "n", "10.0.0.5/24", "a", "did you mean 10.0.0.0/24"},
		{"/31", "n", "10.0.0.0/31", "a", "prefix length"},
		{"ipv6", "n", "fd00::/64", "a", "only IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Allocate(ctx, tt.network, pfx(tt.subnet), netip.Addr{}, tt.owner, netip.Addr{})
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %v, want one containing %q", err, tt.text)
			}
		})
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), networksDir))
	if len(ents) != 0 {
		t.Errorf("refused requests left files: %v", ents)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]netip.Addr{}
	for _, o := range []string{"a", "b", "c"} {
		a, err := s.Allocate(ctx, "n", pfx("10.89.0.0/24"), netip.Addr{}, o, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		want[o] = a
	}
	if err := s.Release(ctx, "n", "b"); err != nil {
		t.Fatal(err)
	}
	delete(want, "b")
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Owners("n")
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen: %v, %v; want %v", got, err, want)
	}
	if a, ok, err := s2.Lookup("n", "c"); !ok || err != nil || a != want["c"] {
		t.Errorf("lookup c: %s %v %v", a, ok, err)
	}
	if a, err := s2.Allocate(ctx, "n", pfx("10.89.0.0/24"), netip.Addr{}, "a", netip.Addr{}); err != nil || a != want["a"] {
		t.Errorf("a after reopen: %s, %v", a, err)
	}
	fi, err := os.Stat(filepath.Join(dir, networksDir, "n.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v, %v", fi, err)
	}
}

// TestConcurrentStores runs two Stores on one directory from many
// goroutines, allocating and releasing, and checks that no address is
// ever held by two owners.
func TestConcurrentStores(t *testing.T) {
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
	sub := pfx("10.89.0.0/25") // 125 usable addresses
	var (
		mu   sync.Mutex
		live = map[netip.Addr]string{}
		wg   sync.WaitGroup
	)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for i := range 8 {
				owner := fmt.Sprintf("g%d-%d", g, i)
				a, err := s.Allocate(ctx, "n", sub, netip.Addr{}, owner, netip.Addr{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if other, ok := live[a]; ok {
					t.Errorf("%s handed to %s while %s holds it", a, owner, other)
				}
				live[a] = owner
				mu.Unlock()
				if i%3 == 0 {
					// Forget it in our books before the store frees it, as a
					// caller tears down before releasing.
					mu.Lock()
					delete(live, a)
					mu.Unlock()
					if err := s.Release(ctx, "n", owner); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	owners, err := stores[0].Owners("n")
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != len(live) {
		t.Errorf("store has %d owners, the goroutines hold %d", len(owners), len(live))
	}
	for o, a := range owners {
		if live[a] != o {
			t.Errorf("store says %s holds %s, goroutines say %q", o, a, live[a])
		}
	}
}

// TestConcurrentProcesses runs the test binary three times at once on one
// store, as three berth processes, and checks that their addresses are
// distinct.
func TestConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]bytes.Buffer, 3)
	var cmds []*exec.Cmd
	for i := range outs {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		cmd.Stdout = &outs[i]
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}
	seen := map[netip.Addr]string{}
	for _, out := range outs {
		var got map[string]netip.Addr
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("helper output %q: %v", out.String(), err)
		}
		for o, a := range got {
			if other, ok := seen[a]; ok {
				t.Errorf("%s handed to %s and %s", a, o, other)
			}
			seen[a] = o
		}
	}
	if len(seen) != 120 {
		t.Errorf("%d distinct addresses, want 120", len(seen))
	}
}

func TestCorruptFile(t *testing.T) {
	valid := `{"version":1,"network":"n","subnet":"10.89.0.0/24","gateway":"10.89.0.1","addresses":{"a":"10.89.0.2"}}`
	tests := []struct {
		name, content, text string
	}{
		{"empty", "", "unexpected end of JSON input"},
		{"torn", valid[:len(valid)/2], "unexpected end of JSON input"},
		{"garbage", "\x00\x00\x00", "invalid character"},
		{"trailing data", valid + "}", "invalid character"},
		{"newer version", strings.Replace(valid, `"version":1`, `"version":9`, 1), "unknown version 9"},
		{"other network", strings.Replace(valid, `"network":"n"`, `"network":"m"`, 1), `records network "m"`},
		{"unparsable subnet", strings.Replace(valid, `10.89.0.0/24`, `10.89.0.0/33`, 1), "prefix length out of range"},
		{"subnet too small", strings.Replace(valid, `10.89.0.0/24`, `10.89.0.0/31`, 1), "prefix length must be between"},
		{"address outside", strings.Replace(valid, `"10.89.0.2"`, `"10.90.0.2"`, 1), "outside subnet"},
		{"address is the gateway", strings.Replace(valid, `"10.89.0.2"`, `"10.89.0.1"`, 1), "is the gateway"},
		{"address twice", strings.Replace(valid, `"a":"10.89.0.2"`, `"a":"10.89.0.2","b":"10.89.0.2"`, 1), `held by both "a" and "b"`},
		{"no gateway", strings.Replace(valid, `"gateway":"10.89.0.1",`, ``, 1), "no gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			path := filepath.Join(s.Dir(), networksDir, "n.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.text) {
					t.Errorf("%s: error %v, want ErrCorrupt naming %s and %q", op, err, path, tt.text)
				}
			}
			_, err := s.Allocate(ctx, "n", pfx("10.89.0.0/24"), netip.Addr{}, "x", netip.Addr{})
			check("allocate", err)
			check("release", s.Release(ctx, "n", "a"))
			_, _, err = s.Lookup("n", "a")
			check("lookup", err)
			_, err = s.Owners("n")
			check("owners", err)
			_, err = s.Networks()
			check("networks", err)
			_, err = s.EnsureNetwork(ctx, "n", NetworkRequest{Subnet: pfx("10.89.0.0/24")})
			check("ensure", err)
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Errorf("the file was changed to %q", b)
			}
			// Other networks keep working.
			if _, err := s.Allocate(ctx, "m", pfx("10.90.0.0/24"), netip.Addr{}, "x", netip.Addr{}); err != nil {
				t.Errorf("another network: %v", err)
			}
		})
	}
}

func TestStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Allocate(t.Context(), "n", pfx("10.89.0.0/24"), netip.Addr{}, "a", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write leaves a temporary file behind.
	stale := filepath.Join(dir, networksDir, tmpPrefix+"123")
	if err := os.WriteFile(stale, []byte(`{"version":1,"net`), 0o600); err != nil {
		t.Fatal(err)
	}
	nets, err := s.Networks()
	if err != nil || len(nets) != 1 || nets["n"].Subnet != pfx("10.89.0.0/24") || nets["n"].Gateway != ip("10.89.0.1") {
		t.Errorf("networks with a stale file: %v, %v", nets, err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open left the stale file: %v", err)
	}
	if a, ok, err := s.Lookup("n", "a"); !ok || err != nil || a != ip("10.89.0.2") {
		t.Errorf("lookup: %s %v %v", a, ok, err)
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	s := newStore(t)
	f, err := os.OpenFile(filepath.Join(s.Dir(), lockFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := s.Allocate(ctx, "n", pfx("10.89.0.0/24"), netip.Addr{}, "a", netip.Addr{})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("allocate while another holds the lock: %v", err)
	}
	if _, ok, _ := s.Lookup("n", "a"); ok {
		t.Error("allocated while another held the lock")
	}
	f.Close()
	if _, err := s.Allocate(t.Context(), "n", pfx("10.89.0.0/24"), netip.Addr{}, "a", netip.Addr{}); err != nil {
		t.Errorf("after the lock is free: %v", err)
	}
}

func TestEnsureNetwork(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	pool := pfx("10.89.0.0/16")
	pick := NetworkRequest{Pool: pool, Bits: 24}
	ensure := func(name string, req NetworkRequest) (Network, error) {
		t.Helper()
		return s.EnsureNetwork(ctx, name, req)
	}
	a, err := ensure("a", NetworkRequest{Pool: pool, Bits: 24, Avoid: []netip.Prefix{pfx("10.89.0.0/23"), pfx("0.0.0.0/0")}})
	if err != nil || a != (Network{pfx("10.89.2.0/24"), ip("10.89.2.1")}) {
		t.Fatalf("a: %v, %v", a, err)
	}
	// A picked subnet is stable.
	if again, err := ensure("a", pick); err != nil || again != a {
		t.Errorf("a again: %v, %v", again, err)
	}
	b, err := ensure("b", pick)
	if err != nil || b.Subnet != pfx("10.89.0.0/24") {
		t.Errorf("b: %v, %v", b, err)
	}
	c, err := ensure("c", NetworkRequest{Subnet: pfx("172.30.0.0/16"), Gateway: ip("172.30.255.254")})
	if err != nil || c != (Network{pfx("172.30.0.0/16"), ip("172.30.255.254")}) {
		t.Errorf("c: %v, %v", c, err)
	}
	tests := []struct {
		name string
		net  string
		req  NetworkRequest
		is   error
		text string
	}{
		{"overlaps another network", "d", NetworkRequest{Subnet: pfx("10.89.2.128/25")}, ErrInUse, `overlaps subnet 10.89.2.0/24, in use by network "a"`},
		{"overlaps a route", "d", NetworkRequest{Subnet: pfx("192.168.1.0/24"), Avoid: []netip.Prefix{pfx("192.168.0.0/16")}}, ErrInUse, "overlaps 192.168.0.0/16"},
		{"other subnet", "a", NetworkRequest{Subnet: pfx("10.89.9.0/24")}, ErrConflict, "subnet 10.89.2.0/24"},
		{"other gateway", "c", NetworkRequest{Subnet: pfx("172.30.0.0/16")}, ErrConflict, "gateway 172.30.255.254"},
		{"invalid gateway", "d", NetworkRequest{Subnet: pfx("10.99.0.0/24"), Gateway: ip("10.98.0.1")}, nil, "outside subnet"},
		{"nothing to pick from", "d", NetworkRequest{}, nil, "no subnet given and no pool"},
		{"pool full", "d", NetworkRequest{Pool: pfx("10.89.0.0/23"), Bits: 24, Avoid: []netip.Prefix{pfx("10.89.1.0/24")}}, ErrFull, "pool 10.89.0.0/23 (2 subnets of /24) is full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ensure(tt.net, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.text) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want %v with %q", err, tt.is, tt.text)
			}
		})
	}
	nets, err := s.Networks()
	if err != nil || len(nets) != 3 || nets["a"] != a || nets["b"] != b || nets["c"] != c {
		t.Errorf("networks %v, %v", nets, err)
	}
	// Allocate agrees with the recorded network.
	if addr, err := s.Allocate(ctx, "a", a.Subnet, a.Gateway, "x", netip.Addr{}); err != nil || addr != ip("10.89.2.2") {
		t.Errorf("allocate: %s, %v", addr, err)
	}
	if err := s.DropNetwork(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if d, err := ensure("d", pick); err != nil || d.Subnet != pfx("10.89.0.0/24") {
		t.Errorf("d after dropping b: %v, %v", d, err)
	}
}

// TestEnsureNetworkConcurrent picks subnets for many networks at once from
// two Stores and checks that none overlap.
func TestEnsureNetworkConcurrent(t *testing.T) {
	dir := t.TempDir()
	var stores [2]*Store
	for i := range stores {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := stores[i%2].EnsureNetwork(t.Context(), fmt.Sprint("net", i), NetworkRequest{Pool: pfx("10.89.0.0/16"), Bits: 24})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	nets, err := stores[0].Networks()
	if err != nil || len(nets) != 12 {
		t.Fatalf("networks %v, %v", nets, err)
	}
	for n, a := range nets {
		for m, b := range nets {
			if n != m && Overlaps(a.Subnet, b.Subnet) {
				t.Errorf("%s %s and %s %s overlap", n, a.Subnet, m, b.Subnet)
			}
		}
	}
}
