package network

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"net/netip"
	"sort"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/bridge"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/store"
)

// New loads the store, reconciles the kernel with it and makes sure the
// predefined networks exist.
func New(cfg Config) (*Controller, error) {
	pools := cfg.Pools
	if len(pools) == 0 {
		pools = ipam.DefaultLocalPools()
	}
	space4, space6, err := splitPools(pools)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		store: cfg.Store, host: cfg.Host, drivers: map[string]driver.Driver{},
		space4: space4, space6: space6, nsDir: cfg.NamespaceDir, log: cfg.Log, defBrName: cfg.DefaultBridge,
		fw: cfg.Firewall, ports: newPorts(),
		networks: map[string]*netState{}, netNames: map[string]string{},
		sandboxes: map[string]*sbState{}, sbNames: map[string]string{},
		pending: map[string][]netip.Prefix{},
	}
	for _, d := range cfg.Drivers {
		c.drivers[d.Name()] = d
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	if err := c.ensurePredefined(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// splitPools builds one space per address family; a family without pools
// has none.
func splitPools(pools []ipam.PoolSpec) (s4, s6 *ipam.Space, err error) {
	var v4, v6 []ipam.PoolSpec
	for _, p := range pools {
		if p.Base.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	if len(v4) > 0 {
		if s4, err = ipam.NewSpace(v4); err != nil {
			return nil, nil, err
		}
	}
	if len(v6) > 0 {
		if s6, err = ipam.NewSpace(v6); err != nil {
			return nil, nil, err
		}
	}
	return s4, s6, nil
}

func (c *Controller) nextSubnet(inUse []netip.Prefix, ipv6 bool) (netip.Prefix, error) {
	space, family := c.space4, 4
	if ipv6 {
		space, family = c.space6, 6
	}
	if space == nil {
		return netip.Prefix{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf(
			"could not find an available, non-overlapping IPv%d address pool among the defaults to assign to the network", family))
	}
	return space.NextSubnet(inUse)
}

// Close releases the namespaces the controller holds open. Kernel state
// stays: containers outlive the daemon.
func (c *Controller) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sb := range c.sandboxes {
		if sb.ns != nil {
			sb.ns.Close()
		}
	}
}

// load rebuilds memory from the store and the kernel from memory.
func (c *Controller) load() error {
	var (
		nets         []Network
		sbs          []Sandbox
		eps          []Endpoint
		reservations = map[string]string{} // network ID/address → sandbox ID
	)
	err := c.store.View(func(tx store.Tx) error {
		if err := store.LoadAll(tx, bucketNetworks, func(_ string, v *Network) error { nets = append(nets, *v); return nil }); err != nil {
			return err
		}
		if err := store.LoadAll(tx, bucketSandboxes, func(_ string, v *Sandbox) error { sbs = append(sbs, *v); return nil }); err != nil {
			return err
		}
		if err := store.LoadAll(tx, bucketEndpoints, func(_ string, v *Endpoint) error { eps = append(eps, *v); return nil }); err != nil {
			return err
		}
		return tx.ForEach(bucketReservations, func(key string, owner []byte) error {
			reservations[key] = string(owner)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}

	for _, rec := range nets {
		drv, ok := c.drivers[rec.Driver]
		if !ok {
			c.log.Error("network of an unknown driver left alone", "network", rec.Name, "driver", rec.Driver)
			continue
		}
		nw, err := newNetState(rec, drv)
		if err != nil {
			return fmt.Errorf("load network %s: %w", rec.Name, err)
		}
		c.networks[rec.ID] = nw
		c.netNames[rec.Name] = rec.ID
	}
	for key, owner := range reservations {
		id, addr, _ := strings.Cut(key, "/")
		a, err := netip.ParseAddr(addr)
		nw := c.networks[id]
		if err != nil || nw == nil {
			continue
		}
		for _, p := range nw.pools {
			if p.cfg.Subnet.Masked().Contains(a) && p.alloc.Reserve(a) == nil {
				nw.reserved[a] = owner
			}
		}
	}

	var drop []Endpoint
	var dropSandboxes []string
	for _, rec := range sbs {
		ns, err := netdev.OpenNamespace(rec.Key)
		if err != nil {
			// The namespace is gone (its owner ended, or the host
			// rebooted): so is everything in it.
			c.log.Info("sandbox namespace gone, forgetting it", "sandbox", rec.Name, "key", rec.Key)
			dropSandboxes = append(dropSandboxes, rec.ID)
			if !rec.External {
				netdev.DeleteNamespace(rec.Key)
			}
			continue
		}
		c.sandboxes[rec.ID] = &sbState{rec: rec, ns: ns}
		c.sbNames[rec.Name] = rec.ID
	}

	sort.Slice(eps, func(i, j int) bool { return eps[i].Order < eps[j].Order })
	for _, rec := range eps {
		sb, nw := c.sandboxes[rec.SandboxID], c.networks[rec.NetworkID]
		if sb == nil || nw == nil {
			drop = append(drop, rec)
			continue
		}
		ep := &epState{rec: rec, nw: nw}
		if err := nw.restore(ep); err != nil {
			c.log.Error("endpoint conflicts with another, dropping it", "endpoint", rec.ID, "err", err)
			drop = append(drop, rec)
			continue
		}
		sb.endpoints = append(sb.endpoints, ep)
	}
	if len(drop) > 0 || len(dropSandboxes) > 0 {
		if err := c.store.Update(func(tx store.Tx) error {
			for _, rec := range drop {
				if err := tx.Delete(bucketEndpoints, rec.ID); err != nil {
					return err
				}
			}
			for _, id := range dropSandboxes {
				if err := tx.Delete(bucketSandboxes, id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("forget stale state: %w", err)
		}
	}
	c.sweepNamespaces()
	return c.reconcileKernel()
}

// sweepNamespaces removes namespaces berth mounted for sandboxes it no
// longer has: a crash between mounting one and recording its sandbox.
func (c *Controller) sweepNamespaces() {
	entries, err := os.ReadDir(c.nsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if _, ok := c.sandboxes[e.Name()]; ok {
			continue
		}
		c.log.Info("removing namespace of no sandbox", "path", filepath.Join(c.nsDir, e.Name()))
		if err := netdev.DeleteNamespace(filepath.Join(c.nsDir, e.Name())); err != nil {
			c.log.Warn("remove namespace", "err", err)
		}
	}
}

// restore puts a stored endpoint back into the network's memory.
func (nw *netState) restore(ep *epState) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if _, taken := nw.epNames[ep.rec.Name]; taken {
		return errEndpointExists(ep.rec.Name, nw.rec.Name)
	}
	for _, a := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
		if !a.IsValid() {
			continue
		}
		found := false
		for _, p := range nw.pools {
			if p.cfg.Subnet.Masked().Contains(a.Addr()) {
				if err := p.alloc.Reserve(a.Addr()); err != nil {
					nw.release(ep)
					return fmt.Errorf("address %s: %w", a.Addr(), err)
				}
				found = true
			}
		}
		if !found {
			nw.release(ep)
			return fmt.Errorf("address %s is in none of the network's subnets", a.Addr())
		}
	}
	nw.endpoints[ep.rec.ID] = ep
	nw.epNames[ep.rec.Name] = ep.rec.ID
	return nil
}

// reconcileKernel makes the kernel match memory: networks' devices exist,
// endpoints are wired, and owned devices nobody wants are removed.
func (c *Controller) reconcileKernel() error {
	if c.host == nil {
		return nil
	}
	for _, nw := range c.networks {
		if err := nw.drv.CreateNetwork(nw.dn); err != nil {
			c.log.Error("re-create network", "network", nw.rec.Name, "err", err)
		}
	}
	wanted := map[string]bool{}
	var broken []*epState
	for _, nw := range c.networks {
		for _, d := range nw.drv.Devices(nw.dn) {
			wanted[d] = true
		}
		for _, ep := range nw.endpoints {
			ok, err := nw.drv.Attached(nw.dn, driverEndpoint(&ep.rec), c.sandboxes[ep.rec.SandboxID].ns)
			if err != nil {
				return err
			}
			if ok {
				wanted[ep.rec.HostIfName] = true
			} else {
				broken = append(broken, ep)
			}
		}
	}
	owned, err := c.host.OwnedLinks()
	if err != nil {
		return err
	}
	retired := 0
	for _, l := range owned {
		if l.Group == c.host.Owned && wanted[l.Name] {
			continue
		}
		if err := c.host.RetireLink(l); err != nil {
			return err
		}
		retired++
	}
	if retired > 0 || len(broken) > 0 {
		// Re-wiring below reuses interface names the retired devices may
		// still hold.
		if err := c.host.Reap(); err != nil {
			return err
		}
		c.log.Info("removed devices no longer wanted", "count", retired)
	}
	for _, ep := range broken {
		sb := c.sandboxes[ep.rec.SandboxID]
		c.log.Info("re-wiring endpoint", "endpoint", ep.rec.ID, "sandbox", sb.rec.Name, "network", ep.nw.rec.Name)
		if err := ep.nw.drv.Join(ep.nw.dn, driverEndpoint(&ep.rec), sb.ns); err != nil {
			c.log.Error("re-wire endpoint, dropping it", "endpoint", ep.rec.ID, "err", err)
			sb.endpoints = removeEndpoint(sb.endpoints, ep)
			c.forget(ep)
		}
	}
	if err := c.rebuildFirewall(); err != nil {
		return fmt.Errorf("write the firewall: %w", err)
	}
	for _, sb := range c.sandboxes {
		// Memory starts with no gateway, so this re-points the routes at
		// the right endpoint whatever the kernel holds.
		if err := c.routeDefault(sb); err != nil {
			c.log.Warn("restore default route", "sandbox", sb.rec.Name, "err", err)
		}
	}
	return nil
}

func removeEndpoint(eps []*epState, ep *epState) []*epState {
	out := eps[:0]
	for _, e := range eps {
		if e != ep {
			out = append(out, e)
		}
	}
	return out
}

// ensurePredefined creates bridge, host and none when they are missing.
func (c *Controller) ensurePredefined() error {
	if _, ok := c.netNames[NameBridge]; !ok {
		if _, ok := c.drivers["bridge"]; ok {
			_, err := c.createNetwork(CreateOptions{
				Name: NameBridge, Driver: "bridge",
				Options: map[string]string{
					bridge.OptionDefaultBridge: "true",
					bridge.OptionEnableICC:     "true",
					bridge.OptionMasquerade:    "true",
					bridge.OptionHostBindingV4: "0.0.0.0",
					bridge.OptionBridgeName:    c.defBrName,
					bridge.OptionMTU:           "1500",
				},
			})
			if err != nil {
				return fmt.Errorf("create the default bridge network: %w", err)
			}
		}
	}
	for name, drv := range map[string]string{NameHost: "host", NameNone: "null"} {
		if _, ok := c.netNames[name]; ok {
			continue
		}
		if _, ok := c.drivers[drv]; !ok {
			continue
		}
		if _, err := c.createNetwork(CreateOptions{Name: name, Driver: drv}); err != nil {
			return fmt.Errorf("create the %s network: %w", name, err)
		}
	}
	return nil
}
