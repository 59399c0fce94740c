package netdev_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/netdev"
)

// forwardNS is a fresh namespace with a second IPv6 address on lo, for
// the forwarder tests: reservations, destinations and clients all live in
// it, which also shows that a forwarder dials in the namespace its
// reservation was made in.
func forwardNS(t *testing.T) *nettest.Namespace {
	t.Helper()
	dir := t.TempDir()
	ns := nettest.NewNamespace(t, dir, "fwd")
	lo, err := ns.Netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := netlink.ParseAddr("fd00:f::1/128")
	a.Flags = syscall.IFA_F_NODAD
	if err := ns.Netlink.AddrAdd(lo, a); err != nil {
		t.Fatal(err)
	}
	// The kernel makes the address's local route a moment later.
	for start := time.Now(); time.Since(start) < 2*time.Second; time.Sleep(5 * time.Millisecond) {
		if rs, err := ns.Netlink.RouteGet(a.IP); err == nil && len(rs) == 1 && rs[0].Type == unix.RTN_LOCAL {
			return ns
		}
	}
	t.Fatal("fd00:f::1 on lo never became local")
	return nil
}

func reserve(t *testing.T, ns *nettest.Namespace, r netdev.Reservation) io.Closer {
	t.Helper()
	var c io.Closer
	if err := ns.Do(func() (err error) { c, err = netdev.ReservePort(r); return err }); err != nil {
		t.Fatalf("reserve %+v: %v", r, err)
	}
	return c
}

// tcpServer answers each connection with "hello from <addr>", then
// echoes what it reads until the client's half close, then closes.
func tcpServer(t *testing.T, ns *nettest.Namespace, addr string) netip.AddrPort {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "hello from %s;", c.LocalAddr())
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// converse sends msg through a connection to addr, half-closes, and
// returns everything that came back until the other side closed.
func converse(ns *nettest.Namespace, addr netip.AddrPort, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

// settled waits until the process has at most goroutines goroutines and
// files open files, and fails the test when it does not within a second.
func settled(t *testing.T, goroutines, files int) {
	t.Helper()
	var g, f int
	for start := time.Now(); time.Since(start) < time.Second; time.Sleep(10 * time.Millisecond) {
		// Pipes that splice kept for reuse are let go.
		runtime.GC()
		g, f = runtime.NumGoroutine(), openFiles(t)
		if g <= goroutines && f <= files {
			return
		}
	}
	t.Errorf("%d goroutines and %d open files, want at most %d and %d: the forwarder leaks", g, f, goroutines, files)
}

func openFiles(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestTCPReservationForwardsWhatReachesItToItsDestination(t *testing.T) {
	ns := forwardNS(t)
	v4 := tcpServer(t, ns, "127.0.0.1:0")
	v6 := tcpServer(t, ns, "[fd00:f::1]:0")
	goroutines, files := runtime.NumGoroutine(), openFiles(t)

	to4 := reserve(t, ns, netdev.Reservation{Proto: "tcp", Addr: netip.IPv6Unspecified(), Port: 7001, To: v4})
	to6 := reserve(t, ns, netdev.Reservation{Proto: "tcp", Addr: netip.IPv6Loopback(), Port: 7002, To: v6})
	for _, c := range []struct {
		at   netip.AddrPort
		want string
	}{
		{netip.MustParseAddrPort("[::1]:7001"), "hello from " + v4.String() + ";ping"},
		{netip.MustParseAddrPort("[fd00:f::1]:7001"), "hello from " + v4.String() + ";ping"},
		{netip.MustParseAddrPort("[::1]:7002"), "hello from " + v6.String() + ";ping"},
	} {
		// The answer outlives the client's half close: each direction
		// ends on its own.
		if got, err := converse(ns, c.at, "ping"); err != nil || got != c.want {
			t.Errorf("through %s: %q, %v; want %q", c.at, got, err, c.want)
		}
	}
	// A connection carried while the reservation goes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	open, err := ns.Dial(ctx, "tcp", "[::1]:7001")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	open.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(open, make([]byte, len("hello from "))); err != nil {
		t.Fatal(err)
	}
	to4.Close()
	to6.Close()
	if _, err := io.ReadAll(open); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a connection carried when the reservation went: %v, want it ended", err)
	}
	for _, at := range []string{"[::1]:7001", "[::1]:7002"} {
		if _, err := converse(ns, netip.MustParseAddrPort(at), "x"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s after the reservation went: %v, want connection refused", at, err)
		}
	}
	open.Close()
	settled(t, goroutines, files)
}

func TestTCPClientIsResetWhenTheDestinationRefuses(t *testing.T) {
	ns := forwardNS(t)
	// A port nothing listens on.
	l, err := ns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	r := reserve(t, ns, netdev.Reservation{Proto: "tcp", Addr: netip.IPv6Unspecified(), Port: 7003, To: dead})
	defer r.Close()
	if got, err := converse(ns, netip.MustParseAddrPort("[::1]:7003"), "x"); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("to a destination that refuses: %q, %v; want a reset", got, err)
	}
}

func TestReservationWithoutDestinationOnlyHoldsThePort(t *testing.T) {
	ns := forwardNS(t)
	r := reserve(t, ns, netdev.Reservation{Proto: "tcp", Addr: netip.IPv6Unspecified(), Port: 7004})
	defer r.Close()
	if _, err := converse(ns, netip.MustParseAddrPort("[::1]:7004"), "x"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a plain reservation: %v, want connection refused", err)
	}
	if _, err := ns.Listen("tcp", "[::]:7004"); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("another listener on the held port: %v, want address in use", err)
	}
}

// udpEchoAt answers each datagram with "<tag>:" and the datagram.
func udpEchoAt(t *testing.T, ns *nettest.Namespace, addr, tag string) netip.AddrPort {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(tag+":"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpClient is an unconnected socket in ns: it sees where answers come
// from.
func udpClient(t *testing.T, ns *nettest.Namespace) *net.UDPConn {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp6", "[::]:0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

func ask(c *net.UDPConn, to netip.AddrPort, msg string) (string, netip.AddrPort, error) {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		return "", netip.AddrPort{}, err
	}
	buf := make([]byte, 1500)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	return string(buf[:n]), from, err
}

func TestUDPReservationForwardsEachClientAsAFlowOfItsOwn(t *testing.T) {
	ns := forwardNS(t)
	defer netdev.SetUDPIdle(300 * time.Millisecond)()
	dst := udpEchoAt(t, ns, "127.0.0.1:0", "dst")
	goroutines, files := runtime.NumGoroutine(), openFiles(t)
	r := reserve(t, ns, netdev.Reservation{Proto: "udp", Addr: netip.IPv6Unspecified(), Port: 7005, To: dst})
	a, b := udpClient(t, ns), udpClient(t, ns)
	for _, c := range []struct {
		client *net.UDPConn
		to     string
		msg    string
	}{
		{a, "[::1]:7005", "a1"},
		{b, "[::1]:7005", "b1"},
		{a, "[::1]:7005", "a2"},
		// The answer comes from the address the client sent to.
		{b, "[fd00:f::1]:7005", "b2"},
	} {
		to := netip.MustParseAddrPort(c.to)
		got, from, err := ask(c.client, to, c.msg)
		if err != nil || got != "dst:"+c.msg || from != to {
			t.Errorf("%s to %s: %q from %s, %v; want %q from %s", c.msg, to, got, from, err, "dst:"+c.msg, to)
		}
	}
	// b sent from ::1 and from fd00:f::1 (the source address the kernel
	// picks for each destination): two clients.
	if n := netdev.Flows(r); n != 3 {
		t.Errorf("%d flows for three client addresses", n)
	}
	// Idle flows end; a client that comes back gets a new one.
	deadline := time.Now().Add(3 * time.Second)
	for netdev.Flows(r) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := netdev.Flows(r); n != 0 {
		t.Errorf("%d flows left after they were idle", n)
	}
	if got, _, err := ask(a, netip.MustParseAddrPort("[::1]:7005"), "a3"); err != nil || got != "dst:a3" {
		t.Errorf("a client back after its flow ended: %q, %v", got, err)
	}
	r.Close()
	if got, _, err := ask(a, netip.MustParseAddrPort("[::1]:7005"), "a4"); err == nil {
		t.Errorf("an answer %q after the reservation went", got)
	}
	a.Close()
	b.Close()
	settled(t, goroutines, files)
}

func TestUDPFlowsAreBounded(t *testing.T) {
	ns := forwardNS(t)
	dst := udpEchoAt(t, ns, "127.0.0.1:0", "dst")
	r := reserve(t, ns, netdev.Reservation{Proto: "udp", Addr: netip.IPv6Unspecified(), Port: 7006, To: dst})
	defer r.Close()
	first := udpClient(t, ns)
	if _, _, err := ask(first, netip.MustParseAddrPort("[::1]:7006"), "first"); err != nil {
		t.Fatal(err)
	}
	// As many clients again as a reservation carries flows: the first,
	// idle longest, makes room.
	for i := range 1024 {
		var pc net.PacketConn
		if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp6", "[::]:0"); return err }); err != nil {
			t.Fatal(err)
		}
		// Open till the end: each client is an address of its own.
		defer pc.Close()
		_, _, err := ask(pc.(*net.UDPConn), netip.MustParseAddrPort("[::1]:7006"), fmt.Sprint(i))
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if n := netdev.Flows(r); n != 1024 {
		t.Errorf("%d flows, want the bound, 1024", n)
	}
	if got, _, err := ask(first, netip.MustParseAddrPort("[::1]:7006"), "again"); err != nil || got != "dst:again" {
		t.Errorf("the evicted client again: %q, %v", got, err)
	}
}
