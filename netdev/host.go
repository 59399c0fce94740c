package netdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Host is the daemon's own network namespace, where bridges and the host
// ends of veth pairs live.
type Host struct {
	h *netlink.Handle
	// Owned is the link group of the live devices this daemon created.
	Owned uint32
	// Retired is the link group of veth pairs taken out of service that
	// wait for the kernel's (slow) deletion.
	Retired uint32
	// Spare is the link group of bridges taken out of service, kept a while
	// for new networks to reuse (see reaper.go).
	Spare uint32

	kick      chan struct{}
	done      chan struct{}
	unplug    chan int // host ends of retired pairs still on a bridge
	unplugged chan struct{}
	log       func(err error)
	backlog   atomic.Int64 // veths retired and not reaped yet

	// inside holds namespaces with retired interfaces of their own
	// (macvlan, ipvlan), by namespace inode, until the reaper deletes them.
	insideMu sync.Mutex
	inside   map[uint64]*Namespace

	spareMu sync.Mutex
	spares  []int // indexes of spare bridges, oldest first
	// bridgeUse is when a bridge was last retired or reused.
	bridgeUse time.Time
}

// NewHost opens the current network namespace. instance tells daemons apart
// (berthd passes its root directory), so two daemons sharing a namespace never
// claim each other's devices.
func NewHost(instance string) (*Host, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	owned, retired, spare := Groups(instance)
	host := &Host{
		h: h, Owned: owned, Retired: retired, Spare: spare,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		unplug: make(chan int, 1024), unplugged: make(chan struct{}),
	}
	go host.reaper()
	go host.unplugger()
	return host, nil
}

// OnReapError sets where errors of background reaping go.
func (h *Host) OnReapError(fn func(error)) { h.log = fn }

// Close deletes what is retired and releases the handle.
func (h *Host) Close() {
	close(h.unplug)
	<-h.unplugged
	close(h.kick)
	<-h.done
	h.h.Close()
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

// LinkByName returns the named link, or ok=false when there is none.
func (h *Host) LinkByName(name string) (Link, bool, error) {
	l, err := h.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return Link{}, false, nil
		}
		return Link{}, false, fmt.Errorf("look up link %s: %w", name, err)
	}
	return linkOf(l), true, nil
}

// OwnedLinks lists the devices of this daemon, live and retired.
func (h *Host) OwnedLinks() ([]Link, error) {
	links, err := retryDump(h.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []Link
	for _, l := range links {
		if g := l.Attrs().Group; h.ownsGroup(g) {
			out = append(out, linkOf(l))
		}
	}
	return out, nil
}

// BridgeSpec describes a bridge berth wants.
type BridgeSpec struct {
	Name  string
	MTU   int
	Addrs []netip.Prefix // gateway addresses with the subnet's length
	MAC   net.HardwareAddr
}

// EnsureBridge makes the bridge exist, be up and carry its addresses. A
// bridge that exists but is not berth's (external) is used as it is, apart
// from the addresses. It reports whether the bridge was created now.
func (h *Host) EnsureBridge(spec BridgeSpec) (created bool, err error) {
	l, err := h.h.LinkByName(spec.Name)
	switch {
	case err == nil:
		if l.Type() != "bridge" {
			return false, fmt.Errorf("device %s exists and is not a bridge", spec.Name)
		}
		if err := h.ensureUpWithAddrs(l, spec.Addrs); err != nil {
			return false, err
		}
		return false, nil
	case !isNotFound(err):
		return false, fmt.Errorf("look up bridge %s: %w", spec.Name, err)
	}
	if h.reuseSpare(spec) {
		return true, nil
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{
		Name: spec.Name, MTU: spec.MTU, HardwareAddr: spec.MAC, Group: h.Owned, Flags: net.FlagUp,
	}}
	if err := h.h.LinkAdd(br); err != nil {
		return false, fmt.Errorf("create bridge %s: %w", spec.Name, err)
	}
	// An MTU set through the device, not at creation, counts as the
	// user's: the bridge then stops recomputing it from all its ports each
	// time one is added or removed.
	if err := h.h.LinkSetMTU(br, spec.MTU); err != nil {
		h.h.LinkDel(br)
		return false, fmt.Errorf("set MTU of bridge %s: %w", spec.Name, err)
	}
	for _, a := range spec.Addrs {
		if err := h.h.AddrReplace(br, toAddr(a)); err != nil {
			h.h.LinkDel(br)
			return false, fmt.Errorf("add %s to bridge %s: %w", a, spec.Name, err)
		}
	}
	return true, nil
}

// Owns tells whether l belongs to this daemon.
func (h *Host) Owns(l Link) bool { return h.ownsGroup(l.Group) }

func (h *Host) ownsGroup(g uint32) bool { return g == h.Owned || g == h.Retired || g == h.Spare }

func (h *Host) ensureUpWithAddrs(l netlink.Link, addrs []netip.Prefix) error {
	for _, a := range addrs {
		if err := h.h.AddrReplace(l, toAddr(a)); err != nil {
			return fmt.Errorf("add %s to %s: %w", a, l.Attrs().Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// VethSpec describes a veth pair from a bridge into a namespace.
type VethSpec struct {
	HostName string
	Master   int // bridge index
	MTU      int
	PeerName string
	PeerMAC  net.HardwareAddr
	PeerNS   *Namespace
}

// ErrExists is returned when a device name is taken.
var ErrExists = errors.New("device exists")

// AddVeth creates the pair with its host end up on the bridge and its peer,
// down and unaddressed, already inside the namespace. It returns the host
// end's index.
func (h *Host) AddVeth(spec VethSpec) (int, error) {
	v := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name: spec.HostName, MTU: spec.MTU, Group: h.Owned, MasterIndex: spec.Master,
		},
		PeerName:         spec.PeerName,
		PeerHardwareAddr: spec.PeerMAC,
		PeerNamespace:    netlink.NsFd(int(spec.PeerNS.fd)),
	}
	if err := h.h.LinkAdd(v); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("create veth %s: %w", spec.HostName, ErrExists)
		}
		// LinkAdd sets the master after creating the pair; don't leave a
		// half-wired pair behind.
		if l, lerr := h.h.LinkByName(spec.HostName); lerr == nil {
			h.h.LinkDel(l)
		}
		return 0, fmt.Errorf("create veth %s: %w", spec.HostName, err)
	}
	// The host end is a bridge port and needs no IPv6 address of its own.
	// Without one it adds no link-local routes to the host's table, whose
	// every walk (each time a device goes down) would otherwise grow with
	// the number of endpoints.
	err := h.h.LinkSetIP6AddrGenMode(v, nl.IN6_ADDR_GEN_MODE_NONE)
	if err == nil {
		err = h.h.LinkSetUp(v)
	}
	if err != nil {
		h.h.LinkDel(v)
		return 0, fmt.Errorf("set up veth %s: %w", spec.HostName, err)
	}
	return v.Attrs().Index, nil
}

// Delete removes a device now, waiting for the kernel.
func (h *Host) Delete(name string) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	if err := h.h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// Prefixes returns the host's IPv4 and IPv6 routes and addresses (as
// prefixes), leaving out default routes and link-local addresses. New
// networks must not overlap any of them. Retired devices need no filtering:
// they are down, so their routes are gone, and their addresses were removed
// when they were retired.
func (h *Host) Prefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	routes, err := retryDump(func() ([]netlink.Route, error) { return h.h.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLinkLocalUnicast() && !p.Addr().IsLoopback() {
			out = append(out, p.Masked())
		}
	}
	return out, nil
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
