package netdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLAN devices of overlay networks, and what tells them where remote
// endpoints are: forwarding entries (MAC → remote host) and neighbour
// entries (address → MAC) the device answers ARP and neighbour
// solicitations from.

// VxlanPort is the UDP port of VXLAN tunnels (IANA's, Docker's).
const VxlanPort = 4789

// VxlanOverhead is what VXLAN over IPv4 adds to a frame: outer IPv4, UDP
// and VXLAN headers and the inner Ethernet header.
const VxlanOverhead = 50

// ErrVNIInUse is returned when another device of the namespace has the
// VXLAN ID.
var ErrVNIInUse = errors.New("VXLAN ID in use")

// VxlanSpec describes the VXLAN device of an overlay network: a port of
// its bridge that carries frames to the other hosts.
type VxlanSpec struct {
	Name string
	VNI  int
	// Local is the host's underlay address, the tunnel's source.
	Local  netip.Addr
	MTU    int
	Master int // bridge index
}

func (spec VxlanSpec) link(group uint32) *netlink.Vxlan {
	return &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: spec.Name, MTU: spec.MTU, Group: group, MasterIndex: spec.Master},
		VxlanId:   spec.VNI, SrcAddr: spec.Local.AsSlice(), Port: VxlanPort,
		// Where endpoints are is told, never learnt; ARP and neighbour
		// solicitations are answered on this host and never cross.
		Learning: false, Proxy: true,
	}
}

// matches tells whether an existing device is the one spec asks for, as
// far as only re-creating it could change.
func (spec VxlanSpec) matches(l netlink.Link) bool {
	v, ok := l.(*netlink.Vxlan)
	return ok && v.VxlanId == spec.VNI && v.Port == VxlanPort && !v.Learning && v.Proxy &&
		v.SrcAddr != nil && v.SrcAddr.Equal(spec.Local.AsSlice())
}

// EnsureVxlan makes the VXLAN device spec asks for exist, owned, up, with
// its MTU and on its bridge, and returns its index. A device of berth's of
// that name that is retired, or has other VXLAN settings (the host's
// address changed), is made again. A
// VXLAN ID another device has gives an error wrapping ErrVNIInUse.
func (h *Host) EnsureVxlan(spec VxlanSpec) (int, error) {
	l, err := h.h.LinkByName(spec.Name)
	switch {
	case err == nil && !h.ownsGroup(l.Attrs().Group):
		return 0, fmt.Errorf("device %s exists and is not berth's", spec.Name)
	case err == nil && l.Attrs().Group == h.Owned && spec.matches(l):
		return l.Attrs().Index, h.wireVxlan(l, spec)
	case err == nil:
		// Retired, or made for another underlay address.
		if err := h.h.LinkDel(l); err != nil && !isNotFound(err) {
			return 0, fmt.Errorf("delete outdated %s: %w", spec.Name, err)
		}
	case !isNotFound(err):
		return 0, fmt.Errorf("look up %s: %w", spec.Name, err)
	}
	vx := spec.link(h.Owned)
	if err := h.h.LinkAdd(vx); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// The name is free, so the kernel refuses the VNI.
			return 0, fmt.Errorf("create %s: VXLAN ID %d: %w", spec.Name, spec.VNI, ErrVNIInUse)
		}
		if l, lerr := h.h.LinkByName(spec.Name); lerr == nil {
			h.h.LinkDel(l)
		}
		return 0, kernelSupport("vxlan", fmt.Errorf("create %s: %w", spec.Name, err))
	}
	if err := h.wireVxlan(vx, spec); err != nil {
		h.h.LinkDel(vx)
		return 0, err
	}
	return vx.Attrs().Index, nil
}

// wireVxlan gives the device its MTU and bridge and sets it up. It gets no
// IPv6 link-local address: the device carries containers' frames, and
// solicitations of its own would go to every other host.
func (h *Host) wireVxlan(l netlink.Link, spec VxlanSpec) error {
	a := l.Attrs()
	var err error
	if a.MTU != spec.MTU {
		err = h.h.LinkSetMTU(l, spec.MTU)
	}
	if err == nil && a.MasterIndex != spec.Master {
		err = h.h.LinkSetMasterByIndex(l, spec.Master)
	}
	if err == nil {
		err = h.h.LinkSetIP6AddrGenMode(l, nlIPv6GenNone)
	}
	if err == nil && a.Flags&net.FlagUp == 0 {
		err = h.h.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("set up %s: %w", spec.Name, err)
	}
	return nil
}

// VxlanOfVNI finds the VXLAN device with the VXLAN ID on VxlanPort.
func (h *Host) VxlanOfVNI(vni int) (Link, bool, error) {
	links, err := retryDump(h.h.LinkList)
	if err != nil {
		return Link{}, false, fmt.Errorf("list links in %s: %w", h.where, err)
	}
	for _, l := range links {
		if v, ok := l.(*netlink.Vxlan); ok && v.VxlanId == vni && v.Port == VxlanPort {
			return linkOf(l), true, nil
		}
	}
	return Link{}, false, nil
}

// MTUOfAddr is the MTU of the device holding the address: an underlay's.
func (l *Links) MTUOfAddr(addr netip.Addr) (int, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return l.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return 0, fmt.Errorf("list addresses in %s: %w", l.where, err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p.Addr() == addr {
			dev, err := l.h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return 0, fmt.Errorf("device of %s: %w", addr, err)
			}
			return dev.Attrs().MTU, nil
		}
	}
	return 0, fmt.Errorf("no device in %s has the address %s", l.where, addr)
}

// fdb is a forwarding entry of a VXLAN device: frames to mac go through
// the tunnel to remote. NTF_SELF puts it in the device's own table, not in
// its bridge's.
func fdb(dev int, mac net.HardwareAddr, remote netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex: dev, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF,
		HardwareAddr: mac, IP: remote.AsSlice(),
	}
}

// floodMAC keys the forwarding entry of broadcast, multicast and unknown
// unicast frames: each of its remotes gets a copy (head-end replication).
var floodMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// SetRemoteMAC sends frames to mac out of the VXLAN device dev to remote,
// replacing where they went before.
func (l *Links) SetRemoteMAC(dev int, mac net.HardwareAddr, remote netip.Addr) error {
	if err := l.h.NeighSet(fdb(dev, mac, remote)); err != nil {
		return fmt.Errorf("forward %s to %s: %w", mac, remote, err)
	}
	return nil
}

// DeleteRemoteMAC forgets that frames to mac go to remote. An entry that
// is gone, or sends mac elsewhere, is not an error.
func (l *Links) DeleteRemoteMAC(dev int, mac net.HardwareAddr, remote netip.Addr) error {
	if err := l.h.NeighDel(fdb(dev, mac, remote)); err != nil && !isNotFound(err) {
		return fmt.Errorf("stop forwarding %s to %s: %w", mac, remote, err)
	}
	return nil
}

// RemoteMAC is a forwarding entry of a VXLAN device: frames to MAC go to
// Remote.
type RemoteMAC struct {
	MAC    net.HardwareAddr
	Remote netip.Addr
}

// RemoteMACs lists the entries SetRemoteMAC makes on the VXLAN device dev:
// its own permanent ones with a remote, less the flood entries. The
// bridge's entries of the port, and any the device learnt, are not listed.
func (l *Links) RemoteMACs(dev int) ([]RemoteMAC, error) {
	all, err := l.remotes(dev)
	var out []RemoteMAC
	for _, r := range all {
		if !slices.Equal(r.MAC, floodMAC) {
			out = append(out, r)
		}
	}
	return out, err
}

// FloodRemotes lists the remotes AddFloodRemote gave the VXLAN device dev.
func (l *Links) FloodRemotes(dev int) ([]netip.Addr, error) {
	all, err := l.remotes(dev)
	var out []netip.Addr
	for _, r := range all {
		if slices.Equal(r.MAC, floodMAC) {
			out = append(out, r.Remote)
		}
	}
	return out, err
}

// remotes lists the device's own permanent forwarding entries with a
// remote, one per remote of an entry.
func (l *Links) remotes(dev int) ([]RemoteMAC, error) {
	list, err := retryDump(func() ([]netlink.Neigh, error) { return l.h.NeighList(dev, syscall.AF_BRIDGE) })
	if err != nil {
		return nil, fmt.Errorf("list forwarding entries of device %d in %s: %w", dev, l.where, err)
	}
	var out []RemoteMAC
	for _, n := range list {
		if n.Flags&netlink.NTF_SELF == 0 || n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		if remote, ok := netip.AddrFromSlice(n.IP); ok {
			out = append(out, RemoteMAC{MAC: n.HardwareAddr, Remote: remote.Unmap()})
		}
	}
	return out, nil
}

// AddFloodRemote makes the VXLAN device dev send remote a copy of every
// broadcast, multicast and unknown unicast frame. Adding it again changes
// nothing.
func (l *Links) AddFloodRemote(dev int, remote netip.Addr) error {
	if err := l.h.NeighAppend(fdb(dev, floodMAC, remote)); err != nil {
		return fmt.Errorf("flood to %s: %w", remote, err)
	}
	return nil
}

// DeleteFloodRemote stops those copies to remote; the other remotes keep
// theirs.
func (l *Links) DeleteFloodRemote(dev int, remote netip.Addr) error {
	if err := l.h.NeighDel(fdb(dev, floodMAC, remote)); err != nil && !isNotFound(err) {
		return fmt.Errorf("stop flooding to %s: %w", remote, err)
	}
	return nil
}

// SetNeighbour records that ip is at mac on device dev, for good.
func (l *Links) SetNeighbour(dev int, ip netip.Addr, mac net.HardwareAddr) error {
	n := &netlink.Neigh{LinkIndex: dev, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
	if err := l.h.NeighSet(n); err != nil {
		return fmt.Errorf("neighbour %s at %s: %w", ip, mac, err)
	}
	return nil
}

// DeleteNeighbour forgets where ip is on device dev. A missing entry is
// not an error.
func (l *Links) DeleteNeighbour(dev int, ip netip.Addr) error {
	n := &netlink.Neigh{LinkIndex: dev, IP: ip.AsSlice()}
	if err := l.h.NeighDel(n); err != nil && !isNotFound(err) {
		return fmt.Errorf("forget neighbour %s: %w", ip, err)
	}
	return nil
}

// Neighbour is a neighbour entry: Addr is at MAC.
type Neighbour struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
}

// Neighbours lists the permanent neighbour entries of device dev, IPv4
// and IPv6: those SetNeighbour makes, not those the kernel resolved.
func (l *Links) Neighbours(dev int) ([]Neighbour, error) {
	var out []Neighbour
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := retryDump(func() ([]netlink.Neigh, error) { return l.h.NeighList(dev, family) })
		if err != nil {
			return nil, fmt.Errorf("list neighbours of device %d in %s: %w", dev, l.where, err)
		}
		for _, n := range list {
			if n.State != netlink.NUD_PERMANENT {
				continue
			}
			if addr, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, Neighbour{Addr: addr.Unmap(), MAC: n.HardwareAddr})
			}
		}
	}
	return out, nil
}
