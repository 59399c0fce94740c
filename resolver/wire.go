package resolver

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
)

// The DNS wire format, as far as the fast path writes and reads it itself:
// local answers and cache hits are built byte by byte into a reused buffer,
// so that they cost no allocation. Everything rarer goes through miekg/dns.

const (
	headerLen = 12
	// maxName is the longest name in wire form, RFC 1035 3.1.
	maxName = 255
	// minUDP is what a client without EDNS accepts over UDP.
	minUDP = 512
	// maxUDP bounds our UDP buffers and the EDNS size we honour or offer.
	maxUDP = 4096
	// ednsSize is the UDP size berth offers, to clients and upstreams alike:
	// the DNS flag day 2020 value, which avoids IP fragmentation.
	ednsSize = 1232
	optLen   = 11
	// rrFixed is the size of a record's fields around its RDATA when its
	// owner is a compression pointer: pointer, type, class, TTL, length.
	rrFixed = 12

	// Offsets of the answer and additional counts in the header.
	countAN = 6
	countAR = 10

	// localTTL is what Docker gives container names (F5).
	localTTL = 600

	typeA    = 1
	typePTR  = 12
	typeAAAA = 28
	typeOPT  = 41
	classIN  = 1

	rcodeSuccess  = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNotImp   = 4
	rcodeRefused  = 5

	// Header flag bits, byte 2 then byte 3.
	flagQR     = 0x80
	opcodeMask = 0x78
	flagTC     = 0x02
	flagRD     = 0x01
	flagRA     = 0x80
	flagCD     = 0x10
)

var errFormat = errors.New("malformed query")

// question is what the resolver needs of a query.
type question struct {
	// name is the question's name in lowercase wire form: the key of the
	// Table and of the cache, with no escaping to get wrong.
	name   []byte
	qtype  uint16
	qclass uint16
	// end is the offset just past the question section.
	end  int
	edns bool
	do   bool
	// size is the largest UDP answer the client accepts.
	size int
}

// parseQuery reads the header, the question and the EDNS record of msg,
// writing the name into buf (which must have room for maxName bytes).
func parseQuery(msg []byte, q *question, buf []byte) error {
	if len(msg) < headerLen || be16(msg[4:]) != 1 || be16(msg[6:]) != 0 || be16(msg[8:]) != 0 {
		return errFormat
	}
	name, off, err := readName(msg, headerLen, buf[:0])
	if err != nil || off+4 > len(msg) {
		return errFormat
	}
	q.name, q.qtype, q.qclass = name, be16(msg[off:]), be16(msg[off+2:])
	off += 4
	q.end, q.edns, q.do, q.size = off, false, false, minUDP
	for range be16(msg[10:]) {
		start := off
		if off, err = skipName(msg, off); err != nil || off+10 > len(msg) {
			return errFormat
		}
		if be16(msg[off:]) == typeOPT {
			if q.edns || msg[start] != 0 {
				return errFormat // RFC 6891 6.1.1: one OPT, owned by the root
			}
			q.edns = true
			q.size = min(max(int(be16(msg[off+2:])), minUDP), maxUDP)
			q.do = msg[off+6]&0x80 != 0
		}
		off += 10 + int(be16(msg[off+8:]))
		if off > len(msg) {
			return errFormat
		}
	}
	return nil
}

// readName appends the lowercase wire form of the name at msg[off:] to dst.
// Compression pointers are refused: no stub compresses its question, and a
// question without them can be copied into answers as it is.
func readName(msg []byte, off int, dst []byte) ([]byte, int, error) {
	for {
		if off >= len(msg) {
			return nil, 0, errFormat
		}
		l := int(msg[off])
		if l > 63 || off+1+l > len(msg) || len(dst)+1+l > maxName {
			return nil, 0, errFormat
		}
		dst = append(dst, byte(l))
		for _, c := range msg[off+1 : off+1+l] {
			dst = append(dst, lower(c))
		}
		off += 1 + l
		if l == 0 {
			return dst, off, nil
		}
	}
}

// skipName returns the offset just past the name at msg[off:].
func skipName(msg []byte, off int) (int, error) {
	for off < len(msg) {
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xC0 == 0xC0:
			return off + 2, nil
		case l > 63:
			return 0, errFormat
		}
		off += 1 + l
	}
	return 0, errFormat
}

// encodeName returns name (dotted, final dot optional) in wire form,
// lowercased when fold is set, or false when it is no valid DNS name.
func encodeName(name string, fold bool) ([]byte, bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return nil, false
	}
	b := make([]byte, 0, len(name)+2)
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return nil, false
		}
		b = append(b, byte(len(label)))
		for i := range len(label) {
			c := label[i]
			if fold {
				c = lower(c)
			}
			b = append(b, c)
		}
	}
	b = append(b, 0)
	return b, len(b) <= maxName
}

// reverseAddr returns the address that a name in in-addr.arpa or ip6.arpa
// (lowercase wire form) stands for.
func reverseAddr(name []byte) (netip.Addr, bool) {
	var labels [35][]byte
	n := 0
	for off := 0; name[off] != 0; off += 1 + int(name[off]) {
		if n == len(labels) {
			return netip.Addr{}, false
		}
		labels[n] = name[off+1 : off+1+int(name[off])]
		n++
	}
	switch {
	case n == 6 && string(labels[4]) == "in-addr" && string(labels[5]) == "arpa":
		var a [4]byte
		for i := range 4 {
			v, ok := decimalByte(labels[i])
			if !ok {
				return netip.Addr{}, false
			}
			a[3-i] = v
		}
		return netip.AddrFrom4(a), true
	case n == 34 && string(labels[32]) == "ip6" && string(labels[33]) == "arpa":
		var a [16]byte
		for i := range 32 {
			v, ok := nibble(labels[i])
			if !ok {
				return netip.Addr{}, false
			}
			a[15-i/2] |= v << (4 * (i % 2))
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

func decimalByte(l []byte) (byte, bool) {
	if len(l) == 0 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
		return 0, false
	}
	v := 0
	for _, c := range l {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return byte(v), v <= 255
}

func nibble(l []byte) (byte, bool) {
	if len(l) != 1 {
		return 0, false
	}
	switch c := l[0]; {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// startReply writes the answer's header and question into out: the query's
// ID, opcode, RD and CD echoed, every section but the question empty.
func startReply(out, msg []byte, q *question, rcode byte, ra bool) []byte {
	out = append(out[:0], msg[:q.end]...)
	out[2] = flagQR | msg[2]&(opcodeMask|flagRD)
	out[3] = rcode | msg[3]&flagCD
	if ra {
		out[3] |= flagRA
	}
	clear(out[6:headerLen])
	return out
}

// errorReply is the answer to a query whose question cannot be read: the
// header alone.
func errorReply(out, msg []byte, rcode byte) []byte {
	out = append(out[:0], msg[:headerLen]...)
	out[2] = flagQR | msg[2]&(opcodeMask|flagRD)
	out[3] = rcode
	clear(out[4:headerLen])
	return out
}

// appendAnswer appends a record owned by the question's name: its pointer
// is always 0xC00C, since the question is the first name in the message.
func appendAnswer(out []byte, rrtype uint16, rdata []byte) []byte {
	out = append(out, 0xC0, headerLen, byte(rrtype>>8), byte(rrtype), 0, classIN)
	out = binary.BigEndian.AppendUint32(out, localTTL)
	out = binary.BigEndian.AppendUint16(out, uint16(len(rdata)))
	return append(out, rdata...)
}

// appendOPT appends berth's own EDNS record, since RFC 6891 7 wants one in
// every answer to a query that had one.
func appendOPT(out []byte, do bool) []byte {
	var flags byte
	if do {
		flags = 0x80
	}
	out = append(out, 0, 0, typeOPT, ednsSize>>8, ednsSize&0xFF, 0, 0, flags, 0, 0, 0)
	addCount(out, countAR, 1)
	return out
}

// addCount adds n to the section count at msg[at:].
func addCount(msg []byte, at, n int) {
	binary.BigEndian.PutUint16(msg[at:], be16(msg[at:])+uint16(n))
}

// ttlOffsets returns where the TTL of every record of a packed message
// lies, so that a cached answer can be aged without being unpacked.
func ttlOffsets(msg []byte) ([]uint16, error) {
	off, err := skipName(msg, headerLen)
	if err != nil || be16(msg[4:]) != 1 {
		return nil, errFormat
	}
	off += 4
	rrs := int(be16(msg[6:])) + int(be16(msg[8:])) + int(be16(msg[10:]))
	offs := make([]uint16, 0, rrs)
	for range rrs {
		if off, err = skipName(msg, off); err != nil || off+10 > len(msg) {
			return nil, errFormat
		}
		offs = append(offs, uint16(off+4))
		off += 10 + int(be16(msg[off+8:]))
	}
	if off != len(msg) {
		return nil, errFormat
	}
	return offs, nil
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
