package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/store"
)

// SandboxDetail is a sandbox with its endpoints and their networks' names.
type SandboxDetail struct {
	Sandbox
	Endpoints []EndpointDetail
}

// EndpointDetail is an endpoint with what a report of it needs from its
// network.
type EndpointDetail struct {
	Endpoint
	NetworkName string
	Gateway     netip.Addr
	GatewayV6   netip.Addr
}

// SandboxOptions describe a new sandbox.
type SandboxOptions struct {
	// ID is chosen by the caller when set (a container's sandbox has the
	// container's ID); otherwise berth makes one.
	ID   string
	Name string
	// Key is the path of the caller's namespace; empty means berth creates
	// a namespace and owns it.
	Key string
}

// CreateSandbox registers a sandbox.
func (c *Controller) CreateSandbox(opts SandboxOptions) (Sandbox, error) {
	name, key := opts.Name, opts.Key
	rec := Sandbox{ID: opts.ID, Name: name, Key: key, External: key != "", Created: time.Now()}
	if rec.ID == "" {
		rec.ID = newID()
	}
	if rec.Name == "" {
		rec.Name = rec.ID[:12]
	}
	if err := validateName("sandbox", rec.Name); err != nil {
		return Sandbox{}, err
	}
	c.mu.Lock()
	if _, taken := c.sandboxes[rec.ID]; taken {
		c.mu.Unlock()
		return Sandbox{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("sandbox %s already exists", rec.ID))
	}
	if id, taken := c.sbNames[rec.Name]; taken {
		c.mu.Unlock()
		return Sandbox{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("sandbox name %q is already in use by sandbox %s", rec.Name, id))
	}
	c.sbNames[rec.Name] = ""
	c.mu.Unlock()
	done := false
	defer func() {
		if !done {
			c.mu.Lock()
			delete(c.sbNames, rec.Name)
			c.mu.Unlock()
		}
	}()

	var ns *netdev.Namespace
	var err error
	if rec.External {
		if !filepath.IsAbs(key) {
			return Sandbox{}, invalid("sandbox key %q must be an absolute path to a network namespace", key)
		}
		if ns, err = netdev.OpenNamespace(key); err != nil {
			return Sandbox{}, errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
		if err := c.checkNamespaceFree(ns); err != nil {
			ns.Close()
			return Sandbox{}, err
		}
		if err := ns.LoopbackUp(); err != nil {
			ns.Close()
			return Sandbox{}, err
		}
	} else {
		rec.Key = filepath.Join(c.nsDir, rec.ID)
		if ns, err = netdev.CreateNamespace(rec.Key); err != nil {
			return Sandbox{}, err
		}
	}
	undo := func() {
		ns.Close()
		if !rec.External {
			netdev.DeleteNamespace(rec.Key)
		}
	}
	if err := c.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketSandboxes, rec.ID, &rec) }); err != nil {
		undo()
		return Sandbox{}, fmt.Errorf("record sandbox: %w", err)
	}
	c.mu.Lock()
	c.sandboxes[rec.ID] = &sbState{rec: rec, ns: ns}
	c.sbNames[rec.Name] = rec.ID
	c.mu.Unlock()
	done = true
	return rec, nil
}

// checkNamespaceFree refuses a namespace another sandbox already wires: two
// sandboxes numbering interfaces in one namespace would collide.
func (c *Controller) checkNamespaceFree(ns *netdev.Namespace) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, sb := range c.sandboxes {
		if sb.ns != nil && netdev.SameNamespace(sb.ns, ns) {
			return errdefs.ErrConflict.WithMessage(fmt.Sprintf("network namespace %s is already sandbox %s", ns.Path(), sb.rec.Name))
		}
	}
	return nil
}

// Sandboxes returns all sandboxes, sorted by name.
func (c *Controller) Sandboxes() []SandboxDetail {
	c.mu.RLock()
	list := make([]*sbState, 0, len(c.sandboxes))
	for _, sb := range c.sandboxes {
		list = append(list, sb)
	}
	c.mu.RUnlock()
	out := make([]SandboxDetail, 0, len(list))
	for _, sb := range list {
		out = append(out, sb.detail())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// InspectSandbox finds a sandbox by ID, name or unique ID prefix.
func (c *Controller) InspectSandbox(term string) (SandboxDetail, error) {
	sb, err := c.sandbox(term)
	if err != nil {
		return SandboxDetail{}, err
	}
	return sb.detail(), nil
}

func (sb *sbState) detail() SandboxDetail {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	d := SandboxDetail{Sandbox: sb.rec}
	for _, ep := range sb.endpoints {
		d.Endpoints = append(d.Endpoints, ep.detail())
	}
	return d
}

func (ep *epState) detail() EndpointDetail {
	d := EndpointDetail{Endpoint: ep.rec, NetworkName: ep.nw.rec.Name}
	for _, p := range ep.nw.rec.IPAM.Pools {
		switch {
		case ep.rec.IPv4.IsValid() && p.Subnet.Contains(ep.rec.IPv4.Addr()):
			d.Gateway = p.Gateway
		case ep.rec.IPv6.IsValid() && p.Subnet.Contains(ep.rec.IPv6.Addr()):
			d.GatewayV6 = p.Gateway
		}
	}
	return d
}

// DeleteSandbox disconnects a sandbox from all its networks and forgets it;
// a namespace berth created goes with it. With keepStatic, the static
// addresses its endpoints asked for stay reserved for a sandbox of the same
// ID (a container that starts again) until ReleaseReservations.
func (c *Controller) DeleteSandbox(term string, keepStatic bool) error {
	sb, err := c.lockedSandbox(term)
	if err != nil {
		return err
	}
	defer sb.mu.Unlock()
	for len(sb.endpoints) > 0 {
		if err := c.leave(sb, sb.endpoints[len(sb.endpoints)-1], true, keepStatic, nil); err != nil {
			return err
		}
	}
	if err := c.store.Update(func(tx store.Tx) error { return tx.Delete(bucketSandboxes, sb.rec.ID) }); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", sb.rec.Name, err)
	}
	sb.removed = true
	sb.ns.Close()
	if !sb.rec.External {
		if err := netdev.DeleteNamespace(sb.rec.Key); err != nil {
			c.log.Warn("remove namespace", "sandbox", sb.rec.Name, "err", err)
		}
	}
	c.mu.Lock()
	delete(c.sandboxes, sb.rec.ID)
	delete(c.sbNames, sb.rec.Name)
	c.mu.Unlock()
	return nil
}

// Connect attaches a sandbox to a network.
func (c *Controller) Connect(sbTerm, netTerm string, opts EndpointOptions) (EndpointDetail, error) {
	nw, err := c.network(netTerm)
	if err != nil {
		return EndpointDetail{}, err
	}
	sb, err := c.lockedSandbox(sbTerm)
	if err != nil {
		return EndpointDetail{}, err
	}
	defer sb.mu.Unlock()
	if err := checkConnect(sb, nw, opts); err != nil {
		return EndpointDetail{}, err
	}
	ep, err := c.join(sb, nw, opts)
	if err != nil {
		return EndpointDetail{}, err
	}
	return ep.detail(), nil
}

// aliasRE is what a name must look like to be resolvable.
var aliasRE = regexp.MustCompile(`^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,252}[a-zA-Z0-9_])?$`)

func checkConnect(sb *sbState, nw *netState, opts EndpointOptions) error {
	if nw.rec.Driver == "host" {
		return errHostNetwork
	}
	for _, ep := range sb.endpoints {
		if ep.nw == nw {
			return errEndpointExists(sb.rec.Name, nw.rec.Name)
		}
		if ep.nw.rec.Driver == "null" || nw.rec.Driver == "null" {
			return errNoneNetwork
		}
	}
	if len(opts.Aliases) > 0 && IsPredefined(nw.rec.Name) {
		return errdefs.ErrInvalidArgument.WithMessage("network-scoped aliases are only supported for user-defined networks")
	}
	for _, a := range opts.Aliases {
		if !aliasRE.MatchString(a) {
			return invalid("invalid alias %q: a DNS name of letters, digits, '-', '_' and '.' is expected", a)
		}
	}
	if opts.IPv4.IsValid() || opts.IPv6.IsValid() {
		if nw.rec.Name == NameBridge {
			return errStaticOnDefault
		}
		for _, p := range nw.rec.IPAM.Pools {
			if p.AutoSubnet && ((opts.IPv4.IsValid() && p.Subnet.Addr().Is4()) || (opts.IPv6.IsValid() && p.Subnet.Addr().Is6())) {
				return errStaticNoSubnet
			}
		}
	}
	if opts.MAC != "" {
		if _, err := net.ParseMAC(opts.MAC); err != nil {
			return invalid("invalid MAC address %s", opts.MAC)
		}
	}
	return nil
}

// join allocates, records and wires a new endpoint. Called with sb.mu held.
func (c *Controller) join(sb *sbState, nw *netState, opts EndpointOptions) (*epState, error) {
	ep := &epState{nw: nw, rec: Endpoint{
		ID: newID(), Name: sb.rec.Name, NetworkID: nw.rec.ID, SandboxID: sb.rec.ID,
		IfName: fmt.Sprintf("eth%d", sb.rec.NextIf), StaticIPv4: opts.IPv4, StaticIPv6: opts.IPv6,
		Aliases: slices.Clone(opts.Aliases), Order: sb.rec.NextIf,
	}}
	if nw.drv.NeedsAddresses() {
		ep.rec.HostIfName = vethName()
	}
	if err := nw.register(ep, opts); err != nil {
		return nil, err
	}
	switch {
	case opts.MAC != "":
		ep.rec.MAC = opts.MAC
	case ep.rec.IPv4.IsValid():
		ep.rec.MAC = netdev.MACFromIPv4(ep.rec.IPv4.Addr()).String()
	case nw.drv.NeedsAddresses():
		ep.rec.MAC = randomMAC().String()
	}
	if len(opts.Ports) > 0 && nw.rec.Driver == "bridge" && !nw.rec.Internal {
		bindings, err := c.ports.allocate(opts.Ports, ep.rec.IPv4.IsValid(), ep.rec.IPv6.IsValid(), defaultHostIP(nw),
			fmt.Sprintf("%s (%s)", ep.rec.Name, ep.rec.ID))
		if err != nil {
			nw.unregister(ep, ep.claimed)
			return nil, err
		}
		ep.rec.Ports = bindings
	}
	next := sb.rec
	next.NextIf++
	if err := c.store.Update(func(tx store.Tx) error {
		if err := store.PutJSON(tx, bucketEndpoints, ep.rec.ID, &ep.rec); err != nil {
			return err
		}
		if opts.Persist != nil {
			if err := opts.Persist(tx); err != nil {
				return err
			}
		}
		for _, a := range ep.claimed {
			if err := tx.Delete(bucketReservations, reservationKey(nw.rec.ID, a)); err != nil {
				return err
			}
		}
		return store.PutJSON(tx, bucketSandboxes, next.ID, &next)
	}); err != nil {
		c.ports.releaseBindings(ep.rec.Ports)
		nw.unregister(ep, ep.claimed)
		return nil, fmt.Errorf("record endpoint: %w", err)
	}
	sb.rec = next
	if err := nw.drv.Join(nw.dn, driverEndpoint(&ep.rec), sb.ns); err != nil {
		c.ports.releaseBindings(ep.rec.Ports)
		c.forget(ep)
		return nil, fmt.Errorf("attach %s to %s: %w", sb.rec.Name, nw.rec.Name, err)
	}
	if err := c.applyFirewall(endpointChange(nw, &ep.rec)); err != nil {
		nw.drv.Leave(nw.dn, driverEndpoint(&ep.rec), sb.ns)
		c.ports.releaseBindings(ep.rec.Ports)
		c.forget(ep)
		return nil, fmt.Errorf("publish ports of %s: %w", sb.rec.Name, err)
	}
	sb.endpoints = append(sb.endpoints, ep)
	if err := c.routeDefault(sb); err != nil {
		c.log.Warn("set default route", "sandbox", sb.rec.Name, "err", err)
	}
	return ep, nil
}

// forget undoes the record and the addresses of an endpoint whose kernel
// state is gone or was never made.
func (c *Controller) forget(ep *epState) {
	claimed := ep.claimed
	if err := c.store.Update(func(tx store.Tx) error {
		for _, a := range claimed {
			if err := tx.Put(bucketReservations, reservationKey(ep.nw.rec.ID, a), []byte(ep.rec.SandboxID)); err != nil {
				return err
			}
		}
		return tx.Delete(bucketEndpoints, ep.rec.ID)
	}); err != nil {
		c.log.Error("remove endpoint record", "endpoint", ep.rec.ID, "err", err)
	}
	ep.nw.unregister(ep, claimed)
}

func driverEndpoint(rec *Endpoint) *driver.Endpoint {
	mac, _ := net.ParseMAC(rec.MAC)
	return &driver.Endpoint{ID: rec.ID, IfName: rec.IfName, HostIfName: rec.HostIfName, MAC: mac, IPv4: rec.IPv4, IPv6: rec.IPv6}
}

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
	if nw.drv.NeedsAddresses() {
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
			addr, err = allocateFrom(pools, want)
		}
		if err != nil {
			nw.release(ep)
			if errors.Is(err, ipam.ErrNoAvailableAddress) {
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
// or the lowest free address of the first pool that has one.
func allocateFrom(pools []*pool, want netip.Addr) (netip.Prefix, error) {
	if want.IsValid() {
		for _, p := range pools {
			if p.cfg.Subnet.Masked().Contains(want) {
				if err := p.alloc.Reserve(want); err != nil {
					return netip.Prefix{}, err
				}
				return netip.PrefixFrom(want, p.cfg.Subnet.Bits()), nil
			}
		}
		return netip.Prefix{}, invalid("Invalid address %s: It does not belong to any of this network's subnets", want)
	}
	var last error
	for _, p := range pools {
		a, err := p.alloc.Next()
		if err == nil {
			return netip.PrefixFrom(a, p.cfg.Subnet.Bits()), nil
		}
		last = err
	}
	return netip.Prefix{}, last
}

// release returns ep's addresses to the pools. Called with nw.mu held.
func (nw *netState) release(ep *epState) { nw.releaseExcept(ep, nil) }

func (nw *netState) releaseExcept(ep *epState, keep []netip.Addr) {
	for _, a := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
		if !a.IsValid() || slices.Contains(keep, a.Addr()) {
			continue
		}
		for _, p := range nw.pools {
			if p.cfg.Subnet.Masked().Contains(a.Addr()) {
				p.alloc.Release(a.Addr())
			}
		}
	}
}

// Disconnect detaches a sandbox from a network. persist, when not nil,
// writes the caller's record of the change in the same store transaction.
func (c *Controller) Disconnect(sbTerm, netTerm string, persist func(store.Tx) error) error {
	sb, err := c.sandbox(sbTerm)
	if err != nil {
		return err
	}
	nw, err := c.network(netTerm)
	if err != nil {
		return err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if nw.rec.Driver == "host" {
		return errHostNetwork
	}
	for _, ep := range sb.endpoints {
		if ep.nw == nw {
			return c.leave(sb, ep, false, false, persist)
		}
	}
	return errNotConnected(sb.rec.ID, nw.rec.Name)
}

// leave takes an endpoint out of service and forgets it. nsGoing says the
// sandbox is going away, so its default route needs no care. Called with
// sb.mu held.
func (c *Controller) leave(sb *sbState, ep *epState, nsGoing, keepStatic bool, persist func(store.Tx) error) error {
	fwCh := reverse(endpointChange(ep.nw, &ep.rec))
	if err := c.applyFirewall(fwCh); err != nil {
		return fmt.Errorf("unpublish ports of %s: %w", sb.rec.Name, err)
	}
	if err := ep.nw.drv.Leave(ep.nw.dn, driverEndpoint(&ep.rec), sb.ns); err != nil {
		c.applyFirewall(reverse(fwCh))
		return fmt.Errorf("detach %s from %s: %w", sb.rec.Name, ep.nw.rec.Name, err)
	}
	var keep []netip.Addr
	if keepStatic {
		for _, a := range []netip.Addr{ep.rec.StaticIPv4, ep.rec.StaticIPv6} {
			if a.IsValid() {
				keep = append(keep, a)
			}
		}
	}
	if err := c.store.Update(func(tx store.Tx) error {
		if persist != nil {
			if err := persist(tx); err != nil {
				return err
			}
		}
		for _, a := range keep {
			if err := tx.Put(bucketReservations, reservationKey(ep.nw.rec.ID, a), []byte(sb.rec.ID)); err != nil {
				return err
			}
		}
		return tx.Delete(bucketEndpoints, ep.rec.ID)
	}); err != nil {
		return fmt.Errorf("detach %s from %s: %w", sb.rec.Name, ep.nw.rec.Name, err)
	}
	ep.nw.unregister(ep, keep)
	if len(ep.rec.Ports) > 0 {
		c.ports.releaseBindings(ep.rec.Ports)
		// A flow (UDP above all) must not stick to the address once its
		// container is gone.
		for _, a := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
			if a.IsValid() && c.host != nil {
				if err := c.host.ForgetConnections(a.Addr()); err != nil {
					c.log.Warn("forget tracked connections", "endpoint", ep.rec.ID, "err", err)
				}
			}
		}
	}
	sb.endpoints = slices.DeleteFunc(sb.endpoints, func(e *epState) bool { return e == ep })
	if !nsGoing {
		if err := c.routeDefault(sb); err != nil {
			c.log.Warn("set default route", "sandbox", sb.rec.Name, "err", err)
		}
	}
	return nil
}

// routeDefault points the sandbox's default routes at the gateway of its
// first eligible endpoint: the first, in join order, on a network that is
// not internal, else the first with a gateway at all (Docker 20.10 routes
// through an internal network's gateway when it is the only one). Called
// with sb.mu held.
func (c *Controller) routeDefault(sb *sbState) error {
	var errs []error
	for _, v6 := range []bool{false, true} {
		want := gatewayEndpoint(sb.endpoints, v6)
		cur := &sb.gateway4
		if v6 {
			cur = &sb.gateway6
		}
		if want == *cur {
			continue
		}
		if want == nil {
			// The old gateway's interface is down, and its routes with it.
			*cur = nil
			continue
		}
		d := want.detail()
		gw := d.Gateway
		if v6 {
			gw = d.GatewayV6
		}
		idx, ok, err := sb.ns.InterfaceIndex(want.rec.IfName)
		if err == nil && ok {
			dr, isDR := want.nw.drv.(driver.DeviceRouted)
			err = sb.ns.SetDefaultRoute(gw, idx, isDR && dr.DefaultViaDevice(want.nw.dn))
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*cur = want
	}
	return errors.Join(errs...)
}

func gatewayEndpoint(eps []*epState, v6 bool) *epState {
	var fallback *epState
	for _, ep := range eps {
		d := ep.detail()
		gw := d.Gateway
		if v6 {
			gw = d.GatewayV6
		}
		if !gw.IsValid() {
			continue
		}
		if !ep.nw.rec.Internal {
			return ep
		}
		if fallback == nil {
			fallback = ep
		}
	}
	return fallback
}

func vethName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "veth" + hex.EncodeToString(b)[:7]
}

func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	rand.Read(mac[2:])
	mac[0], mac[1] = 0x02, 0x42
	return mac
}

const bucketReservations = "reservations"

func reservationKey(networkID string, a netip.Addr) string { return networkID + "/" + a.String() }

// ReleaseReservations gives back the addresses kept for a sandbox ID (a
// container being removed).
func (c *Controller) ReleaseReservations(owner string) error {
	c.mu.RLock()
	nets := make([]*netState, 0, len(c.networks))
	for _, nw := range c.networks {
		nets = append(nets, nw)
	}
	c.mu.RUnlock()
	for _, nw := range nets {
		nw.mu.Lock()
		var addrs []netip.Addr
		for a, o := range nw.reserved {
			if o == owner {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) > 0 {
			err := c.store.Update(func(tx store.Tx) error {
				for _, a := range addrs {
					if err := tx.Delete(bucketReservations, reservationKey(nw.rec.ID, a)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				nw.mu.Unlock()
				return fmt.Errorf("release reserved addresses: %w", err)
			}
			for _, a := range addrs {
				delete(nw.reserved, a)
				for _, p := range nw.pools {
					if p.cfg.Subnet.Masked().Contains(a) {
						p.alloc.Release(a)
					}
				}
			}
		}
		nw.mu.Unlock()
	}
	return nil
}

// InNamespace runs fn with a sandbox's open namespace (to open sockets in
// it, say), holding the sandbox so it cannot go away meanwhile.
func (c *Controller) InNamespace(term string, fn func(*netdev.Namespace) error) error {
	sb, err := c.lockedSandbox(term)
	if err != nil {
		return err
	}
	defer sb.mu.Unlock()
	return fn(sb.ns)
}

// lockedSandbox finds a sandbox and locks it; one removed meanwhile is not
// found. The caller unlocks sb.mu.
func (c *Controller) lockedSandbox(term string) (*sbState, error) {
	sb, err := c.sandbox(term)
	if err != nil {
		return nil, err
	}
	sb.mu.Lock()
	if sb.removed {
		sb.mu.Unlock()
		return nil, errSandboxNotFound(term)
	}
	return sb, nil
}
