package network

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"time"

	mevents "github.com/moby/moby/api/types/events"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/internal/stringid"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/store"
)

// CreateOptions is a request for a new network.
type CreateOptions struct {
	Name       string
	Driver     string
	Scope      string
	EnableIPv4 *bool
	EnableIPv6 *bool
	Internal   bool
	Attachable bool
	IPAMDriver string
	// IPAMOptions is kept as sent (nil and empty differ in Docker's JSON).
	IPAMOptions map[string]string
	IPAM        []ipam.Config
	Options     map[string]string
	Labels      map[string]string
	// predefined: a driver's predefined network, made by the controller.
	predefined bool
}

// CreateNetwork validates, records and creates a network.
func (c *Controller) CreateNetwork(opts CreateOptions) (Network, error) {
	if err := validateNetworkName(opts.Name); err != nil {
		return Network{}, err
	}
	if IsPredefined(opts.Name) {
		return Network{}, errPredefinedCreate(opts.Name)
	}
	start := time.Now()
	nw, err := c.createNetwork(opts)
	c.observe("create", cmp.Or(opts.Driver, c.defaultDriver), start, err)
	return nw, err
}

func (c *Controller) createNetwork(opts CreateOptions) (Network, error) {
	if opts.Driver == "" {
		opts.Driver = c.defaultDriver
	}
	drv, err := c.lookupDriver(opts.Driver)
	if err != nil {
		return Network{}, err
	}
	caps := drv.Capabilities()
	global := caps.Scope == driver.ScopeGlobal
	if opts.Scope != "" && opts.Scope != caps.Scope && !(global && opts.Scope == scopeSwarm) {
		return Network{}, invalid("scope %q is not supported by driver %s: berth networks of this driver are %s", opts.Scope, opts.Driver, caps.Scope)
	}
	if global && c.global == nil {
		return Network{}, errNoClusterStore(opts.Driver)
	}
	plugin, err := c.lookupIPAM(opts.IPAMDriver)
	if err != nil {
		return Network{}, err
	}
	if plugin != nil && !caps.Addresses {
		return Network{}, invalid("driver %s gives its networks no address pools: --ipam-driver does not apply", opts.Driver)
	}
	rec := Network{
		ID: stringid.New(), Name: opts.Name, Driver: opts.Driver, Scope: caps.Scope, Created: time.Now(),
		EnableIPv4: opts.EnableIPv4 == nil || *opts.EnableIPv4,
		EnableIPv6: opts.EnableIPv6 != nil && *opts.EnableIPv6,
		Internal:   opts.Internal, Attachable: opts.Attachable,
		Options: nonNil(opts.Options), Labels: nonNil(opts.Labels),
		IPAM: IPAM{Driver: defaultIPAM, Options: opts.IPAMOptions},
	}
	if global {
		rec.Scope = scopeSwarm
	}
	if plugin != nil {
		rec.IPAM.Driver = plugin.Name()
	}
	if err := ipam.ValidateConfigs(opts.IPAM); err != nil {
		return Network{}, err
	}
	if err := drv.ValidateOptions(rec.Options); err != nil {
		return Network{}, err
	}
	if caps.Singleton && !opts.predefined {
		return Network{}, errOnlyOneInstance(opts.Driver)
	}
	if !caps.Addresses {
		rec.EnableIPv4 = false
	} else if !rec.EnableIPv4 && !rec.EnableIPv6 {
		return Network{}, invalid("a network needs IPv4 or IPv6: both are disabled")
	}

	// Take the name: concurrent creates of one name leave exactly one
	// network.
	c.mu.Lock()
	if _, taken := c.netNames[rec.Name]; taken {
		c.mu.Unlock()
		return Network{}, errNetworkExists(rec.Name)
	}
	c.netNames[rec.Name] = ""
	c.mu.Unlock()
	created := false
	defer func() {
		if !created {
			c.mu.Lock()
			if c.netNames[rec.Name] == "" {
				delete(c.netNames, rec.Name)
			}
			c.mu.Unlock()
		}
	}()

	defer c.releasePending(rec.ID)
	nw, err := c.prepareNetwork(rec, drv, plugin, opts.IPAM, global)
	if err != nil {
		return Network{}, err
	}
	if global {
		c.global.mu.Lock()
		c.global.creating[rec.ID] = true
		c.global.mu.Unlock()
		defer func() {
			c.global.mu.Lock()
			delete(c.global.creating, rec.ID)
			c.global.mu.Unlock()
		}()
		for attempt := 1; ; attempt++ {
			err = c.claimNetwork(nw, len(opts.IPAM) > 0)
			if !errors.Is(err, errClaimRace) {
				break
			}
			if attempt == claimAttempts {
				return Network{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf(
					"network %s: other hosts took every subnet or identifier chosen for it, %d times; try again", rec.Name, attempt))
			}
			c.releasePending(rec.ID)
			c.givePoolsBack(nw)
			if nw, err = c.prepareNetwork(rec, drv, plugin, opts.IPAM, global); err != nil {
				return Network{}, err
			}
		}
		if err != nil {
			c.givePoolsBack(nw)
			return Network{}, err
		}
	} else if err := c.store.Update(func(tx store.Tx) error {
		return store.PutJSON(tx, bucketNetworks, rec.ID, &nw.rec)
	}); err != nil {
		c.givePoolsBack(nw)
		return Network{}, fmt.Errorf("record network %s: %w", rec.Name, err)
	}
	rec = nw.rec
	err = drv.CreateNetwork(nw.dn)
	if err == nil {
		err = c.addToFirewall(nw)
	}
	if err != nil {
		if derr := drv.DeleteNetwork(nw.dn); derr != nil {
			c.log.Warn("roll back network", "network", rec.Name, "err", derr)
		}
		if global {
			c.releaseKVs(networkKVs(nw))
		} else if serr := c.store.Update(func(tx store.Tx) error { return tx.Delete(bucketNetworks, rec.ID) }); serr != nil {
			c.log.Error("roll back network record", "network", rec.Name, "err", serr)
		}
		c.givePoolsBack(nw)
		return Network{}, fmt.Errorf("create network %s: %w", rec.Name, err)
	}
	c.mu.Lock()
	c.networks[rec.ID] = nw
	c.netNames[rec.Name] = rec.ID
	c.mu.Unlock()
	created = true
	c.log.Info("network created", "name", rec.Name, "id", rec.ID, "driver", rec.Driver)
	if !opts.predefined {
		c.emit(mevents.ActionCreate, nw, "")
	}
	return rec, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// prepareNetwork chooses a new network's pools (pending until
// releasePending) and asks its driver to prepare it.
func (c *Controller) prepareNetwork(rec Network, drv driver.Driver, plugin ipam.Plugin, cfgs []ipam.Config, global bool) (*netState, error) {
	switch {
	case !drv.Capabilities().Addresses:
	case plugin != nil:
		pools, err := c.requestPools(plugin, rec, cfgs, global)
		if err != nil {
			return nil, err
		}
		rec.IPAM.Pools = pools
	default:
		pools, err := c.choosePools(rec.ID, cfgs, rec.EnableIPv4, rec.EnableIPv6, global)
		if err != nil {
			return nil, err
		}
		rec.IPAM.Pools = pools
	}
	nw, err := newNetState(rec, drv, plugin)
	if err != nil {
		if plugin != nil {
			releasePools(plugin, rec.IPAM.Pools, c.log.Warn)
		}
		return nil, err
	}
	state, err := drv.Prepare(nw.dn, c.driverNetworks(drv))
	if err != nil {
		c.givePoolsBack(nw)
		return nil, err
	}
	nw.setDriverState(state)
	return nw, nil
}

// driverNetworks lists the existing networks of drv, for Prepare.
func (c *Controller) driverNetworks(drv driver.Driver) []*driver.Network {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*driver.Network
	for _, nw := range c.networks {
		if nw.drv == drv {
			out = append(out, nw.dn)
		}
	}
	return out
}

// choosePools turns the requested configs into pools: explicit subnets are
// checked against every other network, and a family without one gets the
// first free subnet of the default pools. The chosen subnets stay pending
// until releasePending.
func (c *Controller) choosePools(id string, cfgs []ipam.Config, v4, v6, global bool) ([]Pool, error) {
	hostPrefixes, err := c.kernel.Prefixes()
	if err != nil {
		return nil, err
	}
	c.subnetMu.Lock()
	defer c.subnetMu.Unlock()
	inUse := c.subnetsInUse()
	var pools []Pool
	has4, has6 := false, false
	for _, cfg := range cfgs {
		is4 := cfg.Subnet.Addr().Is4()
		if is4 && !v4 {
			return nil, invalid("IPv4 subnet %s given but IPv4 is disabled", cfg.Subnet)
		}
		if !is4 && !v6 {
			return nil, invalid("IPv6 subnet %s given but IPv6 is not enabled (--ipv6)", cfg.Subnet)
		}
		if err := ipam.CheckPoolOverlap(cfg.Subnet.Masked(), inUse); err != nil {
			return nil, err
		}
		p := Pool{Subnet: cfg.Subnet, IPRange: cfg.IPRange, Gateway: cfg.Gateway, AuxAddresses: cfg.AuxAddresses, UserGateway: cfg.Gateway.IsValid()}
		if !p.Gateway.IsValid() {
			p.Gateway = firstAddress(cfg.Subnet)
		}
		pools = append(pools, p)
		inUse = append(inUse, cfg.Subnet.Masked())
		has4, has6 = has4 || is4, has6 || !is4
	}
	auto := func(ipv6 bool) error {
		subnet, err := c.nextSubnet(append(inUse, hostPrefixes...), ipv6, global)
		if err != nil {
			return err
		}
		pools = append(pools, Pool{Subnet: subnet, Gateway: firstAddress(subnet), AutoSubnet: true})
		inUse = append(inUse, subnet)
		return nil
	}
	if v4 && !has4 {
		if err := auto(false); err != nil {
			return nil, err
		}
	}
	if v6 && !has6 {
		if err := auto(true); err != nil {
			return nil, err
		}
	}
	var chosen []netip.Prefix
	for _, p := range pools {
		chosen = append(chosen, p.Subnet.Masked())
	}
	c.pending[id] = chosen
	return pools, nil
}

func (c *Controller) releasePending(id string) {
	c.subnetMu.Lock()
	delete(c.pending, id)
	c.subnetMu.Unlock()
}

// addToFirewall adds a new network's device to the firewall and lets the
// host's 127.0.0.1 connections through it.
func (c *Controller) addToFirewall(nw *netState) error {
	fn, ok := firewallNetwork(nw)
	if !ok {
		return nil
	}
	if err := c.kernel.AllowLocalnet(fn.Bridge); err != nil {
		return err
	}
	if nw.rec.EnableIPv6 {
		// Only once a network asks for it: forwarding IPv6 changes how the
		// host treats router advertisements.
		if err := c.kernel.EnableForwarding(true); err != nil {
			return err
		}
	}
	return c.applyFirewall(firewall.Change{AddNetworks: []firewall.Network{fn}})
}

// firstAddress is the default gateway of a subnet: its first host address.
func firstAddress(p netip.Prefix) netip.Addr {
	return p.Masked().Addr().Next()
}

// DeleteNetwork removes a network without endpoints.
func (c *Controller) DeleteNetwork(term string) error {
	nw, err := c.network(term)
	if err != nil {
		return err
	}
	if IsPredefined(nw.rec.Name) || nw.driverPredefined() {
		return errPredefinedRemove(nw.rec.Name)
	}
	start := time.Now()
	if nw.global {
		err = c.deleteGlobal(nw)
	} else {
		err = c.deleteNetwork(nw)
	}
	c.observe("remove", nw.rec.Driver, start, err)
	return err
}

func (c *Controller) deleteNetwork(nw *netState) error {
	nw.mu.Lock()
	if nw.removing {
		nw.mu.Unlock()
		return errNetworkNotFound(nw.rec.Name)
	}
	if len(nw.endpoints) > 0 {
		nw.mu.Unlock()
		return errActiveEndpoints(nw.rec.Name, nw.rec.ID)
	}
	nw.removing = true
	nw.mu.Unlock()

	// Kernel first: if the daemon dies between the two steps the network is
	// still recorded and the reconcile re-creates its bridge, so a removal
	// that was never acknowledged has not happened.
	var fwCh firewall.Change
	if fn, ok := firewallNetwork(nw); ok {
		fwCh.RemoveNetworks = []firewall.Network{fn}
	}
	err := c.applyFirewall(fwCh)
	if err == nil {
		if err = nw.drv.DeleteNetwork(nw.dn); err != nil {
			c.applyFirewall(reverse(fwCh))
		}
	}
	if err != nil {
		nw.mu.Lock()
		nw.removing = false
		nw.mu.Unlock()
		return fmt.Errorf("remove network %s: %w", nw.rec.Name, err)
	}
	if err := c.store.Update(func(tx store.Tx) error {
		nw.mu.Lock()
		defer nw.mu.Unlock()
		for a := range nw.reserved {
			if err := tx.Delete(bucketReservations, reservationKey(nw.rec.ID, a)); err != nil {
				return err
			}
		}
		return tx.Delete(bucketNetworks, nw.rec.ID)
	}); err != nil {
		if rerr := nw.drv.CreateNetwork(nw.dn); rerr != nil {
			c.log.Error("restore network after failed removal", "network", nw.rec.Name, "err", rerr)
		}
		c.applyFirewall(reverse(fwCh))
		nw.mu.Lock()
		nw.removing = false
		nw.mu.Unlock()
		return fmt.Errorf("remove network %s: %w", nw.rec.Name, err)
	}
	c.mu.Lock()
	delete(c.networks, nw.rec.ID)
	delete(c.netNames, nw.rec.Name)
	c.mu.Unlock()
	c.givePoolsBack(nw)
	c.log.Info("network removed", "name", nw.rec.Name, "id", nw.rec.ID)
	c.emit(mevents.ActionDestroy, nw, "")
	return nil
}

// PruneNetworks removes every user-defined network without endpoints that
// keep says yes to, and returns the names removed.
func (c *Controller) PruneNetworks(keep func(Network) bool) ([]string, error) {
	var removed []string
	var errs []error
	for _, rec := range c.Networks() {
		if IsPredefined(rec.Name) || !keep(rec) {
			continue
		}
		nw, err := c.network(rec.ID)
		if err != nil {
			continue
		}
		err = c.deleteNetwork(nw)
		var active *activeEndpointsError
		switch {
		case err == nil:
			removed = append(removed, rec.Name)
		case errors.As(err, &active):
			// In use: prune leaves it, as Docker's does.
		default:
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}
