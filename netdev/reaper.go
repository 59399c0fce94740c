package netdev

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Taking devices out of service and deleting them later.
//
// Deleting a device holds the kernel's rtnl lock through an RCU grace
// period, stalling every other netlink request meanwhile: 15 ms for a veth
// pair, 30 ms for a bridge on this kernel. Veth pairs batch well — one
// request deletes a whole link group, 100 pairs in about 40 ms — so retired
// pairs wait in the Retired group for a quiet moment (reapQuiet without a
// retirement) and go together; a backlog of reapBacklog pairs or a pair
// waiting reapMaxWait goes regardless. Bridges do not batch, so a retired
// bridge becomes a spare: the next new network takes it over instead of
// creating one, and spares are deleted one at a time only when no bridge
// has come or gone for spareIdle. Churning networks then costs no deletions
// at all.
const (
	reapQuiet   = 200 * time.Millisecond
	reapMaxWait = 5 * time.Second
	reapBacklog = 256
	spareIdle   = 10 * time.Second
)

// Groups returns the link groups of a daemon instance's live devices,
// retired veth pairs and spare bridges. They keep clear of 0 (the default
// group) and of the small numbers people use by hand.
func Groups(instance string) (owned, retired, spare uint32) {
	sum := fnv.New32a()
	sum.Write([]byte(instance))
	owned = 0x40000000 | (sum.Sum32() & 0x3ffffffc)
	return owned, owned + 1, owned + 2
}

// reaper deletes retired pairs in batches and idle spare bridges.
func (h *Host) reaper() {
	defer close(h.done)
	var quiet, deadline, spareCheck <-chan time.Time
	for {
		select {
		case _, ok := <-h.kick:
			if !ok {
				h.Reap()
				return
			}
			if spareCheck == nil {
				spareCheck = time.After(spareIdle)
			}
			if h.backlog.Load() == 0 {
				continue
			}
			if deadline == nil {
				deadline = time.After(reapMaxWait)
			}
			quiet = time.After(reapQuiet)
			if h.backlog.Load() < reapBacklog {
				continue
			}
			h.reapVeths()
			quiet, deadline = nil, nil
		case <-quiet:
			h.reapVeths()
			quiet, deadline = nil, nil
		case <-deadline:
			h.reapVeths()
			quiet, deadline = nil, nil
		case <-spareCheck:
			spareCheck = nil
			if wait := h.deleteIdleSpares(); wait > 0 {
				spareCheck = time.After(wait)
			}
		}
	}
}

func (h *Host) kickReaper() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *Host) reapVeths() {
	if err := h.deleteGroup(h.Retired); err != nil && h.log != nil {
		h.log(err)
	}
	h.reapInside()
}

// reapInside deletes the retired interfaces inside namespaces.
func (h *Host) reapInside() {
	h.insideMu.Lock()
	inside := h.inside
	h.inside = nil
	h.insideMu.Unlock()
	for _, ns := range inside {
		err := ns.Do(func() error { return deleteGroupHere(h.Retired) })
		ns.Close()
		if err != nil && h.log != nil {
			h.log(fmt.Errorf("in %s: %w", ns.path, err))
		}
	}
}

// RetireInside takes an interface that lives only inside a namespace (a
// macvlan or ipvlan endpoint) out of service: down, without its addresses,
// renamed out of the way of the next one, and in the Retired group, for the
// reaper to delete with the others of its namespace. The namespace stays
// open until then. A missing interface is not an error.
func (h *Host) RetireInside(ns *Namespace, name string, addrs []netip.Prefix) error {
	l, err := ns.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("retire %s: %w", name, err)
	}
	idx := l.Attrs().Index
	if err := ns.RetireInterface(name, idx, addrs); err != nil {
		return err
	}
	if err := ns.h.LinkSetName(l, fmt.Sprintf("rt%d", idx)); err != nil {
		return fmt.Errorf("retire %s: rename: %w", name, err)
	}
	if err := ns.h.LinkSetGroup(l, int(h.Retired)); err != nil {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.fd), &st); err != nil {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	h.insideMu.Lock()
	if _, ok := h.inside[st.Ino]; !ok {
		dup, err := ns.dup()
		if err != nil {
			h.insideMu.Unlock()
			return fmt.Errorf("retire %s: %w", name, err)
		}
		if h.inside == nil {
			h.inside = map[uint64]*Namespace{}
		}
		h.inside[st.Ino] = dup
	}
	h.insideMu.Unlock()
	h.backlog.Add(1)
	h.kickReaper()
	return nil
}

// deleteGroup deletes every device of a link group in one request.
func (h *Host) deleteGroup(group uint32) error {
	if group == h.Retired {
		h.backlog.Store(0)
	}
	return deleteGroupHere(group)
}

// deleteGroupHere deletes a link group in the calling thread's namespace.
func deleteGroupHere(group uint32) error {
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete retired devices: %w", err)
	}
	return nil
}

// deleteIdleSpares deletes the spare bridges, one request each, once no
// bridge has come or gone for spareIdle; otherwise it says how long to
// wait before trying again.
func (h *Host) deleteIdleSpares() time.Duration {
	for {
		h.spareMu.Lock()
		if len(h.spares) == 0 {
			h.spareMu.Unlock()
			return 0
		}
		if idle := time.Since(h.bridgeUse); idle < spareIdle {
			h.spareMu.Unlock()
			return spareIdle - idle
		}
		idx := h.spares[0]
		h.spares = h.spares[1:]
		h.spareMu.Unlock()
		l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}
		if err := h.h.LinkDel(l); err != nil && !isNotFound(err) && h.log != nil {
			h.log(fmt.Errorf("delete spare bridge %d: %w", idx, err))
		}
	}
}

// reuseSpare turns a spare bridge into the one spec asks for and reports
// whether it did.
func (h *Host) reuseSpare(spec BridgeSpec) bool {
	h.spareMu.Lock()
	if len(h.spares) == 0 {
		h.spareMu.Unlock()
		return false
	}
	idx := h.spares[len(h.spares)-1]
	h.spares = h.spares[:len(h.spares)-1]
	h.bridgeUse = time.Now()
	h.spareMu.Unlock()
	l, err := h.h.LinkByIndex(idx)
	if err == nil && (l.Type() != "bridge" || l.Attrs().Group != h.Spare) {
		err = fmt.Errorf("device %d is no longer a spare bridge", idx)
	}
	if err == nil {
		err = h.h.LinkSetName(l, spec.Name)
	}
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
		if h.log != nil {
			h.log(fmt.Errorf("reuse spare bridge %d: %w", idx, err))
		}
		if l != nil {
			h.h.LinkDel(l)
		}
		return false
	}
	return true
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

// RetireVeth hands the host end of a pair whose inside end is already down
// to the reaper; with its peer down the pair carries nothing. index may be
// 0 when unknown.
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
	h.backlog.Add(1)
	h.kickReaper()
	return nil
}

// Retire takes a device out of service at once: down, off its bridge, and,
// for a bridge, without addresses and renamed out of the way, as a spare.
// A device that is already gone is not an error.
func (h *Host) Retire(name string) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("retire %s: %w", name, err)
	}
	return h.retire(l)
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
	return h.retire(nl)
}

func (h *Host) retire(l netlink.Link) error {
	name := l.Attrs().Name
	bridge := l.Type() == "bridge"
	if err := h.h.LinkSetDown(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("retire %s: set down: %w", name, err)
	}
	if l.Attrs().MasterIndex != 0 {
		if err := h.h.LinkSetNoMaster(l); err != nil && !isNotFound(err) {
			return fmt.Errorf("retire %s: detach from bridge: %w", name, err)
		}
	}
	group := h.Retired
	if bridge {
		// Addresses of a down device still count as the host's; drop them
		// so the subnet is free for the next network at once.
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
		group = h.Spare
	}
	if err := h.h.LinkSetGroup(l, int(group)); err != nil && !isNotFound(err) {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	if bridge {
		h.spareMu.Lock()
		h.spares = append(h.spares, l.Attrs().Index)
		h.bridgeUse = time.Now()
		h.spareMu.Unlock()
	} else {
		h.backlog.Add(1)
	}
	h.kickReaper()
	return nil
}

// Reap deletes every retired device and spare bridge now: at start, after
// the reconcile retired what nobody wants, and at shutdown.
func (h *Host) Reap() error {
	h.spareMu.Lock()
	defer h.spareMu.Unlock()
	h.spares = nil
	links, err := retryDump(h.h.LinkList)
	if err != nil {
		return fmt.Errorf("list retired devices: %w", err)
	}
	for _, l := range links {
		if l.Attrs().Group == h.Spare {
			if err := h.h.LinkDel(l); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete spare bridge %s: %w", l.Attrs().Name, err)
			}
		}
	}
	h.reapInside()
	return h.deleteGroup(h.Retired)
}
