package nettest

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Remote is another machine on the host's network: a namespace joined to
// the host by a veth pair, the host's end named "uplink".
type Remote struct {
	*Namespace
	// HostAddr and Addr are the host's and the remote's addresses on the
	// link between them.
	HostAddr, Addr netip.Addr
}

// AddRemote makes a remote machine on 192.0.2.0/24 (TEST-NET-1): the host
// is 192.0.2.1, the remote 192.0.2.2.
func (h *Host) AddRemote() *Remote {
	h.t.Helper()
	r := &Remote{Namespace: h.NewNamespace("remote"), HostAddr: netip.MustParseAddr("192.0.2.1"), Addr: netip.MustParseAddr("192.0.2.2")}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(r.ns))}
	if err := h.Netlink.LinkAdd(veth); err != nil {
		h.t.Fatalf("link to the remote: %v", err)
	}
	for _, side := range []struct {
		h    *netlink.Handle
		name string
		addr netip.Addr
	}{{h.Netlink, "uplink", r.HostAddr}, {r.Netlink, "eth0", r.Addr}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			h.t.Fatal(err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: side.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}}
		if err := side.h.AddrAdd(l, a); err != nil {
			h.t.Fatalf("address %s: %v", side.addr, err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			h.t.Fatal(err)
		}
	}
	return r
}

// RouteVia makes the remote send traffic for dst through the host, as a
// machine that tries to reach containers directly would.
func (r *Remote) RouteVia(dst netip.Prefix) error {
	route := &netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}, Gw: r.HostAddr.AsSlice()}
	if err := r.Netlink.RouteAdd(route); err != nil {
		return fmt.Errorf("route %s via the host: %w", dst, err)
	}
	return nil
}
