package network

import (
	"net/netip"
	"time"
)

// Observe is told how long each of the controller's operations took
// ("create", "remove", "attach", "detach") and whether it failed, with the
// driver of the network it was on; and, as "join" and "leave", how long
// the driver's own call took within an attach or a detach (for a plugin,
// the plugin's time), so that berth's share can be told from it.
type Observe func(op, driver string, took time.Duration, failed bool)

// observe reports an operation that began at start.
func (c *Controller) observe(op, driver string, start time.Time, err error) {
	if c.observer != nil {
		c.observer(op, driver, time.Since(start), err != nil)
	}
}

// PoolUsage is how full one of a network's address pools is.
type PoolUsage struct {
	Network string
	Subnet  netip.Prefix
	// Used are the addresses taken, gateway and aux-addresses included;
	// Capacity those that can be.
	Used     int
	Capacity float64
}

// sized is an allocator that knows its size: berth's own. An IPAM
// plugin's pool is the plugin's business.
type sized interface {
	Len() int
	Capacity() float64
}

// Usage reports the fill of every address pool berth allocates from, and
// per network name how many times an endpoint found its pools exhausted.
func (c *Controller) Usage() (pools []PoolUsage, exhausted map[string]uint64) {
	c.mu.RLock()
	nets := make([]*netState, 0, len(c.networks))
	for _, nw := range c.networks {
		nets = append(nets, nw)
	}
	c.mu.RUnlock()
	exhausted = map[string]uint64{}
	for _, nw := range nets {
		nw.mu.Lock()
		for _, p := range nw.pools {
			if s, ok := p.alloc.(sized); ok {
				pools = append(pools, PoolUsage{Network: nw.rec.Name, Subnet: p.cfg.Subnet, Used: s.Len(), Capacity: s.Capacity()})
			}
		}
		nw.mu.Unlock()
		if n := nw.exhausted.Load(); n > 0 {
			exhausted[nw.rec.Name] = n
		}
	}
	return pools, exhausted
}
