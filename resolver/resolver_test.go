package resolver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// twoNetworks is the table the local-name tests share: networks "front"
// (n1) and "back" (n2).
func twoNetworks() *Table {
	t := NewTable()
	a := netip.MustParseAddr
	for _, r := range []Record{
		{Network: "front", NetworkID: "n1", Container: "aaaaaaaaaaaa0001", Names: []string{"web", "Web.Alias", "svc", "cache"}, IPv4: a("10.1.0.2")},
		{Network: "front", NetworkID: "n1", Container: "bbbbbbbbbbbb0002", Names: []string{"api", "svc"}, IPv4: a("10.1.0.3")},
		{Network: "front", NetworkID: "n1", Container: "cccccccccccc0003", Names: []string{"both"}, IPv4: a("10.1.0.5")},
		{Network: "front", NetworkID: "n1", Container: "dddddddddddd0004", Names: []string{"six"}, IPv6: a("fd00::6")},
		{Network: "front", NetworkID: "n1", Container: "eeeeeeeeeeee0005", Names: []string{"dual"}, IPv4: a("10.1.0.7"), IPv6: a("fd00::7")},
		{Network: "back", NetworkID: "n2", Container: "ffffffffffff0006", Names: []string{"db", "cache"}, IPv4: a("10.2.0.2")},
		{Network: "back", NetworkID: "n2", Container: "cccccccccccc0003", Names: []string{"both"}, IPv4: a("10.2.0.5")},
	} {
		t.Add(r)
	}
	return t
}

func TestContainerNamesResolveWithinSharedNetworks(t *testing.T) {
	r := New(twoNetworks(), quietOptions())
	// NoForward makes a name that is not local answer REFUSED at once.
	scopes := map[string]*container{
		"front": attach(t, r, Scope{Networks: []string{"n1"}, NoForward: true}),
		"back":  attach(t, r, Scope{Networks: []string{"n2"}, NoForward: true}),
		"both":  attach(t, r, Scope{Networks: []string{"n1", "n2"}, NoForward: true}),
		"linked": attach(t, r, Scope{Networks: []string{"n2"}, NoForward: true,
			Links: map[string]string{"DBALIAS": "db", "ghost": "nobody"}}),
	}
	const refused = "REFUSED"
	for _, tc := range []struct {
		scope, name string
		qtype       uint16
		want        []string // addresses, any order; or refused
	}{
		{"front", "web", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "WEB", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "web.front", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "Web.FRONT", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "web.alias", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "web.alias.front", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "aaaaaaaaaaaa", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "AAAAAAAAAAAA.front", dns.TypeA, []string{"10.1.0.2"}},
		{"front", "aaaaaaaaaaaa0001", dns.TypeA, []string{refused}},
		{"front", "svc", dns.TypeA, []string{"10.1.0.2", "10.1.0.3"}},
		{"front", "svc.front", dns.TypeA, []string{"10.1.0.2", "10.1.0.3"}},
		{"front", "db", dns.TypeA, []string{refused}},
		{"front", "db.back", dns.TypeA, []string{refused}},
		{"back", "web", dns.TypeA, []string{refused}},
		{"back", "db", dns.TypeA, []string{"10.2.0.2"}},
		{"back", "db.back", dns.TypeA, []string{"10.2.0.2"}},
		{"both", "web", dns.TypeA, []string{"10.1.0.2"}},
		{"both", "db", dns.TypeA, []string{"10.2.0.2"}},
		{"both", "db.front", dns.TypeA, []string{refused}},
		// One name on two networks answers per network; on both, from
		// the first joined.
		{"front", "cache", dns.TypeA, []string{"10.1.0.2"}},
		{"back", "cache", dns.TypeA, []string{"10.2.0.2"}},
		{"both", "cache", dns.TypeA, []string{"10.1.0.2"}},
		{"both", "cache.back", dns.TypeA, []string{"10.2.0.2"}},
		{"front", "both", dns.TypeA, []string{"10.1.0.5"}},
		{"back", "both", dns.TypeA, []string{"10.2.0.5"}},
		// The other family: NOERROR and no answer, never forwarded.
		{"front", "web", dns.TypeAAAA, nil},
		{"front", "six", dns.TypeAAAA, []string{"fd00::6"}},
		{"front", "six", dns.TypeA, nil},
		{"front", "dual", dns.TypeAAAA, []string{"fd00::7"}},
		{"front", "dual", dns.TypeA, []string{"10.1.0.7"}},
		{"front", "web", dns.TypeMX, nil},
		{"linked", "dbalias", dns.TypeA, []string{"10.2.0.2"}},
		{"linked", "db", dns.TypeA, []string{"10.2.0.2"}},
		{"linked", "ghost", dns.TypeA, []string{refused}},
		{"back", "dbalias", dns.TypeA, []string{refused}},
	} {
		t.Run(tc.scope+"/"+tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			m := scopes[tc.scope].ask(t, "udp", tc.name, tc.qtype)
			if slices.Equal(tc.want, []string{refused}) {
				if m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
					t.Fatalf("want REFUSED, got\n%v", m)
				}
				return
			}
			if m.Rcode != dns.RcodeSuccess || !m.RecursionAvailable || m.Authoritative || m.Truncated {
				t.Fatalf("want NOERROR with RA, got\n%v", m)
			}
			got := addrs(m)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("addresses %v, want %v", got, tc.want)
			}
			for _, rr := range m.Answer {
				if rr.Header().Ttl != 600 || rr.Header().Name != dns.Fqdn(tc.name) {
					t.Errorf("record %v: want TTL 600 and the name as asked", rr)
				}
			}
		})
	}
}

func TestReverseLookupAnswersNameDotNetwork(t *testing.T) {
	r := New(twoNetworks(), quietOptions())
	front := attach(t, r, Scope{Networks: []string{"n1"}, NoForward: true})
	for _, tc := range []struct {
		addr, want string
		rcode      int
	}{
		{"10.1.0.2", "web.front.", dns.RcodeSuccess},
		{"fd00::6", "six.front.", dns.RcodeSuccess},
		{"10.1.0.3", "api.front.", dns.RcodeSuccess},
		{"10.2.0.2", "", dns.RcodeRefused}, // on a network front does not share
		{"10.1.0.99", "", dns.RcodeRefused},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			name, _ := dns.ReverseAddr(tc.addr)
			m := front.ask(t, "udp", name, dns.TypePTR)
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.want == "" {
				return
			}
			if len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != tc.want || m.Answer[0].Header().Ttl != 600 {
				t.Fatalf("want PTR %s, got\n%v", tc.want, m)
			}
		})
	}
}

func TestSharedNameAnswersEveryAddressShuffled(t *testing.T) {
	table := NewTable()
	for i := range 4 {
		table.Add(Record{Network: "n", NetworkID: "n", Container: fmt.Sprintf("%012x", i),
			Names: []string{fmt.Sprint("c", i), "svc"}, IPv4: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 2)})})
	}
	c := attach(t, New(table, quietOptions()), Scope{Networks: []string{"n"}})
	first := map[string]int{}
	for range 200 {
		got := addrs(c.ask(t, "udp", "svc", dns.TypeA))
		first[got[0]]++
		slices.Sort(got)
		if !slices.Equal(got, []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}) {
			t.Fatalf("got %v, want all four addresses", got)
		}
	}
	if len(first) < 4 {
		t.Fatalf("first address over 200 answers: %v; want every address first sometimes", first)
	}
}

func TestTooManyAddressesSetTruncatedAndTCPGetsAll(t *testing.T) {
	table := NewTable()
	for i := range 100 {
		table.Add(Record{Network: "n", NetworkID: "n", Container: fmt.Sprintf("%012x", i),
			Names: []string{"svc"}, IPv4: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})})
	}
	c := attach(t, New(table, quietOptions()), Scope{Networks: []string{"n"}})
	m := c.exchange(t, "udp", new(dns.Msg).SetQuestion("svc.", dns.TypeA))
	if !m.Truncated || len(m.Answer) == 0 || wireLen(m) > 512 {
		t.Fatalf("over UDP without EDNS: want a truncated answer within 512 bytes, got %d records, %d bytes, TC=%v", len(m.Answer), wireLen(m), m.Truncated)
	}
	m = c.exchange(t, "udp", new(dns.Msg).SetQuestion("svc.", dns.TypeA).SetEdns0(4096, false))
	if m.Truncated || len(m.Answer) != 100 || m.IsEdns0() == nil {
		t.Fatalf("over UDP with EDNS 4096: want all 100 records and an OPT record, got %d, TC=%v", len(m.Answer), m.Truncated)
	}
	if m = c.ask(t, "tcp", "svc", dns.TypeA); m.Truncated || len(m.Answer) != 100 {
		t.Fatalf("over TCP: want all 100 records, got %d, TC=%v", len(m.Answer), m.Truncated)
	}
}

func TestSetScopeAppliesToTheNextQuery(t *testing.T) {
	c := attach(t, New(twoNetworks(), quietOptions()), Scope{Networks: []string{"n1"}, NoForward: true})
	if m := c.ask(t, "udp", "db", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Fatalf("before connect: got %v", m)
	}
	c.SetScope(Scope{Networks: []string{"n1", "n2"}, NoForward: true})
	if got := addrs(c.ask(t, "udp", "db", dns.TypeA)); !slices.Equal(got, []string{"10.2.0.2"}) {
		t.Fatalf("after connect: got %v", got)
	}
}

func TestLocalNamesOverTCP(t *testing.T) {
	c := attach(t, New(twoNetworks(), quietOptions()), Scope{Networks: []string{"n1"}})
	if got := addrs(c.ask(t, "tcp", "web", dns.TypeA)); !slices.Equal(got, []string{"10.1.0.2"}) {
		t.Fatalf("got %v", got)
	}
}

func TestMalformedQueriesGetFormErrOrNothing(t *testing.T) {
	c := attach(t, New(twoNetworks(), quietOptions()), Scope{Networks: []string{"n1"}, NoForward: true})
	conn, err := net.Dial("udp", c.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, junk := range [][]byte{
		{1, 2, 3},
		{0xAB, 0xCD, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40}, // bad label
		{0xAB, 0xCD, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0}, // an answer
		{0xAB, 0xCD, 0x01, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},
	} {
		conn.Write(junk)
	}
	// Then a real query on the same socket still gets its answer; the
	// FORMERRs come first, for the junk that had a header.
	q := new(dns.Msg).SetQuestion("web.", dns.TypeA)
	q.Id = 1
	b, _ := q.Pack()
	conn.Write(b)
	var rcodes []int
	for {
		m := new(dns.Msg)
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		rcodes = append(rcodes, m.Rcode)
		if m.Id == q.Id {
			break
		}
	}
	if want := []int{dns.RcodeFormatError, dns.RcodeFormatError, dns.RcodeSuccess}; !slices.Equal(rcodes, want) {
		t.Fatalf("rcodes %v, want %v", rcodes, want)
	}
}
