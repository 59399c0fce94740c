package network

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
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

// Config is what the controller is built from.
type Config struct {
	Store   store.Store
	Drivers []driver.Driver
	// Host is the daemon's namespace. Nil only in tests that use drivers
	// without kernel state; then no host routes are avoided.
	Host  *netdev.Host
	Pools []ipam.PoolSpec
	// DefaultBridge is the bridge device of the default "bridge" network.
	DefaultBridge string
	// NamespaceDir is where berth mounts the namespaces it creates.
	NamespaceDir string
	// Firewall holds berth's nftables rules; nil leaves the firewall alone
	// (tests of drivers without kernel state).
	Firewall *firewall.Firewall
	Log      *slog.Logger
}

// Controller owns networks, endpoints and sandboxes.
type Controller struct {
	store     store.Store
	host      *netdev.Host
	drivers   map[string]driver.Driver
	space4    *ipam.Space
	space6    *ipam.Space
	nsDir     string
	fw        *firewall.Firewall
	ports     *ports
	log       *slog.Logger
	defBrName string

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
	rec Network // immutable once registered
	drv driver.Driver
	dn  *driver.Network

	mu        sync.Mutex
	pools     []*pool
	endpoints map[string]*epState // by ID
	epNames   map[string]string   // endpoint name → ID
	// reserved are static addresses kept, taken in the pools, for sandboxes
	// that left the network (a stopped container): address → sandbox ID.
	reserved map[netip.Addr]string
	removing bool
}

type pool struct {
	cfg   Pool
	alloc *ipam.Allocator
}

// epState is an endpoint in memory; its record changes only under its
// sandbox's lock.
type epState struct {
	rec Endpoint
	nw  *netState
	// claimed are reserved addresses the endpoint took over.
	claimed []netip.Addr
}

// sbState is a sandbox in memory.
type sbState struct {
	mu        sync.Mutex
	rec       Sandbox
	ns        *netdev.Namespace
	endpoints []*epState // in join order
	gateway4  *epState
	gateway6  *epState
	removed   bool
}

func newID() string {
	for {
		b := make([]byte, 32)
		rand.Read(b)
		id := hex.EncodeToString(b)
		// An ID whose short form is all digits reads like a number to
		// tools and people; Docker avoids them too.
		if strings.Trim(id[:12], "0123456789") != "" {
			return id
		}
	}
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
// and auxiliary addresses.
func newNetState(rec Network, drv driver.Driver) (*netState, error) {
	ns := &netState{rec: rec, drv: drv, dn: driverNetwork(&rec), endpoints: map[string]*epState{}, epNames: map[string]string{}, reserved: map[netip.Addr]string{}}
	for _, p := range rec.IPAM.Pools {
		a, err := ipam.NewAllocator(p.Subnet, p.IPRange)
		if err != nil {
			return nil, err
		}
		if p.Gateway.IsValid() && p.Subnet.Contains(p.Gateway) {
			if err := a.Reserve(p.Gateway); err != nil {
				return nil, fmt.Errorf("reserve gateway %s: %w", p.Gateway, err)
			}
		}
		for name, aux := range p.AuxAddresses {
			if aux == p.Gateway {
				continue
			}
			if err := a.Reserve(aux); err != nil {
				return nil, fmt.Errorf("reserve aux-address %s=%s: %w", name, aux, err)
			}
		}
		ns.pools = append(ns.pools, &pool{cfg: p, alloc: a})
	}
	return ns, nil
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
}

// InspectNetwork finds a network by ID, name or unique ID prefix.
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

// SandboxName returns the name of a sandbox by ID, for reports.
func (c *Controller) SandboxName(id string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if sb := c.sandboxes[id]; sb != nil {
		return sb.rec.Name
	}
	return ""
}

// DriverNames lists the registered drivers, sorted.
func (c *Controller) DriverNames() []string {
	out := make([]string, 0, len(c.drivers))
	for name := range c.drivers {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
