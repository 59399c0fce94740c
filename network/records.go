package network

import (
	"net/netip"
	"time"

	"github.com/berth-net/berth/store"
)

// Store buckets.
const (
	bucketNetworks  = "networks"
	bucketEndpoints = "endpoints"
	bucketSandboxes = "sandboxes"
)

// RuntimeBuckets are the buckets whose records live as long as the boot:
// sandboxes and their endpoints, which no namespace holds after a reboot.
// The daemon keeps them apart from the durable state (store.OpenSplit).
// Static addresses kept for stopped containers (reservations) are
// durable.
var RuntimeBuckets = []string{bucketEndpoints, bucketSandboxes}

// Network is a network as stored and as reported.
type Network struct {
	ID         string
	Name       string
	Driver     string
	Scope      string
	Created    time.Time
	EnableIPv4 bool
	EnableIPv6 bool
	Internal   bool
	Attachable bool
	Options    map[string]string
	Labels     map[string]string
	IPAM       IPAM
	// DriverState is the driver's own record of the network.
	DriverState []byte `json:",omitempty"`
	// Notes are what the driver tells users of the network (not stored:
	// the driver says them anew).
	Notes map[string]string `json:"-"`
}

// IPAM is a network's address configuration.
type IPAM struct {
	Driver string
	// Options is kept as the user sent it: nil and empty differ in Docker's
	// JSON.
	Options map[string]string
	Pools   []Pool
}

// Pool is one subnet of a network.
type Pool struct {
	// Subnet is kept as given: Docker accepts and shows 172.29.30.1/24.
	Subnet       netip.Prefix
	IPRange      netip.Prefix          `json:",omitzero"`
	Gateway      netip.Addr            `json:",omitzero"`
	AuxAddresses map[string]netip.Addr `json:",omitempty"`
	// UserGateway: the gateway was given by the user.
	UserGateway bool `json:",omitempty"`
	// AutoSubnet: berth chose the subnet from the default pools.
	AutoSubnet bool `json:",omitempty"`
	// PoolID names the pool to the IPAM plugin that gave it; empty for
	// berth's own pools.
	PoolID string `json:",omitempty"`
}

// ShowGateway tells whether inspect shows the gateway: Docker shows it when
// the user gave it or when the subnet came from the default pools.
func (p Pool) ShowGateway() bool { return p.UserGateway || p.AutoSubnet }

// Endpoint is one attachment of a sandbox to a network.
type Endpoint struct {
	ID        string
	Name      string
	NetworkID string
	SandboxID string
	// Order is the position of the endpoint in its sandbox's join order;
	// the first eligible endpoint provides the default route.
	Order      int
	IfName     string
	HostIfName string       `json:",omitempty"`
	MAC        string       `json:",omitempty"`
	IPv4       netip.Prefix `json:",omitzero"`
	IPv6       netip.Prefix `json:",omitzero"`
	// StaticIPv4 and StaticIPv6 are addresses the user asked for.
	StaticIPv4 netip.Addr `json:",omitzero"`
	StaticIPv6 netip.Addr `json:",omitzero"`
	Aliases    []string   `json:",omitempty"`
	// Ports are the endpoint's published ports.
	Ports []PortBinding `json:",omitempty"`
}

// Sandbox is one network namespace with its endpoints.
type Sandbox struct {
	ID   string
	Name string
	// Key is the namespace's path.
	Key string
	// External: the namespace belongs to the caller, berth never removes it.
	External bool
	// NextIf numbers the interfaces made in the sandbox: like Docker, a
	// reconnect gets a new name (eth1) rather than reusing eth0.
	NextIf  int
	Created time.Time
	// DNS is the sandbox's name service and /etc files; nil for sandboxes
	// that are bare namespaces.
	DNS *DNSConfig `json:",omitempty"`
}

// DNSConfig is what a sandbox's /etc/hosts, resolv.conf and resolver are
// made from: a container's settings.
type DNSConfig struct {
	Hostname   string
	Domainname string `json:",omitempty"`
	// ExtraHosts are --add-host entries, name:address.
	ExtraHosts []string `json:",omitempty"`
	// LinkHosts are /etc/hosts lines of legacy links on the default bridge.
	LinkHosts []string `json:",omitempty"`
	// Links are names only this sandbox resolves on user-defined networks:
	// alias → container name.
	Links map[string]string `json:",omitempty"`
	// Servers, Search and Options are --dns, --dns-search and --dns-option.
	Servers []netip.Addr `json:",omitempty"`
	Search  []string     `json:",omitempty"`
	Options []string     `json:",omitempty"`
	// Resolver: the sandbox uses berth's resolver at 127.0.0.11, as a
	// container on a user-defined network does.
	Resolver bool `json:",omitempty"`
}

// EndpointOptions are what the caller may ask of a new endpoint.
type EndpointOptions struct {
	IPv4    netip.Addr
	IPv6    netip.Addr
	Aliases []string
	MAC     string
	// Ports are to be published through this endpoint.
	Ports []PortSpec
	// Persist, when set, writes the caller's own record of the change in
	// the same store transaction as the endpoint, knowing the network: one
	// transaction per operation, whichever layer owns the records.
	Persist func(store.Tx, NetworkRef) error
}
