package resolver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// thousandContainers registers 1,000 containers on one network, each with
// a name and an alias, as "c<i>" and "alias<i>".
func thousandContainers(t *Table, network string) {
	for i := range 1000 {
		t.Add(Record{
			Network: network, NetworkID: network, Container: fmt.Sprintf("%064x", i),
			Names: []string{fmt.Sprint("c", i), fmt.Sprint("alias", i)},
			IPv4:  netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
		})
	}
}

func packedQueries(b *testing.B, format string) [][]byte {
	var qs [][]byte
	for i := range 1000 {
		q, err := new(dns.Msg).SetQuestion(fmt.Sprintf(format, i), dns.TypeA).Pack()
		if err != nil {
			b.Fatal(err)
		}
		qs = append(qs, q)
	}
	return qs
}

// BenchmarkLocalQuery measures container names answered from the table,
// with 1,000 containers registered: with a few queries outstanding per
// client, and with dnsperf's load in berth's comparisons (-c 4 -q 100).
func BenchmarkLocalQuery(b *testing.B) {
	table := NewTable()
	thousandContainers(table, "net")
	c := attach(b, New(table, quietOptions()), Scope{Networks: []string{"net"}})
	qs := packedQueries(b, "c%d.")
	b.Run("window=8", func(b *testing.B) { load(b, c.udp, qs, 8) })
	b.Run("window=25", func(b *testing.B) { load(b, c.udp, qs, 25) })
}

// BenchmarkCachedQuery measures upstream names answered from the cache.
func BenchmarkCachedQuery(b *testing.B) {
	up := startUpstream(b, func(q *dns.Msg, _ bool) *dns.Msg {
		return reply(b, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 3600 IN A 192.0.2.1"})
	})
	table := NewTable()
	thousandContainers(table, "net")
	c := attach(b, New(table, quietOptions()), Scope{Networks: []string{"net"}, Upstreams: []netip.AddrPort{up.addr}})
	qs := packedQueries(b, "host%d.example.")
	for i := range qs {
		m := new(dns.Msg)
		m.Unpack(qs[i])
		c.exchange(b, "udp", m)
	}
	asked := up.udp.Load()
	load(b, c.udp, qs, 8)
	if up.udp.Load() != asked {
		b.Fatalf("the upstream was asked %d more times", up.udp.Load()-asked)
	}
}

// Like dnsperf, each client keeps a window of queries outstanding on one
// socket: a sender fills the window, a receiver empties it.
const clients = 4

// load sends b.N queries to addr over UDP on loopback, window outstanding
// per client, and reports queries per second and latency percentiles.
func load(b *testing.B, addr string, queries [][]byte, window int) {
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			b.Fatal(err)
		}
		lat[i] = make([]time.Duration, 0, b.N/clients+1)
		sent := make([]atomic.Int64, window) // when the query in each slot left
		free := make(chan uint16, window)
		for slot := range uint16(window) {
			free <- slot
		}
		failed := make(chan struct{})
		wg.Go(func() {
			defer conn.Close()
			buf := make([]byte, 512)
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				var slot uint16
				select {
				case slot = <-free:
				case <-failed:
					return
				}
				q := append(buf[:0], queries[int(n)%len(queries)]...)
				q[0], q[1] = byte(slot>>8), byte(slot)
				sent[slot].Store(time.Now().UnixNano())
				if _, err := conn.Write(q); err != nil {
					b.Error(err)
					return
				}
			}
			for range window {
				select {
				case <-free:
				case <-failed:
					return
				}
			}
		})
		wg.Go(func() {
			defer close(failed)
			buf := make([]byte, maxUDP)
			for {
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := conn.Read(buf)
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err != nil || n < 2 || int(be16(buf)) >= window {
					b.Errorf("answer lost or garbled: %v", err)
					return
				}
				slot := be16(buf)
				lat[i] = append(lat[i], time.Duration(time.Now().UnixNano()-sent[slot].Load()))
				free <- slot
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}

func TestMemoryWith1000Containers(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	table := NewTable()
	thousandContainers(table, "net")
	used := heap() - before
	t.Logf("table with 1,000 containers (name, alias, short ID, each also as name.network): %d KiB on the heap", used/1024)
	if used > 2<<20 {
		t.Fatalf("table uses %d KiB, want under 2 MiB", used/1024)
	}

	// What each container's attachment (sockets, goroutines, buffers) adds.
	r := New(table, quietOptions())
	before = heap()
	var stacksBefore runtime.MemStats
	runtime.ReadMemStats(&stacksBefore)
	const attached = 200
	for range attached {
		attach(t, r, Scope{Networks: []string{"net"}})
	}
	used = heap() - before
	var stacks runtime.MemStats
	runtime.ReadMemStats(&stacks)
	stack := stacks.StackInuse - stacksBefore.StackInuse
	t.Logf("per attached container: %d KiB heap + %d KiB goroutine stacks", used/attached/1024, stack/attached/1024)
	runtime.KeepAlive(table)
}
