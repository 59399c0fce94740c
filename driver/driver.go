package driver

import (
	"encoding/json"
	"net"
	"net/netip"

	"github.com/berth-net/berth/netdev"
)

// Network is what a driver knows of a network.
type Network struct {
	ID         string
	Name       string
	Internal   bool
	EnableIPv6 bool
	// Options are the driver options the user gave (-o), as stored.
	Options map[string]string
	IPv4    []Subnet
	IPv6    []Subnet
	// State is the driver's own record of the network, returned by Prepare
	// and kept by the controller.
	State json.RawMessage
}

// Subnet is one address pool of a network with its gateway.
type Subnet struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// Endpoint is one attachment of a sandbox to a network.
type Endpoint struct {
	ID string
	// IfName is the interface's name inside the sandbox (eth0, eth1, …).
	IfName string
	// HostIfName is the name of the host side of the attachment, where the
	// driver has one (the veth end on a bridge).
	HostIfName string
	MAC        net.HardwareAddr
	IPv4       netip.Prefix
	IPv6       netip.Prefix
}

// Driver is a network driver.
type Driver interface {
	// Name is the name users give with --driver.
	Name() string
	// NeedsAddresses tells whether networks of this driver get address pools
	// and their endpoints interfaces.
	NeedsAddresses() bool
	// ValidateOptions checks a new network's driver options on their own.
	ValidateOptions(opts map[string]string) error
	// Prepare checks a new network against the networks that exist and
	// returns the driver's state for it. It changes nothing.
	Prepare(nw *Network, existing []*Network) (json.RawMessage, error)
	// CreateNetwork makes the network's kernel state exist. It is idempotent:
	// the controller calls it again on every start.
	CreateNetwork(nw *Network) error
	// DeleteNetwork takes the network's kernel state out of service. Slow
	// deletions may finish in the background.
	DeleteNetwork(nw *Network) error
	// Join creates ep's interface inside the namespace, up and addressed.
	Join(nw *Network, ep *Endpoint, ns *netdev.Namespace) error
	// Leave takes ep's interface out of service; nothing carries traffic for
	// ep when it returns.
	Leave(nw *Network, ep *Endpoint, ns *netdev.Namespace) error
	// Attached tells whether ep's kernel state, on the host and inside the
	// namespace, is intact.
	Attached(nw *Network, ep *Endpoint, ns *netdev.Namespace) (bool, error)
	// Devices lists the host devices the network itself owns (a bridge).
	Devices(nw *Network) []string
}

// DeviceRouted is implemented by drivers whose endpoints reach their
// gateway without ARP (ipvlan in l3 modes): their default route goes out
// of the interface, with no gateway address.
type DeviceRouted interface {
	DefaultViaDevice(nw *Network) bool
}
