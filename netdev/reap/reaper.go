// Package reap decides when berth's network devices are deleted.
//
// Deleting a device holds the kernel's rtnl lock through an RCU grace
// period, stalling every other netlink request meanwhile: 15 ms for a veth
// pair, 30 ms for a bridge on this kernel. So nothing is deleted on a
// request's path. A device leaving service is taken out of it at once —
// down, off its bridge, without addresses — and put in the Retired link
// group; the Reaper deletes the group in one request at a quiet moment
// (reapQuiet without a retirement), or when reapBacklog devices or
// reapMaxWait have passed. Bridges do not batch, so a retired bridge
// becomes a spare: the next new network takes it over instead of creating
// one, and spares are deleted one at a time only when no bridge has come
// or gone for spareIdle. Churning networks then costs no deletions at all.
//
// The package holds this policy only; every kernel request is a verb of
// netdev.
package reap

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-net/berth/netdev"
)

const (
	reapQuiet   = 200 * time.Millisecond
	reapMaxWait = 5 * time.Second
	reapBacklog = 256
	spareIdle   = 10 * time.Second
)

// Reaper retires and deletes the devices of one daemon's host.
type Reaper struct {
	host *netdev.Host
	log  func(error)

	kick      chan struct{}
	done      chan struct{}
	unplug    chan int // host ends of retired pairs still on a bridge
	unplugged chan struct{}
	backlog   atomic.Int64 // devices retired and not reaped yet

	// inside holds namespaces with retired interfaces of their own
	// (macvlan, ipvlan), by namespace inode, until they are reaped.
	insideMu sync.Mutex
	inside   map[uint64]*netdev.Namespace

	spareMu sync.Mutex
	spares  []int // indexes of spare bridges, oldest first
	// bridgeUse is when a bridge was last retired or reused.
	bridgeUse time.Time
}

// Backlog is how many retired devices wait to be deleted.
func (r *Reaper) Backlog() int64 { return r.backlog.Load() }

// New starts the reaper of host's devices; log gets the errors of
// background work.
func New(host *netdev.Host, log func(error)) *Reaper {
	if log == nil {
		log = func(error) {}
	}
	r := &Reaper{
		host: host, log: log,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		unplug: make(chan int, 1024), unplugged: make(chan struct{}),
	}
	go r.reaper()
	go r.unplugger()
	return r
}

// Close deletes what is retired and stops.
func (r *Reaper) Close() {
	close(r.unplug)
	<-r.unplugged
	close(r.kick)
	<-r.done
}

// reaper deletes retired devices in batches and idle spare bridges.
func (r *Reaper) reaper() {
	defer close(r.done)
	var quiet, deadline, spareCheck <-chan time.Time
	for {
		select {
		case _, ok := <-r.kick:
			if !ok {
				if err := r.Reap(); err != nil {
					r.log(err)
				}
				return
			}
			if spareCheck == nil {
				spareCheck = time.After(spareIdle)
			}
			if r.backlog.Load() == 0 {
				continue
			}
			if deadline == nil {
				deadline = time.After(reapMaxWait)
			}
			quiet = time.After(reapQuiet)
			if r.backlog.Load() < reapBacklog {
				continue
			}
			r.reapRetired()
			quiet, deadline = nil, nil
		case <-quiet:
			r.reapRetired()
			quiet, deadline = nil, nil
		case <-deadline:
			r.reapRetired()
			quiet, deadline = nil, nil
		case <-spareCheck:
			spareCheck = nil
			if wait := r.deleteIdleSpares(); wait > 0 {
				spareCheck = time.After(wait)
			}
		}
	}
}

func (r *Reaper) kickReaper() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Reaper) reapRetired() {
	r.backlog.Store(0)
	if err := r.host.DeleteGroup(r.host.Retired); err != nil {
		r.log(err)
	}
	r.reapInside()
}

// reapInside deletes the retired interfaces inside namespaces.
func (r *Reaper) reapInside() {
	r.insideMu.Lock()
	inside := r.inside
	r.inside = nil
	r.insideMu.Unlock()
	for _, ns := range inside {
		err := ns.DeleteGroup(r.host.Retired)
		ns.Close()
		if err != nil {
			r.log(err)
		}
	}
}

// RetireVeth hands the host end of a pair whose inside end is already down
// to the reaper; with its peer down the pair carries nothing. index may be
// 0 when unknown.
func (r *Reaper) RetireVeth(name string, index int) error {
	if index == 0 {
		l, ok, err := r.host.Link(name)
		if err != nil || !ok {
			return err
		}
		index = l.Index
	}
	if err := r.host.SetGroup(index, r.host.Retired); err != nil {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	select {
	case r.unplug <- index:
	default:
		if err := r.host.Unplug(index); err != nil {
			r.log(err)
		}
	}
	r.backlog.Add(1)
	r.kickReaper()
	return nil
}

// unplugger takes retired pairs off their bridges as soon as they are
// retired. Each removal of a port costs the kernel time in proportion to the
// bridge's ports; done here it stays off the request, and the bridge does
// not keep retired ports until they are reaped, which would make every
// later attach pay for them.
func (r *Reaper) unplugger() {
	defer close(r.unplugged)
	for idx := range r.unplug {
		if err := r.host.Unplug(idx); err != nil {
			r.log(err)
		}
	}
}

// RetireInside takes an interface that lives only inside a namespace (a
// macvlan or ipvlan endpoint) out of service: down, without its addresses,
// renamed out of the way of the next one, and in the Retired group, to be
// deleted with the others of its namespace. The namespace stays open until
// then. A missing interface is not an error.
func (r *Reaper) RetireInside(ns *netdev.Namespace, name string, addrs []netip.Prefix) error {
	l, ok, err := ns.Link(name)
	if err != nil || !ok {
		return err
	}
	if err := ns.TakeDown(name, l.Index, addrs); err != nil {
		return err
	}
	if err := ns.Rename(l.Index, fmt.Sprintf("rt%d", l.Index)); err != nil {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	if err := ns.SetGroup(l.Index, r.host.Retired); err != nil {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	ino, err := ns.Inode()
	if err != nil {
		return fmt.Errorf("retire %s: %w", name, err)
	}
	r.insideMu.Lock()
	if _, ok := r.inside[ino]; !ok {
		dup, err := ns.Dup()
		if err != nil {
			r.insideMu.Unlock()
			return fmt.Errorf("retire %s: %w", name, err)
		}
		if r.inside == nil {
			r.inside = map[uint64]*netdev.Namespace{}
		}
		r.inside[ino] = dup
	}
	r.insideMu.Unlock()
	r.backlog.Add(1)
	r.kickReaper()
	return nil
}

// Retire takes a host device out of service at once: down, off its
// bridge, and, for a bridge, without addresses and renamed out of the way,
// as a spare. A device that is already gone is not an error.
func (r *Reaper) Retire(name string) error {
	l, ok, err := r.host.Link(name)
	if err != nil || !ok {
		return err
	}
	return r.retire(l)
}

func (r *Reaper) retire(l netdev.Link) error {
	if err := r.host.TakeDown(l.Name, l.Index, nil); err != nil {
		return fmt.Errorf("retire %s: %w", l.Name, err)
	}
	if l.Master != 0 {
		if err := r.host.Unplug(l.Index); err != nil {
			return fmt.Errorf("retire %s: %w", l.Name, err)
		}
	}
	if l.Kind != "bridge" {
		if err := r.host.SetGroup(l.Index, r.host.Retired); err != nil {
			return fmt.Errorf("retire %s: %w", l.Name, err)
		}
		r.backlog.Add(1)
		r.kickReaper()
		return nil
	}
	// Addresses of a down device still count as the host's; drop them so
	// the subnet is free for the next network at once.
	err := r.host.RemoveAddrs(l.Index)
	if err == nil {
		err = r.host.Rename(l.Index, fmt.Sprintf("brx%d", l.Index))
	}
	if err == nil {
		err = r.host.SetGroup(l.Index, r.host.Spare)
	}
	if err != nil {
		return fmt.Errorf("retire %s: %w", l.Name, err)
	}
	r.spareMu.Lock()
	r.spares = append(r.spares, l.Index)
	r.bridgeUse = time.Now()
	r.spareMu.Unlock()
	r.kickReaper()
	return nil
}

// EnsureBridge makes the bridge spec asks for exist, taking over a spare
// bridge rather than creating one when it is missing.
func (r *Reaper) EnsureBridge(spec netdev.BridgeSpec) error {
	if _, ok, err := r.host.Link(spec.Name); err != nil || ok {
		if err != nil {
			return err
		}
		return r.host.EnsureBridge(spec)
	}
	r.spareMu.Lock()
	var idx int
	if n := len(r.spares); n > 0 {
		idx = r.spares[n-1]
		r.spares = r.spares[:n-1]
		r.bridgeUse = time.Now()
	}
	r.spareMu.Unlock()
	if idx != 0 {
		err := r.host.ReuseBridge(idx, spec)
		if err == nil {
			return nil
		}
		r.log(err)
		if derr := r.host.DeleteIndex(idx); derr != nil {
			r.log(derr)
		}
	}
	return r.host.EnsureBridge(spec)
}

// deleteIdleSpares deletes the spare bridges, one request each, once no
// bridge has come or gone for spareIdle; otherwise it says how long to
// wait before trying again.
func (r *Reaper) deleteIdleSpares() time.Duration {
	for {
		r.spareMu.Lock()
		if len(r.spares) == 0 {
			r.spareMu.Unlock()
			return 0
		}
		if idle := time.Since(r.bridgeUse); idle < spareIdle {
			r.spareMu.Unlock()
			return spareIdle - idle
		}
		idx := r.spares[0]
		r.spares = r.spares[1:]
		r.spareMu.Unlock()
		if err := r.host.DeleteIndex(idx); err != nil {
			r.log(fmt.Errorf("delete spare bridge: %w", err))
		}
	}
}

// RetireUnwanted retires every device of the daemon that is live and not
// in wanted, or retired or spare already, and returns how many it retired.
func (r *Reaper) RetireUnwanted(wanted map[string]bool) (int, error) {
	owned, err := r.host.OwnedLinks()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range owned {
		if l.Group == r.host.Owned && wanted[l.Name] {
			continue
		}
		if err := r.retire(l); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Reap deletes every retired device and spare bridge now: at start, after
// the reconcile retired what nobody wants, and at shutdown.
func (r *Reaper) Reap() error {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	r.spares = nil
	spares, err := r.host.Links.Links(func(g uint32) bool { return g == r.host.Spare })
	if err != nil {
		return err
	}
	for _, l := range spares {
		if err := r.host.DeleteIndex(l.Index); err != nil {
			return fmt.Errorf("delete spare bridge %s: %w", l.Name, err)
		}
	}
	r.reapInside()
	r.backlog.Store(0)
	return r.host.DeleteGroup(r.host.Retired)
}
