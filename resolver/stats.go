package resolver

import "sync/atomic"

// Stats count what the resolver did since it was made, for all
// containers together.
type Stats struct {
	// Queries are the queries read, answered or not.
	Queries uint64
	// Local are answers from the containers' names (the Table), Cached
	// those from the cache, Forwarded the queries sent upstream.
	Local, Cached, Forwarded uint64
	// Responses counts the answers sent by their response code (the low
	// four bits: NOERROR 0, SERVFAIL 2, NXDOMAIN 3, REFUSED 5, ...).
	Responses [16]uint64
}

// counters are the Stats as the serving paths bump them: one atomic add
// each, no lock on the query path.
type counters struct {
	queries, local, cached, forwarded atomic.Uint64
	responses                         [16]atomic.Uint64
}

// responded counts an answer by the response code in its header.
func (c *counters) responded(resp []byte) {
	if len(resp) >= headerLen {
		c.responses[resp[3]&0x0f].Add(1)
	}
}

// Stats returns the counts so far.
func (r *Resolver) Stats() Stats {
	c := &r.counters
	s := Stats{Queries: c.queries.Load(), Local: c.local.Load(), Cached: c.cached.Load(), Forwarded: c.forwarded.Load()}
	for i := range c.responses {
		s.Responses[i] = c.responses[i].Load()
	}
	return s
}
