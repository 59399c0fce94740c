package network

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/driver"
)

// nodes follows the hosts of the cluster for the drivers that want to know
// them (driver.NodeWatcher). The follower only queues what changed; one
// goroutine tells the drivers, in order, so a slow plugin holds up no one.
type nodes struct {
	mu    sync.Mutex
	hosts map[string]netip.Addr // host ID → advertise address
	queue []nodeEvent
	wake  chan struct{}
}

// nodeEvent is a host that joined or left, for one driver (to) or for
// every watcher.
type nodeEvent struct {
	addr netip.Addr
	self bool
	left bool
	to   driver.NodeWatcher
}

func newNodes() *nodes {
	return &nodes{hosts: map[string]netip.Addr{}, wake: make(chan struct{}, 1)}
}

func (n *nodes) push(evs ...nodeEvent) {
	n.mu.Lock()
	n.queue = append(n.queue, evs...)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// hostChanged notes a change of key hosts/<id>: a host's registration
// made, changed or gone.
func (c *Controller) hostChanged(ch cluster.Change) {
	g := c.global
	id := strings.TrimPrefix(ch.Key, cluster.HostsPrefix)
	self := id == g.host
	n := g.nodes
	n.mu.Lock()
	old, known := n.hosts[id]
	n.mu.Unlock()
	if ch.Deleted {
		if known {
			n.mu.Lock()
			delete(n.hosts, id)
			n.mu.Unlock()
			n.push(nodeEvent{addr: old, self: self, left: true})
		}
		return
	}
	var h cluster.Host
	if err := json.Unmarshal([]byte(ch.Value), &h); err != nil || !h.Advertise.IsValid() {
		c.log.Warn("unreadable host in the cluster store", "host", id, "err", err)
		return
	}
	if known && old == h.Advertise {
		return // a renewal
	}
	n.mu.Lock()
	n.hosts[id] = h.Advertise
	n.mu.Unlock()
	var evs []nodeEvent
	if known {
		evs = append(evs, nodeEvent{addr: old, self: self, left: true})
	}
	n.push(append(evs, nodeEvent{addr: h.Advertise, self: self})...)
}

// introduce tells a driver found after the hosts were of every host
// known so far.
func (c *Controller) introduce(drv driver.Driver) {
	w, ok := drv.(driver.NodeWatcher)
	if !ok || c.global == nil {
		return
	}
	g := c.global
	n := g.nodes
	n.mu.Lock()
	evs := make([]nodeEvent, 0, len(n.hosts))
	for id, addr := range n.hosts {
		evs = append(evs, nodeEvent{addr: addr, self: id == g.host, to: w})
	}
	n.mu.Unlock()
	n.push(evs...)
}

// tellNodes hands the queued events to the drivers until ctx ends.
func (c *Controller) tellNodes(ctx context.Context) {
	n := c.global.nodes
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.mu.Lock()
		evs := n.queue
		n.queue = nil
		n.mu.Unlock()
		for _, ev := range evs {
			if ctx.Err() != nil {
				return
			}
			targets := []driver.NodeWatcher{ev.to}
			if ev.to == nil {
				targets = c.nodeWatchers()
			}
			for _, w := range targets {
				call, verb := w.NodeJoined, "joined"
				if ev.left {
					call, verb = w.NodeLeft, "left"
				}
				if err := call(ev.addr, ev.self); err != nil {
					// Plugins without node discovery say so; nothing
					// depends on the answer.
					c.log.Debug("tell a driver of a host", "driver", w.(driver.Driver).Name(), "host", ev.addr, "event", verb, "err", err)
				}
			}
		}
	}
}

func (c *Controller) nodeWatchers() []driver.NodeWatcher {
	c.drvMu.RLock()
	defer c.drvMu.RUnlock()
	var out []driver.NodeWatcher
	for _, d := range c.drivers {
		if w, ok := d.(driver.NodeWatcher); ok {
			out = append(out, w)
		}
	}
	return out
}
