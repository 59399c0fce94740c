package resolver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// downFor is how long an upstream that failed is asked only after the
// others.
const downFor = 30 * time.Second

// resolverAddr is the address containers know the resolver by: an upstream
// there is the resolver itself.
var resolverAddr = netip.AddrFrom4([4]byte{127, 0, 0, 11})

var (
	errNoUpstream = errors.New("no upstream besides the resolver itself")
	errSlow       = errors.New("another upstream answered first")
)

// forward answers the query msg from the scope's upstreams and caches the
// answer. It runs outside the socket's read loop, bounded by
// QueryTimeout.
func (a *Attachment) forward(msg []byte, tcp bool) []byte {
	var q question
	var name [maxName]byte
	if parseQuery(msg, &q, name[:]) != nil {
		return nil // respond read it already: cannot happen
	}
	v := a.view.Load()
	limit := q.size
	if tcp {
		limit = dns.MaxMsgSize
	}
	a.r.counters.forwarded.Add(1)
	start := time.Now()
	resp, err := a.r.exchange(a.ctx, upstreamQuery(msg, &q), &q, a.r.upstreams(v.upstreams), tcp)
	if f := a.r.opts.Forwarded; f != nil && err == nil {
		f(time.Since(start))
	}
	out := a.reply(msg, &q, v, limit, resp, err)
	a.r.counters.responded(out)
	return out
}

// reply is the answer to msg made of what the upstreams said.
func (a *Attachment) reply(msg []byte, q *question, v *view, limit int, resp *dns.Msg, err error) []byte {
	if err != nil {
		a.r.log.Debug("dns forward failed", "query", string(q.name), "type", q.qtype, "err", err)
		return startReply(nil, msg, q, rcodeServFail, true)
	}
	now := time.Now()
	e, ttl, err := newEntry(resp, now)
	if err != nil {
		a.r.log.Debug("dns upstream answer unusable", "query", string(q.name), "err", err)
		return startReply(nil, msg, q, rcodeServFail, true)
	}
	if ttl > 0 {
		a.r.cache.put(cacheKey(nil, v, msg, q), e)
	}
	return fit(e.reply(nil, msg, q, now), msg, limit)
}

// upstreamQuery is the question of msg as berth asks it upstream: a fresh
// ID, and berth's own EDNS record instead of whatever options the client
// sent (its cookies and subnet are not the upstream's business, and the
// answer is shared through the cache).
func upstreamQuery(msg []byte, q *question) []byte {
	id := rand.Uint32()
	b := make([]byte, 0, q.end+optLen)
	b = append(b, byte(id>>8), byte(id), msg[2]&flagRD, msg[3]&flagCD, 0, 1, 0, 0, 0, 0, 0, 0)
	b = append(b, msg[headerLen:q.end]...)
	return appendOPT(b, q.do)
}

// upstreams returns ups without the resolver's own addresses: forwarding to
// itself would only loop until the query timed out.
func (r *Resolver) upstreams(ups []netip.AddrPort) []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.AddrPort
	for _, u := range ups {
		if u.Addr() != resolverAddr && r.self[u] == 0 {
			out = append(out, u)
		}
	}
	return out
}

// exchange asks the upstreams, healthy ones first. When one has not
// answered within AttemptTimeout the next is asked too, and the first to
// answer wins: a dead upstream costs one AttemptTimeout, a slow one stays
// in the race until QueryTimeout. A SERVFAIL or REFUSED moves on to the
// next upstream at once and is relayed only if no other does better.
func (r *Resolver) exchange(ctx context.Context, query []byte, q *question, ups []netip.AddrPort, tcp bool) (*dns.Msg, error) {
	if len(ups) == 0 {
		return nil, errNoUpstream
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.QueryTimeout)
	defer cancel()
	order := r.health.order(ups, time.Now())
	type result struct {
		i   int
		m   *dns.Msg
		err error
	}
	results := make(chan result, len(order))
	done := make([]bool, len(order))
	asked := 0
	askNext := func() {
		i := asked
		asked++
		go func() {
			m, err := r.ask(ctx, order[i], query, q, tcp)
			results <- result{i, m, err}
		}()
	}
	askNext()
	hedge := time.NewTimer(r.opts.AttemptTimeout)
	defer hedge.Stop()
	var fallback *dns.Msg
	err := errNoUpstream
	for pending := 1; pending > 0; {
		select {
		case res := <-results:
			pending--
			done[res.i] = true
			switch {
			case res.err != nil:
				err = res.err
				if ctx.Err() != context.Canceled { // not the container going away
					r.failed(order[res.i], res.err)
				}
			case res.m.Rcode == dns.RcodeServerFailure || res.m.Rcode == dns.RcodeRefused:
				r.answered(order[res.i])
				fallback = res.m
			default:
				r.answered(order[res.i])
				for j := range asked {
					if !done[j] {
						r.failed(order[j], errSlow)
					}
				}
				return res.m, nil
			}
		case <-hedge.C:
		}
		if asked < len(order) {
			askNext()
			pending++
			hedge.Reset(r.opts.AttemptTimeout)
		}
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, err
}

// ask puts the query to one upstream, over TCP when it came over TCP or
// when the UDP answer is truncated: the whole answer exists only there.
func (r *Resolver) ask(ctx context.Context, up netip.AddrPort, query []byte, q *question, tcp bool) (*dns.Msg, error) {
	if !tcp {
		m, err := r.askOver(ctx, "udp", up, query, q)
		if err != nil || !m.Truncated {
			return m, err
		}
	}
	return r.askOver(ctx, "tcp", up, query, q)
}

func (r *Resolver) askOver(ctx context.Context, network string, up netip.AddrPort, query []byte, q *question) (*dns.Msg, error) {
	conn, err := r.opts.Dial(ctx, network, up.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })()
	co := &dns.Conn{Conn: conn, UDPSize: maxUDP}
	if _, err := co.Write(query); err != nil {
		return nil, err
	}
	for {
		p, err := co.ReadMsgHeader(nil)
		if err != nil {
			return nil, err
		}
		// Anything else on the socket is stray or spoofed: keep waiting.
		if answers(p, query, q) {
			m := new(dns.Msg)
			return m, m.Unpack(p)
		}
	}
}

// answers tells whether p is the answer to query: same ID, same question.
// An upstream that rejects the query outright may leave the question out.
func answers(p, query []byte, q *question) bool {
	if len(p) < headerLen || !bytes.Equal(p[:2], query[:2]) || p[2]&flagQR == 0 {
		return false
	}
	switch be16(p[4:]) {
	case 0:
		return p[3]&0x0F != rcodeSuccess
	case 1:
		var buf [maxName]byte
		name, off, err := readName(p, headerLen, buf[:0])
		return err == nil && off+4 <= len(p) && bytes.Equal(name, q.name) &&
			be16(p[off:]) == q.qtype && be16(p[off+2:]) == q.qclass
	}
	return false
}

func (r *Resolver) failed(u netip.AddrPort, err error) {
	if r.health.failed(u, time.Now()) {
		r.log.Warn("dns upstream not answering, asking it last", "upstream", u, "err", err)
	}
}

func (r *Resolver) answered(u netip.AddrPort) {
	if r.health.answered(u) {
		r.log.Info("dns upstream answering again", "upstream", u)
	}
}

// health remembers which upstreams failed lately, to ask them last.
type health struct {
	mu   sync.Mutex
	down map[netip.AddrPort]time.Time // when each last failed
}

// order returns ups with those that failed within downFor moved to the
// end; after that, a failed upstream gets its place back and one more
// chance.
func (h *health) order(ups []netip.AddrPort, now time.Time) []netip.AddrPort {
	h.mu.Lock()
	defer h.mu.Unlock()
	good := make([]netip.AddrPort, 0, len(ups))
	var bad []netip.AddrPort
	for _, u := range ups {
		if t, ok := h.down[u]; ok && now.Sub(t) < downFor {
			bad = append(bad, u)
		} else {
			good = append(good, u)
		}
	}
	return append(good, bad...)
}

// failed marks u down and tells whether it was up.
func (h *health) failed(u netip.AddrPort, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, was := h.down[u]
	h.down[u] = now
	return !was
}

// answered marks u up and tells whether it was down.
func (h *health) answered(u netip.AddrPort) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, was := h.down[u]
	delete(h.down, u)
	return was
}
