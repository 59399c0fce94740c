package ipam

import (
	"math"
	"math/bits"
	"net/netip"
)

// Allocator hands out the addresses of one subnet: Next picks the lowest
// free one inside the ip-range, Reserve takes a given one anywhere in the
// subnet. Every operation costs a few descents of a tree at most 11 levels
// deep, whatever the size of the subnet and the number of addresses taken.
//
// The tree holds at most 2^64 offsets. An IPv6 subnet with more host bits
// is tracked in the 2^64 addresses starting at its ip-range (or at the
// subnet when it has none): Next never goes past them, and static addresses
// outside them are kept in a map.
//
// An Allocator is not safe for concurrent use.
type Allocator struct {
	subnet   netip.Prefix
	base     u128   // address of offset 0
	span     uint64 // highest offset the tree holds
	first    uint64 // the ip-range's offsets, where Next looks
	last     uint64
	shift    uint // each child of the root holds 1<<shift offsets
	root     node
	reserved []reservedAddr
	outside  map[netip.Addr]struct{}
	taken    int
}

// NewAllocator returns an allocator for subnet with nothing taken. subnet
// may have host bits set (172.29.30.1/24 means 172.29.30.0/24). A zero
// ipRange means the whole subnet; otherwise it must lie inside subnet.
func NewAllocator(subnet, ipRange netip.Prefix) (*Allocator, error) {
	if !subnet.IsValid() {
		return nil, invalid("missing or invalid subnet")
	}
	subnet = subnet.Masked()
	if !ipRange.IsValid() {
		ipRange = subnet
	}
	ipRange = ipRange.Masked()
	if !prefixContains(subnet, ipRange) {
		return nil, invalid("no matching subnet for range %s", ipRange)
	}
	a := &Allocator{subnet: subnet}
	a.base = toU128(subnet.Addr())
	if hostBits(subnet) > 64 {
		a.base = toU128(ipRange.Addr())
	}
	a.span = ^uint64(0)
	if d, _ := toU128(lastAddr(subnet)).sub(a.base); d.hi == 0 {
		a.span = d.lo
	}
	a.shift = uint(max(bits.Len64(a.span)-1, 0) / 6 * 6)

	a.first, _ = a.offset(ipRange.Addr())
	var ok bool
	if a.last, ok = a.offset(lastAddr(ipRange)); !ok {
		a.last = a.span
	}
	a.reserved = reservedAddrs(subnet)
	for _, r := range a.reserved {
		if off, ok := a.offset(r.addr); ok {
			a.root.set(a.shift, off)
		}
	}
	return a, nil
}

// Subnet returns the (masked) subnet the allocator serves.
func (a *Allocator) Subnet() netip.Prefix { return a.subnet }

// Next takes the lowest free address of the ip-range. Releasing an address
// makes it the next one handed out again, as in Docker's local networks.
func (a *Allocator) Next() (netip.Addr, error) {
	off, ok := a.root.lowestFree(a.shift, a.first)
	if !ok || off > a.last {
		return netip.Addr{}, ErrNoAvailableAddress
	}
	a.root.set(a.shift, off)
	a.taken++
	return a.base.add(off).addr(a.subnet.Addr().Is4()), nil
}

// Reserve takes addr, which may lie anywhere in the subnet, also outside
// the ip-range: a static address, the gateway, an aux-address, or an
// address restored from the store.
func (a *Allocator) Reserve(addr netip.Addr) error {
	if err := a.check(addr); err != nil {
		return err
	}
	if off, ok := a.offset(addr); ok {
		if !a.root.set(a.shift, off) {
			return ErrAddressInUse
		}
	} else {
		if _, dup := a.outside[addr]; dup {
			return ErrAddressInUse
		}
		if a.outside == nil {
			a.outside = make(map[netip.Addr]struct{})
		}
		a.outside[addr] = struct{}{}
	}
	a.taken++
	return nil
}

// Release frees addr. Releasing a free address returns ErrNotAllocated (a
// reserved one ErrReservedAddress) and changes nothing, so callers undoing a
// half-done operation may ignore the error.
func (a *Allocator) Release(addr netip.Addr) error {
	if err := a.check(addr); err != nil {
		return err
	}
	if off, ok := a.offset(addr); ok {
		if !a.root.clear(a.shift, off) {
			return reword(ErrNotAllocated, "address %s is not allocated", addr)
		}
	} else {
		if _, ok := a.outside[addr]; !ok {
			return reword(ErrNotAllocated, "address %s is not allocated", addr)
		}
		delete(a.outside, addr)
	}
	a.taken--
	return nil
}

// Allocated reports whether addr is taken. The network, broadcast and
// subnet-router anycast addresses are never reported taken.
func (a *Allocator) Allocated(addr netip.Addr) bool {
	if a.check(addr) != nil {
		return false
	}
	if off, ok := a.offset(addr); ok {
		return a.root.taken(a.shift, off)
	}
	_, ok := a.outside[addr]
	return ok
}

// Len returns the number of addresses taken by Next and Reserve.
func (a *Allocator) Len() int { return a.taken }

// Capacity is how many addresses of the subnet can be taken: all but the
// network, broadcast and subnet-router anycast addresses. A float, as an
// IPv6 subnet holds more than any integer type does.
func (a *Allocator) Capacity() float64 {
	return math.Ldexp(1, hostBits(a.subnet)) - float64(len(a.reserved))
}

func (a *Allocator) check(addr netip.Addr) error {
	if !a.subnet.Contains(addr) {
		return reword(ErrNotInSubnet, "Invalid address %s: It does not belong to any of this network's subnets", addr)
	}
	for _, r := range a.reserved {
		if addr == r.addr {
			return reword(ErrReservedAddress, "Invalid address %s: it is the %s of subnet %s", addr, r.role, a.subnet)
		}
	}
	return nil
}

type reservedAddr struct {
	addr netip.Addr
	role string
}

// reservedAddrs are never handed out: the network and broadcast addresses of
// IPv4 subnets up to /30 (RFC 3021 makes all of a /31 usable), and the
// subnet-router anycast address of IPv6 subnets up to /126 (RFC 6164 makes
// all of a /127 usable).
func reservedAddrs(subnet netip.Prefix) []reservedAddr {
	switch {
	case subnet.Addr().Is4() && subnet.Bits() <= 30:
		return []reservedAddr{{subnet.Addr(), "network address"}, {lastAddr(subnet), "broadcast address"}}
	case subnet.Addr().Is6() && subnet.Bits() <= 126:
		return []reservedAddr{{subnet.Addr(), "subnet-router anycast address"}}
	}
	return nil
}

// offset returns addr's place in the tree, and false when addr lies outside
// the 2^64 addresses the tree holds.
func (a *Allocator) offset(addr netip.Addr) (uint64, bool) {
	d, ok := toU128(addr).sub(a.base)
	if !ok || d.hi != 0 || d.lo > a.span {
		return 0, false
	}
	return d.lo, true
}

func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

// prefixContains reports whether inner lies entirely inside outer.
func prefixContains(outer, inner netip.Prefix) bool {
	return inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}
