package resolver

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// container is the resolver as one container sees it: its two sockets.
type container struct {
	*Attachment
	udp, tcp string
}

// attach serves a container with scope s on fresh loopback sockets.
func attach(t testing.TB, r *Resolver, s Scope) *container {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := r.Attach(udp, tcp, s)
	t.Cleanup(func() { a.Close() })
	return &container{a, udp.LocalAddr().String(), tcp.Addr().String()}
}

func quietOptions() Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// ask sends one query over network ("udp" or "tcp") and returns the answer.
func (c *container) ask(t testing.TB, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return c.exchange(t, network, new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype))
}

func (c *container) exchange(t testing.TB, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	addr := c.udp
	if network == "tcp" {
		addr = c.tcp
	}
	cl := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: maxUDP}
	resp, _, err := cl.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, m.Question[0].String(), err)
	}
	return resp
}

// upstream is a fake DNS server on loopback, UDP and TCP on one port.
type upstream struct {
	addr     netip.AddrPort
	udp, tcp atomic.Int32 // queries seen
}

// answerFunc builds the fake upstream's answer to q; tcp tells how q came.
type answerFunc func(q *dns.Msg, tcp bool) *dns.Msg

func startUpstream(t testing.TB, answer answerFunc) *upstream {
	t.Helper()
	return startUpstreamAt(t, "127.0.0.1", answer)
}

// startUpstreamAt is startUpstream on the loopback address host.
func startUpstreamAt(t testing.TB, host string, answer answerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		tcp := w.RemoteAddr().Network() == "tcp"
		if tcp {
			u.tcp.Add(1)
		} else {
			u.udp.Add(1)
		}
		if m := answer(q, tcp); m != nil {
			w.WriteMsg(m)
		}
	})
	pc, ln := listenBoth(t, host)
	u.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return u
}

// listenBoth opens a UDP socket and a TCP listener on the same loopback port.
func listenBoth(t testing.TB, host string) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no free port for UDP and TCP")
	return nil, nil
}

// blackhole is an upstream that reads queries and never answers.
func blackhole(t testing.TB) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var seen atomic.Int32
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			seen.Add(1)
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String()), &seen
}

// reply answers q with rcode and records given as text.
func reply(t testing.TB, q *dns.Msg, rcode int, answer []string, ns ...string) *dns.Msg {
	m := new(dns.Msg).SetRcode(q, rcode)
	m.RecursionAvailable = true
	for _, s := range answer {
		m.Answer = append(m.Answer, mustRR(t, s))
	}
	for _, s := range ns {
		m.Ns = append(m.Ns, mustRR(t, s))
	}
	return m
}

func mustRR(t testing.TB, s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// addrs returns the addresses of the A and AAAA records of m, in order.
func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// wireLen is the size m had on the wire, compressed.
func wireLen(m *dns.Msg) int {
	m.Compress = true
	return m.Len()
}
