package ipam

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// modelCase is an allocator set-up for the model test. An operand picks the
// address subnet start + operand (modulo the subnet's size). When far is
// set, the subnet is too big for that: the operand picks an address of the
// ip-range or, with its top bit set, one after far, where the tree does not
// reach.
type modelCase struct {
	subnet, ipRange string
	far             string
}

var modelCases = []modelCase{
	{subnet: "10.0.0.0/18"}, // three tree levels
	{subnet: "10.0.0.0/20", ipRange: "10.0.8.0/21"},
	{subnet: "10.0.0.0/24", ipRange: "10.0.0.64/26"},
	{subnet: "10.0.0.0/26"}, // the root is a bitmap
	{subnet: "10.0.0.0/30"},
	{subnet: "10.0.0.0/31"},
	{subnet: "fd00::/116"},
	{subnet: "fd00::/116", ipRange: "fd00::400/118"},
	{subnet: "fd00::/48", ipRange: "fd00:0:0:3::/116", far: "fd00:0:0:9::"},
}

// model is the obvious allocator: a set of taken addresses, scanned in
// order. Below low the range is known to be full; low only saves the model
// from rescanning.
type model struct {
	subnet, ipRange netip.Prefix
	reserved        map[netip.Addr]bool
	taken           map[netip.Addr]bool
	low             netip.Addr
}

func (m *model) next() (netip.Addr, bool) {
	for ; m.ipRange.Contains(m.low); m.low = m.low.Next() {
		if !m.reserved[m.low] && !m.taken[m.low] {
			return m.low, true
		}
	}
	return netip.Addr{}, false
}

func (m *model) release(x netip.Addr) {
	delete(m.taken, x)
	if m.ipRange.Contains(x) && x.Less(m.low) {
		m.low = x
	}
}

// checkAgainstModel runs the operations encoded in ops on an allocator and
// on the model, and fails at the first difference.
func checkAgainstModel(t *testing.T, c modelCase, ops []byte) {
	a := newAllocator(t, c.subnet, c.ipRange)
	m := &model{subnet: a.Subnet(), ipRange: a.Subnet(), taken: map[netip.Addr]bool{}, reserved: map[netip.Addr]bool{}}
	if c.ipRange != "" {
		m.ipRange = netip.MustParsePrefix(c.ipRange)
	}
	m.low = m.ipRange.Addr()
	for _, r := range reservedAddrs(m.subnet) {
		m.reserved[r.addr] = true
	}
	size := uint64(1) << min(hostBits(m.subnet), 16)
	if c.far != "" {
		size = 1 << hostBits(m.ipRange)
	}
	pick := func(x uint16) netip.Addr {
		switch {
		case x == 0xffff:
			return addr("192.0.2.1") // never in a test subnet
		case c.far != "" && x&0x8000 != 0:
			return toU128(addr(c.far)).add(uint64(x) % size).addr(false)
		case c.far != "":
			return toU128(m.ipRange.Addr()).add(uint64(x) % size).addr(false)
		}
		return toU128(m.subnet.Addr()).add(uint64(x) % size).addr(m.subnet.Addr().Is4())
	}
	next := func() {
		want, ok := m.next()
		got, err := a.Next()
		if !ok {
			if !errors.Is(err, ErrNoAvailableAddress) {
				t.Fatalf("Next = %v, %v; model has no free address", got, err)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("Next = %v, %v; want %v", got, err, want)
		}
		m.taken[want] = true
	}
	for len(ops) >= 3 {
		op, x := ops[0], uint16(ops[1])<<8|uint16(ops[2])
		ops = ops[3:]
		target := pick(x)
		var wantErr error
		switch {
		case !m.subnet.Contains(target):
			wantErr = ErrNotInSubnet
		case m.reserved[target]:
			wantErr = ErrReservedAddress
		}
		switch op % 4 {
		case 0:
			next()
		case 1:
			for range x % 300 {
				next()
			}
		case 2:
			if wantErr == nil && m.taken[target] {
				wantErr = ErrAddressInUse
			}
			if err := a.Reserve(target); !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
				t.Fatalf("Reserve(%v) = %v, want %v", target, err, wantErr)
			}
			if wantErr == nil {
				m.taken[target] = true
			}
		case 3:
			if wantErr == nil && !m.taken[target] {
				wantErr = ErrNotAllocated
			}
			if err := a.Release(target); !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
				t.Fatalf("Release(%v) = %v, want %v", target, err, wantErr)
			}
			m.release(target)
		}
		if a.Allocated(target) != m.taken[target] {
			t.Fatalf("Allocated(%v) = %v, model says %v", target, a.Allocated(target), m.taken[target])
		}
		if a.Len() != len(m.taken) {
			t.Fatalf("Len = %d, model has %d", a.Len(), len(m.taken))
		}
	}
}

// randomOps fills most of the subnet in bulk and then churns, so that whole
// subtrees become full, are dropped, and come back on release.
func randomOps(rng *rand.Rand, n int) []byte {
	ops := make([]byte, 0, 3*n)
	for i := range n {
		op := byte(rng.IntN(4))
		if i < n/4 && rng.IntN(2) == 0 {
			op = 1
		}
		x := rng.IntN(1 << 16)
		ops = append(ops, op, byte(x>>8), byte(x))
	}
	return ops
}

func TestAllocatorMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range modelCases {
		t.Run(c.subnet+" "+c.ipRange, func(t *testing.T) {
			for range 20 {
				checkAgainstModel(t, c, randomOps(rng, 600))
			}
		})
	}
}

func FuzzAllocator(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range modelCases {
		f.Add(append([]byte{byte(i)}, randomOps(rng, 200)...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 3000 {
			return // long inputs only slow the fuzzer down
		}
		checkAgainstModel(t, modelCases[int(data[0])%len(modelCases)], data[1:])
	})
}
