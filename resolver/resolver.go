package resolver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxForwards bounds the goroutines waiting on upstreams for UDP
	// queries, over all containers.
	maxForwards = 1024
	// maxConns bounds the TCP connections of one container.
	maxConns = 16
	// tcpIdle is how long a TCP connection may sit without a query.
	tcpIdle = 10 * time.Second
	// maxQuery is the largest UDP query read whole: the EDNS size berth
	// offers. Real queries are a tenth of it.
	maxQuery = ednsSize
	// batchSize is how many UDP queries one system call reads.
	batchSize = 16
	// batchIdle is how long a container keeps its batch without queries.
	batchIdle = time.Second
)

// Options tune a Resolver; the zero value gives the defaults.
type Options struct {
	// CacheSize is how many upstream answers are kept (8192).
	CacheSize int
	// AttemptTimeout is how long an upstream may keep a query before the
	// next upstream is asked too (200ms; Docker waits 4s per upstream).
	AttemptTimeout time.Duration
	// QueryTimeout bounds the forwarding of one query, after which the
	// client gets SERVFAIL (3s: before stub resolvers give up at 5s).
	QueryTimeout time.Duration
	Logger       *slog.Logger
	// Dial opens a connection ("udp" or "tcp") to an upstream; by default
	// from the namespace berthd runs in.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Forwarded, when set, is told how long the upstreams took to answer
	// each forwarded query.
	Forwarded func(time.Duration)
}

// Scope is what one container may see and where its other queries go.
type Scope struct {
	// Networks are the IDs of the networks the container is on, in join
	// order: a name on several of them answers from the first.
	Networks []string
	// Links are names only this container resolves (--link alias →
	// container name), looked up on Networks before anything else.
	Links map[string]string
	// Upstreams get every name that is not a container's: the
	// container's --dns servers, else the daemon's, else the host's.
	Upstreams []netip.AddrPort
	// NoForward keeps every query inside: for containers on internal
	// networks only. Other names get REFUSED.
	NoForward bool
}

// view is a Scope made ready for answering.
type view struct {
	networks  []string
	links     map[string][]byte // lowercase wire names
	upstreams []netip.AddrPort
	noForward bool
	// upstreamKey starts every cache key: containers with different
	// upstreams may get different answers, and never share them.
	upstreamKey []byte
}

func newView(s Scope) *view {
	v := &view{networks: slices.Clone(s.Networks), links: map[string][]byte{}, noForward: s.NoForward}
	for alias, target := range s.Links {
		a, ok := encodeName(alias, true)
		t, ok2 := encodeName(target, true)
		if ok && ok2 {
			v.links[string(a)] = t
		}
	}
	for _, u := range s.Upstreams {
		u = netip.AddrPortFrom(u.Addr().Unmap(), u.Port())
		v.upstreams = append(v.upstreams, u)
		b := u.Addr().As16()
		v.upstreamKey = append(append(v.upstreamKey, b[:]...), byte(u.Port()>>8), byte(u.Port()))
	}
	return v
}

// Resolver answers for all containers from one Table.
type Resolver struct {
	table    *Table
	opts     Options
	log      *slog.Logger
	cache    *cache
	health   health
	forwards chan struct{} // one token per goroutine forwarding a UDP query
	counters counters

	mu   sync.Mutex
	self map[netip.AddrPort]int // local addresses of the attached sockets
}

// New returns a resolver answering from t.
func New(t *Table, opts Options) *Resolver {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 8192
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 200 * time.Millisecond
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 3 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Dial == nil {
		opts.Dial = (&net.Dialer{}).DialContext
	}
	return &Resolver{
		table:    t,
		opts:     opts,
		log:      opts.Logger,
		cache:    newCache(opts.CacheSize),
		health:   health{down: map[netip.AddrPort]time.Time{}},
		forwards: make(chan struct{}, maxForwards),
		self:     map[netip.AddrPort]int{},
	}
}

// Attachment is the resolver serving one container's sockets.
type Attachment struct {
	r    *Resolver
	udp  *net.UDPConn
	tcp  net.Listener
	view atomic.Pointer[view]
	self []netip.AddrPort
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// noGSO is set once the kernel refused an answer sent with UDP GSO;
	// only serveUDP uses it.
	noGSO bool
}

// Attach serves queries arriving on udp and tcp (which may be nil) with
// scope s until Close. The sockets are the attachment's from now on.
func (r *Resolver) Attach(udp *net.UDPConn, tcp net.Listener, s Scope) *Attachment {
	a := &Attachment{r: r, udp: udp, tcp: tcp, conns: map[net.Conn]struct{}{}}
	a.ctx, a.stop = context.WithCancel(context.Background())
	a.SetScope(s)
	addrs := []net.Addr{udp.LocalAddr()}
	if tcp != nil {
		addrs = append(addrs, tcp.Addr())
	}
	r.mu.Lock()
	for _, addr := range addrs {
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			a.self = append(a.self, ap)
			r.self[ap]++
		}
	}
	r.mu.Unlock()
	a.wg.Go(a.serveUDP)
	if tcp != nil {
		a.wg.Go(a.serveTCP)
	}
	return a
}

// SetScope changes what the container sees, for the queries that arrive
// from now on: call it on connect and disconnect.
func (a *Attachment) SetScope(s Scope) { a.view.Store(newView(s)) }

// Close closes the sockets and returns once nothing reads them any more.
func (a *Attachment) Close() error {
	a.mu.Lock()
	a.stop()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	err := a.udp.Close()
	if a.tcp != nil {
		err = errors.Join(err, a.tcp.Close())
	}
	a.wg.Wait()
	a.r.mu.Lock()
	for _, ap := range a.self {
		if a.r.self[ap]--; a.r.self[ap] == 0 {
			delete(a.r.self, ap)
		}
	}
	a.r.mu.Unlock()
	return err
}

// scratch is the memory answering one query takes, reused from query to
// query.
type scratch struct {
	q     question
	name  [maxName]byte
	key   []byte
	addrs []netip.Addr
	out   []byte
}

// batch is the memory to answer batchSize queries at once.
type batch struct {
	in  *inbox
	out *replies
	s   [batchSize]scratch
}

var batches = sync.Pool{New: func() any {
	return &batch{in: newInbox(batchSize), out: newReplies(batchSize)}
}}

// serveUDP reads and answers queries a batch at a time, one system call
// each way: under load that halves what a query costs. An idle container
// waits on one buffer; the first query borrows a batch from a pool, which
// goes back after a second without queries.
func (a *Attachment) serveUDP() {
	rc, err := a.udp.SyscallConn()
	if err != nil {
		a.r.log.Warn("dns socket unusable", "err", err)
		return
	}
	wait := newInbox(1)
	for {
		if _, err := wait.read(rc); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			a.r.log.Warn("dns read failed", "err", err)
			continue
		}
		b := batches.Get().(*batch)
		b.in.swap(0, wait, 0)
		err := a.serveBatches(rc, b)
		batches.Put(b)
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// serveBatches answers the query in b.in's first slot, then whatever comes
// until the socket has been quiet for batchIdle.
func (a *Attachment) serveBatches(rc syscall.RawConn, b *batch) error {
	defer a.udp.SetReadDeadline(time.Time{})
	var deadline time.Time
	for n := 1; ; {
		a.answerBatch(rc, b, n)
		// Moving the deadline costs a timer update: do it once in a
		// while, not for every batch.
		if now := time.Now(); deadline.Sub(now) < batchIdle/2 {
			deadline = now.Add(batchIdle)
			a.udp.SetReadDeadline(deadline)
		}
		var err error
		if n, err = b.in.read(rc); err != nil {
			return err
		}
	}
}

// answerBatch answers the n queries read into b and sends the answers with
// one system call, those of one size to one client as one GSO datagram.
func (a *Attachment) answerBatch(rc syscall.RawConn, b *batch, n int) {
	out := b.out
	out.list = out.list[:0]
	for i := range n {
		msg, from := b.in.msg(i)
		if resp := a.answerUDP(msg, from, &b.s[i]); resp != nil {
			out.list = append(out.list, answer{resp, b.in.from(i)})
		}
	}
	gso := !a.noGSO
	d := out.pack(gso)
	for sent := 0; sent < d; {
		m, err := out.write(rc, sent, d)
		if err == nil {
			sent += m
			continue
		}
		if gso && out.bundled(sent) && gsoRefused(err) {
			// This path takes no GSO: answer one by one from now on.
			a.noGSO = true
			out.writeEach(rc, sent)
		}
		sent++ // this client cannot be answered; the others can
	}
}

// answerUDP answers msg from the table or the cache, or hands it to a
// goroutine that forwards it.
func (a *Attachment) answerUDP(msg []byte, from netip.AddrPort, s *scratch) []byte {
	resp, fwd := a.respond(msg, s, false)
	if !fwd {
		return resp
	}
	select {
	case a.r.forwards <- struct{}{}:
	default:
		// Too many queries wait on upstreams already: failing at once
		// beats leaving the client to time out.
		resp := startReply(s.out, msg, &s.q, rcodeServFail, true)
		a.r.counters.responded(resp)
		return resp
	}
	msg = bytes.Clone(msg)
	go func() {
		defer func() { <-a.r.forwards }()
		if resp := a.forward(msg, false); resp != nil {
			a.udp.WriteToUDPAddrPort(resp, from)
		}
	}()
	return nil
}

func (a *Attachment) serveTCP() {
	for {
		c, err := a.tcp.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors, most likely: give it time.
			a.r.log.Warn("dns accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		a.mu.Lock()
		ok := a.ctx.Err() == nil && len(a.conns) < maxConns
		if ok {
			a.conns[c] = struct{}{}
		}
		a.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		a.wg.Go(func() {
			a.serveConn(c)
			a.mu.Lock()
			delete(a.conns, c)
			a.mu.Unlock()
			c.Close()
		})
	}
}

// serveConn answers the queries of one TCP connection in turn (RFC 7766
// allows it), forwarding in place.
func (a *Attachment) serveConn(c net.Conn) {
	s := new(scratch)
	var msg []byte
	var size [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		msg = slices.Grow(msg[:0], int(be16(size[:])))[:be16(size[:])]
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp, fwd := a.respond(msg, s, true)
		if fwd {
			resp = a.forward(msg, true)
		}
		if resp == nil {
			continue
		}
		c.SetWriteDeadline(time.Now().Add(tcpIdle))
		frame := net.Buffers{{byte(len(resp) >> 8), byte(len(resp))}, resp}
		if _, err := frame.WriteTo(c); err != nil {
			return
		}
	}
}

// respond answers msg from the Table or the cache, using s for memory. It
// returns nil when msg deserves no answer, and forward when the answer
// must come from upstream.
func (a *Attachment) respond(msg []byte, s *scratch, tcp bool) (resp []byte, forward bool) {
	resp, forward = a.answer(msg, s, tcp)
	a.r.counters.responded(resp)
	// Keep a grown buffer for the next query, unless it grew for a TCP
	// answer that UDP queries never need.
	if c := cap(resp); c > cap(s.out) && c <= maxUDP+optLen {
		s.out = resp[:0]
	}
	return resp, forward
}

func (a *Attachment) answer(msg []byte, s *scratch, tcp bool) (resp []byte, forward bool) {
	// Answers are never answered: that is how two resolvers end up
	// bouncing a packet between them forever.
	if len(msg) < headerLen || msg[2]&flagQR != 0 {
		return nil, false
	}
	a.r.counters.queries.Add(1)
	if msg[2]&opcodeMask != 0 {
		return errorReply(s.out, msg, rcodeNotImp), false
	}
	q := &s.q
	if parseQuery(msg, q, s.name[:]) != nil {
		return errorReply(s.out, msg, rcodeFormErr), false
	}
	limit := q.size
	if tcp {
		limit = dns.MaxMsgSize
	}
	v := a.view.Load()
	if q.qclass == classIN {
		if out := a.local(msg, q, v, s, limit); out != nil {
			a.r.counters.local.Add(1)
			return out, false
		}
	}
	if v.noForward {
		// REFUSED rather than SERVFAIL: nothing failed, and stub
		// resolvers retry a SERVFAIL before giving up.
		return startReply(s.out, msg, q, rcodeRefused, false), false
	}
	now := time.Now()
	s.key = cacheKey(s.key, v, msg, q)
	if e := a.r.cache.get(s.key, now); e != nil {
		a.r.counters.cached.Add(1)
		return fit(e.reply(s.out, msg, q, now), msg, limit), false
	}
	return nil, true
}

// local answers for the names of containers in the scope, or returns nil
// when the name is none of theirs.
func (a *Attachment) local(msg []byte, q *question, v *view, s *scratch, limit int) []byte {
	room := limit
	if q.edns {
		room -= optLen
	}
	t := a.r.table
	if q.qtype == typePTR {
		ip, ok := reverseAddr(q.name)
		if !ok {
			return nil
		}
		target := t.lookupPTR(v.networks, ip)
		if target == nil {
			return nil
		}
		out := startReply(s.out, msg, q, rcodeSuccess, true)
		if len(out)+rrFixed+len(target) > room {
			out[2] |= flagTC
		} else {
			out = appendAnswer(out, typePTR, target)
			addCount(out, countAN, 1)
		}
		return withOPT(out, q)
	}
	name := q.name
	if target, ok := v.links[string(name)]; ok {
		name = target
	}
	addrs, found := t.lookup(v.networks, name, q.qtype, s.addrs[:0])
	s.addrs = addrs
	if !found {
		return nil
	}
	// Docker shuffles too: clients that take the first address spread
	// over the containers sharing a name.
	for i := len(addrs) - 1; i > 0; i-- {
		j := rand.IntN(i + 1)
		addrs[i], addrs[j] = addrs[j], addrs[i]
	}
	out := startReply(s.out, msg, q, rcodeSuccess, true)
	for _, ip := range addrs {
		var rdata []byte
		if ip.Is4() {
			b := ip.As4()
			rdata = b[:]
		} else {
			b := ip.As16()
			rdata = b[:]
		}
		if len(out)+rrFixed+len(rdata) > room {
			out[2] |= flagTC
			break
		}
		out = appendAnswer(out, q.qtype, rdata)
		addCount(out, countAN, 1)
	}
	return withOPT(out, q)
}

func withOPT(out []byte, q *question) []byte {
	if q.edns {
		return appendOPT(out, q.do)
	}
	return out
}

// fit truncates an answer from upstream that is too big for the client,
// which only happens to answers fetched over TCP: rare enough to unpack.
func fit(out, msg []byte, limit int) []byte {
	if len(out) <= limit {
		return out
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		return errorReply(out, msg, rcodeServFail)
	}
	m.Truncate(limit)
	if b, err := m.Pack(); err == nil {
		return b
	}
	return errorReply(out, msg, rcodeServFail)
}
