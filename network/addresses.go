package network

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/store"
)

// register takes the endpoint's name and addresses in the network.
func (nw *netState) register(ep *epState, opts EndpointOptions) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.removing {
		return errNetworkNotFound(nw.rec.Name)
	}
	if _, taken := nw.epNames[ep.rec.Name]; taken {
		return errEndpointExists(ep.rec.Name, nw.rec.Name)
	}
	if nw.caps.Addresses {
		if err := nw.allocate(ep, opts); err != nil {
			return err
		}
	}
	nw.endpoints[ep.rec.ID] = ep
	nw.epNames[ep.rec.Name] = ep.rec.ID
	return nil
}

// unregister forgets ep and returns its addresses to the pools, but for
// those in keep, which stay taken, reserved for ep's sandbox.
func (nw *netState) unregister(ep *epState, keep []netip.Addr) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for _, a := range keep {
		nw.reserved[a] = ep.rec.SandboxID
	}
	nw.releaseExcept(ep, keep)
	delete(nw.endpoints, ep.rec.ID)
	if nw.epNames[ep.rec.Name] == ep.rec.ID {
		delete(nw.epNames, ep.rec.Name)
	}
}

// allocate gives ep one address of each family the network has. Called with
// nw.mu held.
func (nw *netState) allocate(ep *epState, opts EndpointOptions) error {
	// An IPAM plugin that leases by MAC gets the endpoint's with each
	// request: the one asked for, or one chosen now.
	var reqOpts map[string]string
	if r, ok := nw.ipam.(ipam.MACRequirer); ok && r.RequiresMACAddress() {
		if ep.rec.MAC == "" {
			ep.rec.MAC = opts.MAC
		}
		if ep.rec.MAC == "" {
			ep.rec.MAC = netdev.RandomMAC().String()
		}
		reqOpts = map[string]string{ipam.MACAddressOption: ep.rec.MAC}
	}
	for _, v6 := range []bool{false, true} {
		want := opts.IPv4
		if v6 {
			want = opts.IPv6
		}
		var pools []*pool
		for _, p := range nw.pools {
			if p.cfg.Subnet.Addr().Is6() == v6 {
				pools = append(pools, p)
			}
		}
		if len(pools) == 0 {
			if want.IsValid() {
				nw.release(ep)
				return invalid("Invalid address %s: It does not belong to any of this network's subnets", want)
			}
			continue
		}
		var addr netip.Prefix
		var err error
		if owner, ok := nw.reserved[want]; ok && want.IsValid() {
			// The address is kept for a sandbox that left: only that one
			// gets it back.
			if owner != ep.rec.SandboxID {
				nw.release(ep)
				return ipam.ErrAddressInUse
			}
			delete(nw.reserved, want)
			ep.claimed = append(ep.claimed, want)
			addr, err = prefixIn(pools, want)
		} else {
			addr, err = allocateFrom(pools, want, reqOpts)
		}
		if err != nil {
			nw.release(ep)
			if errors.Is(err, ipam.ErrNoAvailableAddress) {
				nw.exhausted.Add(1)
				family := "IPv4"
				if v6 {
					family = "IPv6"
				}
				return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf(
					"no available %s addresses on this network's address pools: %s (%s)", family, nw.rec.Name, nw.rec.ID))
			}
			return err
		}
		if v6 {
			ep.rec.IPv6 = addr
		} else {
			ep.rec.IPv4 = addr
		}
	}
	return nil
}

// prefixIn is want with the length of the pool that holds it.
func prefixIn(pools []*pool, want netip.Addr) (netip.Prefix, error) {
	for _, p := range pools {
		if p.cfg.Subnet.Masked().Contains(want) {
			return netip.PrefixFrom(want, p.cfg.Subnet.Bits()), nil
		}
	}
	return netip.Prefix{}, invalid("Invalid address %s: It does not belong to any of this network's subnets", want)
}

// allocateFrom takes want (when valid) from the pool whose subnet holds it,
// or the lowest free address of the first pool that has one; a plugin's
// pool is asked with opts.
func allocateFrom(pools []*pool, want netip.Addr, opts map[string]string) (netip.Prefix, error) {
	if want.IsValid() {
		for _, p := range pools {
			if p.cfg.Subnet.Masked().Contains(want) {
				if err := reserveIn(p.alloc, want, opts); err != nil {
					return netip.Prefix{}, err
				}
				return netip.PrefixFrom(want, p.cfg.Subnet.Bits()), nil
			}
		}
		return netip.Prefix{}, invalid("Invalid address %s: It does not belong to any of this network's subnets", want)
	}
	var last error
	for _, p := range pools {
		a, err := nextIn(p.alloc, opts)
		if err == nil {
			return netip.PrefixFrom(a, p.cfg.Subnet.Bits()), nil
		}
		last = err
	}
	return netip.Prefix{}, last
}

// nextIn and reserveIn take an address of a pool; a plugin's pool is
// asked with opts, Docker's options of RequestAddress.
func nextIn(a allocator, opts map[string]string) (netip.Addr, error) {
	if pp, ok := a.(*pluginPool); ok {
		return pp.next(opts)
	}
	return a.Next()
}

func reserveIn(a allocator, addr netip.Addr, opts map[string]string) error {
	if pp, ok := a.(*pluginPool); ok {
		return pp.reserve(addr, opts)
	}
	return a.Reserve(addr)
}

// release returns ep's addresses to the pools. Called with nw.mu held.
func (nw *netState) release(ep *epState) { nw.releaseExcept(ep, nil) }

func (nw *netState) releaseExcept(ep *epState, keep []netip.Addr) {
	for _, a := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
		if !a.IsValid() || slices.Contains(keep, a.Addr()) {
			continue
		}
		nw.releaseAddr(a.Addr())
	}
}

// releaseAddr returns an address to the pool holding it. Called with
// nw.mu held.
func (nw *netState) releaseAddr(a netip.Addr) {
	for _, p := range nw.pools {
		if p.cfg.Subnet.Masked().Contains(a) {
			p.alloc.Release(a)
		}
	}
}

// releaseReserved gives back the addresses the network keeps for owner.
func (nw *netState) releaseReserved(st store.Store, owner string) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var addrs []netip.Addr
	for a, o := range nw.reserved {
		if o == owner {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	if err := st.Update(func(tx store.Tx) error {
		for _, a := range addrs {
			if err := tx.Delete(bucketReservations, reservationKey(nw.rec.ID, a)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("release reserved addresses: %w", err)
	}
	for _, a := range addrs {
		delete(nw.reserved, a)
		nw.releaseAddr(a)
	}
	return nil
}

// restore puts a stored endpoint back into the network's memory.
func (nw *netState) restore(ep *epState) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if _, taken := nw.epNames[ep.rec.Name]; taken {
		return errEndpointExists(ep.rec.Name, nw.rec.Name)
	}
	for _, a := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
		// A driver with OwnAddresses keeps its endpoints' addresses.
		if !a.IsValid() || !nw.caps.Addresses {
			continue
		}
		found := false
		for _, p := range nw.pools {
			if p.cfg.Subnet.Masked().Contains(a.Addr()) {
				// An IPAM plugin kept the address across the restart.
				if nw.ipam != nil {
					found = true
					continue
				}
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
