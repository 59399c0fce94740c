package resolver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestForwardedAnswersAreCachedUntilTheirTTL(t *testing.T) {
	up := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 1 IN A 192.0.2.1"})
	})
	c := attach(t, New(NewTable(), quietOptions()), Scope{Upstreams: []netip.AddrPort{up.addr}})

	m := c.ask(t, "udp", "example.com", dns.TypeA)
	if got := addrs(m); !slices.Equal(got, []string{"192.0.2.1"}) || up.udp.Load() != 1 {
		t.Fatalf("first query: got %v, upstream asked %d times", got, up.udp.Load())
	}
	// Another letter case is the same name, and gets its own case back.
	m = c.ask(t, "udp", "EXAMPLE.com", dns.TypeA)
	if got := addrs(m); !slices.Equal(got, []string{"192.0.2.1"}) || up.udp.Load() != 1 {
		t.Fatalf("second query: got %v, upstream asked %d times; want an answer from the cache", got, up.udp.Load())
	}
	if m.Question[0].Name != "EXAMPLE.com." || m.Answer[0].Header().Ttl > 1 {
		t.Fatalf("cached answer: want the question as asked and TTL at most 1, got\n%v", m)
	}
	time.Sleep(1100 * time.Millisecond)
	c.ask(t, "udp", "example.com", dns.TypeA)
	if up.udp.Load() != 2 {
		t.Fatalf("after the TTL: upstream asked %d times, want 2", up.udp.Load())
	}
}

func TestNXDOMAINIsRelayedWithSOAAndCachedBySOAMinimum(t *testing.T) {
	up := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(t, q, dns.RcodeNameError, nil, "example. 3600 IN SOA ns.example. admin.example. 1 7200 900 1209600 1")
	})
	c := attach(t, New(NewTable(), quietOptions()), Scope{Upstreams: []netip.AddrPort{up.addr}})
	for i := range 2 {
		m := c.ask(t, "udp", "nothing.example", dns.TypeA)
		if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("query %d: want NXDOMAIN with the SOA, got\n%v", i, m)
		}
	}
	if up.udp.Load() != 1 {
		t.Fatalf("upstream asked %d times, want 1: the NXDOMAIN should be cached", up.udp.Load())
	}
	time.Sleep(1100 * time.Millisecond) // the SOA minimum, not its TTL
	c.ask(t, "udp", "nothing.example", dns.TypeA)
	if up.udp.Load() != 2 {
		t.Fatalf("after the SOA minimum: upstream asked %d times, want 2", up.udp.Load())
	}
}

func TestDeadFirstUpstreamIsSkippedQuickly(t *testing.T) {
	ok := func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 60 IN A 192.0.2.1"})
	}
	silent, silentSeen := blackhole(t)
	for _, tc := range []struct {
		name string
		dead netip.AddrPort
	}{
		{"silent", silent},
		{"port closed", closedPort(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := startUpstream(t, ok)
			c := attach(t, New(NewTable(), quietOptions()), Scope{Upstreams: []netip.AddrPort{tc.dead, live.addr}})
			// The second query must not wait for the dead one at all.
			for i, want := range []time.Duration{300 * time.Millisecond, 150 * time.Millisecond} {
				start := time.Now()
				m := c.ask(t, "udp", fmt.Sprintf("name%d.example", i), dns.TypeA)
				if took := time.Since(start); took > want || m.Rcode != dns.RcodeSuccess {
					t.Fatalf("query %d took %v (want < %v), rcode %s", i, took, want, dns.RcodeToString[m.Rcode])
				}
				t.Logf("query %d answered in %v", i, time.Since(start))
			}
		})
	}
	if n := silentSeen.Load(); n != 1 {
		t.Fatalf("the silent upstream was asked %d times, want once: then the healthy one goes first", n)
	}
}

// closedPort returns a loopback address where nothing listens, so that a
// query there meets ICMP port unreachable.
func closedPort(t *testing.T) netip.AddrPort {
	pc, ln := listenBoth(t, "127.0.0.1")
	pc.Close()
	ln.Close()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func TestUpstreamServfailMovesToTheNextUpstream(t *testing.T) {
	failing := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg { return reply(t, q, dns.RcodeServerFailure, nil) })
	good := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 60 IN A 192.0.2.7"})
	})
	opts := quietOptions()
	opts.AttemptTimeout = 5 * time.Second
	c := attach(t, New(NewTable(), opts), Scope{Upstreams: []netip.AddrPort{failing.addr, good.addr}})
	start := time.Now()
	if got := addrs(c.ask(t, "udp", "example.com", dns.TypeA)); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Fatalf("got %v", got)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v: a SERVFAIL should move on at once, not after the attempt timeout", took)
	}
}

func TestAllUpstreamsDeadGivesServfail(t *testing.T) {
	dead, _ := blackhole(t)
	opts := quietOptions()
	opts.QueryTimeout = 300 * time.Millisecond
	c := attach(t, New(NewTable(), opts), Scope{Upstreams: []netip.AddrPort{dead}})
	start := time.Now()
	if m := c.ask(t, "udp", "example.com", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("got %v, want SERVFAIL", m)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v, want about the query timeout", took)
	}
}

func TestTruncatedUpstreamAnswerIsFetchedOverTCP(t *testing.T) {
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("big.example. 60 IN A 192.0.2.%d", i))
	}
	up := startUpstream(t, func(q *dns.Msg, tcp bool) *dns.Msg {
		if !tcp {
			m := reply(t, q, dns.RcodeSuccess, nil)
			m.Truncated = true
			return m
		}
		return reply(t, q, dns.RcodeSuccess, many)
	})
	c := attach(t, New(NewTable(), quietOptions()), Scope{Upstreams: []netip.AddrPort{up.addr}})

	m := c.exchange(t, "udp", new(dns.Msg).SetQuestion("big.example.", dns.TypeA).SetEdns0(1232, false))
	if m.Truncated || len(m.Answer) != 40 {
		t.Fatalf("with room for them: want 40 records, got %d, TC=%v", len(m.Answer), m.Truncated)
	}
	if up.udp.Load() != 1 || up.tcp.Load() != 1 {
		t.Fatalf("upstream asked %d times over UDP and %d over TCP, want 1 and 1", up.udp.Load(), up.tcp.Load())
	}
	// A client with no room gets TC from the cache, then all over TCP.
	m = c.ask(t, "udp", "big.example", dns.TypeA)
	if !m.Truncated || wireLen(m) > 512 {
		t.Fatalf("without EDNS: want a truncated answer within 512 bytes, got TC=%v, %d bytes", m.Truncated, wireLen(m))
	}
	if m = c.ask(t, "tcp", "big.example", dns.TypeA); m.Truncated || len(m.Answer) != 40 {
		t.Fatalf("over TCP: want 40 records, got %d", len(m.Answer))
	}
}

func TestTCPQueriesGoUpstreamOverTCP(t *testing.T) {
	up := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 60 IN A 192.0.2.1"})
	})
	c := attach(t, New(NewTable(), quietOptions()), Scope{Upstreams: []netip.AddrPort{up.addr}})
	if got := addrs(c.ask(t, "tcp", "example.com", dns.TypeA)); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Fatalf("got %v", got)
	}
	if up.udp.Load() != 0 || up.tcp.Load() != 1 {
		t.Fatalf("upstream asked %d times over UDP and %d over TCP, want 0 and 1", up.udp.Load(), up.tcp.Load())
	}
}

func TestForwardingToItselfGivesServfailAtOnce(t *testing.T) {
	r := New(NewTable(), quietOptions())
	self := attach(t, r, Scope{})
	for _, tc := range []struct {
		name string
		ups  []netip.AddrPort
	}{
		{"127.0.0.11", []netip.AddrPort{netip.MustParseAddrPort("127.0.0.11:53")}},
		{"own socket", []netip.AddrPort{netip.MustParseAddrPort(self.udp)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			self.SetScope(Scope{Upstreams: tc.ups})
			start := time.Now()
			if m := self.ask(t, "udp", "example.com", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
				t.Fatalf("got %v, want SERVFAIL", m)
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("took %v: want SERVFAIL at once, not after the query timeout", took)
			}
		})
	}
}

func TestNoForwardKeepsQueriesInside(t *testing.T) {
	up := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg { return reply(t, q, dns.RcodeSuccess, nil) })
	c := attach(t, New(twoNetworks(), quietOptions()), Scope{Networks: []string{"n1"}, Upstreams: []netip.AddrPort{up.addr}, NoForward: true})
	for _, network := range []string{"udp", "tcp"} {
		if m := c.ask(t, network, "example.com", dns.TypeA); m.Rcode != dns.RcodeRefused || m.RecursionAvailable {
			t.Fatalf("%s: got %v, want REFUSED without RA", network, m)
		}
		if got := addrs(c.ask(t, network, "web", dns.TypeA)); !slices.Equal(got, []string{"10.1.0.2"}) {
			t.Fatalf("%s: local name: got %v", network, got)
		}
	}
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Fatalf("upstream asked %d times", n)
	}
}

func TestContainersWithDifferentUpstreamsDoNotShareAnswers(t *testing.T) {
	answerWith := func(ip string) answerFunc {
		return func(q *dns.Msg, _ bool) *dns.Msg {
			return reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 60 IN A " + ip})
		}
	}
	up1, up2 := startUpstream(t, answerWith("192.0.2.1")), startUpstream(t, answerWith("192.0.2.2"))
	r := New(NewTable(), quietOptions())
	c1 := attach(t, r, Scope{Upstreams: []netip.AddrPort{up1.addr}})
	c2 := attach(t, r, Scope{Upstreams: []netip.AddrPort{up2.addr}})
	for _, tc := range []struct {
		c    *container
		want string
	}{{c1, "192.0.2.1"}, {c2, "192.0.2.2"}, {c1, "192.0.2.1"}} {
		if got := addrs(tc.c.ask(t, "udp", "split.example", dns.TypeA)); !slices.Equal(got, []string{tc.want}) {
			t.Fatalf("got %v, want %s", got, tc.want)
		}
	}
}

func TestLocalNameOfTheOtherFamilyIsNotForwarded(t *testing.T) {
	up := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg { return reply(t, q, dns.RcodeNameError, nil) })
	c := attach(t, New(twoNetworks(), quietOptions()), Scope{Networks: []string{"n1"}, Upstreams: []netip.AddrPort{up.addr}})
	if m := c.ask(t, "udp", "web", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Fatalf("got %v, want NOERROR with no answer", m)
	}
	if up.udp.Load() != 0 {
		t.Fatal("the upstream was asked")
	}
}

func TestEDNSClientsGetAnOPTRecordBack(t *testing.T) {
	up := startUpstream(t, func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 60 IN A 192.0.2.1"})
	})
	c := attach(t, New(twoNetworks(), quietOptions()), Scope{Networks: []string{"n1"}, Upstreams: []netip.AddrPort{up.addr}})
	for _, name := range []string{"web.", "example.com.", "example.com."} {
		m := c.exchange(t, "udp", new(dns.Msg).SetQuestion(name, dns.TypeA).SetEdns0(1232, true))
		if opt := m.IsEdns0(); opt == nil || !opt.Do() || len(m.Extra) != 1 {
			t.Fatalf("%s with EDNS: want one OPT record with DO, got\n%v", name, m)
		}
		if m = c.ask(t, "udp", name, dns.TypeA); m.IsEdns0() != nil {
			t.Fatalf("%s without EDNS: want no OPT record, got\n%v", name, m)
		}
	}
}

// An IPv6 upstream (a host whose resolv.conf names one, or --dns) is asked
// over UDP and, for a truncated answer, over TCP, as an IPv4 one is.
func TestIPv6UpstreamsAreAskedOverUDPAndTCP(t *testing.T) {
	if pc, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		pc.Close()
	}
	up := startUpstreamAt(t, "::1", func(q *dns.Msg, tcp bool) *dns.Msg {
		m := reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 60 IN AAAA 2001:db8::7"})
		if q.Question[0].Name == "big.example." && !tcp {
			m.Answer, m.Truncated = nil, true
		}
		return m
	})
	if !up.addr.Addr().Is6() {
		t.Fatalf("upstream at %s", up.addr)
	}
	c := attach(t, New(NewTable(), quietOptions()), Scope{Upstreams: []netip.AddrPort{up.addr}})
	if got := addrs(c.ask(t, "udp", "example.com", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8::7"}) || up.udp.Load() != 1 {
		t.Fatalf("through [::1]: %v, upstream asked %d times over UDP", got, up.udp.Load())
	}
	if got := addrs(c.ask(t, "udp", "big.example", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8::7"}) || up.tcp.Load() != 1 {
		t.Fatalf("truncated answer through [::1]: %v, upstream asked %d times over TCP", got, up.tcp.Load())
	}
}
