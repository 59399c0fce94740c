package netdev

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
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
	// Retired is the link group of devices taken out of service that wait
	// for the kernel's (slow) deletion.
	Retired uint32

	kick      chan struct{}
	done      chan struct{}
	unplug    chan int // host ends of retired pairs still on a bridge
	unplugged chan struct{}
	log       func(err error)
	backlog   atomic.Int64 // devices retired and not reaped yet
}

// Deleting devices holds the kernel's rtnl lock through an RCU grace
// period, stalling every other netlink request meanwhile (see Reap). So the reaper
// waits for a quiet moment — reapQuiet without a retirement — and batches
// everything retired by then into one deletion; a backlog of reapBacklog
// devices or a device waiting reapMaxWait is deleted regardless, which
// bounds what a busy daemon leaves waiting.
const (
	reapQuiet   = 200 * time.Millisecond
	reapMaxWait = 5 * time.Second
	reapBacklog = 256
)

// NewHost opens the current network namespace. instance tells daemons apart
// (berthd passes its root directory), so two daemons sharing a namespace never
// claim each other's devices.
func NewHost(instance string) (*Host, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	owned, retired := Groups(instance)
	host := &Host{
		h: h, Owned: owned, Retired: retired,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		unplug: make(chan int, 1024), unplugged: make(chan struct{}),
	}
	go host.reaper()
	go host.unplugger()
	return host, nil
}

// Groups returns the link groups of a daemon instance's live and retired
// devices. They keep clear of 0 (the default group) and of the small numbers
// people use by hand; the low bit tells live from retired.
func Groups(instance string) (owned, retired uint32) {
	sum := fnv.New32a()
	sum.Write([]byte(instance))
	owned = 0x40000000 | (sum.Sum32() & 0x3ffffffe)
	return owned, owned + 1
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

// unplugger takes retired pairs off their bridges as soon as they are
// retired. Each removal of a port costs the kernel time in proportion to the
// bridge's ports; done here it stays off the request, and the bridge does
// not keep retired ports until they are reaped, which would make every
// later attach pay for them.
func (h *Host) unplugger() {
	defer close(h.unplugged)
	for idx := range h.unplug {
		h.unplugIndex(idx)
	}
}

func (h *Host) unplugIndex(idx int) {
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}
	if err := h.h.LinkSetNoMaster(l); err != nil && !isNotFound(err) && h.log != nil {
		h.log(fmt.Errorf("take retired device %d off its bridge: %w", idx, err))
	}
}

// reaper deletes retired devices in the background, in batches.
func (h *Host) reaper() {
	defer close(h.done)
	var quiet, deadline <-chan time.Time
	for {
		select {
		case _, ok := <-h.kick:
			if !ok {
				h.Reap()
				return
			}
			if deadline == nil {
				deadline = time.After(reapMaxWait)
			}
			quiet = time.After(reapQuiet)
			if h.backlog.Load() < reapBacklog {
				continue
			}
		case <-quiet:
		case <-deadline:
		}
		quiet, deadline = nil, nil
		if err := h.Reap(); err != nil && h.log != nil {
			h.log(err)
		}
	}
}

func (h *Host) kickReaper() {
	h.backlog.Add(1)
	select {
	case h.kick <- struct{}{}:
	default:
	}
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
		if g := l.Attrs().Group; g == h.Owned || g == h.Retired {
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
func (h *Host) Owns(l Link) bool { return l.Group == h.Owned || l.Group == h.Retired }

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
			Name: spec.HostName, MTU: spec.MTU, Group: h.Owned, Flags: net.FlagUp, MasterIndex: spec.Master,
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
	return v.Attrs().Index, nil
}

// RetireVeth hands the host end of a pair whose inside end is already down
// to the reaper. With its peer down the pair carries nothing; leaving it on
// its bridge until the reaper deletes it keeps the bridge's per-port work,
// which grows with the number of ports, off the request. index may be 0
// when unknown.
func (h *Host) RetireVeth(name string, index int) error {
	var l netlink.Link = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, Index: index}}
	if index == 0 {
		var err error
		if l, err = h.h.LinkByName(name); err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("retire %s: %w", name, err)
		}
	}
	if err := h.h.LinkSetGroup(l, int(h.Retired)); err != nil && !isNotFound(err) {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	select {
	case h.unplug <- l.Attrs().Index:
	default:
		h.unplugIndex(l.Attrs().Index)
	}
	h.kickReaper()
	return nil
}

// Retire takes a device out of service at once: down, off its bridge and
// without addresses, renamed out of the way when rename is set, and moved to
// the retired group, where Reap deletes it later. Deleting a device waits for
// an RCU grace period (tens of milliseconds); this takes well under one.
// A device that is already gone is not an error.
func (h *Host) Retire(name string, rename bool) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("retire %s: %w", name, err)
	}
	return h.retire(l, rename)
}

func (h *Host) retire(l netlink.Link, rename bool) error {
	name := l.Attrs().Name
	if err := h.h.LinkSetDown(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("retire %s: set down: %w", name, err)
	}
	if l.Attrs().MasterIndex != 0 {
		if err := h.h.LinkSetNoMaster(l); err != nil && !isNotFound(err) {
			return fmt.Errorf("retire %s: detach from bridge: %w", name, err)
		}
	}
	if rename {
		// Addresses of a down device still count as the host's; drop them so
		// the subnet is free for the next network at once.
		addrs, err := h.h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("retire %s: list addresses: %w", name, err)
		}
		for _, a := range addrs {
			if err := h.h.AddrDel(l, &a); err != nil && !isNotFound(err) && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("retire %s: remove %s: %w", name, a.IPNet, err)
			}
		}
		if err := h.h.LinkSetName(l, fmt.Sprintf("brx%d", l.Attrs().Index)); err != nil && !isNotFound(err) {
			return fmt.Errorf("retire %s: rename: %w", name, err)
		}
	}
	if err := h.h.LinkSetGroup(l, int(h.Retired)); err != nil && !isNotFound(err) {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	h.kickReaper()
	return nil
}

// RetireLink retires an owned link found by OwnedLinks.
func (h *Host) RetireLink(l Link) error {
	nl, err := h.h.LinkByIndex(l.Index)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	return h.retire(nl, l.Kind == "bridge")
}

// Reap deletes every retired device. Veth pairs go in one request, so the
// kernel waits one grace period for the whole batch instead of one per
// device (measured: 100 pairs in about 40 ms, one pair alone 15 ms). Bridges
// do not batch — each holds the kernel's rtnl lock for its own grace period
// of about 30 ms — so they go one request each, letting other requests in
// between.
func (h *Host) Reap() error {
	h.backlog.Store(0)
	links, err := retryDump(h.h.LinkList)
	if err != nil {
		return fmt.Errorf("list retired devices: %w", err)
	}
	for _, l := range links {
		if l.Attrs().Group == h.Retired && l.Type() == "bridge" {
			if err := h.h.LinkDel(l); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete retired bridge %s: %w", l.Attrs().Name, err)
			}
		}
	}
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(h.Retired)))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete retired devices: %w", err)
	}
	return nil
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
