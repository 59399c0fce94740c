package resolver

import (
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestQueuedBurstsFromSeveralClientsGetEveryAnswerOnce queues bursts of
// queries from several clients before the resolver reads any, so that it
// reads them in full batches and sends each client's answers of one size
// together: every query must still get exactly its own answer, as a
// datagram of its own.
func TestQueuedBurstsFromSeveralClientsGetEveryAnswerOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		listen  *net.UDPAddr
		clients []string // addresses to dial the socket's port on
		// noCheck turns UDP checksums off on the socket, which makes
		// the kernel refuse GSO: answers must go one by one instead.
		noCheck bool
	}{
		{"IPv4 socket", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"}, false},
		{"dual-stack socket", &net.UDPAddr{IP: net.IPv6unspecified}, []string{"127.0.0.1", "::1", "127.0.0.1", "::1"}, false},
		{"socket refusing GSO", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, []string{"127.0.0.1", "127.0.0.1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			udp, err := net.ListenUDP("udp", tc.listen)
			if err != nil {
				t.Skip(err)
			}
			if tc.noCheck {
				rc, _ := udp.SyscallConn()
				rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) })
				if err != nil {
					t.Fatal(err)
				}
			}
			port := udp.LocalAddr().(*net.UDPAddr).Port
			// Names whose answers differ in size: one address, two,
			// an IPv6 one, and none (REFUSED).
			asked := []struct {
				name    string
				qtype   uint16
				answers int
			}{{"web.", dns.TypeA, 1}, {"svc.", dns.TypeA, 2}, {"six.", dns.TypeAAAA, 1}, {"db.", dns.TypeA, 0}}
			const perClient = 24
			var conns []*net.UDPConn
			for _, host := range tc.clients {
				c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.ParseIP(host), Port: port})
				if err != nil {
					t.Skip(err)
				}
				defer c.Close()
				conns = append(conns, c)
				for id := range perClient {
					q := new(dns.Msg).SetQuestion(asked[id%len(asked)].name, asked[id%len(asked)].qtype)
					q.Id = uint16(id)
					b, _ := q.Pack()
					if _, err := c.Write(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The first query of a container takes a batch from the pool:
			// a new one, once the pool is emptied by two collections.
			runtime.GC()
			runtime.GC()
			a := New(twoNetworks(), quietOptions()).Attach(udp, nil, Scope{Networks: []string{"n1"}, NoForward: true})
			closeOnce := sync.OnceValue(a.Close)
			defer closeOnce()

			for i, c := range conns {
				seen := map[uint16]bool{}
				buf := make([]byte, maxUDP)
				for range perClient {
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("client %d: %d answers of %d: %v", i, len(seen), perClient, err)
					}
					m := new(dns.Msg)
					if err := m.Unpack(buf[:n]); err != nil {
						t.Fatalf("client %d: answer of %d bytes does not parse: %v", i, n, err)
					}
					want := asked[int(m.Id)%len(asked)]
					if seen[m.Id] || int(m.Id) >= perClient || m.Question[0].Name != want.name || len(m.Answer) != want.answers {
						t.Fatalf("client %d: unexpected answer (seen before: %v)\n%v", i, seen[m.Id], m)
					}
					seen[m.Id] = true
				}
			}
			closeOnce() // so that a.noGSO may be read
			if a.noGSO != tc.noCheck {
				t.Errorf("answering without GSO: %v, want %v", a.noGSO, tc.noCheck)
			}
		})
	}
}
