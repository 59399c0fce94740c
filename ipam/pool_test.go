package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// all172 is every default /16, 172.17.0.0/16 to 172.31.0.0/16.
func all172() []string {
	var out []string
	for b := 17; b <= 31; b++ {
		out = append(out, fmt.Sprintf("172.%d.0.0/16", b))
	}
	return out
}

func TestDefaultLocalPoolsAreDockers(t *testing.T) {
	pools := DefaultLocalPools()
	if len(pools) != 16 {
		t.Fatalf("got %d pools, want 16", len(pools))
	}
	for i, s := range all172() {
		if want := (PoolSpec{netip.MustParsePrefix(s), 16}); pools[i] != want {
			t.Errorf("pool %d = %v, want %v", i, pools[i], want)
		}
	}
	if want := (PoolSpec{netip.MustParsePrefix("192.168.0.0/16"), 20}); pools[15] != want {
		t.Errorf("last pool = %v, want %v", pools[15], want)
	}
}

func TestNextSubnetFromDefaultPools(t *testing.T) {
	space, err := NewSpace(DefaultLocalPools())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		inUse []string
		want  string
	}{
		{"nothing in use", nil, "172.17.0.0/16"},
		{"first two in use", []string{"172.17.0.0/16", "172.18.0.0/16"}, "172.19.0.0/16"},
		{"in use given out of order", []string{"172.18.0.0/16", "172.17.0.0/16"}, "172.19.0.0/16"},
		{"host address with host bits", []string{"172.17.0.1/16"}, "172.18.0.0/16"},
		{"host route inside a candidate", []string{"172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16", "172.20.5.0/24"}, "172.21.0.0/16"},
		{"single host address", []string{"172.17.200.3/32"}, "172.18.0.0/16"},
		{"wide route covers all of 172.16/12", []string{"172.16.0.0/12"}, "192.168.0.0/20"},
		{"nested prefixes", []string{"172.16.0.0/12", "172.17.0.0/16", "172.20.1.0/24"}, "192.168.0.0/20"},
		{"all /16s in use", all172(), "192.168.0.0/20"},
		{"first /20 in use", append(all172(), "192.168.0.0/20"), "192.168.16.0/20"},
		{"small route in the first /20", append(all172(), "192.168.1.0/24"), "192.168.16.0/20"},
		{"other families and pools ignored", []string{"fd00::/8", "::/0", "10.0.0.0/8", "172.15.0.0/16"}, "172.17.0.0/16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := space.NextSubnet(prefixes(tt.inUse...))
			if err != nil {
				t.Fatal(err)
			}
			if got != netip.MustParsePrefix(tt.want) {
				t.Errorf("NextSubnet = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNextSubnetWalksAll31DefaultNetworks(t *testing.T) {
	space, err := NewSpace(DefaultLocalPools())
	if err != nil {
		t.Fatal(err)
	}
	var inUse []netip.Prefix
	for range 31 {
		p, err := space.NextSubnet(inUse)
		if err != nil {
			t.Fatalf("after %d networks: %v", len(inUse), err)
		}
		for _, u := range inUse {
			if u.Overlaps(p) {
				t.Fatalf("%s overlaps %s, which is in use", p, u)
			}
		}
		inUse = append(inUse, p)
	}
	if inUse[14] != netip.MustParsePrefix("172.31.0.0/16") || inUse[15] != netip.MustParsePrefix("192.168.0.0/20") ||
		inUse[16] != netip.MustParsePrefix("192.168.16.0/20") || inUse[30] != netip.MustParsePrefix("192.168.240.0/20") {
		t.Errorf("unexpected order: %v", inUse)
	}
	_, err = space.NextSubnet(inUse)
	const want = "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrPoolsExhausted) || !errdefs.IsNotFound(err) {
		t.Errorf("error %v is not ErrPoolsExhausted / NotFound", err)
	}
}

func TestNextSubnetFromCustomPools(t *testing.T) {
	var pools []PoolSpec
	for _, s := range []string{"base=10.10.0.0/16,size=24", "base=10.20.0.0/23,size=24"} {
		p, err := ParsePoolSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, p)
	}
	space, err := NewSpace(pools)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		inUse []string
		want  string
	}{
		{nil, "10.10.0.0/24"},
		{[]string{"10.10.0.0/23"}, "10.10.2.0/24"},
		{[]string{"10.10.0.0/24", "10.10.2.0/24"}, "10.10.1.0/24"},
		{[]string{"10.0.0.0/8"}, ""},
		{[]string{"10.10.0.0/16"}, "10.20.0.0/24"},
		{[]string{"10.10.0.0/16", "10.20.0.77/32"}, "10.20.1.0/24"},
	}
	for _, tt := range tests {
		got, err := space.NextSubnet(prefixes(tt.inUse...))
		if tt.want == "" {
			if !errors.Is(err, ErrPoolsExhausted) {
				t.Errorf("inUse %v: got %v, %v; want ErrPoolsExhausted", tt.inUse, got, err)
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("inUse %v: got %v, %v; want %s", tt.inUse, got, err, tt.want)
		}
	}
}

func TestNextSubnetIPv6(t *testing.T) {
	space, err := NewSpace([]PoolSpec{{netip.MustParsePrefix("fd00::/62"), 64}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := space.NextSubnet(prefixes("fd00::/64", "fd00:0:0:1::1/128", "172.17.0.0/16"))
	if err != nil || got != netip.MustParsePrefix("fd00:0:0:2::/64") {
		t.Errorf("got %v, %v; want fd00:0:0:2::/64", got, err)
	}
	_, err = space.NextSubnet(prefixes("fd00::/16"))
	const want = "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestNextSubnetMatchesBruteForce(t *testing.T) {
	pools := []PoolSpec{
		{netip.MustParsePrefix("10.0.0.0/16"), 24},
		{netip.MustParsePrefix("10.0.128.0/17"), 20}, // overlaps the first pool on purpose
		{netip.MustParsePrefix("10.1.0.0/20"), 28},
	}
	space, err := NewSpace(pools)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var inUse []netip.Prefix
		for range rng.IntN(400) {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(2)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			inUse = append(inUse, netip.PrefixFrom(a, 14+rng.IntN(19)))
		}
		want := bruteForceNextSubnet(pools, inUse)
		got, err := space.NextSubnet(inUse)
		if !want.IsValid() {
			if !errors.Is(err, ErrPoolsExhausted) {
				t.Fatalf("inUse %v: got %v, %v; want exhausted", inUse, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Fatalf("inUse %v: got %v, %v; want %v", inUse, got, err, want)
		}
	}
}

func bruteForceNextSubnet(pools []PoolSpec, inUse []netip.Prefix) netip.Prefix {
	for _, p := range pools {
		for c := p.Base.Addr(); p.Base.Contains(c); c = lastAddr(netip.PrefixFrom(c, p.Size)).Next() {
			candidate := netip.PrefixFrom(c, p.Size)
			free := true
			for _, u := range inUse {
				free = free && !u.Overlaps(candidate)
			}
			if free {
				return candidate
			}
		}
	}
	return netip.Prefix{}
}

func TestParsePoolSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    PoolSpec
		wantErr string
	}{
		{in: "base=10.10.0.0/16,size=24", want: PoolSpec{netip.MustParsePrefix("10.10.0.0/16"), 24}},
		{in: "size=24, BASE=10.10.0.0/16", want: PoolSpec{netip.MustParsePrefix("10.10.0.0/16"), 24}},
		{in: "base=172.80.0.0/16,size=16", want: PoolSpec{netip.MustParsePrefix("172.80.0.0/16"), 16}},
		{in: "base=fd00::/48,size=64", want: PoolSpec{netip.MustParsePrefix("fd00::/48"), 64}},
		{in: "base=10.10.0.0/16", wantErr: `invalid default address pool "base=10.10.0.0/16": missing size`},
		{in: "size=24", wantErr: `invalid default address pool "size=24": missing base`},
		{in: "", wantErr: `"" is not a key=value pair`},
		{in: "base=10.10.0.0/16,size=8", wantErr: "size 8 is smaller than the prefix length of base 10.10.0.0/16"},
		{in: "base=10.0.0.0/8,size=33", wantErr: "size 33 is larger than 32, the length of an IPv4 address"},
		{in: "base=fd00::/8,size=129", wantErr: "size 129 is larger than 128, the length of an IPv6 address"},
		{in: "base=10.0.0.0/8,size=24,gateway=10.0.0.1", wantErr: `unknown key "gateway" (the keys are base and size)`},
		{in: "base=10.0.0.0/8,size", wantErr: `"size" is not a key=value pair`},
		{in: "base=10.0.0.0/8,size=big", wantErr: `size "big" is not a number`},
		{in: "base=10.0.0.0/33,size=24", wantErr: `base "10.0.0.0/33" is not a CIDR prefix`},
		{in: "base=10.0.0.1/8,size=24", wantErr: "base 10.0.0.1/8 has host bits set, it should be 10.0.0.0/8"},
		{in: "base=10.0.0.0/8,base=11.0.0.0/8,size=24", wantErr: "base given twice"},
	}
	for _, tt := range tests {
		got, err := ParsePoolSpec(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("ParsePoolSpec(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePoolSpec(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if again, err := ParsePoolSpec(got.String()); err != nil || again != got {
			t.Errorf("ParsePoolSpec(%q) = %v, %v; want %v", got.String(), again, err, got)
		}
	}
}

func TestNewSpaceRejectsBadPools(t *testing.T) {
	tests := map[string][]PoolSpec{
		"no pools":       nil,
		"mixed families": {{netip.MustParsePrefix("10.0.0.0/8"), 16}, {netip.MustParsePrefix("fd00::/48"), 64}},
		"size too small": {{netip.MustParsePrefix("10.0.0.0/8"), 7}},
		"zero base":      {{Size: 24}},
	}
	for name, pools := range tests {
		if _, err := NewSpace(pools); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: error = %v, want an InvalidArgument error", name, err)
		}
	}
}

func TestCheckPoolOverlap(t *testing.T) {
	existing := prefixes("172.17.0.0/16", "10.1.2.0/24")
	for _, tt := range []struct {
		subnet  string
		overlap bool
	}{
		{"172.17.5.0/24", true},
		{"10.0.0.0/8", true},
		{"10.1.2.77/24", true},
		{"10.1.3.0/24", false},
		{"172.18.0.0/16", false},
		{"fd00::/64", false},
	} {
		err := CheckPoolOverlap(netip.MustParsePrefix(tt.subnet), existing)
		if !tt.overlap {
			if err != nil {
				t.Errorf("%s: unexpected %v", tt.subnet, err)
			}
			continue
		}
		if err == nil || err.Error() != "Pool overlaps with other one on this address space" ||
			!errors.Is(err, ErrPoolOverlap) || !errdefs.IsPermissionDenied(err) {
			t.Errorf("%s: error = %v, want ErrPoolOverlap (403)", tt.subnet, err)
		}
	}
}

func BenchmarkSpaceNextSubnet(b *testing.B) {
	space, err := NewSpace([]PoolSpec{{netip.MustParsePrefix("10.0.0.0/8"), 24}})
	if err != nil {
		b.Fatal(err)
	}
	// The first 10,000 /24s are taken, given in random order, so every call
	// sorts them and jumps over all of them.
	inUse := make([]netip.Prefix, 10000)
	for i := range inUse {
		inUse[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(inUse), func(i, j int) { inUse[i], inUse[j] = inUse[j], inUse[i] })
	want := netip.MustParsePrefix("10.39.16.0/24")
	for b.Loop() {
		if got, err := space.NextSubnet(inUse); err != nil || got != want {
			b.Fatalf("got %v, %v; want %v", got, err, want)
		}
	}
}
