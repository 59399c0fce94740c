package resolver

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzRespond feeds the query handler random bytes and mutated queries for
// local names, reverse names and a cached answer too big for UDP: it must
// never panic, and must answer within the client's limit with a message
// that parses and carries the query's ID.
func FuzzRespond(f *testing.F) {
	r := New(twoNetworks(), quietOptions())
	a := &Attachment{r: r}
	a.SetScope(Scope{Networks: []string{"n1", "n2"}, Links: map[string]string{"l": "db"},
		Upstreams: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53")}})

	big := new(dns.Msg).SetQuestion("cached.example.", dns.TypeA)
	var answer []string
	for i := range 60 {
		answer = append(answer, fmt.Sprintf("cached.example. 300 IN A 192.0.2.%d", i))
	}
	e, _, err := newEntry(reply(f, big, dns.RcodeSuccess, answer), time.Now())
	if err != nil {
		f.Fatal(err)
	}
	var q question
	var name [maxName]byte
	wire, _ := big.Pack()
	if err := parseQuery(wire, &q, name[:]); err != nil {
		f.Fatal(err)
	}
	r.cache.put(cacheKey(nil, a.view.Load(), wire, &q), e)

	for _, m := range []*dns.Msg{
		new(dns.Msg).SetQuestion("web.", dns.TypeA),
		new(dns.Msg).SetQuestion("svc.front.", dns.TypeA).SetEdns0(1232, true),
		new(dns.Msg).SetQuestion("l.", dns.TypeAAAA),
		new(dns.Msg).SetQuestion("2.0.1.10.in-addr.arpa.", dns.TypePTR),
		new(dns.Msg).SetQuestion("6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR),
		new(dns.Msg).SetQuestion("cached.example.", dns.TypeA),
		new(dns.Msg).SetQuestion("cached.example.", dns.TypeA).SetEdns0(700, false),
		new(dns.Msg).SetQuestion("elsewhere.example.", dns.TypeMX),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte{}, false)
	f.Add(bytes.Repeat([]byte{0xFF}, 40), false)

	f.Fuzz(func(t *testing.T, msg []byte, tcp bool) {
		s := new(scratch)
		resp, fwd := a.respond(msg, s, tcp)
		if fwd {
			// What would go upstream must be a well-formed query.
			if err := new(dns.Msg).Unpack(upstreamQuery(msg, &s.q)); err != nil {
				t.Fatalf("upstream query: %v", err)
			}
			return
		}
		if resp == nil {
			return
		}
		limit := dns.MaxMsgSize
		if !tcp {
			// What the client said it takes, as far as miekg/dns can tell.
			limit = maxUDP
			if m := new(dns.Msg); m.Unpack(msg) == nil {
				limit = minUDP
				if opt := m.IsEdns0(); opt != nil {
					limit = min(max(int(opt.UDPSize()), minUDP), maxUDP)
				}
			}
		}
		if len(resp) > limit {
			t.Fatalf("answer of %d bytes, client takes %d", len(resp), limit)
		}
		if !bytes.Equal(resp[:2], msg[:2]) || resp[2]&flagQR == 0 {
			t.Fatalf("answer %x does not answer query %x", resp[:4], msg[:4])
		}
		if err := new(dns.Msg).Unpack(resp); err != nil {
			t.Fatalf("answer does not parse: %v\n%x", err, resp)
		}
	})
}
