package netdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Links are one network namespace's devices, addresses and routes, worked
// on through a netlink handle bound to that namespace, so no thread has to
// switch namespace for them. Host and Namespace both are Links.
type Links struct {
	h *netlink.Handle
	// where names the namespace in errors.
	where string
	// run runs fn on a thread inside the namespace, for the few requests
	// the handle cannot send (deleting a link group).
	run func(fn func() error) error
}

// Link is a device as netdev reports it.
type Link struct {
	Name   string
	Index  int
	Group  uint32
	Kind   string
	Master int
	Up     bool
}

func linkOf(l netlink.Link) Link {
	a := l.Attrs()
	return Link{Name: a.Name, Index: a.Index, Group: a.Group, Kind: l.Type(), Master: a.MasterIndex, Up: a.Flags&net.FlagUp != 0}
}

// byIndex names a link by index alone: enough for requests on it, with no
// lookup.
func byIndex(index int) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}
}

// Link returns the named device, or ok=false when there is none.
func (l *Links) Link(name string) (Link, bool, error) {
	nl, err := l.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return Link{}, false, nil
		}
		return Link{}, false, fmt.Errorf("look up %s in %s: %w", name, l.where, err)
	}
	return linkOf(nl), true, nil
}

// Links lists the devices whose group keep accepts.
func (l *Links) Links(keep func(group uint32) bool) ([]Link, error) {
	links, err := retryDump(l.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", l.where, err)
	}
	var out []Link
	for _, nl := range links {
		if keep(nl.Attrs().Group) {
			out = append(out, linkOf(nl))
		}
	}
	return out, nil
}

// LoopbackUp sets lo up.
func (l *Links) LoopbackUp() error {
	lo, err := l.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", l.where, err)
	}
	if err := l.h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", l.where, err)
	}
	return nil
}

// Interface is one interface to bring up with its addresses.
type Interface struct {
	Name  string
	Addrs []netip.Prefix
}

// Configure brings the named interface up with its addresses and returns
// its index.
func (l *Links) Configure(ifc Interface) (int, error) {
	nl, err := l.h.LinkByName(ifc.Name)
	if err != nil {
		return 0, fmt.Errorf("find %s in %s: %w", ifc.Name, l.where, err)
	}
	if !hasIPv6(ifc.Addrs) {
		// Without IPv6 on the network the interface needs no link-local
		// address, and so sends no DAD, router or MLD solicitations that
		// a bridge would flood to every other endpoint.
		if err := l.h.LinkSetIP6AddrGenMode(nl, nlIPv6GenNone); err != nil {
			return 0, fmt.Errorf("set %s's IPv6 address generation: %w", ifc.Name, err)
		}
	}
	for _, a := range ifc.Addrs {
		if err := l.h.AddrReplace(nl, toAddr(a)); err != nil {
			return 0, fmt.Errorf("add %s to %s: %w", a, ifc.Name, err)
		}
	}
	if err := l.h.LinkSetUp(nl); err != nil {
		return 0, fmt.Errorf("set %s up: %w", ifc.Name, err)
	}
	return nl.Attrs().Index, nil
}

const nlIPv6GenNone = nl.IN6_ADDR_GEN_MODE_NONE

// HasInterface tells whether the interface is up with all of its
// addresses.
func (l *Links) HasInterface(ifc Interface) (bool, error) {
	nl, err := l.h.LinkByName(ifc.Name)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	if nl.Attrs().Flags&net.FlagUp == 0 {
		return false, nil
	}
	have, err := retryDump(func() ([]netlink.Addr, error) { return l.h.AddrList(nl, netlink.FAMILY_ALL) })
	if err != nil {
		return false, err
	}
	for _, want := range ifc.Addrs {
		found := false
		for _, a := range have {
			if p, ok := prefixOf(a.IPNet); ok && p == want {
				found = true
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

func hasIPv6(addrs []netip.Prefix) bool {
	for _, a := range addrs {
		if a.Addr().Is6() {
			return true
		}
	}
	return false
}

// TakeDown takes an interface out of service: down, so nothing goes
// through it and its routes vanish, and without addrs, so nothing still
// shows them. index may be 0 when unknown. A missing interface is not an
// error.
func (l *Links) TakeDown(name string, index int, addrs []netip.Prefix) error {
	link := byIndex(index)
	if index == 0 {
		var err error
		if link, err = l.h.LinkByName(name); err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("take %s down: %w", name, err)
		}
	}
	if err := l.h.LinkSetDown(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("set %s down: %w", name, err)
	}
	for _, a := range addrs {
		if err := l.h.AddrDel(link, toAddr(a)); err != nil && !isNotFound(err) && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s from %s: %w", a, name, err)
		}
	}
	return nil
}

// RemoveAddrs removes every address of a device.
func (l *Links) RemoveAddrs(index int) error {
	link := byIndex(index)
	addrs, err := l.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("list addresses of device %d: %w", index, err)
	}
	for _, a := range addrs {
		if err := l.h.AddrDel(link, &a); err != nil && !isNotFound(err) && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s: %w", a.IPNet, err)
		}
	}
	return nil
}

// SetGroup puts a device in a link group.
func (l *Links) SetGroup(index int, group uint32) error {
	if err := l.h.LinkSetGroup(byIndex(index), int(group)); err != nil && !isNotFound(err) {
		return fmt.Errorf("set group of device %d: %w", index, err)
	}
	return nil
}

// Rename renames a device.
func (l *Links) Rename(index int, name string) error {
	if err := l.h.LinkSetName(byIndex(index), name); err != nil && !isNotFound(err) {
		return fmt.Errorf("rename device %d to %s: %w", index, name, err)
	}
	return nil
}

// Unplug takes a device off its bridge.
func (l *Links) Unplug(index int) error {
	if err := l.h.LinkSetNoMaster(byIndex(index)); err != nil && !isNotFound(err) {
		return fmt.Errorf("take device %d off its bridge: %w", index, err)
	}
	return nil
}

// Delete removes a device now, waiting for the kernel. A missing device is
// not an error.
func (l *Links) Delete(name string) error {
	nl, err := l.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	return l.DeleteIndex(nl.Attrs().Index)
}

// DeleteIndex removes a device by index.
func (l *Links) DeleteIndex(index int) error {
	if err := l.h.LinkDel(byIndex(index)); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete device %d in %s: %w", index, l.where, err)
	}
	return nil
}

// DeleteGroup deletes every device of a link group in one request: the
// kernel's grace period is paid once for all of them.
func (l *Links) DeleteGroup(group uint32) error {
	return l.run(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
		if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete link group %d in %s: %w", group, l.where, err)
		}
		return nil
	})
}

// SetDefaultRoute points the default route of gw's family at gw through
// the interface with index ifindex (or, viaDevice, out of that interface
// with no gateway), replacing any previous one.
func (l *Links) SetDefaultRoute(gw netip.Addr, ifindex int, viaDevice bool) error {
	r := &netlink.Route{LinkIndex: ifindex, Dst: ipNet(netip.PrefixFrom(zeroOf(gw), 0))}
	if viaDevice {
		r.Scope = netlink.SCOPE_LINK
	} else {
		r.Gw = gw.AsSlice()
	}
	if err := l.h.RouteReplace(r); err != nil {
		return fmt.Errorf("set default route via %s: %w", gw, err)
	}
	return nil
}

func zeroOf(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// AddRoute routes dst out of the interface with index ifindex, through via
// (or, when via is zero, on the link), replacing any route to dst.
func (l *Links) AddRoute(dst netip.Prefix, via netip.Addr, ifindex int) error {
	r := &netlink.Route{LinkIndex: ifindex, Dst: ipNet(dst.Masked())}
	if via.IsValid() {
		r.Gw = via.AsSlice()
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := l.h.RouteReplace(r); err != nil {
		return fmt.Errorf("add route to %s: %w", dst, err)
	}
	return nil
}
