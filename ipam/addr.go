package ipam

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// u128 is an address as a number, for the offset arithmetic netip lacks.
// IPv4 addresses are taken in their IPv4-mapped form; differences between two
// of them are still plain IPv4 differences.
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// sub returns u-v, and false when v > u.
func (u u128) sub(v u128) (u128, bool) {
	lo, borrow := bits.Sub64(u.lo, v.lo, 0)
	hi, borrow := bits.Sub64(u.hi, v.hi, borrow)
	return u128{hi, lo}, borrow == 0
}

func (u u128) add(n uint64) u128 {
	lo, carry := bits.Add64(u.lo, n, 0)
	return u128{u.hi + carry, lo}
}

func (u u128) cmp(v u128) int {
	switch {
	case u.hi < v.hi || u.hi == v.hi && u.lo < v.lo:
		return -1
	case u == v:
		return 0
	}
	return 1
}

// hostMask has the low bits set that a prefix of length bits leaves to
// hosts; bits counts in the 128-bit form, so IPv4 lengths are 96 more.
func hostMask(bits int) u128 {
	host := 128 - bits
	if host >= 64 {
		return u128{1<<(host-64) - 1, ^uint64(0)}
	}
	return u128{0, 1<<host - 1}
}

func (u u128) or(v u128) u128 { return u128{u.hi | v.hi, u.lo | v.lo} }

// bits128 is p's prefix length in the 128-bit form of its address.
func bits128(p netip.Prefix) int { return p.Bits() + 128 - p.Addr().BitLen() }

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	return toU128(p.Masked().Addr()).or(hostMask(bits128(p))).addr(p.Addr().Is4())
}
