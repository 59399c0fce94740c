package netdev

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ReservePort holds a host port with a bound socket that nobody reads: no
// traffic goes through it (published ports are translated in the kernel),
// but no other process can take the port while berth publishes it. An
// unspecified address reserves the port on all of the family's addresses.
// The error reads like the kernel's answer to bind.
func ReservePort(proto string, addr netip.Addr, port uint16, v6 bool) (io.Closer, error) {
	family := unix.AF_INET
	if v6 || addr.Is6() {
		family = unix.AF_INET6
		if !addr.IsValid() {
			addr = netip.IPv6Unspecified()
		}
	} else if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	typ, protoNum := unix.SOCK_STREAM, 0
	switch proto {
	case "udp":
		typ = unix.SOCK_DGRAM
	case "sctp":
		protoNum = unix.IPPROTO_SCTP
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, protoNum)
	if err != nil {
		return nil, fmt.Errorf("reserve %s port %d: %w", proto, port, err)
	}
	if family == unix.AF_INET6 {
		// The IPv4 reservation is a socket of its own.
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(port), Addr: addr.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(port), Addr: addr.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		netw := proto + "4"
		if family == unix.AF_INET6 {
			netw = proto + "6"
		}
		return nil, &net.OpError{Op: "listen", Net: netw, Addr: sockAddr(netip.AddrPortFrom(addr, port)), Err: os.NewSyscallError("bind", err)}
	}
	return os.NewFile(uintptr(fd), "reserved port"), nil
}

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
