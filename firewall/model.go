package firewall

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Network is what the firewall needs of a bridge network. Networks are
// known by their bridges: traffic is matched by the interface it comes in
// or goes out on, so no rule depends on a subnet.
type Network struct {
	Bridge string
	// Internal networks have no traffic in or out but to their gateway.
	Internal bool
	// Masquerade rewrites traffic leaving the host from the network, but
	// for a routed family.
	Masquerade bool
	// Routed4 and Routed6: the network's addresses of that family are
	// routed to and from, not translated (Docker's gateway mode
	// "routed"): no masquerade, and from outside only the ports opened by
	// routed bindings, and ICMP, reach its containers.
	Routed4, Routed6 bool
	// Unprotected4 and Unprotected6: from outside (not from other
	// networks), every port of its containers can be reached at their
	// addresses of that family (gateway mode "nat-unprotected").
	Unprotected4, Unprotected6 bool
	// Isolated (enable_icc=false) keeps the network's containers from
	// talking to each other; Ports are the host ends of their veth pairs.
	Isolated bool
	Ports    []string
}

// Guard is a container's port on a bridge (the host end of its veth
// pair): frames arriving on it must come from the container's own MAC and,
// for IPv4, ARP and IPv6, from its own addresses.
type Guard struct {
	Port string
	MAC  net.HardwareAddr
	// IPv4 and IPv6 are the container's addresses on the network; a family
	// without one sends nothing of that family.
	IPv4, IPv6 netip.Addr
}

// Binding is one published port: HostIP (zero: every address of the host)
// and HostPort forwarded to IP and Port of a container. A Routed one has
// no host address or port: Port is opened on IP, for a container on a
// network whose family is routed.
type Binding struct {
	Proto    string // tcp, udp or sctp
	HostIP   netip.Addr
	HostPort uint16
	IP       netip.Addr
	Port     uint16
	Routed   bool
}

// protoNumber is the IP protocol number of a binding's protocol.
func protoNumber(p string) (byte, bool) {
	switch p {
	case "tcp":
		return unix.IPPROTO_TCP, true
	case "udp":
		return unix.IPPROTO_UDP, true
	case "sctp":
		return unix.IPPROTO_SCTP, true
	}
	return 0, false
}

// Element encodings follow nftables' register layout: each field of a
// concatenation fills whole 4-byte registers, protocol and port in network
// order, padded with zeros.

func pad4(b []byte) []byte {
	out := make([]byte, (len(b)+3)/4*4)
	copy(out, b)
	return out
}

func portBytes(p uint16) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, p)
	return pad4(b)
}

func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// bindingElement is the map element of a binding: the key (host address
// when given) . protocol . port, the value container address . port; of
// a routed one, the set element container address . protocol . port.
func bindingElement(b Binding) (nftables.SetElement, bool) {
	proto, ok := protoNumber(b.Proto)
	if !ok {
		return nftables.SetElement{}, false
	}
	if b.Routed {
		key := append(b.IP.AsSlice(), pad4([]byte{proto})...)
		return nftables.SetElement{Key: append(key, portBytes(b.Port)...)}, true
	}
	var key []byte
	if b.HostIP.IsValid() {
		key = append(key, b.HostIP.AsSlice()...)
	}
	key = append(key, pad4([]byte{proto})...)
	key = append(key, portBytes(b.HostPort)...)
	val := append(b.IP.AsSlice(), portBytes(b.Port)...)
	return nftables.SetElement{Key: key, Val: val}, true
}

// macBytes is a MAC in a concatenation: 6 bytes padded to a register's 8.
func macBytes(mac net.HardwareAddr) []byte { return pad4(mac) }

// guardElements are the set elements of a guarded port: the port, its MAC
// and its addresses, each keyed by the port.
func guardElements(g Guard) elements {
	port := ifname(g.Port)
	e := elements{
		setGuarded:  {{Key: port}},
		setGuardMAC: {{Key: append(append([]byte{}, port...), macBytes(g.MAC)...)}},
	}
	if g.IPv4.IsValid() {
		e[setGuard4] = []nftables.SetElement{{Key: append(append([]byte{}, port...), g.IPv4.AsSlice()...)}}
	}
	if g.IPv6.IsValid() {
		e[setGuard6] = []nftables.SetElement{{Key: append(append([]byte{}, port...), g.IPv6.AsSlice()...)}}
	}
	return e
}
