package daemon

import (
	"io"
	"net"
	"net/netip"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
)

// kernel is the network controller's edge to this host: netdev's verbs
// and the reaper's retirements.
type kernel struct {
	*netdev.Host
	*reap.Reaper
}

func (kernel) AllowLocalnet(device string) error { return netdev.AllowLocalnet(device) }
func (kernel) EnableForwarding(ipv6 bool) error  { return netdev.SetForwarding(ipv6) }

func (kernel) ReservePort(r netdev.Reservation) (io.Closer, error) {
	return netdev.ReservePort(r)
}

func (kernel) CreateNamespace(path string) (*netdev.Namespace, error) {
	return netdev.CreateNamespace(path)
}

func (kernel) OpenNamespace(path string) (*netdev.Namespace, error) {
	return netdev.OpenNamespace(path)
}

func (kernel) DeleteNamespace(path string) error         { return netdev.DeleteNamespace(path) }
func (kernel) CloseNamespace(ns *netdev.Namespace)       { ns.Close() }
func (kernel) SameNamespace(a, b *netdev.Namespace) bool { return netdev.SameNamespace(a, b) }
func (kernel) LoopbackUp(ns *netdev.Namespace) error     { return ns.LoopbackUp() }
func (kernel) ForgetConnectionsIn(ns *netdev.Namespace, addr netip.Addr) error {
	return ns.ForgetConnections(addr)
}

func (kernel) SetDefaultRoute(ns *netdev.Namespace, ifName string, ifIndex int, gw netip.Addr, viaDevice bool) error {
	idx, err := index(ns, ifName, ifIndex)
	if err != nil || idx == 0 {
		return err
	}
	return ns.SetDefaultRoute(gw, idx, viaDevice)
}

func (kernel) AddRoute(ns *netdev.Namespace, ifName string, ifIndex int, r driver.Route) error {
	idx, err := index(ns, ifName, ifIndex)
	if err != nil || idx == 0 {
		return err
	}
	return ns.AddRoute(r.Dst, r.Via, idx)
}

// index is an interface's index: the one known, else looked up; 0 when
// the interface is not there.
func index(ns *netdev.Namespace, name string, known int) (int, error) {
	if known != 0 {
		return known, nil
	}
	l, _, err := ns.Link(name)
	return l.Index, err
}

// Listen opens the sockets on a locked thread inside the namespace: they
// stay there when the thread goes back.
func (kernel) Listen(ns *netdev.Namespace, addr netip.Addr) (*net.UDPConn, net.Listener, error) {
	var udp *net.UDPConn
	var tcp net.Listener
	udpNet, tcpNet := "udp6", "tcp6"
	if addr.Is4() {
		udpNet, tcpNet = "udp4", "tcp4"
	}
	err := ns.Do(func() (err error) {
		if udp, err = net.ListenUDP(udpNet, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0))); err != nil {
			return err
		}
		tcp, err = net.Listen(tcpNet, netip.AddrPortFrom(addr, 0).String())
		return err
	})
	if err != nil && udp != nil {
		udp.Close()
	}
	return udp, tcp, err
}
