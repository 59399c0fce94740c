package resolver

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxCached bounds what one cached answer may weigh, so the cache's memory
// stays within its entry count times this.
const maxCached = 4096

// cache holds upstream answers until their TTL runs out. It is sharded so
// that containers asking for different names never wait on one lock.
type cache struct {
	seed     maphash.Seed
	perShard int
	shards   [64]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[string]*entry
}

// entry is an answer as the first client got it, without ID or OPT record.
// It is never changed once stored.
type entry struct {
	msg     []byte
	ttls    []uint16 // offsets of the records' TTLs in msg
	stored  time.Time
	expires time.Time
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), perShard: max(1, size/64)}
	for i := range c.shards {
		c.shards[i].m = map[string]*entry{}
	}
	return c
}

func (c *cache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%uint64(len(c.shards))]
}

func (c *cache) get(key []byte, now time.Time) *entry {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[string(key)]
	if e != nil && !now.Before(e.expires) {
		delete(s.m, string(key))
		return nil
	}
	return e
}

func (c *cache) put(key []byte, e *entry) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[string(key)]; !ok && len(s.m) >= c.perShard {
		// Map iteration starts at a random entry: this evicts at random,
		// which needs no bookkeeping on the hot path.
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[string(key)] = e
}

// cacheKey is what makes two queries share an answer: the same upstreams
// (containers with their own --dns never see each other's answers), type,
// class, RD, DO and CD, and name.
func cacheKey(dst []byte, v *view, msg []byte, q *question) []byte {
	dst = append(dst[:0], v.upstreamKey...)
	dst = binary.BigEndian.AppendUint16(dst, q.qtype)
	dst = binary.BigEndian.AppendUint16(dst, q.qclass)
	var flags byte
	if q.do {
		flags |= 1
	}
	dst = append(dst, flags|msg[2]&flagRD<<1|msg[3]&flagCD)
	return append(dst, q.name...)
}

// newEntry prepares an upstream answer for clients and the cache. ttl is
// how long it may be cached: the smallest TTL of its records, or for a
// negative answer the SOA's (RFC 2308 5); zero when it must not be.
func newEntry(m *dns.Msg, now time.Time) (e *entry, ttl time.Duration, err error) {
	extra := m.Extra[:0:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	m.Compress = true
	msg, err := m.Pack()
	if err != nil {
		return nil, 0, err
	}
	ttls, err := ttlOffsets(msg)
	if err != nil {
		return nil, 0, err
	}
	e = &entry{msg: msg, ttls: ttls, stored: now}
	if m.Truncated || len(msg) > maxCached {
		return e, 0, nil
	}
	var secs uint32
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		secs = ^uint32(0)
		for _, off := range ttls {
			secs = min(secs, binary.BigEndian.Uint32(msg[off:]))
		}
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				secs = min(soa.Hdr.Ttl, soa.Minttl)
			}
		}
	}
	ttl = time.Duration(secs) * time.Second
	e.expires = now.Add(ttl)
	return e, ttl, nil
}

// reply writes the answer to the query msg from e into out: the query's ID,
// question (in the client's own letter case) and RD, TTLs less the time
// the answer has spent in the cache, and an OPT record if the client sent
// one.
func (e *entry) reply(out, msg []byte, q *question, now time.Time) []byte {
	out = append(out[:0], e.msg...)
	copy(out[:2], msg[:2])
	copy(out[headerLen:q.end], msg[headerLen:q.end])
	out[2] = out[2]&^flagRD | msg[2]&flagRD
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, off := range e.ttls {
		ttl := binary.BigEndian.Uint32(out[off:])
		binary.BigEndian.PutUint32(out[off:], ttl-min(ttl, age))
	}
	if q.edns {
		out = appendOPT(out, q.do)
	}
	return out
}
