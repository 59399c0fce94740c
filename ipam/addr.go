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

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	u := toU128(p.Masked().Addr())
	host := p.Addr().BitLen() - p.Bits()
	switch {
	case host >= 64:
		u.lo = ^uint64(0)
		u.hi |= 1<<(host-64) - 1
	default:
		u.lo |= 1<<host - 1
	}
	return u.addr(p.Addr().Is4())
}
