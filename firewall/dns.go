package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ResolverAddr is where containers find berth's resolver, as Docker's.
var ResolverAddr = netip.MustParseAddr("127.0.0.11")

// RedirectDNS writes, in a container's network namespace (nsFd), a table of
// berth's that sends queries to 127.0.0.11:53 to the resolver's sockets on
// 127.0.0.11:udpPort and :tcpPort. The resolver keeps off port 53 so that
// the container can run a DNS server of its own there. Answers are
// translated back by connection tracking. Writing it again replaces it.
func (f *Firewall) RedirectDNS(nsFd int, udpPort, tcpPort uint16) error {
	conn, err := nftables.New(append([]nftables.ConnOption{nftables.WithNetNSFd(nsFd)}, f.opts...)...)
	if err != nil {
		return fmt.Errorf("open nftables in the container: %w", err)
	}
	t := &nftables.Table{Name: "berth_dns", Family: nftables.TableFamilyIPv4}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	out := conn.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	conn.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: dnsRedirect(unix.IPPROTO_UDP, udpPort)})
	conn.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: dnsRedirect(unix.IPPROTO_TCP, tcpPort)})
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("redirect DNS in the container: %w", err)
	}
	return nil
}

// dnsRedirect is: ip daddr 127.0.0.11 <proto> dport 53 dnat to 127.0.0.11:port.
func dnsRedirect(proto byte, port uint16) []expr.Any {
	dport := make([]byte, 2)
	binary.BigEndian.PutUint16(dport, 53)
	to := make([]byte, 2)
	binary.BigEndian.PutUint16(to, port)
	addr := ResolverAddr.AsSlice()
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: addr},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: dport},
		&expr.Immediate{Register: reg1, Data: addr},
		&expr.Immediate{Register: reg2, Data: to},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true},
	}
}
