package nettest

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Remote is another machine on the host's network: a namespace joined to
// the host by a veth pair, the host's end named "uplink".
type Remote struct {
	*Namespace
	// HostAddr and Addr are the host's and the remote's addresses on the
	// link between them; HostAddr6 and Addr6 their IPv6 ones, after
	// AddIPv6.
	HostAddr, Addr   netip.Addr
	HostAddr6, Addr6 netip.Addr
	host             *Host
}

// AddRemote makes a remote machine on 192.0.2.0/24 (TEST-NET-1): the host
// is 192.0.2.1, the remote 192.0.2.2.
func (h *Host) AddRemote() *Remote {
	h.t.Helper()
	r := &Remote{Namespace: h.NewNamespace("remote"), HostAddr: netip.MustParseAddr("192.0.2.1"), Addr: netip.MustParseAddr("192.0.2.2"), host: h}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(r.ns))}
	if err := h.Netlink.LinkAdd(veth); err != nil {
		h.t.Fatalf("link to the remote: %v", err)
	}
	r.addresses(r.HostAddr, r.Addr, 24, 0)
	return r
}

// AddIPv6 gives the link IPv6 too, on 2001:db8:1::/64 (documentation
// addresses): the host is 2001:db8:1::1, the remote 2001:db8:1::2. The
// addresses skip duplicate address detection, so they are usable at once.
func (r *Remote) AddIPv6() {
	h := r.host
	h.t.Helper()
	r.HostAddr6, r.Addr6 = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
	r.addresses(r.HostAddr6, r.Addr6, 64, unix.IFA_F_NODAD)
}

// addresses puts host on the host's end of the link and remote on the
// remote's, each with a prefix of bits, and brings both ends up.
func (r *Remote) addresses(host, remote netip.Addr, bits, flags int) {
	h := r.host
	h.t.Helper()
	for _, side := range []struct {
		h    *netlink.Handle
		name string
		addr netip.Addr
	}{{h.Netlink, "uplink", host}, {r.Netlink, "eth0", remote}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			h.t.Fatal(err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: side.addr.AsSlice(), Mask: net.CIDRMask(bits, side.addr.BitLen())}, Flags: flags}
		if err := side.h.AddrAdd(l, a); err != nil {
			h.t.Fatalf("address %s: %v", side.addr, err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			h.t.Fatal(err)
		}
	}
}

// RouteVia makes the remote send traffic for dst through the host, as a
// machine that tries to reach containers directly would; an IPv6 dst goes
// through the host's IPv6 address (see AddIPv6).
func (r *Remote) RouteVia(dst netip.Prefix) error {
	gw := r.HostAddr
	if dst.Addr().Is6() {
		gw = r.HostAddr6
	}
	route := &netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}, Gw: gw.AsSlice()}
	if err := r.Netlink.RouteAdd(route); err != nil {
		return fmt.Errorf("route %s via the host: %w", dst, err)
	}
	return nil
}

// LAN is a physical segment the host is plugged into: its "lan0" is one end
// of a veth pair standing in for a NIC, the other end plugged into a switch
// (a bridge in a namespace of its own, whose address 10.77.0.1 plays the
// router), with another machine on it at 10.77.0.100.
type LAN struct {
	Switch  *Namespace
	Machine *Namespace
	// Parent is the host's interface on the segment.
	Parent string
}

// AddLAN plugs the host into a new segment 10.77.0.0/24.
func (h *Host) AddLAN() *LAN {
	h.t.Helper()
	lan := &LAN{Switch: h.NewNamespace("lan"), Machine: h.NewNamespace("machine"), Parent: "lan0"}
	sw := lan.Switch.Netlink
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "switch", Flags: net.FlagUp}}
	if err := sw.LinkAdd(br); err != nil {
		h.t.Fatal(err)
	}
	plug := func(from *netlink.Handle, name string, peer string) {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, Flags: net.FlagUp}, PeerName: peer, PeerNamespace: netlink.NsFd(int(lan.Switch.ns))}
		if err := from.LinkAdd(v); err != nil {
			h.t.Fatal(err)
		}
		p, err := sw.LinkByName(peer)
		if err == nil {
			err = sw.LinkSetMaster(p, br)
		}
		if err == nil {
			err = sw.LinkSetUp(p)
		}
		if err != nil {
			h.t.Fatal(err)
		}
	}
	plug(h.Netlink, "lan0", "port-host")
	plug(lan.Machine.Netlink, "eth0", "port-machine")
	addr := func(hd *netlink.Handle, dev, cidr string) {
		l, err := hd.LinkByName(dev)
		if err != nil {
			h.t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(cidr)
		if err := hd.AddrAdd(l, a); err != nil {
			h.t.Fatal(err)
		}
	}
	addr(sw, "switch", "10.77.0.1/24")
	addr(lan.Machine.Netlink, "eth0", "10.77.0.100/24")
	return lan
}
