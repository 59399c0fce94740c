package network

import (
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
	mevents "github.com/moby/moby/api/types/events"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/internal/stringid"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/store"
)

// SandboxDetail is a sandbox with its endpoints and their networks' names.
type SandboxDetail struct {
	Sandbox
	Endpoints []EndpointDetail
	// Files are the sandbox's /etc files; nil for a sandbox without a DNS
	// configuration.
	Files *Files
}

// EndpointDetail is an endpoint with what a report of it needs from its
// network.
type EndpointDetail struct {
	Endpoint
	NetworkName string
	Gateway     netip.Addr
	GatewayV6   netip.Addr
	// Routed4 and Routed6: the network's family is routed (gateway mode
	// routed): ports are opened at the endpoint's own address of that
	// family, and no host port is held for them.
	Routed4, Routed6 bool
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
	// DNS, when set, gives the sandbox names on its user-defined networks,
	// /etc files and, when asked, berth's resolver.
	DNS *DNSConfig
	// Networks are joined in order.
	Networks []Attachment
	// Ports are published through the first of Networks whose endpoints
	// publish ports, as Docker publishes through the network of the
	// default gateway.
	Ports []PortSpec
}

// Attachment is a network to join with what is asked of the endpoint.
type Attachment struct {
	Network  string
	Endpoint EndpointOptions
}

// CreateSandbox registers a sandbox and joins its networks. When anything
// fails nothing of it stays: no record, namespace, endpoint or address.
func (c *Controller) CreateSandbox(opts SandboxOptions) (SandboxDetail, error) {
	rec := Sandbox{ID: opts.ID, Name: opts.Name, Key: opts.Key, External: opts.Key != "", Created: time.Now(), DNS: opts.DNS}
	if rec.ID == "" {
		rec.ID = stringid.New()
	}
	if rec.Name == "" {
		rec.Name = rec.ID[:12]
	}
	if err := validateName("sandbox", rec.Name); err != nil {
		return SandboxDetail{}, err
	}
	// Every network is checked before anything is made.
	var joins []*netState
	for _, a := range opts.Networks {
		nw, err := c.network(a.Network)
		if err != nil {
			return SandboxDetail{}, err
		}
		if err := checkConnect(rec.Name, joins, nw, a.Endpoint); err != nil {
			return SandboxDetail{}, err
		}
		joins = append(joins, nw)
	}

	c.mu.Lock()
	if _, taken := c.sandboxes[rec.ID]; taken {
		c.mu.Unlock()
		return SandboxDetail{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("sandbox %s already exists", rec.ID))
	}
	if id, taken := c.sbNames[rec.Name]; taken {
		c.mu.Unlock()
		return SandboxDetail{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("sandbox name %q is already in use by sandbox %s", rec.Name, id))
	}
	c.sbNames[rec.Name] = ""
	c.mu.Unlock()
	sb, err := c.newSandbox(rec)
	if err != nil {
		c.mu.Lock()
		delete(c.sbNames, rec.Name)
		c.mu.Unlock()
		return SandboxDetail{}, err
	}
	// Registered locked: whoever finds the sandbox before its joins are
	// done waits for them.
	sb.mu.Lock()
	defer sb.mu.Unlock()
	c.mu.Lock()
	c.sandboxes[sb.rec.ID] = sb
	c.sbNames[sb.rec.Name] = sb.rec.ID
	c.mu.Unlock()

	published := false
	for i, nw := range joins {
		eo := opts.Networks[i].Endpoint
		if !published && len(opts.Ports) > 0 && nw.publishes() {
			eo.Ports, published = opts.Ports, true
		}
		if _, err := c.join(sb, nw, eo); err != nil {
			c.abandon(sb)
			return SandboxDetail{}, err
		}
	}
	if err := c.startResolver(sb); err != nil {
		c.abandon(sb)
		return SandboxDetail{}, err
	}
	return sb.detail(c), nil
}

// newSandbox opens or creates the namespace of a new sandbox and records
// it.
func (c *Controller) newSandbox(rec Sandbox) (*sbState, error) {
	var ns *netdev.Namespace
	var err error
	if rec.External {
		if !filepath.IsAbs(rec.Key) {
			return nil, invalid("sandbox key %q must be an absolute path to a network namespace", rec.Key)
		}
		if ns, err = c.kernel.OpenNamespace(rec.Key); err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
		if err := c.checkNamespaceFree(ns); err != nil {
			c.kernel.CloseNamespace(ns)
			return nil, err
		}
		if err := c.kernel.LoopbackUp(ns); err != nil {
			c.kernel.CloseNamespace(ns)
			return nil, err
		}
	} else {
		rec.Key = filepath.Join(c.nsDir, rec.ID)
		if ns, err = c.kernel.CreateNamespace(rec.Key); err != nil {
			return nil, err
		}
	}
	if err := c.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketSandboxes, rec.ID, &rec) }); err != nil {
		c.kernel.CloseNamespace(ns)
		if !rec.External {
			c.kernel.DeleteNamespace(rec.Key)
		}
		return nil, fmt.Errorf("record sandbox: %w", err)
	}
	return &sbState{rec: rec, ns: ns}, nil
}

// abandon removes a sandbox whose creation failed half-way. Called with
// sb.mu held.
func (c *Controller) abandon(sb *sbState) {
	// Static addresses stay reserved, as when its container stops: a
	// container whose start failed keeps what it asked for.
	if err := c.remove(sb, true); err != nil {
		c.log.Error("remove a sandbox whose creation failed", "sandbox", sb.rec.Name, "err", err)
	}
}

// checkNamespaceFree refuses a namespace another sandbox already wires: two
// sandboxes numbering interfaces in one namespace would collide.
func (c *Controller) checkNamespaceFree(ns *netdev.Namespace) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, sb := range c.sandboxes {
		if sb.ns != nil && c.kernel.SameNamespace(sb.ns, ns) {
			return errdefs.ErrConflict.WithMessage(fmt.Sprintf("network namespace %s is already sandbox %s", sb.rec.Key, sb.rec.Name))
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
		out = append(out, sb.lockedDetail(c))
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
	return sb.lockedDetail(c), nil
}

func (sb *sbState) lockedDetail(c *Controller) SandboxDetail {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.detail(c)
}

// detail reports the sandbox. Called with sb.mu held.
func (sb *sbState) detail(c *Controller) SandboxDetail {
	d := SandboxDetail{Sandbox: sb.rec}
	for _, ep := range sb.endpoints {
		d.Endpoints = append(d.Endpoints, ep.detail())
	}
	d.Files = c.filesOf(sb)
	return d
}

func (ep *epState) detail() EndpointDetail {
	d := EndpointDetail{Endpoint: ep.rec, NetworkName: ep.nw.rec.Name, Gateway: ep.join.Gateway4, GatewayV6: ep.join.Gateway6}
	if fw := ep.nw.info.Firewall; fw != nil {
		d.Routed4, d.Routed6 = fw.Routed4, fw.Routed6
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
	return c.remove(sb, keepStatic)
}

// remove takes a sandbox apart. Called with sb.mu held.
func (c *Controller) remove(sb *sbState, keepStatic bool) error {
	c.stopResolver(sb)
	for len(sb.endpoints) > 0 {
		if err := c.leave(sb, sb.endpoints[len(sb.endpoints)-1], true, keepStatic, nil); err != nil {
			return err
		}
	}
	if err := c.store.Update(func(tx store.Tx) error { return tx.Delete(bucketSandboxes, sb.rec.ID) }); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", sb.rec.Name, err)
	}
	sb.removed = true
	c.kernel.CloseNamespace(sb.ns)
	if !sb.rec.External {
		if err := c.kernel.DeleteNamespace(sb.rec.Key); err != nil {
			c.log.Warn("remove namespace", "sandbox", sb.rec.Name, "err", err)
		}
	}
	c.mu.Lock()
	delete(c.sandboxes, sb.rec.ID)
	delete(c.sbNames, sb.rec.Name)
	c.mu.Unlock()
	return nil
}

// Connect attaches a sandbox to a network. It returns the endpoint and,
// for a sandbox with a DNS configuration, its /etc files as they are now.
func (c *Controller) Connect(sbTerm, netTerm string, opts EndpointOptions) (EndpointDetail, *Files, error) {
	nw, err := c.network(netTerm)
	if err != nil {
		return EndpointDetail{}, nil, err
	}
	sb, err := c.lockedSandbox(sbTerm)
	if err != nil {
		return EndpointDetail{}, nil, err
	}
	defer sb.mu.Unlock()
	if err := checkConnect(sb.rec.Name, sb.networks(), nw, opts); err != nil {
		return EndpointDetail{}, nil, err
	}
	ep, err := c.join(sb, nw, opts)
	if err != nil {
		return EndpointDetail{}, nil, err
	}
	if err := c.startResolver(sb); err != nil {
		if lerr := c.leave(sb, ep, false, false, nil); lerr != nil {
			c.log.Warn("roll back a connect", "endpoint", ep.rec.ID, "err", lerr)
		}
		return EndpointDetail{}, nil, err
	}
	return ep.detail(), c.filesOf(sb), nil
}

// wantsResolver says whether joining nw turns on berth's resolver for a
// sandbox with the DNS configuration cfg that has none yet.
func wantsResolver(cfg *DNSConfig, nw *netState) bool {
	return cfg != nil && !cfg.Resolver && !IsPredefined(nw.rec.Name)
}

// CheckConnect validates, as Connect would, joining the network netTerm
// for something named name that is on the networks on: a container that
// does not run and so has no sandbox yet.
func (c *Controller) CheckConnect(name string, on []string, netTerm string, opts EndpointOptions) (NetworkRef, error) {
	nw, err := c.network(netTerm)
	if err != nil {
		return NetworkRef{}, err
	}
	var current []*netState
	for _, term := range on {
		// A network removed meanwhile is not in the way.
		if o, err := c.network(term); err == nil {
			current = append(current, o)
		}
	}
	if err := checkConnect(name, current, nw, opts); err != nil {
		return NetworkRef{}, err
	}
	return nw.ref(), nil
}

// networks are the networks the sandbox is on. Called with sb.mu held.
func (sb *sbState) networks() []*netState {
	out := make([]*netState, len(sb.endpoints))
	for i, ep := range sb.endpoints {
		out[i] = ep.nw
	}
	return out
}

// aliasRE is what a name must look like to be resolvable.
var aliasRE = regexp.MustCompile(`^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,252}[a-zA-Z0-9_])?$`)

// checkConnect is every rule of joining nw for a sandbox named name that
// is on the networks on.
func checkConnect(name string, on []*netState, nw *netState, opts EndpointOptions) error {
	if nw.caps.Sharing == driver.HostNamespace {
		return ErrHostNetwork
	}
	for _, o := range on {
		if o == nw {
			return errEndpointExists(name, nw.rec.Name)
		}
		if o.caps.Sharing == driver.Alone || nw.caps.Sharing == driver.Alone {
			return ErrNoneNetwork
		}
	}
	if len(opts.Aliases) > 0 && IsPredefined(nw.rec.Name) {
		return errAliasOnPredefined
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

// join allocates, records and wires a new endpoint, publishes its names
// and points the sandbox's routes. Called with sb.mu held.
func (c *Controller) join(sb *sbState, nw *netState, opts EndpointOptions) (_ *epState, err error) {
	defer func(start time.Time) { c.observe("attach", nw.rec.Driver, start, err) }(time.Now())
	ep := &epState{nw: nw, rec: Endpoint{
		ID: stringid.New(), Name: sb.rec.Name, NetworkID: nw.rec.ID, SandboxID: sb.rec.ID,
		IfName: fmt.Sprintf("eth%d", sb.rec.NextIf), StaticIPv4: opts.IPv4, StaticIPv6: opts.IPv6,
		Aliases: slices.Clone(opts.Aliases), Order: sb.rec.NextIf,
	}}
	if nw.caps.Addresses {
		ep.rec.HostIfName = vethName()
	}
	if err := nw.register(ep, opts); err != nil {
		return nil, err
	}
	switch {
	case ep.rec.MAC != "":
		// Chosen with the addresses, for an IPAM plugin that wanted it.
	case opts.MAC != "":
		ep.rec.MAC = opts.MAC
	case nw.caps.DriverMAC:
		// The driver's choice, recorded once it has joined.
	case ep.rec.IPv4.IsValid():
		ep.rec.MAC = netdev.MACFromIPv4(ep.rec.IPv4.Addr()).String()
	case nw.caps.Addresses:
		ep.rec.MAC = netdev.RandomMAC().String()
	}
	if len(opts.Ports) > 0 && nw.publishes() {
		var hostIP netip.Addr
		if nw.info.Firewall != nil {
			hostIP = nw.info.Firewall.HostIP
		}
		bindings, err := c.ports.allocate(opts.Ports, hostPortsOf(nw, &ep.rec), hostIP, fmt.Sprintf("%s (%s)", ep.rec.Name, ep.rec.ID))
		if err != nil {
			nw.unregister(ep, ep.claimed)
			return nil, err
		}
		ep.rec.Ports = bindings
	}
	if nw.global {
		if err := c.claimEndpoint(sb, ep, opts); err != nil {
			c.ports.releaseBindings(ep.rec.Ports)
			nw.unregister(ep, ep.claimed)
			return nil, err
		}
	}
	next := sb.rec
	next.NextIf++
	if wantsResolver(next.DNS, nw) {
		// As Docker's: the first user-defined network a sandbox joins,
		// at its start or later, brings the resolver at 127.0.0.11.
		dns := *next.DNS
		dns.Resolver = true
		next.DNS = &dns
	}
	if err := c.store.Update(func(tx store.Tx) error {
		if err := store.PutJSON(tx, bucketEndpoints, ep.rec.ID, &ep.rec); err != nil {
			return err
		}
		if opts.Persist != nil {
			if err := opts.Persist(tx, nw.ref()); err != nil {
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
		c.releaseEndpoint(ep)
		nw.unregister(ep, ep.claimed)
		return nil, fmt.Errorf("record endpoint: %w", err)
	}
	sb.rec = next
	driverStart := time.Now()
	info, err := nw.drv.Join(nw.dn, driverEndpoint(&ep.rec), sb.ns)
	c.observe("join", nw.rec.Driver, driverStart, err)
	if err != nil {
		c.ports.releaseBindings(ep.rec.Ports)
		c.forget(ep)
		return nil, fmt.Errorf("attach %s to %s: %w", sb.rec.Name, nw.rec.Name, err)
	}
	ep.join = info
	undo := func() {
		if err := nw.drv.Leave(nw.dn, driverEndpoint(&ep.rec), sb.ns); err != nil {
			c.log.Warn("roll back a join", "endpoint", ep.rec.ID, "err", err)
		}
		c.ports.releaseBindings(ep.rec.Ports)
		c.forget(ep)
	}
	if err := c.recordFromDriver(ep, info); err != nil {
		undo()
		return nil, fmt.Errorf("attach %s to %s: %w", sb.rec.Name, nw.rec.Name, err)
	}
	for _, r := range info.Routes {
		if err := c.kernel.AddRoute(sb.ns, ep.rec.IfName, info.Index, r); err != nil {
			undo()
			return nil, fmt.Errorf("attach %s to %s: %w", sb.rec.Name, nw.rec.Name, err)
		}
	}
	if err := c.applyFirewall(endpointChange(nw, &ep.rec)); err != nil {
		undo()
		return nil, fmt.Errorf("publish ports of %s: %w", sb.rec.Name, err)
	}
	sb.endpoints = append(sb.endpoints, ep)
	c.publishNames(sb, ep)
	if err := c.routeDefault(sb); err != nil {
		c.log.Warn("set default route", "sandbox", sb.rec.Name, "err", err)
	}
	c.emit(mevents.ActionConnect, nw, sb.rec.ID)
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
	c.releaseEndpoint(ep)
	ep.nw.unregister(ep, claimed)
}

func driverEndpoint(rec *Endpoint) *driver.Endpoint {
	mac, _ := net.ParseMAC(rec.MAC)
	ep := &driver.Endpoint{ID: rec.ID, IfName: rec.IfName, HostIfName: rec.HostIfName, MAC: mac, IPv4: rec.IPv4, IPv6: rec.IPv6}
	// Before a driver that addresses endpoints itself has done so, the
	// addresses are those asked for, if any.
	if !ep.IPv4.IsValid() && rec.StaticIPv4.IsValid() {
		ep.IPv4 = netip.PrefixFrom(rec.StaticIPv4, rec.StaticIPv4.BitLen())
	}
	if !ep.IPv6.IsValid() && rec.StaticIPv6.IsValid() {
		ep.IPv6 = netip.PrefixFrom(rec.StaticIPv6, rec.StaticIPv6.BitLen())
	}
	for _, b := range rec.Ports {
		ep.Ports = append(ep.Ports, driver.PortBinding{Proto: b.Proto, HostIP: b.HostIP, HostPort: b.HostPort, Port: b.Port})
	}
	return ep
}

// recordFromDriver keeps what the driver gave an endpoint, in memory and
// in the store: the addresses and MAC of a driver with OwnAddresses, or
// the MAC a driver with DriverMAC chose; for other drivers, or a MAC
// already recorded, nothing. Called with the sandbox's lock held.
func (c *Controller) recordFromDriver(ep *epState, info driver.JoinInfo) error {
	caps := ep.nw.caps
	if !caps.OwnAddresses && !(caps.DriverMAC && ep.rec.MAC == "" && info.MAC != nil) {
		return nil
	}
	rec := ep.rec
	if ep.nw.caps.OwnAddresses {
		rec.IPv4, rec.IPv6 = info.IPv4, info.IPv6
	}
	if info.MAC != nil {
		rec.MAC = info.MAC.String()
	}
	if err := c.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketEndpoints, rec.ID, &rec) }); err != nil {
		return fmt.Errorf("record endpoint: %w", err)
	}
	ep.rec = rec
	return nil
}

// Disconnect detaches a sandbox from a network. persist, when not nil,
// writes the caller's record of the change, knowing the network, in the
// same store transaction.
// It returns the sandbox's /etc files as they are now, for a sandbox with
// a DNS configuration.
func (c *Controller) Disconnect(sbTerm, netTerm string, persist func(store.Tx, NetworkRef) error) (*Files, error) {
	nw, err := c.network(netTerm)
	if err != nil {
		return nil, err
	}
	sb, err := c.lockedSandbox(sbTerm)
	if err != nil {
		return nil, err
	}
	defer sb.mu.Unlock()
	if nw.caps.Sharing == driver.HostNamespace {
		return nil, ErrHostNetwork
	}
	for _, ep := range sb.endpoints {
		if ep.nw == nw {
			if err := c.leave(sb, ep, false, false, persist); err != nil {
				return nil, err
			}
			return c.filesOf(sb), nil
		}
	}
	return nil, ErrNotConnected(sb.rec.ID, nw.rec.Name)
}

// leave takes an endpoint out of service and forgets it. nsGoing says the
// sandbox is going away, so its default route needs no care. Called with
// sb.mu held.
func (c *Controller) leave(sb *sbState, ep *epState, nsGoing, keepStatic bool, persist func(store.Tx, NetworkRef) error) (err error) {
	defer func(start time.Time) { c.observe("detach", ep.nw.rec.Driver, start, err) }(time.Now())
	fwCh := reverse(endpointChange(ep.nw, &ep.rec))
	if err := c.applyFirewall(fwCh); err != nil {
		return fmt.Errorf("unpublish ports of %s: %w", sb.rec.Name, err)
	}
	driverStart := time.Now()
	err = ep.nw.drv.Leave(ep.nw.dn, driverEndpoint(&ep.rec), sb.ns)
	c.observe("leave", ep.nw.rec.Driver, driverStart, err)
	if err != nil {
		c.applyFirewall(reverse(fwCh))
		return fmt.Errorf("detach %s from %s: %w", sb.rec.Name, ep.nw.rec.Name, err)
	}
	var keep []netip.Addr
	// A global network's addresses are the cluster's: none is kept for a
	// sandbox that left.
	if keepStatic && !ep.nw.global {
		for _, a := range []netip.Addr{ep.rec.StaticIPv4, ep.rec.StaticIPv6} {
			if a.IsValid() {
				keep = append(keep, a)
			}
		}
	}
	if err := c.store.Update(func(tx store.Tx) error {
		if persist != nil {
			if err := persist(tx, ep.nw.ref()); err != nil {
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
	c.releaseEndpoint(ep)
	ep.nw.unregister(ep, keep)
	if len(ep.rec.Ports) > 0 {
		c.ports.releaseBindings(ep.rec.Ports)
	}
	// A flow (UDP above all) must not stick to the address once its
	// container is gone: berth's translation's flows are forgotten. Where
	// a plugin translates (portmap, a remote driver's
	// ProgramExternalConnectivity), the plugin forgets its own, and the
	// search through the kernel's whole connection table (2.5 ms a leave)
	// is spared.
	if len(ep.rec.Ports) > 0 && ep.nw.info.Firewall != nil {
		for _, a := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
			if a.IsValid() {
				if err := c.kernel.ForgetConnections(a.Addr()); err != nil {
					c.log.Warn("forget tracked connections", "endpoint", ep.rec.ID, "err", err)
				}
			}
		}
	}
	sb.endpoints = slices.DeleteFunc(sb.endpoints, func(e *epState) bool { return e == ep })
	c.withdrawNames(sb, ep)
	c.emit(mevents.ActionDisconnect, ep.nw, sb.rec.ID)
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
		gw := gatewayOf(want, v6)
		if err := c.kernel.SetDefaultRoute(sb.ns, want.rec.IfName, want.join.Index, gw, want.join.DefaultViaDevice); err != nil {
			errs = append(errs, err)
			continue
		}
		*cur = want
	}
	return errors.Join(errs...)
}

// gatewayOf is the endpoint's gateway of one family, if its join gave one.
func gatewayOf(ep *epState, v6 bool) netip.Addr {
	if v6 {
		return ep.join.Gateway6
	}
	return ep.join.Gateway4
}

func gatewayEndpoint(eps []*epState, v6 bool) *epState {
	var fallback *epState
	for _, ep := range eps {
		if !gatewayOf(ep, v6).IsValid() {
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

// vethName is a fresh name for the host end of an endpoint's pair.
func vethName() string { return "veth" + stringid.New()[:7] }

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
		if err := nw.releaseReserved(c.store, owner); err != nil {
			return err
		}
	}
	return nil
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

// RenameSandbox gives a sandbox a new name: the names it answers to on its
// user-defined networks follow. persist, when set, writes the caller's own
// record in the same transaction.
func (c *Controller) RenameSandbox(term, name string, persist func(store.Tx) error) error {
	sb, err := c.lockedSandbox(term)
	if err != nil {
		return err
	}
	defer sb.mu.Unlock()
	old := sb.rec.Name
	if name == old {
		return nil
	}
	c.mu.Lock()
	if id, taken := c.sbNames[name]; taken {
		c.mu.Unlock()
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("sandbox name %q is in use by %s", name, id))
	}
	c.sbNames[name] = sb.rec.ID
	c.mu.Unlock()
	next := sb.rec
	next.Name = name
	if err := c.store.Update(func(tx store.Tx) error {
		if persist != nil {
			if err := persist(tx); err != nil {
				return err
			}
		}
		return store.PutJSON(tx, bucketSandboxes, next.ID, &next)
	}); err != nil {
		c.mu.Lock()
		delete(c.sbNames, name)
		c.mu.Unlock()
		return fmt.Errorf("record sandbox: %w", err)
	}
	c.mu.Lock()
	delete(c.sbNames, old)
	c.mu.Unlock()
	sb.rec = next
	for _, ep := range sb.endpoints {
		c.withdrawNames(sb, ep)
		c.publishNames(sb, ep)
	}
	return nil
}

// SetLinks replaces the names, alias → container name, a sandbox's
// resolver answers beyond its networks' own. persist, when set, writes the
// caller's own record in the same transaction.
func (c *Controller) SetLinks(term string, links map[string]string, persist func(store.Tx) error) error {
	sb, err := c.lockedSandbox(term)
	if err != nil {
		return err
	}
	defer sb.mu.Unlock()
	if sb.rec.DNS == nil {
		return invalid("sandbox %s has no names to link", sb.rec.ID)
	}
	next := sb.rec
	dns := *sb.rec.DNS
	dns.Links = links
	next.DNS = &dns
	if err := c.store.Update(func(tx store.Tx) error {
		if persist != nil {
			if err := persist(tx); err != nil {
				return err
			}
		}
		return store.PutJSON(tx, bucketSandboxes, next.ID, &next)
	}); err != nil {
		return fmt.Errorf("record sandbox: %w", err)
	}
	sb.rec = next
	c.rescope(sb)
	return nil
}
