package network

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	mevents "github.com/moby/moby/api/types/events"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/events"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/resolver"
	"github.com/berth-net/berth/store"
)

// Names of the predefined networks.
const (
	NameBridge = "bridge"
	NameHost   = "host"
	NameNone   = "none"
)

// IsPredefined tells whether name is reserved for a predefined network, as
// Docker's runconfig.IsPreDefinedNetwork does.
func IsPredefined(name string) bool {
	switch name {
	case NameBridge, NameHost, NameNone, "default", "ingress":
		return true
	}
	return false
}

// Kernel is what the controller asks of the host's kernel. Namespaces are
// handed to drivers as they are; the controller itself never works on one
// but through these methods.
type Kernel interface {
	// Prefixes are the host's routes and addresses, which new subnets
	// avoid.
	Prefixes() ([]netip.Prefix, error)
	// ForgetConnections drops the tracked connections of an address.
	ForgetConnections(addr netip.Addr) error
	// ForgetConnectionsIn drops the tracked connections of an address in
	// a sandbox's namespace.
	ForgetConnectionsIn(ns *netdev.Namespace, addr netip.Addr) error
	// AllowLocalnet lets the host's 127.0.0.1 connections out through a
	// device (to published ports on that address).
	AllowLocalnet(device string) error
	// EnableForwarding turns on routing (IPv6 too, when asked).
	EnableForwarding(ipv6 bool) error
	// ReservePort holds a host port against other processes, and
	// forwards what reaches it when asked.
	ReservePort(r netdev.Reservation) (io.Closer, error)
	// RetireUnwanted takes the daemon's devices that are not wanted out of
	// service, and Reap deletes everything out of service now.
	RetireUnwanted(wanted map[string]bool) (int, error)
	Reap() error

	CreateNamespace(path string) (*netdev.Namespace, error)
	OpenNamespace(path string) (*netdev.Namespace, error)
	DeleteNamespace(path string) error
	CloseNamespace(ns *netdev.Namespace)
	SameNamespace(a, b *netdev.Namespace) bool
	LoopbackUp(ns *netdev.Namespace) error
	// SetDefaultRoute points ns's default route of gw's family at gw
	// through the interface (viaDevice: out of it, no gateway). ifIndex 0
	// means look the interface up by name.
	SetDefaultRoute(ns *netdev.Namespace, ifName string, ifIndex int, gw netip.Addr, viaDevice bool) error
	AddRoute(ns *netdev.Namespace, ifName string, ifIndex int, r driver.Route) error
	// Listen opens a UDP socket and a TCP listener on addr, on ports the
	// kernel picks, inside ns.
	Listen(ns *netdev.Namespace, addr netip.Addr) (*net.UDPConn, net.Listener, error)
}

// Firewall is berth's nftables ruleset as the controller changes it.
type Firewall interface {
	// Rebuild writes the whole ruleset for the given state.
	Rebuild(nets []firewall.Network, binds []firewall.Binding, guards []firewall.Guard) error
	// Apply makes one operation's change in one transaction.
	Apply(firewall.Change) error
	// RedirectDNS sends a namespace's queries to 127.0.0.11:53 on to the
	// resolver's sockets.
	RedirectDNS(nsFd int, udpPort, tcpPort uint16) error
}

// DNS is berth's resolver and where it forwards what is not a container's.
type DNS struct {
	Table    *resolver.Table
	Resolver *resolver.Resolver
	// Upstreams are the daemon's --dns servers, else the host's.
	Upstreams func() []netip.AddrPort
}

// Config is what the controller is built from.
type Config struct {
	Store   store.Store
	Drivers []driver.Driver
	// DefaultDriver is the driver of networks created without one.
	DefaultDriver string
	Kernel        Kernel
	Pools         []ipam.PoolSpec
	// HostID seeds the host's default IPv6 pool (see ipam.ULAPool).
	HostID string
	// NamespaceDir is where berth mounts the namespaces it creates.
	NamespaceDir string
	Firewall     Firewall
	// DNS serves the names of sandboxes made with a DNS configuration;
	// nil leaves name service out.
	DNS *DNS
	// HostResolvConf is the host's resolv.conf (/etc/resolv.conf).
	HostResolvConf string
	// Events, when set, is told of networks made and removed and of
	// endpoints joining and leaving them.
	Events *events.Log
	// Cluster, when set, is the cluster store global networks live in;
	// without it, drivers of global scope cannot create networks.
	Cluster *cluster.Store
	// Plugins finds the drivers that are not built in, by name, the first
	// time a network asks for one (Docker's remote plugins); nil for none.
	Plugins Plugins
	// Observe, when set, is told of every create, remove, attach and
	// detach (the daemon's metrics).
	Observe Observe
	Log     *slog.Logger
}

// Plugins finds drivers from outside berthd. A name no plugin answers to
// gives an error errdefs.IsNotFound accepts; a plugin that is there but
// fails to answer gives an error naming it.
type Plugins interface {
	NetworkDriver(name string) (driver.Driver, error)
	IPAMDriver(name string) (ipam.Plugin, error)
}

// Controller owns networks, endpoints and sandboxes.
type Controller struct {
	store  store.Store
	kernel Kernel
	// drivers are the built-in drivers and the plugins' found so far.
	drvMu          sync.RWMutex
	drivers        map[string]driver.Driver
	plugins        Plugins
	defaultDriver  string
	space4         *ipam.Space
	space6         *ipam.Space
	nsDir          string
	fw             Firewall
	dns            *DNS
	hostResolvConf *HostResolvConf
	ports          *ports
	events         *events.Log
	observer       Observe
	log            *slog.Logger
	// global follows the cluster store; nil on a host in no cluster.
	global *global

	mu        sync.RWMutex
	networks  map[string]*netState // by ID
	netNames  map[string]string    // name → ID; "" while a create is under way
	sandboxes map[string]*sbState
	sbNames   map[string]string

	// subnetMu serialises the choice of subnets, so two creates never pick
	// the same one.
	subnetMu sync.Mutex
	// pending holds subnets chosen by creates that have not finished.
	pending map[string][]netip.Prefix
}

// netState is a network in memory.
type netState struct {
	rec  Network // immutable once registered
	drv  driver.Driver
	caps driver.Capabilities
	info driver.NetworkInfo
	dn   *driver.Network
	// ipam is the IPAM plugin the network's pools come from; nil for
	// berth's own.
	ipam ipam.Plugin

	mu        sync.Mutex
	pools     []*pool
	endpoints map[string]*epState // by ID
	epNames   map[string]string   // endpoint name → ID
	// reserved are static addresses kept, taken in the pools, for sandboxes
	// that left the network (a stopped container): address → sandbox ID.
	reserved map[netip.Addr]string
	removing bool
	// exhausted counts the endpoints refused for want of a free address.
	exhausted atomic.Uint64

	// global networks live in the cluster store, as globalValue.
	global      bool
	globalValue string
	// remote are other hosts' endpoints on a global network, and
	// remoteAddrs their addresses (address → endpoint ID).
	remote      map[string]*globalEndpoint
	remoteAddrs map[netip.Addr]string
}

type pool struct {
	cfg   Pool
	alloc allocator
}

// epState is an endpoint in memory; its record changes only under its
// sandbox's lock.
type epState struct {
	rec Endpoint
	nw  *netState
	// join is what the driver's join (or, after a restart, its Restore)
	// gave the sandbox.
	join driver.JoinInfo
	// claimed are reserved addresses the endpoint took over.
	claimed []netip.Addr
	// globalKVs are what the endpoint of a global network holds in the
	// cluster store.
	globalKVs []cluster.KV
}

// sbState is a sandbox in memory.
type sbState struct {
	mu        sync.Mutex
	rec       Sandbox
	ns        *netdev.Namespace
	endpoints []*epState // in join order
	gateway4  *epState
	gateway6  *epState
	// resolver serves the sandbox's queries, when it uses berth's resolver.
	resolver *resolver.Attachment
	removed  bool
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

const maxNameLen = 128

func validateName(kind, name string) error {
	switch {
	case name == "":
		return invalid("%s name cannot be empty", kind)
	case len(name) > maxNameLen:
		return invalid("invalid %s name %q: longer than %d characters", kind, shorten(name), maxNameLen)
	case !nameRE.MatchString(name):
		return invalid("invalid %s name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", kind, name)
	}
	return nil
}

// validateNetworkName accepts every name dockerd does (spaces and any
// printable character), within berth's own limits: a length, and no
// control characters, which would garble logs and terminals.
func validateNetworkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return invalid("network name cannot be empty")
	case len(name) > maxNameLen:
		return invalid("invalid network name %q: longer than %d characters, berth's limit", shorten(name), maxNameLen)
	case !utf8.ValidString(name):
		return invalid("invalid network name %q: not UTF-8", name)
	case strings.ContainsFunc(name, unicode.IsControl):
		return invalid("invalid network name %q: control characters are not allowed, berth's limit", name)
	}
	return nil
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// lookup finds an entry of byID by full ID, then by name, then by unique ID
// prefix: Docker's order.
func lookup[T any](byID map[string]T, names map[string]string, term string) (T, int) {
	var zero T
	if v, ok := byID[term]; ok {
		return v, 1
	}
	if id, ok := names[term]; ok && id != "" {
		return byID[id], 1
	}
	if term == "" {
		return zero, 0
	}
	var found T
	n := 0
	for id, v := range byID {
		if strings.HasPrefix(id, term) {
			found = v
			n++
		}
	}
	if n != 1 {
		return zero, n
	}
	return found, 1
}

func (c *Controller) network(term string) (*netState, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	nw, n := lookup(c.networks, c.netNames, term)
	switch {
	case n == 0:
		return nil, errNetworkNotFound(term)
	case n > 1:
		return nil, errAmbiguous(term, n)
	}
	return nw, nil
}

func (c *Controller) sandbox(term string) (*sbState, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	sb, n := lookup(c.sandboxes, c.sbNames, term)
	switch {
	case n == 0:
		return nil, errSandboxNotFound(term)
	case n > 1:
		return nil, invalid("sandbox %s is ambiguous (%d matches found based on ID prefix)", term, n)
	}
	return sb, nil
}

// NetworkRef is what callers above the controller need to know of a
// network to address it: found with one lookup, copying nothing of its
// endpoints.
type NetworkRef struct {
	ID       string
	Name     string
	Internal bool
	sharing  driver.Sharing
}

// HostNamespace tells whether a sandbox on the network is the daemon's
// own namespace (the host network).
func (r NetworkRef) HostNamespace() bool { return r.sharing == driver.HostNamespace }

// Alone tells whether a sandbox on the network can be on no other (none).
func (r NetworkRef) Alone() bool { return r.sharing == driver.Alone }

func (nw *netState) ref() NetworkRef {
	return NetworkRef{ID: nw.rec.ID, Name: nw.rec.Name, Internal: nw.rec.Internal, sharing: nw.caps.Sharing}
}

// LookupNetwork finds a network by ID, name or unique ID prefix.
func (c *Controller) LookupNetwork(term string) (NetworkRef, error) {
	nw, err := c.network(term)
	if err != nil {
		return NetworkRef{}, err
	}
	return nw.ref(), nil
}

// driverNetwork is the driver's view of a stored network.
func driverNetwork(rec *Network) *driver.Network {
	dn := &driver.Network{
		ID: rec.ID, Name: rec.Name, Internal: rec.Internal, EnableIPv6: rec.EnableIPv6,
		Options: rec.Options, State: rec.DriverState,
	}
	for _, p := range rec.IPAM.Pools {
		s := driver.Subnet{Prefix: p.Subnet.Masked(), Gateway: p.Gateway}
		if p.Subnet.Addr().Is4() {
			dn.IPv4 = append(dn.IPv4, s)
		} else {
			dn.IPv6 = append(dn.IPv6, s)
		}
	}
	return dn
}

// newNetState builds the in-memory network with pools holding its gateway
// and auxiliary addresses: berth's own pools, or plugin's pools, whose
// state is the plugin's.
func newNetState(rec Network, drv driver.Driver, plugin ipam.Plugin) (*netState, error) {
	nw := &netState{
		rec: rec, drv: drv, caps: drv.Capabilities(), dn: driverNetwork(&rec), ipam: plugin,
		endpoints: map[string]*epState{}, epNames: map[string]string{}, reserved: map[netip.Addr]string{},
		remote: map[string]*globalEndpoint{}, remoteAddrs: map[netip.Addr]string{},
	}
	nw.global = nw.caps.Scope == driver.ScopeGlobal
	nw.info = drv.Describe(nw.dn)
	nw.rec.Notes = nw.info.Notes
	for _, p := range rec.IPAM.Pools {
		if plugin != nil {
			nw.pools = append(nw.pools, &pool{cfg: p, alloc: &pluginPool{plugin: plugin, id: p.PoolID}})
			continue
		}
		a, err := ipam.NewAllocator(p.Subnet, p.IPRange)
		if err != nil {
			return nil, err
		}
		if p.Gateway.IsValid() && p.Subnet.Contains(p.Gateway) {
			if err := a.Reserve(p.Gateway); err != nil {
				return nil, invalid("reserve gateway %s: %v", p.Gateway, err)
			}
		}
		for name, aux := range p.AuxAddresses {
			if aux == p.Gateway {
				continue
			}
			if err := a.Reserve(aux); err != nil {
				return nil, invalid("reserve aux-address %s=%s: %v", name, aux, err)
			}
		}
		nw.pools = append(nw.pools, &pool{cfg: p, alloc: a})
	}
	return nw, nil
}

// setDriverState records what the driver's Prepare returned.
func (nw *netState) setDriverState(state []byte) {
	nw.rec.DriverState = state
	nw.dn.State = state
	nw.info = nw.drv.Describe(nw.dn)
	nw.rec.Notes = nw.info.Notes
}

// publishes tells whether the network's endpoints publish ports: it is
// under berth's firewall and has a way out.
func (nw *netState) publishes() bool {
	return (nw.info.Firewall != nil || nw.info.PublishesPorts) && !nw.rec.Internal
}

// subnetsInUse lists the subnets of all networks and of creates under way.
// Called with subnetMu held.
func (c *Controller) subnetsInUse() []netip.Prefix {
	var out []netip.Prefix
	c.mu.RLock()
	for _, nw := range c.networks {
		for _, p := range nw.rec.IPAM.Pools {
			out = append(out, p.Subnet.Masked())
		}
	}
	c.mu.RUnlock()
	for _, ps := range c.pending {
		out = append(out, ps...)
	}
	return out
}

// Networks returns a snapshot of all networks, sorted by name.
func (c *Controller) Networks() []Network {
	c.mu.RLock()
	out := make([]Network, 0, len(c.networks))
	for _, nw := range c.networks {
		out = append(out, nw.rec)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NetworkDetail is a network with its endpoints.
type NetworkDetail struct {
	Network
	Endpoints []Endpoint
	// Peers are the hosts with endpoints on a global network, this one
	// among them when it has some, sorted by address.
	Peers []Peer
}

// Peer is a host of the cluster as a global network's inspect shows it.
type Peer struct {
	Name string
	IP   netip.Addr
}

// InspectNetwork finds a network by ID, name or unique ID prefix and
// reports it with all its endpoints: for inspect, not for lookups.
func (c *Controller) InspectNetwork(term string) (NetworkDetail, error) {
	nw, err := c.network(term)
	if err != nil {
		return NetworkDetail{}, err
	}
	d := NetworkDetail{Network: nw.rec}
	nw.mu.Lock()
	for _, ep := range nw.endpoints {
		d.Endpoints = append(d.Endpoints, ep.rec)
	}
	if nw.global {
		hosts := map[string]netip.Addr{}
		if len(nw.endpoints) > 0 {
			hosts[c.global.host] = c.global.vtep
		}
		for _, ge := range nw.remote {
			hosts[ge.Host] = ge.VTEP
		}
		for name, ip := range hosts {
			d.Peers = append(d.Peers, Peer{Name: name, IP: ip})
		}
		sort.Slice(d.Peers, func(i, j int) bool { return d.Peers[i].IP.Less(d.Peers[j].IP) })
	}
	nw.mu.Unlock()
	sort.Slice(d.Endpoints, func(i, j int) bool { return d.Endpoints[i].Name < d.Endpoints[j].Name })
	return d, nil
}

// EndpointCount tells how many endpoints a network has.
func (c *Controller) EndpointCount(id string) int {
	c.mu.RLock()
	nw := c.networks[id]
	c.mu.RUnlock()
	if nw == nil {
		return 0
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return len(nw.endpoints)
}

// DriverNames lists the registered drivers, sorted.
func (c *Controller) DriverNames() []string {
	c.drvMu.RLock()
	defer c.drvMu.RUnlock()
	out := make([]string, 0, len(c.drivers))
	for name := range c.drivers {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// emit tells the event log of a network's creation or removal, or of a
// sandbox (a container) joining or leaving it.
func (c *Controller) emit(action mevents.Action, nw *netState, container string) {
	if c.events == nil {
		return
	}
	attrs := map[string]string{"name": nw.rec.Name, "type": nw.rec.Driver}
	if container != "" {
		attrs["container"] = container
	}
	c.events.Emit(mevents.NetworkEventType, action, nw.rec.ID, attrs)
}
