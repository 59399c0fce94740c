package network

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
)

// defaultIPAM is the name of berth's own address manager.
const defaultIPAM = "default"

// lookupDriver finds a network driver: a built-in one, or a plugin's,
// found the first time a network names it and kept from then on.
func (c *Controller) lookupDriver(name string) (driver.Driver, error) {
	c.drvMu.RLock()
	drv, ok := c.drivers[name]
	c.drvMu.RUnlock()
	if ok {
		return drv, nil
	}
	if c.plugins == nil {
		return nil, errDriverNotFound(name)
	}
	drv, err := c.plugins.NetworkDriver(name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errDriverNotFound(name)
		}
		return nil, err
	}
	c.drvMu.Lock()
	defer c.drvMu.Unlock()
	if known, ok := c.drivers[name]; ok {
		return known, nil
	}
	c.drivers[name] = drv
	c.introduce(drv)
	return drv, nil
}

// lookupIPAM finds the address manager a network names: nil for berth's
// own, or a plugin.
func (c *Controller) lookupIPAM(name string) (ipam.Plugin, error) {
	if name == "" || name == defaultIPAM {
		return nil, nil
	}
	if c.plugins == nil {
		return nil, errDriverNotFound(name)
	}
	p, err := c.plugins.IPAMDriver(name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errDriverNotFound(name)
		}
		return nil, err
	}
	return p, nil
}

// driversOf finds a recorded network's driver and IPAM plugin.
func (c *Controller) driversOf(rec *Network) (driver.Driver, ipam.Plugin, error) {
	drv, err := c.lookupDriver(rec.Driver)
	if err != nil {
		return nil, nil, fmt.Errorf("driver %s: %w", rec.Driver, err)
	}
	plugin, err := c.lookupIPAM(rec.IPAM.Driver)
	if err != nil {
		return nil, nil, fmt.Errorf("IPAM driver %s: %w", rec.IPAM.Driver, err)
	}
	return drv, plugin, nil
}

// driverPredefined tells whether the network is one its driver brings
// (a CNI configuration's): it goes when the driver stops bringing it.
func (nw *netState) driverPredefined() bool {
	for _, p := range nw.caps.Predefined {
		if p.Name == nw.rec.Name {
			return true
		}
	}
	return false
}

// allocator hands out the addresses of one pool: berth's own
// ipam.Allocator, or a plugin's pool.
type allocator interface {
	Next() (netip.Addr, error)
	Reserve(netip.Addr) error
	Release(netip.Addr) error
}

// pluginPool is a pool an IPAM plugin gave: every address is asked of the
// plugin, which keeps the pool's state, across restarts of berthd too.
type pluginPool struct {
	plugin ipam.Plugin
	id     string
}

func (p *pluginPool) Next() (netip.Addr, error) { return p.next(nil) }

func (p *pluginPool) Reserve(a netip.Addr) error { return p.reserve(a, nil) }

// next and reserve are Next and Reserve with Docker's request options.
func (p *pluginPool) next(opts map[string]string) (netip.Addr, error) {
	a, err := p.plugin.RequestAddress(p.id, netip.Addr{}, opts)
	if err != nil {
		return netip.Addr{}, p.wrap(err)
	}
	return a.Addr(), nil
}

func (p *pluginPool) reserve(a netip.Addr, opts map[string]string) error {
	got, err := p.plugin.RequestAddress(p.id, a, opts)
	if err != nil {
		return p.wrap(err)
	}
	if got.Addr() != a {
		p.plugin.ReleaseAddress(p.id, got.Addr())
		return fmt.Errorf("IPAM plugin %s gave %s when asked for %s", p.plugin.Name(), got.Addr(), a)
	}
	return nil
}

func (p *pluginPool) Release(a netip.Addr) error {
	return p.wrap(p.plugin.ReleaseAddress(p.id, a))
}

func (p *pluginPool) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("IPAM plugin %s: %w", p.plugin.Name(), err)
}

// requestPools asks an IPAM plugin for a new network's pools: one per
// requested config, and one for each enabled family without one; then
// for each pool its gateway (the one the user gave, the one the plugin
// names in the pool's data, or one it hands out) and auxiliary
// addresses. What was granted is given back if any request fails.
func (c *Controller) requestPools(plugin ipam.Plugin, rec Network, cfgs []ipam.Config, global bool) ([]Pool, error) {
	var pools []Pool
	ok := false
	defer func() {
		if !ok {
			releasePools(plugin, pools, c.log.Warn)
		}
	}()
	request := func(cfg ipam.Config, v6 bool) error {
		grant, err := plugin.RequestPool(ipam.PoolRequest{
			Global: global, V6: v6, Subnet: cfg.Subnet, IPRange: cfg.IPRange, Options: maps.Clone(rec.IPAM.Options),
		})
		if err != nil {
			return fmt.Errorf("IPAM plugin %s: request a pool: %w", plugin.Name(), err)
		}
		if !grant.Pool.IsValid() || grant.Pool.Addr().Is6() != v6 {
			plugin.ReleasePool(grant.ID)
			return fmt.Errorf("IPAM plugin %s gave the pool %q for an IPv6=%v request", plugin.Name(), grant.Pool, v6)
		}
		// In pools at once, so that a failure below gives the pool back
		// with what it holds so far.
		pools = append(pools, Pool{Subnet: grant.Pool, IPRange: cfg.IPRange, PoolID: grant.ID, UserGateway: cfg.Gateway.IsValid()})
		p := &pools[len(pools)-1]
		gw, err := poolGateway(plugin, grant, cfg.Gateway)
		if err != nil {
			return err
		}
		p.Gateway = gw
		for name, aux := range cfg.AuxAddresses {
			if _, err := plugin.RequestAddress(grant.ID, aux, nil); err != nil {
				return fmt.Errorf("IPAM plugin %s: aux-address %s=%s: %w", plugin.Name(), name, aux, err)
			}
			if p.AuxAddresses == nil {
				p.AuxAddresses = map[string]netip.Addr{}
			}
			p.AuxAddresses[name] = aux
		}
		return nil
	}
	has4, has6 := false, false
	for _, cfg := range cfgs {
		v6 := cfg.Subnet.Addr().Is6()
		if !v6 && !rec.EnableIPv4 {
			return nil, invalid("IPv4 subnet %s given but IPv4 is disabled", cfg.Subnet)
		}
		if v6 && !rec.EnableIPv6 {
			return nil, invalid("IPv6 subnet %s given but IPv6 is not enabled (--ipv6)", cfg.Subnet)
		}
		if err := request(cfg, v6); err != nil {
			return nil, err
		}
		has4, has6 = has4 || !v6, has6 || v6
	}
	if rec.EnableIPv4 && !has4 {
		if err := request(ipam.Config{}, false); err != nil {
			return nil, err
		}
	}
	if rec.EnableIPv6 && !has6 {
		if err := request(ipam.Config{}, true); err != nil {
			return nil, err
		}
	}
	ok = true
	return pools, nil
}

// poolGateway takes a pool's gateway from the plugin: the user's, or the
// one the pool's data names, or any address the plugin gives for one.
func poolGateway(plugin ipam.Plugin, grant ipam.PoolGrant, user netip.Addr) (netip.Addr, error) {
	if !user.IsValid() {
		if s, ok := grant.Data[ipam.GatewayAddressType]; ok {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return netip.Addr{}, fmt.Errorf("IPAM plugin %s: gateway %q in the pool's data: %w", plugin.Name(), s, err)
				}
				return a, nil
			}
			return p.Addr(), nil
		}
	}
	gw, err := plugin.RequestAddress(grant.ID, user, map[string]string{ipam.RequestAddressType: ipam.GatewayAddressType})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("IPAM plugin %s: request the gateway: %w", plugin.Name(), err)
	}
	return gw.Addr(), nil
}

// givePoolsBack returns a network's pools to the IPAM plugin that gave
// them; nothing for berth's own.
func (c *Controller) givePoolsBack(nw *netState) {
	if nw.ipam != nil {
		releasePools(nw.ipam, nw.rec.IPAM.Pools, c.log.Warn)
	}
}

// releasePools gives a plugin's pools back with their gateways and
// auxiliary addresses; failures are only logged: the network is gone.
func releasePools(plugin ipam.Plugin, pools []Pool, warn func(string, ...any)) {
	for _, p := range pools {
		var errs []error
		for _, a := range append([]netip.Addr{p.Gateway}, slices.Collect(maps.Values(p.AuxAddresses))...) {
			if a.IsValid() {
				errs = append(errs, plugin.ReleaseAddress(p.PoolID, a))
			}
		}
		errs = append(errs, plugin.ReleasePool(p.PoolID))
		if err := errors.Join(errs...); err != nil {
			warn("give a pool back to its IPAM plugin", "plugin", plugin.Name(), "pool", p.Subnet, "err", err)
		}
	}
}
