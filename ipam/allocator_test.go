package ipam

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/containerd/errdefs"
)

func newAllocator(t testing.TB, subnet, ipRange string) *Allocator {
	t.Helper()
	var r netip.Prefix
	if ipRange != "" {
		r = netip.MustParsePrefix(ipRange)
	}
	a, err := NewAllocator(netip.MustParsePrefix(subnet), r)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustNext(t testing.TB, a *Allocator, want string) {
	t.Helper()
	got, err := a.Next()
	if err != nil {
		t.Fatalf("Next: %v, want %s", err, want)
	}
	if got != netip.MustParseAddr(want) {
		t.Fatalf("Next = %s, want %s", got, want)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// v4 returns the IPv4 address with numeric value n.
func v4(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func TestAllocatorHandsOutLowestFreeAfterGateway(t *testing.T) {
	a := newAllocator(t, "172.29.10.0/24", "")
	if err := a.Reserve(addr("172.29.10.1")); err != nil {
		t.Fatal(err)
	}
	mustNext(t, a, "172.29.10.2")
	mustNext(t, a, "172.29.10.3")
	mustNext(t, a, "172.29.10.4")
	if err := a.Release(addr("172.29.10.2")); err != nil {
		t.Fatal(err)
	}
	mustNext(t, a, "172.29.10.2")
	mustNext(t, a, "172.29.10.5")
	if a.Len() != 5 {
		t.Errorf("Len = %d, want 5", a.Len())
	}
	if !a.Allocated(addr("172.29.10.1")) || a.Allocated(addr("172.29.10.6")) {
		t.Error("Allocated disagrees with what was handed out")
	}
}

func TestAllocatorAcceptsNonCanonicalSubnet(t *testing.T) {
	a := newAllocator(t, "172.29.30.1/24", "")
	if a.Subnet() != netip.MustParsePrefix("172.29.30.0/24") {
		t.Errorf("Subnet = %s", a.Subnet())
	}
	mustNext(t, a, "172.29.30.1")
}

func TestAllocatorIPRange(t *testing.T) {
	a := newAllocator(t, "10.20.0.0/24", "10.20.0.128/25")
	mustNext(t, a, "10.20.0.128") // the range's own network address is usable
	mustNext(t, a, "10.20.0.129")
	if err := a.Reserve(addr("10.20.0.5")); err != nil {
		t.Errorf("Reserve inside the subnet, outside the range: %v", err)
	}
	err := a.Reserve(addr("172.29.99.5"))
	const want = "Invalid address 172.29.99.5: It does not belong to any of this network's subnets"
	if err == nil || err.Error() != want || !errors.Is(err, ErrNotInSubnet) || !errdefs.IsInvalidArgument(err) {
		t.Errorf("Reserve outside the subnet: %v, want %q", err, want)
	}
	for i := 130; i <= 254; i++ {
		mustNext(t, a, v4(10<<24|20<<16|uint32(i)).String())
	}
	if got, err := a.Next(); !errors.Is(err, ErrNoAvailableAddress) {
		t.Errorf("Next after the range is full = %v, %v; want ErrNoAvailableAddress (broadcast .255 is never handed out)", got, err)
	}
	if a.Allocated(addr("10.20.0.4")) || !a.Allocated(addr("10.20.0.5")) {
		t.Error("Next strayed outside the range")
	}
}

func TestAllocatorRangeAtSubnetStartSkipsNetworkAddress(t *testing.T) {
	a := newAllocator(t, "10.20.0.0/24", "10.20.0.0/25")
	mustNext(t, a, "10.20.0.1")
}

func TestAllocatorExhaustsSmallSubnet(t *testing.T) {
	a := newAllocator(t, "192.0.2.8/29", "")
	for _, want := range []string{"192.0.2.9", "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14"} {
		mustNext(t, a, want)
	}
	_, err := a.Next()
	if !errors.Is(err, ErrNoAvailableAddress) || !errdefs.IsUnavailable(err) {
		t.Errorf("Next on a full /29: %v, want ErrNoAvailableAddress", err)
	}
	if a.Len() != 6 {
		t.Errorf("Len = %d, want 6", a.Len())
	}
}

func TestAllocatorNeverGivesNetworkOrBroadcast(t *testing.T) {
	a := newAllocator(t, "192.0.2.0/24", "")
	for _, s := range []string{"192.0.2.0", "192.0.2.255"} {
		if err := a.Reserve(addr(s)); !errors.Is(err, ErrReservedAddress) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("Reserve(%s) = %v, want ErrReservedAddress", s, err)
		}
		if err := a.Release(addr(s)); !errors.Is(err, ErrReservedAddress) {
			t.Errorf("Release(%s) = %v, want ErrReservedAddress", s, err)
		}
		if a.Allocated(addr(s)) {
			t.Errorf("Allocated(%s) = true", s)
		}
	}
	if err := a.Reserve(addr("192.0.2.255")); err == nil || err.Error() != "Invalid address 192.0.2.255: it is the broadcast address of subnet 192.0.2.0/24" {
		t.Errorf("Reserve(broadcast) error text: %v", err)
	}
	if a.Len() != 0 {
		t.Errorf("Len = %d, want 0", a.Len())
	}
}

func TestAllocatorPointToPointSubnetsUseEveryAddress(t *testing.T) {
	a := newAllocator(t, "192.0.2.4/31", "")
	mustNext(t, a, "192.0.2.4")
	mustNext(t, a, "192.0.2.5")
	a = newAllocator(t, "192.0.2.4/32", "")
	mustNext(t, a, "192.0.2.4")
	if _, err := a.Next(); !errors.Is(err, ErrNoAvailableAddress) {
		t.Errorf("second Next on a /32: %v", err)
	}
	a = newAllocator(t, "fd00::/127", "")
	mustNext(t, a, "fd00::")
	mustNext(t, a, "fd00::1")
}

func TestAllocatorReserveTwiceConflicts(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/24", "")
	if err := a.Reserve(addr("10.0.0.7")); err != nil {
		t.Fatal(err)
	}
	err := a.Reserve(addr("10.0.0.7"))
	if err == nil || err.Error() != "Address already in use" || !errors.Is(err, ErrAddressInUse) || !errdefs.IsPermissionDenied(err) {
		t.Errorf("second Reserve = %v, want ErrAddressInUse", err)
	}
	if a.Len() != 1 {
		t.Errorf("Len = %d, want 1", a.Len())
	}
}

func TestAllocatorReleaseOfFreeAddressIsHarmless(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/24", "")
	mustNext(t, a, "10.0.0.1")
	for range 2 {
		if err := a.Release(addr("10.0.0.9")); !errors.Is(err, ErrNotAllocated) || !errdefs.IsNotFound(err) {
			t.Errorf("Release of a free address = %v, want ErrNotAllocated", err)
		}
	}
	if err := a.Release(addr("10.9.0.1")); !errors.Is(err, ErrNotInSubnet) {
		t.Errorf("Release outside the subnet = %v, want ErrNotInSubnet", err)
	}
	if a.Len() != 1 || !a.Allocated(addr("10.0.0.1")) {
		t.Error("a failed Release changed the allocator")
	}
}

func TestAllocatorIPv6(t *testing.T) {
	a := newAllocator(t, "fd00:1:2:3::/64", "")
	mustNext(t, a, "fd00:1:2:3::1") // the subnet-router anycast address ::0 is skipped
	mustNext(t, a, "fd00:1:2:3::2")
	last := addr("fd00:1:2:3:ffff:ffff:ffff:ffff")
	if err := a.Reserve(last); err != nil {
		t.Errorf("Reserve of the last address of a /64: %v", err)
	}
	if err := a.Reserve(addr("fd00:1:2:3::")); !errors.Is(err, ErrReservedAddress) {
		t.Errorf("Reserve of the anycast address = %v", err)
	}
	if err := a.Reserve(addr("10.0.0.1")); !errors.Is(err, ErrNotInSubnet) {
		t.Errorf("Reserve of an IPv4 address = %v", err)
	}
	if err := a.Release(addr("fd00:1:2:3::1")); err != nil {
		t.Fatal(err)
	}
	mustNext(t, a, "fd00:1:2:3::1")
	if !a.Allocated(last) || a.Len() != 3 {
		t.Errorf("Allocated(last) = %v, Len = %d", a.Allocated(last), a.Len())
	}
}

func TestAllocatorIPv6SubnetWiderThan64Bits(t *testing.T) {
	a := newAllocator(t, "fd00:1::/48", "fd00:1:0:5::/64")
	mustNext(t, a, "fd00:1:0:5::") // not the subnet's anycast address, so usable
	mustNext(t, a, "fd00:1:0:5::1")
	far := addr("fd00:1:0:9::7") // outside the 2^64 addresses the tree holds
	if err := a.Reserve(far); err != nil {
		t.Fatal(err)
	}
	if err := a.Reserve(far); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("second Reserve = %v", err)
	}
	if !a.Allocated(far) || a.Len() != 3 {
		t.Errorf("Allocated = %v, Len = %d", a.Allocated(far), a.Len())
	}
	if err := a.Release(far); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(far); !errors.Is(err, ErrNotAllocated) {
		t.Errorf("second Release = %v", err)
	}
	if err := a.Reserve(addr("fd00:1::")); !errors.Is(err, ErrReservedAddress) {
		t.Errorf("Reserve of the anycast address = %v", err)
	}

	a = newAllocator(t, "fd00:1::/48", "")
	mustNext(t, a, "fd00:1::1")
	if err := a.Reserve(addr("fd00:1:0:ffff:ffff:ffff:ffff:ffff")); err != nil {
		t.Errorf("Reserve of the subnet's last address: %v", err)
	}
}

func TestNewAllocatorRejectsBadRange(t *testing.T) {
	for _, tt := range []struct{ subnet, ipRange string }{
		{"10.0.0.0/24", "10.0.1.0/25"},
		{"10.0.0.0/24", "10.0.0.0/23"},
		{"10.0.0.0/24", "fd00::/120"},
	} {
		_, err := NewAllocator(netip.MustParsePrefix(tt.subnet), netip.MustParsePrefix(tt.ipRange))
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("NewAllocator(%s, %s) = %v, want InvalidArgument", tt.subnet, tt.ipRange, err)
		}
	}
	if _, err := NewAllocator(netip.Prefix{}, netip.Prefix{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("NewAllocator(zero) = %v", err)
	}
}

func TestAllocatorMillionAddressesInSlash8(t *testing.T) {
	const n = 1_000_000
	base := uint32(10 << 24)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	a := newAllocator(t, "10.0.0.0/8", "")
	for i := uint32(1); i <= n; i++ {
		got, err := a.Next()
		if err != nil || got != v4(base+i) {
			t.Fatalf("Next #%d = %v, %v; want %v", i, got, err, v4(base+i))
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// A flat bitmap of the /8 would take 2 MiB; the tree only keeps the
	// boundary between the taken run and the free rest.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 512<<10 {
		t.Errorf("heap grew by %d bytes for one run of taken addresses", grown)
	}
	runtime.KeepAlive(a)

	for _, i := range []uint32{777_777, 500_000, 4096, 262_144} {
		if err := a.Release(v4(base + i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []uint32{4096, 262_144, 500_000, 777_777, n + 1, n + 2} {
		mustNext(t, a, v4(base+want).String())
	}
	if a.Len() != n+2 {
		t.Errorf("Len = %d, want %d", a.Len(), n+2)
	}
}

func TestAllocatorFreesInsideFullSubtrees(t *testing.T) {
	a := newAllocator(t, "10.1.0.0/16", "")
	base := uint32(10<<24 | 1<<16)
	for i := uint32(1); i < 65535; i++ {
		mustNext(t, a, v4(base+i).String())
	}
	if _, err := a.Next(); !errors.Is(err, ErrNoAvailableAddress) {
		t.Fatalf("Next on a full /16: %v", err)
	}
	// Full subtrees are dropped: the root knows them full by one bit each.
	if a.root.present != 0 {
		t.Errorf("full /16 keeps child nodes %b", a.root.present)
	}
	for _, i := range []uint32{65000, 4097, 300} {
		if err := a.Release(v4(base + i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []uint32{300, 4097, 65000} {
		mustNext(t, a, v4(base+i).String())
	}
	if a.root.present != 0 {
		t.Errorf("refilled /16 keeps child nodes %b", a.root.present)
	}
	for i := uint32(1); i < 65535; i++ {
		if err := a.Release(v4(base + i)); err != nil {
			t.Fatal(err)
		}
	}
	// Only the subtrees holding the network and broadcast addresses remain.
	if a.root.present != 1|1<<15 || a.Len() != 0 {
		t.Errorf("emptied /16: child nodes %b, Len %d", a.root.present, a.Len())
	}
	mustNext(t, a, "10.1.0.1")
}

func BenchmarkAllocatorNextRelease(b *testing.B) {
	for _, tt := range []struct {
		name string
		n    int
	}{{"allocated=0", 0}, {"allocated=100000", 100_000}, {"allocated=1000000", 1_000_000}} {
		b.Run(tt.name, func(b *testing.B) {
			a := newAllocator(b, "10.0.0.0/8", "")
			for range tt.n {
				if _, err := a.Next(); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				got, err := a.Next()
				if err != nil {
					b.Fatal(err)
				}
				if err := a.Release(got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAllocatorRefillHole frees a random address among 1,000,000
// taken in a /8; Next must find it as the lowest free one.
func BenchmarkAllocatorRefillHole(b *testing.B) {
	a := newAllocator(b, "10.0.0.0/8", "")
	for range 1_000_000 {
		if _, err := a.Next(); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		hole := v4(10<<24 + 1 + uint32(rng.IntN(1_000_000)))
		if err := a.Release(hole); err != nil {
			b.Fatal(err)
		}
		if got, err := a.Next(); err != nil || got != hole {
			b.Fatalf("Next = %v, %v; want %v", got, err, hole)
		}
	}
}

func TestCapacityLeavesOutTheAddressesNoneMayTake(t *testing.T) {
	for _, tc := range []struct {
		subnet string
		want   float64
	}{
		{"10.0.0.0/24", 254},
		{"10.0.0.0/30", 2},
		{"fd00::/120", 255},
	} {
		a, err := NewAllocator(netip.MustParsePrefix(tc.subnet), netip.Prefix{})
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Capacity(); got != tc.want {
			t.Errorf("%s: capacity %v, want %v", tc.subnet, got, tc.want)
		}
		if _, err := a.Next(); err != nil || a.Len() != 1 {
			t.Errorf("%s: after Next: len %d, err %v", tc.subnet, a.Len(), err)
		}
	}
}
