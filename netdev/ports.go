package netdev

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Reservation is a host port berth holds while it publishes it.
type Reservation struct {
	Proto string // tcp, udp or sctp
	// Addr is the address the port is held on; an unspecified one (IPv4's
	// or IPv6's) holds it on every address of its family.
	Addr netip.Addr
	Port uint16
	// To, when valid, is where TCP connections and UDP datagrams that
	// reach the reservation are forwarded. Published ports are translated
	// in the kernel, and what the kernel translates never reaches the
	// reservation; what reaches it is what the kernel cannot carry, such
	// as the host's own connections to ::1. SCTP is held, not forwarded.
	To netip.AddrPort
}

// ReservePort holds a host port with a bound socket, so that no other
// process can take the port while berth publishes it. Without r.To the
// socket is never read; with it, it forwards. The forwarder's connections
// to r.To are made in the namespace of the thread that calls ReservePort.
// The error reads like the kernel's answer to bind.
func ReservePort(r Reservation) (io.Closer, error) {
	family := unix.AF_INET
	if r.Addr.Is6() {
		family = unix.AF_INET6
	}
	typ, protoNum := unix.SOCK_STREAM, 0
	switch r.Proto {
	case "udp":
		typ = unix.SOCK_DGRAM
	case "sctp":
		protoNum = unix.IPPROTO_SCTP
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, protoNum)
	if err != nil {
		return nil, fmt.Errorf("reserve %s port %d: %w", r.Proto, r.Port, err)
	}
	if family == unix.AF_INET6 {
		// The IPv4 reservation is a socket of its own.
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(r.Port), Addr: r.Addr.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(r.Port), Addr: r.Addr.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		netw := r.Proto + "4"
		if family == unix.AF_INET6 {
			netw = r.Proto + "6"
		}
		return nil, &net.OpError{Op: "listen", Net: netw, Addr: sockAddr(netip.AddrPortFrom(r.Addr, r.Port)), Err: os.NewSyscallError("bind", err)}
	}
	f := os.NewFile(uintptr(fd), "reserved port")
	if !r.To.IsValid() || r.Proto == "sctp" {
		return f, nil
	}
	// The forwarder works on a socket of its own, a duplicate of f's.
	defer f.Close()
	d, err := dialerHere()
	if err != nil {
		return nil, err
	}
	var fw io.Closer
	if r.Proto == "udp" {
		fw, err = forwardUDP(f, family == unix.AF_INET6, r.To, d)
	} else {
		fw, err = forwardTCP(f, r.To, d)
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("forward %s port %d to %s: %w", r.Proto, r.Port, r.To, err)
	}
	return fw, nil
}

// FamilyUnavailable tells whether a reservation failed because the host
// has no such address family (IPv6 turned off at boot).
func FamilyUnavailable(err error) bool { return errors.Is(err, unix.EAFNOSUPPORT) }

type sockAddr netip.AddrPort

func (a sockAddr) Network() string { return "" }
func (a sockAddr) String() string  { return netip.AddrPort(a).String() }

// ForgetConnections deletes the namespace's tracked connections to and
// from an address, so that a flow (UDP above all) does not stick to a
// container that is gone, or to a translation that changed.
func (l *Links) ForgetConnections(addr netip.Addr) error {
	family := netlink.InetFamily(unix.AF_INET)
	if addr.Is6() {
		family = unix.AF_INET6
	}
	to, from := &netlink.ConntrackFilter{}, &netlink.ConntrackFilter{}
	if err := to.AddIP(netlink.ConntrackOrigDstIP, addr.AsSlice()); err != nil {
		return err
	}
	if err := from.AddIP(netlink.ConntrackReplyAnyIP, addr.AsSlice()); err != nil {
		return err
	}
	// The handle speaks rtnetlink alone, and a conntrack request sent
	// through it would go to the calling thread's namespace: the request
	// is made on a thread inside the namespace instead.
	err := l.run(func() error {
		_, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, family, to, from)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget connections of %s in %s: %w", addr, l.where, err)
	}
	return nil
}

// AllowLocalnet lets packets from 127.0.0.0/8 leave through a bridge:
// the host's own connections to a port published on 127.0.0.1 are
// translated to a container's address and must be routed to it.
func AllowLocalnet(bridge string) error {
	return os.WriteFile("/proc/sys/net/ipv4/conf/"+bridge+"/route_localnet", []byte("1"), 0o644)
}

// SetForwarding turns on IPv4 (and IPv6) forwarding in the host namespace,
// which routing between bridges and the outside needs.
func SetForwarding(ipv6 bool) error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	if ipv6 {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable IPv6 forwarding: %w", err)
		}
	}
	return nil
}
