package ipam

import "math/bits"

// node is one level of a radix-64 tree over address offsets. Bit i of full
// says that child i has no free offset. A child exists only while it is
// partly taken: a missing child is entirely free or entirely taken, as its
// full bit says. So a search for a free offset is one descent using
// TrailingZeros64, and memory follows the boundaries between taken and free
// runs, not the size of the subnet nor the number of addresses taken.
//
// At the bottom level (shift 0) the children are single offsets and full is
// the allocation bitmap itself.
type node struct {
	full    uint64
	present uint64 // bit i: kids[i] != nil
	kids    *[64]*node
}

const allFull = ^uint64(0)

func (n *node) kid(i uint64) *node {
	if n.present>>i&1 == 0 {
		return nil
	}
	return n.kids[i]
}

func (n *node) attach(i uint64, k *node) {
	if n.kids == nil {
		n.kids = new([64]*node)
	}
	n.kids[i] = k
	n.present |= 1 << i
}

func (n *node) detach(i uint64) {
	n.kids[i] = nil
	n.present &^= 1 << i
	if n.present == 0 {
		n.kids = nil
	}
}

// taken reports whether off is taken in the subtree whose children are
// 1<<shift offsets wide.
func (n *node) taken(shift uint, off uint64) bool {
	for {
		i := off >> shift & 63
		if n.full>>i&1 != 0 {
			return true
		}
		if shift == 0 {
			return false
		}
		if n = n.kid(i); n == nil {
			return false
		}
		shift -= 6
	}
}

// set takes off; it reports false if off was taken already.
func (n *node) set(shift uint, off uint64) bool {
	i := off >> shift & 63
	if n.full>>i&1 != 0 {
		return false
	}
	if shift == 0 {
		n.full |= 1 << i
		return true
	}
	k := n.kid(i)
	if k == nil {
		k = &node{}
		n.attach(i, k)
	}
	if !k.set(shift-6, off) {
		return false
	}
	if k.full == allFull {
		n.full |= 1 << i
		n.detach(i)
	}
	return true
}

// clear frees off; it reports false if off was free already.
func (n *node) clear(shift uint, off uint64) bool {
	i := off >> shift & 63
	if shift == 0 {
		if n.full>>i&1 == 0 {
			return false
		}
		n.full &^= 1 << i
		return true
	}
	k := n.kid(i)
	if k == nil {
		if n.full>>i&1 == 0 {
			return false
		}
		// An entirely taken child comes back into being, all taken, so
		// that one offset of it can be freed.
		k = &node{full: allFull}
		n.attach(i, k)
	}
	if !k.clear(shift-6, off) {
		return false
	}
	n.full &^= 1 << i
	if k.full == 0 && k.present == 0 {
		n.detach(i)
	}
	return true
}

// lowestFree returns the lowest free offset at or after off. It may return
// an offset beyond the ones the caller uses (the tree is wider than the
// subnet); the caller bounds the result.
func (n *node) lowestFree(shift uint, off uint64) (uint64, bool) {
	i := off >> shift & 63
	if n.full>>i&1 == 0 {
		if shift == 0 {
			return off, true
		}
		k := n.kid(i)
		if k == nil {
			return off, true
		}
		if f, ok := k.lowestFree(shift-6, off); ok {
			return f, true
		}
	}
	// Shifts of 64 or more give 0 in Go, which makes both masks below
	// come out right at the top of the tree and at child 63.
	later := ^n.full &^ (1<<(i+1) - 1)
	if later == 0 {
		return 0, false
	}
	j := uint64(bits.TrailingZeros64(later))
	start := off&^(1<<(shift+6)-1) | j<<shift
	k := n.kid(j)
	if shift == 0 || k == nil {
		return start, true
	}
	// k is partly taken, so it has a free offset: this cannot fail.
	return k.lowestFree(shift-6, start)
}
