package resolver

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP edge: queries are read and answers written many to a system
// call (recvmmsg, sendmmsg) straight from and into a batch's own memory,
// with addresses as netip.AddrPort, so that no datagram costs an
// allocation. Answers of one size to one client leave as one UDP GSO
// datagram that the kernel splits: on loopback, where containers reach the
// resolver, routing, connection tracking and the redirect back to port 53
// are then done once for the lot instead of once per answer.

// mmsghdr is struct mmsghdr of <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// gsoCmsgLen is the room for one UDP_SEGMENT control message.
var gsoCmsgLen = unix.CmsgSpace(2)

// maxSegments is the most answers one GSO datagram carries: the kernel
// takes up to 64 (UDP_MAX_SEGMENTS), and a batch never has more than
// batchSize.
const maxSegments = batchSize

// inbox is the memory to read n datagrams at once.
type inbox struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	bufs  [][]byte
}

func newInbox(n int) *inbox {
	q := &inbox{hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n), bufs: make([][]byte, n)}
	for i := range n {
		q.bufs[i] = make([]byte, maxQuery)
		q.iovs[i].Base = &q.bufs[i][0]
		q.iovs[i].SetLen(maxQuery)
	}
	return q
}

// swap exchanges datagram i of q with datagram j of o, buffers included.
func (q *inbox) swap(i int, o *inbox, j int) {
	q.bufs[i], o.bufs[j] = o.bufs[j], q.bufs[i]
	q.names[i], o.names[j] = o.names[j], q.names[i]
	q.hdrs[i].n, o.hdrs[j].n = o.hdrs[j].n, q.hdrs[i].n
	q.hdrs[i].hdr.Namelen, o.hdrs[j].hdr.Namelen = o.hdrs[j].hdr.Namelen, q.hdrs[i].hdr.Namelen
	q.iovs[i].Base, o.iovs[j].Base = &q.bufs[i][0], &o.bufs[j][0]
}

// read reads up to len(q.hdrs) datagrams, waiting for the first one.
func (q *inbox) read(rc syscall.RawConn) (int, error) {
	for i := range q.hdrs {
		h := &q.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&q.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &q.iovs[i]
		h.SetIovlen(1)
		h.Control, h.Controllen, h.Flags = nil, 0, 0
	}
	return mmsg(rc.Read, unix.SYS_RECVMMSG, q.hdrs)
}

// mmsg makes one recvmmsg or sendmmsg call (trap) on hdrs through the
// poller's wait (rc.Read or rc.Write), and returns how many datagrams
// went.
func mmsg(wait func(func(uintptr) bool) error, trap uintptr, hdrs []mmsghdr) (int, error) {
	var n int
	var errno syscall.Errno
	err := wait(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// msg returns datagram i as read, with where it came from.
func (q *inbox) msg(i int) ([]byte, netip.AddrPort) {
	return q.bufs[i][:q.hdrs[i].n], sockaddrAddrPort(&q.names[i])
}

// from returns the address of datagram i's sender as the kernel gave it,
// made comparable by zeroing what it left unwritten.
func (q *inbox) from(i int) *unix.RawSockaddrInet6 {
	sa := &q.names[i]
	if l := q.hdrs[i].hdr.Namelen; l < unix.SizeofSockaddrInet6 {
		clear(unsafe.Slice((*byte)(unsafe.Pointer(sa)), unix.SizeofSockaddrInet6)[l:])
	}
	return sa
}

func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

// answer is one datagram to send, to the sender of a query.
type answer struct {
	b  []byte
	to *unix.RawSockaddrInet6
}

// replies is the memory to write a batch's answers at once.
type replies struct {
	list []answer
	// What one sendmmsg takes: a datagram per client and size, with an
	// iovec per answer in it.
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	cmsgs []byte
	// Per datagram: its client, the size of its answers, its first
	// iovec and how many answers it has.
	to           []*unix.RawSockaddrInet6
	size         []int
	first, count []int
	// group is the datagram of each answer.
	group []int
}

func newReplies(n int) *replies {
	return &replies{list: make([]answer, 0, n), hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n),
		cmsgs: make([]byte, n*gsoCmsgLen), to: make([]*unix.RawSockaddrInet6, n), size: make([]int, n),
		first: make([]int, n), count: make([]int, n), group: make([]int, n)}
}

// pack lays out a.list as datagrams, and returns how many there are. With
// gso, answers to one client of one size share a datagram, as long as the
// size is at most ednsSize, which fits every path's MTU.
func (a *replies) pack(gso bool) int {
	d := 0
	for i, ans := range a.list {
		g := -1
		if gso && len(ans.b) <= ednsSize {
			for h := range d {
				if *a.to[h] == *ans.to && a.size[h] == len(ans.b) && a.count[h] < maxSegments {
					g = h
					break
				}
			}
		}
		if g < 0 {
			g = d
			a.to[g], a.size[g], a.count[g] = ans.to, len(ans.b), 0
			d++
		}
		a.group[i] = g
		a.count[g]++
	}
	next := 0
	for g := range d {
		a.first[g], next = next, next+a.count[g]
		a.count[g] = 0
	}
	for i, ans := range a.list {
		g := a.group[i]
		iov := &a.iovs[a.first[g]+a.count[g]]
		iov.Base = unsafe.SliceData(ans.b)
		iov.SetLen(len(ans.b))
		a.count[g]++
	}
	for g := range d {
		h := &a.hdrs[g].hdr
		h.Name = (*byte)(unsafe.Pointer(a.to[g]))
		h.Namelen = unix.SizeofSockaddrInet6
		if a.to[g].Family == unix.AF_INET {
			h.Namelen = unix.SizeofSockaddrInet4
		}
		h.Iov = &a.iovs[a.first[g]]
		h.SetIovlen(a.count[g])
		h.Control, h.Controllen, h.Flags = nil, 0, 0
		if a.count[g] > 1 {
			c := a.cmsgs[g*gsoCmsgLen : (g+1)*gsoCmsgLen]
			putGSO(c, a.size[g])
			h.Control = &c[0]
			h.SetControllen(gsoCmsgLen)
		}
	}
	return d
}

func putGSO(c []byte, size int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(size)
}

// write sends datagrams hdrs[from:to], returning how many went before an
// error.
func (a *replies) write(rc syscall.RawConn, from, to int) (int, error) {
	return mmsg(rc.Write, unix.SYS_SENDMMSG, a.hdrs[from:to])
}

// bundled tells whether datagram g carries several answers.
func (a *replies) bundled(g int) bool { return a.count[g] > 1 }

// writeEach sends the answers of datagram g one by one.
func (a *replies) writeEach(rc syscall.RawConn, g int) {
	h := &a.hdrs[g].hdr
	h.Control, h.Controllen = nil, 0
	for k := range a.count[g] {
		h.Iov = &a.iovs[a.first[g]+k]
		h.SetIovlen(1)
		a.write(rc, g, g+1)
	}
}

// gsoRefused tells whether err is how the kernel says a path cannot take
// UDP GSO: no checksum offload (EIO), a segment over the MTU (EINVAL), or
// a kernel without it.
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}
