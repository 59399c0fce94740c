package resolver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzRespond covers queries; these cover the rest of the packet path:
// what upstreams answer, on its way into the cache and out to the client,
// and the TCP framing of a container's connection.

// FuzzUpstreamAnswer feeds a query and an upstream's answer to it through
// what forward does with them: the answer is matched to the query, read,
// prepared for the cache and written for the client, then served from the
// cache to the same query. The client's answer must parse, carry its ID
// and fit its size; a cached answer must be within maxCached.
func FuzzUpstreamAnswer(f *testing.F) {
	r := New(twoNetworks(), quietOptions())
	a := &Attachment{r: r}
	a.SetScope(Scope{Networks: []string{"n1"}, Upstreams: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53")}})

	add := func(q *dns.Msg, answer func(m *dns.Msg), tcp bool) {
		qb, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		m := new(dns.Msg).SetReply(q)
		answer(m)
		ab, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(qb, ab, tcp)
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		return r
	}
	a1 := new(dns.Msg).SetQuestion("www.example.", dns.TypeA)
	add(a1, func(m *dns.Msg) {
		m.Answer = []dns.RR{rr("www.example. 300 IN CNAME web.example."), rr("web.example. 60 IN A 192.0.2.1")}
	}, false)
	add(new(dns.Msg).SetQuestion("www.example.", dns.TypeAAAA).SetEdns0(1232, true), func(m *dns.Msg) {
		m.Answer = []dns.RR{rr("www.example. 30 IN AAAA 2001:db8::1")}
		m.SetEdns0(4096, true)
	}, false)
	add(new(dns.Msg).SetQuestion("nx.example.", dns.TypeA), func(m *dns.Msg) {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{rr("example. 900 IN SOA ns.example. host.example. 1 7200 900 1209600 86400")}
	}, false)
	for _, tcp := range []bool{false, true} {
		add(new(dns.Msg).SetQuestion("big.example.", dns.TypeTXT), func(m *dns.Msg) {
			for i := range 40 {
				m.Answer = append(m.Answer, rr(fmt.Sprintf(`big.example. 60 IN TXT "%0100d"`, i)))
			}
		}, tcp)
	}
	add(new(dns.Msg).SetQuestion("big.example.", dns.TypeTXT), func(m *dns.Msg) {
		m.Truncated = true
	}, false)
	add(new(dns.Msg).SetQuestion("mx.example.", dns.TypeMX), func(m *dns.Msg) {
		m.Answer = []dns.RR{rr("mx.example. 3600 IN MX 10 mail.example.")}
		m.Extra = []dns.RR{rr("mail.example. 3600 IN A 192.0.2.25")}
	}, false)
	add(new(dns.Msg).SetQuestion("refused.example.", dns.TypeA), func(m *dns.Msg) {
		m.Rcode = dns.RcodeRefused
		m.Question = nil
	}, false)

	f.Fuzz(func(t *testing.T, query, answer []byte, tcp bool) {
		var q question
		var name [maxName]byte
		if len(query) < headerLen || query[2]&flagQR != 0 || parseQuery(query, &q, name[:]) != nil {
			return
		}
		up := upstreamQuery(query, &q)
		if len(answer) >= 2 {
			// The fuzzer cannot guess the fresh ID.
			answer = bytes.Clone(answer)
			copy(answer, up[:2])
		}
		if !answers(answer, up, &q) {
			return
		}
		m := new(dns.Msg)
		if m.Unpack(answer) != nil {
			return // SERVFAIL for the client
		}
		now := time.Now()
		e, ttl, err := newEntry(m, now)
		if err != nil {
			return // SERVFAIL for the client
		}
		if ttl > 0 && len(e.msg) > maxCached {
			t.Fatalf("an answer of %d bytes would be cached, more than %d", len(e.msg), maxCached)
		}
		limit := q.size
		if tcp {
			limit = dns.MaxMsgSize
		}
		checkAnswer(t, query, fit(e.reply(nil, query, &q, now), query, limit), limit)
		if ttl <= 0 {
			return
		}
		key := cacheKey(nil, a.view.Load(), query, &q)
		r.cache.put(key, e)
		defer r.cache.put(key, &entry{})
		s := new(scratch)
		resp, fwd := a.respond(query, s, tcp)
		if fwd || resp == nil {
			// A name of the networks' own answers before the cache.
			return
		}
		checkAnswer(t, query, resp, limit)
	})
}

func checkAnswer(t *testing.T, query, resp []byte, limit int) {
	t.Helper()
	if len(resp) > limit {
		t.Fatalf("answer of %d bytes, client takes %d", len(resp), limit)
	}
	if len(resp) < headerLen || !bytes.Equal(resp[:2], query[:2]) || resp[2]&flagQR == 0 {
		t.Fatalf("answer %x does not answer query %x", resp, query[:min(len(query), 4)])
	}
	if err := new(dns.Msg).Unpack(resp); err != nil {
		t.Fatalf("answer does not parse: %v\n%x", err, resp)
	}
}

// FuzzTCPStream writes a byte stream to a container's TCP connection to
// the resolver: every whole frame gets at most one framed answer, and the
// connection ends when the stream does, whatever the stream holds.
func FuzzTCPStream(f *testing.F) {
	r := New(twoNetworks(), quietOptions())
	a := &Attachment{r: r}
	a.SetScope(Scope{Networks: []string{"n1", "n2"}, NoForward: true})
	frame := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	q1 := frame(new(dns.Msg).SetQuestion("web.", dns.TypeA))
	q2 := frame(new(dns.Msg).SetQuestion("elsewhere.example.", dns.TypeA))
	f.Add(q1)
	f.Add(append(append([]byte{}, q1...), q2...))
	f.Add(q1[:len(q1)-3])
	f.Add([]byte{0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, stream []byte) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			a.serveConn(server)
			server.Close()
			close(done)
		}()
		answers := make(chan int, 1)
		go func() {
			n := 0
			var size [2]byte
			for {
				if _, err := io.ReadFull(client, size[:]); err != nil {
					break
				}
				msg := make([]byte, binary.BigEndian.Uint16(size[:]))
				if _, err := io.ReadFull(client, msg); err != nil {
					t.Errorf("answer cut short: %v", err)
					break
				}
				if err := new(dns.Msg).Unpack(msg); err != nil {
					t.Errorf("answer does not parse: %v", err)
				}
				n++
			}
			answers <- n
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		client.Write(stream)
		client.(*net.TCPConn).CloseWrite()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection did not end with its stream")
		}
		if n := <-answers; n > frames(stream) {
			t.Fatalf("%d answers to %d frames", n, frames(stream))
		}
	})
}

// frames counts the whole frames of a stream.
func frames(stream []byte) int {
	n := 0
	for len(stream) >= 2 {
		size := int(binary.BigEndian.Uint16(stream))
		if len(stream) < 2+size {
			break
		}
		stream = stream[2+size:]
		n++
	}
	return n
}
