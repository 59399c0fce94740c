package resolver

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Record is one endpoint of a container on a network.
type Record struct {
	// Network is the network's name, for name.network.
	Network   string
	NetworkID string
	// Container is the container's ID; its first 12 characters resolve.
	Container string
	// Names are the container's name, then its aliases on this network;
	// case-insensitive. The first name (else the short ID) answers PTR.
	Names      []string
	IPv4, IPv6 netip.Addr
}

// Table is the set of names containers publish, shared by all scopes.
//
// Queries read it without a global lock: the map of networks is replaced
// whole when a network gains its first endpoint or loses its last, and each
// network's names sit behind that network's own RWMutex. So Add and Remove
// cost what the endpoint's names cost, however many containers there are.
type Table struct {
	mu   sync.Mutex // serialises writers
	nets atomic.Pointer[map[string]*names]
}

// names is what one network publishes.
type names struct {
	mu sync.RWMutex
	// byName maps a lowercase wire name to the endpoints answering to it.
	byName map[string][]*endpoint
	byAddr map[netip.Addr]*endpoint
	byID   map[string]*endpoint
}

type endpoint struct {
	v4, v6 netip.Addr
	keys   []string
	// ptr is name.network. in wire form, in the case it was given.
	ptr []byte
}

// NewTable returns an empty table.
func NewTable() *Table {
	t := &Table{}
	t.nets.Store(&map[string]*names{})
	return t
}

// Add publishes r, replacing what the same container published on the same
// network before. Names that are no valid DNS name are left out.
func (t *Table) Add(r Record) {
	ep := &endpoint{v4: r.IPv4, v6: r.IPv6}
	seen := map[string]bool{}
	add := func(name string) {
		if k, ok := encodeName(name, true); ok && !seen[string(k)] {
			seen[string(k)] = true
			ep.keys = append(ep.keys, string(k))
		}
	}
	all := r.Names
	if len(r.Container) >= 12 {
		all = append(all[:len(all):len(all)], r.Container[:12])
	}
	for _, name := range all {
		add(name)
		add(name + "." + r.Network)
	}
	if len(all) > 0 {
		ep.ptr, _ = encodeName(all[0]+"."+r.Network, false)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	n := (*t.nets.Load())[r.NetworkID]
	if n == nil {
		n = &names{byName: map[string][]*endpoint{}, byAddr: map[netip.Addr]*endpoint{}, byID: map[string]*endpoint{}}
		t.replace(func(m map[string]*names) { m[r.NetworkID] = n })
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.remove(r.Container)
	n.byID[r.Container] = ep
	for _, k := range ep.keys {
		n.byName[k] = append(n.byName[k], ep)
	}
	for _, a := range []netip.Addr{ep.v4, ep.v6} {
		if a.IsValid() && ep.ptr != nil {
			n.byAddr[a] = ep
		}
	}
}

// Remove withdraws what container published on the network. Removing what
// is not there does nothing.
func (t *Table) Remove(networkID, container string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := (*t.nets.Load())[networkID]
	if n == nil {
		return
	}
	n.mu.Lock()
	n.remove(container)
	empty := len(n.byID) == 0
	n.mu.Unlock()
	if empty {
		t.replace(func(m map[string]*names) { delete(m, networkID) })
	}
}

// replace swaps in a changed copy of the network map; t.mu is held.
func (t *Table) replace(change func(map[string]*names)) {
	old := *t.nets.Load()
	m := make(map[string]*names, len(old)+1)
	for id, n := range old {
		m[id] = n
	}
	change(m)
	t.nets.Store(&m)
}

// remove withdraws a container's endpoint; n.mu is held.
func (n *names) remove(container string) {
	ep := n.byID[container]
	if ep == nil {
		return
	}
	delete(n.byID, container)
	for _, k := range ep.keys {
		rest := slices.DeleteFunc(n.byName[k], func(e *endpoint) bool { return e == ep })
		if len(rest) == 0 {
			delete(n.byName, k)
		} else {
			n.byName[k] = rest
		}
	}
	for _, a := range []netip.Addr{ep.v4, ep.v6} {
		if n.byAddr[a] == ep {
			delete(n.byAddr, a)
		}
	}
}

// lookup appends to dst the addresses of type qtype (A or AAAA) that name
// has on the first of nets where it has any; found tells whether the name
// exists on any of nets, whatever its addresses.
func (t *Table) lookup(nets []string, name []byte, qtype uint16, dst []netip.Addr) (_ []netip.Addr, found bool) {
	all := *t.nets.Load()
	for _, id := range nets {
		n := all[id]
		if n == nil {
			continue
		}
		n.mu.RLock()
		eps, ok := n.byName[string(name)]
		for _, ep := range eps {
			if qtype == typeA && ep.v4.IsValid() {
				dst = append(dst, ep.v4)
			} else if qtype == typeAAAA && ep.v6.IsValid() {
				dst = append(dst, ep.v6)
			}
		}
		n.mu.RUnlock()
		found = found || ok
		if len(dst) > 0 {
			break
		}
	}
	return dst, found
}

// lookupPTR returns the name (wire form) of the container holding addr on
// the first of nets where one does, or nil.
func (t *Table) lookupPTR(nets []string, addr netip.Addr) []byte {
	all := *t.nets.Load()
	for _, id := range nets {
		if n := all[id]; n != nil {
			n.mu.RLock()
			ep := n.byAddr[addr]
			n.mu.RUnlock()
			if ep != nil {
				return ep.ptr
			}
		}
	}
	return nil
}
