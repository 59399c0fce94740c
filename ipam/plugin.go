package ipam

import "net/netip"

// Plugin is an address manager other than berth's own, named with
// --ipam-driver: Docker's remote IPAM plugins, through an adapter. The
// controller asks it for a network's pools when the network is created,
// for addresses as endpoints join, and gives them back as they leave; the
// plugin keeps its own state across restarts of the daemon.
type Plugin interface {
	// Name is the name users give with --ipam-driver.
	Name() string
	// RequestPool asks for one pool of a network.
	RequestPool(req PoolRequest) (PoolGrant, error)
	// ReleasePool gives a pool back, when its network is removed.
	ReleasePool(poolID string) error
	// RequestAddress asks for addr in the pool, or for any free address
	// when addr is zero. opts carry Docker's keys, such as
	// RequestAddressType=com.docker.network.gateway for a gateway.
	RequestAddress(poolID string, addr netip.Addr, opts map[string]string) (netip.Prefix, error)
	// ReleaseAddress gives an address of the pool back.
	ReleaseAddress(poolID string, addr netip.Addr) error
}

// PoolRequest is a network's request for one pool.
type PoolRequest struct {
	// Global: the pool is for a global (cluster-wide) network; the plugin
	// takes it from its global address space.
	Global bool
	V6     bool
	// Subnet and IPRange are what the user asked for (--subnet,
	// --ip-range); zero lets the plugin choose.
	Subnet  netip.Prefix
	IPRange netip.Prefix
	// Options are the network's IPAM options (--ipam-opt).
	Options map[string]string
}

// PoolGrant is a pool a plugin gave.
type PoolGrant struct {
	// ID names the pool in later requests.
	ID   string
	Pool netip.Prefix
	// Data are the plugin's facts about the pool; Docker's
	// com.docker.network.gateway gives the gateway.
	Data map[string]string
}

// RequestAddressType is the option key of RequestAddress saying what the
// address is for, and GatewayAddressType its value for a gateway.
const (
	RequestAddressType = "RequestAddressType"
	GatewayAddressType = "com.docker.network.gateway"
)

// MACAddressOption is the option key of RequestAddress carrying the
// endpoint's MAC, for a plugin that requires it (MACRequirer).
const MACAddressOption = "com.docker.network.endpoint.macaddress"

// MACRequirer is a Plugin that may want each endpoint's MAC with its
// address request (Docker's RequiresMACAddress capability): an address
// server that leases by MAC. The endpoint then has its MAC before its
// addresses, chosen at random unless the caller gave one, as Docker does.
type MACRequirer interface {
	RequiresMACAddress() bool
}
