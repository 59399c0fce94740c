package ipam

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// PoolSpec is one default address pool: Base cut into subnets of prefix
// length Size.
type PoolSpec struct {
	Base netip.Prefix
	Size int
}

// String returns the pool in the syntax ParsePoolSpec reads.
func (p PoolSpec) String() string { return fmt.Sprintf("base=%s,size=%d", p.Base, p.Size) }

// DefaultLocalPools returns Docker's default pools for local networks:
// 172.17.0.0/16 to 172.31.0.0/16 as one network each, then 192.168.0.0/16 cut
// into /20s — 31 networks in all.
func DefaultLocalPools() []PoolSpec {
	pools := make([]PoolSpec, 0, 16)
	for b := byte(17); b <= 31; b++ {
		pools = append(pools, PoolSpec{netip.PrefixFrom(netip.AddrFrom4([4]byte{172, b, 0, 0}), 16), 16})
	}
	return append(pools, PoolSpec{netip.MustParsePrefix("192.168.0.0/16"), 20})
}

// ParsePoolSpec reads one pool in the syntax of dockerd's
// --default-address-pool: "base=10.10.0.0/16,size=24".
func ParsePoolSpec(s string) (PoolSpec, error) {
	fail := func(format string, args ...any) (PoolSpec, error) {
		return PoolSpec{}, invalid("invalid default address pool %q: %s", s, fmt.Sprintf(format, args...))
	}
	var p PoolSpec
	var haveBase, haveSize bool
	for _, field := range strings.Split(s, ",") {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return fail("%q is not a key=value pair", field)
		}
		key, value = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value)
		switch key {
		case "base":
			if haveBase {
				return fail("base given twice")
			}
			base, err := netip.ParsePrefix(value)
			if err != nil {
				return fail("base %q is not a CIDR prefix", value)
			}
			p.Base, haveBase = base, true
		case "size":
			if haveSize {
				return fail("size given twice")
			}
			size, err := strconv.Atoi(value)
			if err != nil {
				return fail("size %q is not a number", value)
			}
			p.Size, haveSize = size, true
		default:
			return fail("unknown key %q (the keys are base and size)", key)
		}
	}
	switch {
	case !haveBase:
		return fail("missing base")
	case !haveSize:
		return fail("missing size")
	}
	if problem := p.problem(); problem != "" {
		return fail("%s", problem)
	}
	return p, nil
}

func (p PoolSpec) problem() string {
	switch {
	case !p.Base.IsValid():
		return "base is not a valid prefix"
	case p.Base != p.Base.Masked():
		return fmt.Sprintf("base %s has host bits set, it should be %s", p.Base, p.Base.Masked())
	case p.Size < p.Base.Bits():
		return fmt.Sprintf("size %d is smaller than the prefix length of base %s", p.Size, p.Base)
	case p.Size > p.Base.Addr().BitLen():
		return fmt.Sprintf("size %d is larger than %d, the length of an IPv%d address", p.Size, p.Base.Addr().BitLen(), family(p.Base))
	}
	return ""
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

// Space hands out whole subnets from an ordered list of pools of one
// address family. It never changes after NewSpace, so it is safe for
// concurrent use; what is in use is the caller's to say.
type Space struct {
	pools  []PoolSpec
	family int
}

// NewSpace returns a space over pools, which are walked in the order given.
func NewSpace(pools []PoolSpec) (*Space, error) {
	if len(pools) == 0 {
		return nil, invalid("no address pools given")
	}
	s := &Space{pools: slices.Clone(pools), family: family(pools[0].Base)}
	for _, p := range pools {
		if problem := p.problem(); problem != "" {
			return nil, invalid("invalid address pool %s: %s", p, problem)
		}
		if family(p.Base) != s.family {
			return nil, invalid("address pools mix IPv4 and IPv6: %s", p)
		}
	}
	return s, nil
}

// NextSubnet returns the first subnet, walking the pools in order and the
// subnets of each pool in address order, that overlaps none of inUse: the
// subnets of existing networks and the host's routes and addresses (the
// default route is the caller's to leave out). Prefixes of the other address
// family are ignored.
func (s *Space) NextSubnet(inUse []netip.Prefix) (netip.Prefix, error) {
	used := s.spans(inUse)
	for _, p := range s.pools {
		mask := hostMask(bits128(netip.PrefixFrom(p.Base.Addr(), p.Size)))
		poolEnd := toU128(lastAddr(p.Base))
		c := toU128(p.Base.Addr())
		i, _ := slices.BinarySearchFunc(used, c, func(u span, c u128) int { return u.last.cmp(c) })
		for {
			for i < len(used) && used[i].last.cmp(c) < 0 {
				i++
			}
			if i == len(used) || used[i].first.cmp(c.or(mask)) > 0 {
				return netip.PrefixFrom(c.addr(s.family == 4), p.Size), nil
			}
			// Skip every candidate used[i] touches in one step, so the walk
			// costs the number of spans in the way, not of candidates.
			end := used[i].last.or(mask)
			if end.cmp(poolEnd) >= 0 {
				break
			}
			c = end.add(1)
		}
	}
	return netip.Prefix{}, reword(ErrPoolsExhausted, "could not find an available, non-overlapping IPv%d address pool among the defaults to assign to the network", s.family)
}

// span is the address range of a prefix.
type span struct{ first, last u128 }

// spans returns the ranges of the prefixes of s's family, disjoint and in
// address order.
func (s *Space) spans(prefixes []netip.Prefix) []span {
	out := make([]span, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() || family(p) != s.family {
			continue
		}
		first := toU128(p.Masked().Addr())
		out = append(out, span{first, first.or(hostMask(bits128(p)))})
	}
	slices.SortFunc(out, func(a, b span) int { return a.first.cmp(b.first) })
	// Merging overlapping spans (prefixes overlap only by nesting) leaves
	// disjoint ones whose ends are sorted too.
	kept := out[:0]
	for _, sp := range out {
		if n := len(kept); n > 0 && sp.first.cmp(kept[n-1].last) <= 0 {
			if sp.last.cmp(kept[n-1].last) > 0 {
				kept[n-1].last = sp.last
			}
			continue
		}
		kept = append(kept, sp)
	}
	return kept
}

// CheckPoolOverlap returns ErrPoolOverlap when subnet, given explicitly by
// the user, overlaps the subnet of an existing network. Host routes do not
// count here: as in Docker, a user may choose a subnet the host also routes.
func CheckPoolOverlap(subnet netip.Prefix, existing []netip.Prefix) error {
	for _, e := range existing {
		if subnet.Overlaps(e) {
			return ErrPoolOverlap
		}
	}
	return nil
}

// ULAPool is the default pool of IPv6 networks created without an IPv6
// subnet, as Docker 27 and later have one: a unique local /48 (RFC 4193)
// whose 40-bit global ID comes from seed (the daemon's ID), so it is the
// same on every start of one host and differs between hosts, cut into
// /64s.
func ULAPool(seed string) PoolSpec {
	sum := sha256.Sum256([]byte(seed))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
	return PoolSpec{Base: netip.PrefixFrom(netip.AddrFrom16(a), 48), Size: 64}
}
