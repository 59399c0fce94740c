package network

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/store"
)

// New loads the store, reconciles the kernel with it and makes sure the
// predefined networks exist.
func New(cfg Config) (*Controller, error) {
	pools := cfg.Pools
	if len(pools) == 0 {
		pools = ipam.DefaultLocalPools()
	}
	// IPv6 networks without a subnet take a /64 of the host's unique
	// local /48, unless the pools given have IPv6 ones.
	if !slices.ContainsFunc(pools, func(p ipam.PoolSpec) bool { return p.Base.Addr().Is6() }) {
		pools = append(slices.Clone(pools), ipam.ULAPool(cfg.HostID))
	}
	space4, space6, err := splitPools(pools)
	if err != nil {
		return nil, err
	}
	resolvConf := cfg.HostResolvConf
	if resolvConf == "" {
		resolvConf = "/etc/resolv.conf"
	}
	c := &Controller{
		store: cfg.Store, kernel: cfg.Kernel, drivers: map[string]driver.Driver{}, plugins: cfg.Plugins, defaultDriver: cfg.DefaultDriver,
		space4: space4, space6: space6, nsDir: cfg.NamespaceDir, log: cfg.Log, events: cfg.Events, observer: cfg.Observe,
		fw: cfg.Firewall, dns: cfg.DNS, hostResolvConf: NewHostResolvConf(resolvConf), ports: newPorts(cfg.Kernel),
		networks: map[string]*netState{}, netNames: map[string]string{},
		sandboxes: map[string]*sbState{}, sbNames: map[string]string{},
		pending: map[string][]netip.Prefix{},
	}
	for _, d := range cfg.Drivers {
		if _, dup := c.drivers[d.Name()]; dup {
			return nil, fmt.Errorf("two drivers named %s", d.Name())
		}
		c.drivers[d.Name()] = d
	}
	var (
		snap []cluster.KV
		sub  *cluster.Subscription
	)
	if cfg.Cluster != nil {
		if snap, sub, err = c.startGlobal(cfg.Cluster); err != nil {
			return nil, err
		}
	}
	if err := c.load(snap); err != nil {
		c.closeGlobal()
		return nil, err
	}
	if err := c.ensurePredefined(); err != nil {
		c.Close()
		return nil, err
	}
	if c.global != nil {
		c.restoreGlobal(snap, sub)
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

func (c *Controller) nextSubnet(inUse []netip.Prefix, ipv6, global bool) (netip.Prefix, error) {
	space, family := c.space4, 4
	if global && !ipv6 {
		space = c.global.space
	}
	if ipv6 {
		space, family = c.space6, 6
	}
	if space == nil {
		return netip.Prefix{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf(
			"could not find an available, non-overlapping IPv%d address pool among the defaults to assign to the network", family))
	}
	return space.NextSubnet(inUse)
}

// Close stops serving sandboxes' queries and releases the namespaces the
// controller holds open. Kernel state stays: containers outlive the
// daemon.
func (c *Controller) Close() {
	c.closeGlobal()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sb := range c.sandboxes {
		sb.mu.Lock()
		c.stopResolver(sb)
		c.kernel.CloseNamespace(sb.ns)
		sb.mu.Unlock()
	}
}

// load rebuilds memory from the store (and the global networks of the
// cluster store's snapshot) and the kernel from memory.
func (c *Controller) load(snap []cluster.KV) error {
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

	globalNets, raw := globalNetworks(snap)
	// unavailable are networks whose plugin cannot be reached now: their
	// records, and their endpoints', stay for a later start.
	unavailable := map[string]bool{}
	for _, rec := range append(nets, globalNets...) {
		drv, plugin, err := c.driversOf(&rec)
		if err != nil {
			c.log.Error("network left alone", "network", rec.Name, "err", err)
			unavailable[rec.ID] = true
			continue
		}
		nw, err := newNetState(rec, drv, plugin)
		if err != nil {
			return fmt.Errorf("load network %s: %w", rec.Name, err)
		}
		nw.globalValue = raw[rec.ID]
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
			if nw.ipam == nil && p.cfg.Subnet.Masked().Contains(a) && p.alloc.Reserve(a) == nil {
				nw.reserved[a] = owner
			}
		}
	}

	var drop []Endpoint
	var dropSandboxes []string
	for _, rec := range sbs {
		ns, err := c.kernel.OpenNamespace(rec.Key)
		if err != nil {
			// The namespace is gone (its owner ended, or the host
			// rebooted): so is everything in it.
			c.log.Info("sandbox namespace gone, forgetting it", "sandbox", rec.Name, "key", rec.Key)
			dropSandboxes = append(dropSandboxes, rec.ID)
			if !rec.External {
				c.kernel.DeleteNamespace(rec.Key)
			}
			continue
		}
		c.sandboxes[rec.ID] = &sbState{rec: rec, ns: ns}
		c.sbNames[rec.Name] = rec.ID
	}

	sort.Slice(eps, func(i, j int) bool { return eps[i].Order < eps[j].Order })
	for _, rec := range eps {
		sb, nw := c.sandboxes[rec.SandboxID], c.networks[rec.NetworkID]
		if sb != nil && unavailable[rec.NetworkID] {
			continue
		}
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
	if err := c.reconcileKernel(); err != nil {
		return err
	}
	c.restoreNames()
	return nil
}

// restoreNames publishes the names of the sandboxes found in the store
// and serves their queries again: the old daemon's sockets died with it.
func (c *Controller) restoreNames() {
	for _, sb := range c.sandboxes {
		sb.mu.Lock()
		for _, ep := range sb.endpoints {
			c.publishNames(sb, ep)
		}
		if err := c.startResolver(sb); err != nil {
			c.log.Warn("serve the sandbox's names", "sandbox", sb.rec.Name, "err", err)
		}
		sb.mu.Unlock()
	}
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
		if err := c.kernel.DeleteNamespace(filepath.Join(c.nsDir, e.Name())); err != nil {
			c.log.Warn("remove namespace", "err", err)
		}
	}
}

// reconcileKernel makes the kernel match memory: networks' devices exist,
// endpoints are wired, and owned devices nobody wants are removed.
func (c *Controller) reconcileKernel() error {
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
			info, ok, err := nw.drv.Restore(nw.dn, driverEndpoint(&ep.rec), c.sandboxes[ep.rec.SandboxID].ns)
			if err != nil {
				return err
			}
			ep.join = info
			if ok {
				wanted[ep.rec.HostIfName] = true
			} else {
				broken = append(broken, ep)
			}
		}
	}
	retired, err := c.kernel.RetireUnwanted(wanted)
	if err != nil {
		return err
	}
	if retired > 0 || len(broken) > 0 {
		// Re-wiring below reuses interface names the retired devices may
		// still hold.
		if err := c.kernel.Reap(); err != nil {
			return err
		}
		c.log.Info("removed devices no longer wanted", "count", retired)
	}
	for _, ep := range broken {
		sb := c.sandboxes[ep.rec.SandboxID]
		c.log.Info("re-wiring endpoint", "endpoint", ep.rec.ID, "sandbox", sb.rec.Name, "network", ep.nw.rec.Name)
		if err := c.rewire(sb, ep); err != nil {
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

// rewire joins a recorded endpoint whose kernel state is gone again.
func (c *Controller) rewire(sb *sbState, ep *epState) error {
	info, err := ep.nw.drv.Join(ep.nw.dn, driverEndpoint(&ep.rec), sb.ns)
	if err != nil {
		return err
	}
	if err := c.recordFromDriver(ep, info); err != nil {
		return err
	}
	for _, r := range info.Routes {
		if err := c.kernel.AddRoute(sb.ns, ep.rec.IfName, info.Index, r); err != nil {
			return err
		}
	}
	ep.join = info
	return nil
}

// addressSettingsMatch tells whether a recorded predefined network has
// the address settings its driver gives it now: IPv6 on or off, and the
// subnets given (not those taken from the default pools).
func addressSettingsMatch(rec Network, p driver.Predefined) bool {
	if rec.EnableIPv6 != p.EnableIPv6 {
		return false
	}
	var given []netip.Prefix
	for _, pool := range rec.IPAM.Pools {
		if !pool.AutoSubnet {
			given = append(given, pool.Subnet.Masked())
		}
	}
	var want []netip.Prefix
	for _, cfg := range p.IPAM {
		want = append(want, cfg.Subnet.Masked())
	}
	return slices.Equal(given, want)
}

// ensurePredefined creates the drivers' predefined networks (bridge, host
// and none; a CNI configuration's) when they are missing, and removes
// those of a driver that has only predefined networks when it no longer
// brings them (a CNI configuration deleted).
func (c *Controller) ensurePredefined() error {
	for _, nw := range c.networks {
		if !nw.caps.Singleton || nw.driverPredefined() {
			continue
		}
		if err := c.deleteNetwork(nw); err != nil {
			c.log.Warn("network its driver no longer brings", "network", nw.rec.Name, "driver", nw.rec.Driver, "err", err)
			continue
		}
		c.log.Info("removed a network its driver no longer brings", "network", nw.rec.Name, "driver", nw.rec.Driver)
	}
	names := make([]string, 0, len(c.drivers))
	for name := range c.drivers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, p := range c.drivers[name].Capabilities().Predefined {
			if id, ok := c.netNames[p.Name]; ok {
				nw := c.networks[id]
				if nw != nil && nw.rec.Driver != name {
					// A CNI configuration named as a user's network.
					c.log.Warn("a driver's predefined network has the name of another network: left out", "network", p.Name, "driver", name, "owner", nw.rec.Driver)
					continue
				}
				if nw == nil || addressSettingsMatch(nw.rec, p) {
					continue
				}
				// The daemon's flags changed the network's addresses.
				if err := c.deleteNetwork(nw); err != nil {
					c.log.Warn("predefined network keeps its old address settings", "network", p.Name, "err", err)
					continue
				}
				c.log.Info("predefined network made again with new address settings", "network", p.Name)
			}
			opts := CreateOptions{Name: p.Name, Driver: name, Options: p.Options, EnableIPv6: &p.EnableIPv6, IPAM: p.IPAM, predefined: true}
			if _, err := c.createNetwork(opts); err != nil {
				return fmt.Errorf("create the %s network: %w", p.Name, err)
			}
		}
	}
	return nil
}
