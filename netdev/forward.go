package netdev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Bounds of a forwarder, per reservation.
const (
	// maxForwarded is how many TCP connections or UDP flows one
	// reservation carries at once. A TCP connection beyond it is reset;
	// a UDP client beyond it takes the place of the flow idle longest.
	maxForwarded = 1024
	// dialTimeout bounds the connection to the destination: a client
	// whose destination does not answer is reset after it.
	dialTimeout = 5 * time.Second
)

// udpIdle is how long a UDP flow lives without a datagram either way:
// the kernel's conntrack timeout for a UDP flow (nf_conntrack_udp_timeout).
var udpIdle = 30 * time.Second

// dialer opens a forwarder's connections to its destination in the
// network namespace its reservation was made in: berthd's own, unless
// the reservation was made on a thread inside another one.
type dialer struct {
	ns netns.NsHandle // -1: the process's own namespace
}

// ownNamespace is the network namespace the process started in, where
// every thread but one locked into another namespace is.
var ownNamespace = namespaceID("/proc/thread-self/ns/net")

func namespaceID(path string) [2]uint64 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return [2]uint64{}
	}
	return [2]uint64{st.Dev, st.Ino}
}

// dialerHere is a dialer for the calling thread's namespace.
func dialerHere() (dialer, error) {
	if namespaceID("/proc/thread-self/ns/net") == ownNamespace {
		return dialer{ns: -1}, nil
	}
	here, err := netns.Get()
	if err != nil {
		return dialer{}, fmt.Errorf("the calling thread's namespace: %w", err)
	}
	return dialer{ns: here}, nil
}

func (d dialer) dial(ctx context.Context, network string, to netip.AddrPort) (net.Conn, error) {
	var nd net.Dialer
	if d.ns == -1 {
		return nd.DialContext(ctx, network, to.String())
	}
	var c net.Conn
	err := RunIn(d.ns, "the reservation's namespace", func() (err error) {
		c, err = nd.DialContext(ctx, network, to.String())
		return err
	})
	return c, err
}

func (d dialer) close() {
	if d.ns != -1 {
		d.ns.Close()
	}
}

// tcpForwarder accepts the connections that reach a reservation and
// carries each to the destination over a connection of its own, bytes
// moved by the kernel (splice) rather than through user space buffers.
type tcpForwarder struct {
	l      net.Listener
	to     netip.AddrPort
	dialer dialer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func forwardTCP(f *os.File, to netip.AddrPort, d dialer) (*tcpForwarder, error) {
	if err := unix.Listen(int(f.Fd()), unix.SOMAXCONN); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	fw := &tcpForwarder{l: l, to: to, dialer: d, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	fw.wg.Add(1)
	go fw.serve()
	return fw, nil
}

func (fw *tcpForwarder) serve() {
	defer fw.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := fw.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of files or memory for a moment: the pending
			// connections wait in the backlog.
			select {
			case <-fw.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !fw.track(c) {
			reset(c)
			continue
		}
		fw.wg.Add(1)
		go fw.carry(c)
	}
}

// track adds c to the connections Close ends, unless the forwarder is
// closed or carries as many as it may.
func (fw *tcpForwarder) track(c net.Conn) bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.closed || len(fw.conns) >= 2*maxForwarded {
		return false
	}
	fw.conns[c] = struct{}{}
	return true
}

func (fw *tcpForwarder) untrack(cs ...net.Conn) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for _, c := range cs {
		delete(fw.conns, c)
		c.Close()
	}
}

// reset closes c with a reset: a client whose connection cannot be
// carried learns so at once, as from a refused connection.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (fw *tcpForwarder) carry(in net.Conn) {
	defer fw.wg.Done()
	ctx, cancel := context.WithTimeout(fw.ctx, dialTimeout)
	out, err := fw.dialer.dial(ctx, "tcp", fw.to)
	cancel()
	if err != nil {
		fw.mu.Lock()
		delete(fw.conns, in)
		fw.mu.Unlock()
		reset(in)
		return
	}
	if !fw.track(out) {
		out.Close()
		fw.untrack(in)
		return
	}
	defer fw.untrack(in, out)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(out, in)
	}()
	pipe(in, out)
	<-done
}

// pipe copies from src to dst until src ends, then ends dst's direction
// too (a half close, as TCP allows); a failure either way ends both.
// Between two TCP connections io.Copy splices.
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// Close stops accepting, ends every connection carried and returns when
// every goroutine of the forwarder has.
func (fw *tcpForwarder) Close() error {
	fw.cancel()
	err := fw.l.Close()
	fw.mu.Lock()
	fw.closed = true
	for c := range fw.conns {
		c.Close()
	}
	fw.mu.Unlock()
	fw.wg.Wait()
	fw.dialer.close()
	return err
}

// udpForwarder carries the datagrams that reach a reservation to the
// destination, one flow (a connected socket of its own) per client
// address, and the destination's answers back from the address the
// client sent to.
type udpForwarder struct {
	pc     *net.UDPConn
	to     netip.AddrPort
	v6     bool
	dialer dialer
	idle   time.Duration
	wg     sync.WaitGroup

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
}

type udpFlow struct {
	conn   *net.UDPConn
	client netip.AddrPort
	// local is the address the client sent to, which answers come from.
	local netip.Addr

	mu   sync.Mutex
	last time.Time
}

func (fl *udpFlow) touch() {
	fl.mu.Lock()
	fl.last = time.Now()
	fl.mu.Unlock()
}

func (fl *udpFlow) lastUsed() time.Time {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.last
}

func forwardUDP(f *os.File, v6 bool, to netip.AddrPort, d dialer) (*udpForwarder, error) {
	// The packet info of each datagram says which of the host's
	// addresses it was sent to.
	var err error
	if v6 {
		err = unix.SetsockoptInt(int(f.Fd()), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	} else {
		err = unix.SetsockoptInt(int(f.Fd()), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}
	if err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	fw := &udpForwarder{pc: c.(*net.UDPConn), to: to, v6: v6, dialer: d, idle: udpIdle, flows: map[netip.AddrPort]*udpFlow{}}
	fw.wg.Add(1)
	go fw.serve()
	return fw, nil
}

func (fw *udpForwarder) serve() {
	defer fw.wg.Done()
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	for {
		n, oobn, _, from, err := fw.pc.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		fl := fw.flow(from, destination(oob[:oobn]))
		if fl == nil {
			continue
		}
		fl.touch()
		fl.conn.Write(buf[:n])
	}
}

// destination is the address a datagram was sent to, from its packet
// info (invalid when there is none).
func destination(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			return netip.AddrFrom16([16]byte(m.Data[:16]))
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, then the local address the
			// answer should come from, then the header's destination.
			return netip.AddrFrom4([4]byte(m.Data[8:12]))
		}
	}
	return netip.Addr{}
}

// flow is the client's flow, made when it is new; nil when the
// forwarder is closed or the destination cannot be dialled.
func (fw *udpForwarder) flow(client netip.AddrPort, local netip.Addr) *udpFlow {
	fw.mu.Lock()
	if fl, ok := fw.flows[client]; ok || fw.closed {
		fw.mu.Unlock()
		return fl
	}
	fw.mu.Unlock()
	c, err := fw.dialer.dial(context.Background(), "udp", fw.to)
	if err != nil {
		return nil
	}
	fl := &udpFlow{conn: c.(*net.UDPConn), client: client, local: local, last: time.Now()}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.closed {
		c.Close()
		return nil
	}
	if len(fw.flows) >= maxForwarded {
		fw.evictIdlest()
	}
	fw.flows[client] = fl
	fw.wg.Add(1)
	go fw.answer(fl)
	return fl
}

// evictIdlest ends the flow that has been idle longest. Called with
// fw.mu held.
func (fw *udpForwarder) evictIdlest() {
	var oldest *udpFlow
	for _, fl := range fw.flows {
		if oldest == nil || fl.lastUsed().Before(oldest.lastUsed()) {
			oldest = fl
		}
	}
	delete(fw.flows, oldest.client)
	oldest.conn.Close()
}

// answer carries the destination's datagrams back to the client until
// the flow has been idle for fw.idle or is ended.
func (fw *udpForwarder) answer(fl *udpFlow) {
	defer fw.wg.Done()
	defer fw.end(fl)
	buf := make([]byte, 64<<10)
	var oob []byte
	if fl.local.IsValid() {
		if fw.v6 {
			oob = unix.PktInfo6(&unix.Inet6Pktinfo{Addr: fl.local.As16()})
		} else {
			oob = unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: fl.local.As4()})
		}
	}
	for {
		fl.conn.SetReadDeadline(fl.lastUsed().Add(fw.idle))
		n, err := fl.conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(fl.lastUsed()) < fw.idle {
				continue
			}
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
				return
			}
			// An ICMP error from the destination (nothing listens
			// there): the flow lives on, as in the kernel.
			continue
		}
		fl.touch()
		fw.pc.WriteMsgUDPAddrPort(buf[:n], oob, fl.client)
	}
}

func (fw *udpForwarder) end(fl *udpFlow) {
	fw.mu.Lock()
	if fw.flows[fl.client] == fl {
		delete(fw.flows, fl.client)
	}
	fw.mu.Unlock()
	fl.conn.Close()
}

// Close ends every flow and returns when every goroutine of the
// forwarder has.
func (fw *udpForwarder) Close() error {
	err := fw.pc.Close()
	fw.mu.Lock()
	fw.closed = true
	for _, fl := range fw.flows {
		fl.conn.Close()
	}
	fw.mu.Unlock()
	fw.wg.Wait()
	fw.dialer.close()
	return err
}
