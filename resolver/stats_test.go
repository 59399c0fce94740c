package resolver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestStatsCountQueriesByWhereTheirAnswerCameFrom(t *testing.T) {
	up := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(t, q, dns.RcodeNameError, nil, "example. 3600 IN SOA ns.example. admin.example. 1 7200 900 1209600 60")
	})
	var waits []time.Duration
	opts := quietOptions()
	opts.Forwarded = func(d time.Duration) { waits = append(waits, d) }
	r := New(twoNetworks(), opts)
	c := attach(t, r, Scope{Networks: []string{"n1"}, Upstreams: []netip.AddrPort{up.addr}})
	inside := attach(t, r, Scope{Networks: []string{"n1"}, NoForward: true})

	c.ask(t, "udp", "web", dns.TypeA)                  // a container's name
	c.ask(t, "udp", "nothing.example", dns.TypeA)      // forwarded: NXDOMAIN
	c.ask(t, "tcp", "nothing.example", dns.TypeA)      // from the cache
	inside.ask(t, "udp", "nothing.example", dns.TypeA) // refused: internal

	got := r.Stats()
	want := Stats{Queries: 4, Local: 1, Cached: 1, Forwarded: 1}
	want.Responses[dns.RcodeSuccess] = 1
	want.Responses[dns.RcodeNameError] = 2
	want.Responses[dns.RcodeRefused] = 1
	if got != want {
		t.Fatalf("stats:\n got %+v\nwant %+v", got, want)
	}
	if len(waits) != 1 || waits[0] <= 0 {
		t.Fatalf("forward waits reported: %v, want one", waits)
	}
}
