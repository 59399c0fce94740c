package netdev

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is the daemon's own network namespace, where bridges and the host
// ends of veth pairs live.
type Host struct {
	Links
	// Owned is the link group of the live devices this daemon created.
	Owned uint32
	// Retired is the link group of devices taken out of service that wait
	// for the kernel's (slow) deletion.
	Retired uint32
	// Spare is the link group of bridges taken out of service, kept a while
	// for new networks to reuse.
	Spare uint32
	// self is the namespace the host was opened in.
	self netns.NsHandle
}

// Groups returns the link groups of a daemon instance's live devices,
// retired devices and spare bridges. They keep clear of 0 (the default
// group) and of the small numbers people use by hand.
func Groups(instance string) (owned, retired, spare uint32) {
	sum := fnv.New32a()
	sum.Write([]byte(instance))
	owned = 0x40000000 | (sum.Sum32() & 0x3ffffffc)
	return owned, owned + 1, owned + 2
}

// NewHost opens the current network namespace. instance tells daemons apart
// (berthd passes its root directory), so two daemons sharing a namespace never
// claim each other's devices.
func NewHost(instance string) (*Host, error) {
	self, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open the current network namespace: %w", err)
	}
	h, err := netlink.NewHandleAt(self, unix.NETLINK_ROUTE)
	if err != nil {
		self.Close()
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	owned, retired, spare := Groups(instance)
	host := &Host{Owned: owned, Retired: retired, Spare: spare, self: self}
	host.Links = Links{h: h, where: "the host", run: host.do}
	return host, nil
}

// do runs fn on a thread in the host's namespace: the calling one when it
// is there, as it always is in berthd, else one that enters it (a test
// that made its host in a namespace of its own). Writes to /proc/sys/net
// and raw netlink requests act on the calling thread's namespace.
func (h *Host) do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := netns.Get()
	if err != nil {
		return fmt.Errorf("the current network namespace: %w", err)
	}
	here := cur.Equal(h.self)
	cur.Close()
	if here {
		return fn()
	}
	return RunIn(h.self, "the host", fn)
}

// Close releases the handle.
func (h *Host) Close() {
	h.h.Close()
	h.self.Close()
}

// Owns tells whether l belongs to this daemon.
func (h *Host) Owns(l Link) bool { return h.ownsGroup(l.Group) }

func (h *Host) ownsGroup(g uint32) bool { return g == h.Owned || g == h.Retired || g == h.Spare }

// OwnedLinks lists the devices of this daemon, live, retired and spare.
func (h *Host) OwnedLinks() ([]Link, error) { return h.Links.Links(h.ownsGroup) }

// BridgeSpec describes a bridge berth wants.
type BridgeSpec struct {
	Name  string
	MTU   int
	Addrs []netip.Prefix // gateway addresses with the subnet's length
	MAC   net.HardwareAddr
}

// EnsureBridge makes the bridge exist, be up and carry its addresses. A
// bridge that exists but is not berth's (external) is used as it is, apart
// from the addresses.
func (h *Host) EnsureBridge(spec BridgeSpec) error {
	l, err := h.h.LinkByName(spec.Name)
	switch {
	case err == nil:
		if l.Type() != "bridge" {
			return fmt.Errorf("device %s exists and is not a bridge", spec.Name)
		}
		if g := l.Attrs().Group; g != h.Owned && h.ownsGroup(g) {
			// One of berth's out of service under the wanted name: a spare
			// whose reuse a crash cut short after the rename, or a retired
			// bridge not deleted yet. Take it back before the reaper
			// deletes it.
			if err := h.h.LinkSetGroup(l, int(h.Owned)); err != nil {
				return fmt.Errorf("take back bridge %s: %w", spec.Name, err)
			}
		}
		return h.upWithAddrs(l, spec.Addrs)
	case !isNotFound(err):
		return fmt.Errorf("look up bridge %s: %w", spec.Name, err)
	}
	// The bridge is made with another MTU than its own, which is then set
	// through the device: an MTU changed that way counts as the user's,
	// and the bridge stops recomputing it from all its ports each time one
	// is added or removed (work in proportion to the ports, under the
	// kernel's rtnl lock).
	first := minMTU
	if spec.MTU == minMTU {
		first++
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{
		Name: spec.Name, MTU: first, HardwareAddr: spec.MAC, Group: h.Owned, Flags: net.FlagUp,
	}}
	if err := h.h.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge %s: %w", spec.Name, err)
	}
	if err := h.h.LinkSetMTU(br, spec.MTU); err != nil {
		h.h.LinkDel(br)
		return fmt.Errorf("set MTU of bridge %s: %w", spec.Name, err)
	}
	for _, a := range spec.Addrs {
		if err := h.h.AddrReplace(br, toAddr(a)); err != nil {
			h.h.LinkDel(br)
			return fmt.Errorf("add %s to bridge %s: %w", a, spec.Name, err)
		}
	}
	return nil
}

// minMTU is the smallest MTU an IPv4 device may have.
const minMTU = 68

// ReuseBridge turns the spare bridge with index into the one spec asks
// for: renamed, addressed, owned and up.
func (h *Host) ReuseBridge(index int, spec BridgeSpec) error {
	l, err := h.h.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("spare bridge %d: %w", index, err)
	}
	if l.Type() != "bridge" || l.Attrs().Group != h.Spare {
		return fmt.Errorf("device %d is no longer a spare bridge", index)
	}
	err = h.h.LinkSetName(l, spec.Name)
	if err == nil {
		err = h.h.LinkSetMTU(l, spec.MTU)
	}
	for _, a := range spec.Addrs {
		if err == nil {
			err = h.h.AddrReplace(l, toAddr(a))
		}
	}
	if err == nil {
		err = h.h.LinkSetGroup(l, int(h.Owned))
	}
	if err == nil {
		err = h.h.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("reuse spare bridge %d as %s: %w", index, spec.Name, err)
	}
	return nil
}

func (h *Host) upWithAddrs(l netlink.Link, addrs []netip.Prefix) error {
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
	// The host end is a bridge port: it forwards frames of every family
	// and needs no IPv6 of its own. With IPv6 on, even without addresses,
	// each port adds a multicast route (ff00::/8) to the host's IPv6
	// table, which the kernel walks and inserts into in proportion to its
	// size whenever a device comes up or goes down: attach cost grew with
	// the endpoints.
	err := h.do(func() error { return disableIPv6(spec.HostName) })
	if err == nil {
		err = h.h.LinkSetUp(v)
	}
	if err != nil {
		h.h.LinkDel(v)
		return 0, fmt.Errorf("set up veth %s: %w", spec.HostName, err)
	}
	return v.Attrs().Index, nil
}

// disableIPv6 turns IPv6 off on a device of the host. A kernel without
// IPv6 has nothing to turn off.
func disableIPv6(dev string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6", []byte("1"), 0o644)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
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
