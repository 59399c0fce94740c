package driver

import (
	"encoding/json"
	"net"
	"net/netip"

	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
)

// Scopes of a driver's networks.
const (
	// ScopeLocal networks exist on one host, in its local store.
	ScopeLocal = "local"
	// ScopeGlobal networks span hosts, in the cluster store.
	ScopeGlobal = "global"
)

// Sharing says how a network of a driver combines with other networks in
// one sandbox.
type Sharing int

const (
	// Shares: a sandbox may be on the network and on others.
	Shares Sharing = iota
	// Alone: a sandbox on the network is on no other one (none: only lo).
	Alone
	// HostNamespace: a sandbox on the network is the daemon's own
	// namespace; nothing is connected to or disconnected from it (host).
	HostNamespace
)

// Capabilities are what the controller needs to know of a driver as a
// whole.
type Capabilities struct {
	// Scope is ScopeLocal or ScopeGlobal.
	Scope string
	// Addresses: networks get address pools from the controller's IPAM,
	// and each endpoint an interface with addresses from them.
	Addresses bool
	Sharing   Sharing
	// Singleton drivers have only their predefined network: users cannot
	// create more (host, none).
	Singleton bool
	// Predefined are the networks the driver brings: the controller
	// creates them when they are missing and users cannot remove them.
	Predefined []Predefined
	// OwnAddresses: the driver addresses its endpoints itself (a CNI
	// plugin's IPAM), so networks take no pools (Addresses is false) yet
	// endpoints have interfaces. The controller hands Join the addresses
	// and MAC the caller asked for, if any, in the Endpoint, and records
	// those JoinInfo returns.
	OwnAddresses bool
	// DriverMAC: endpoints get a MAC from the controller only when the
	// caller asked for one; otherwise the driver may choose it (a remote
	// plugin's CreateEndpoint answer, as Docker takes it), and JoinInfo
	// carries the MAC the interface has, which the controller records.
	DriverMAC bool
}

// Predefined is a network that exists whenever the driver does.
type Predefined struct {
	Name    string
	Options map[string]string
	// EnableIPv6 and IPAM are the network's address settings, as a
	// create's (the default bridge's --ipv6 and --fixed-cidr-v6). When
	// they change, the controller makes the network again if nothing is
	// on it.
	EnableIPv6 bool
	IPAM       []ipam.Config
}

// NetworkInfo is what the controller needs of one network of the driver.
// It follows from the network's stored data alone: the driver looks at
// nothing else to give it.
type NetworkInfo struct {
	// Firewall, when set, puts the network under berth's firewall:
	// isolation from other networks, masquerade, internal networks and
	// published ports, matched on Firewall.Device. Nil for networks without
	// a device of berth's on the host's path (macvlan, host, none); their
	// endpoints publish no ports.
	Firewall *Firewall
	// Notes are facts users should see with the network's options in
	// inspect: com.berth.* keys, or Docker's own where Docker shows the
	// same fact (overlay's com.docker.network.driver.overlay.vxlanid_list).
	Notes map[string]string
	// Claims are what a global network holds alone in the cluster besides
	// its name and subnets (overlay: "vni/4097"): the controller claims
	// them in the transaction that records the network, and releases them
	// with it. A driver whose Prepare picked a value another host took
	// meanwhile is asked again.
	Claims []string
	// PublishesPorts: the driver publishes its endpoints' ports itself (a
	// CNI chain with portmap). The controller reserves the host ports and
	// hands the bindings to Join in Endpoint.Ports; berth's firewall does
	// not publish them.
	PublishesPorts bool
}

// Firewall is how berth's firewall treats a network.
type Firewall struct {
	// Device is the host device the network's traffic passes (a bridge).
	Device string
	// Masquerade rewrites traffic leaving the host from the network.
	Masquerade bool
	// Isolated networks' endpoints do not talk to each other
	// (enable_icc=false): their host-side devices are isolated one by one.
	Isolated bool
	// HostIP is where ports are published when the caller names no
	// address (host_binding_ipv4); zero means every address of the host.
	HostIP netip.Addr
	// AntiSpoof: each endpoint's host-side device may carry only frames
	// from the endpoint's own MAC and addresses.
	AntiSpoof bool
	// Routed4 and Routed6: the network's addresses of that family are
	// routed to, not translated: no masquerade and no host ports; from
	// outside, only the ports its endpoints publish (on their own
	// addresses) and ICMP get in.
	Routed4, Routed6 bool
	// Unprotected4 and Unprotected6: translated as usual, and every port
	// of the endpoints can be reached from outside by routing to their
	// addresses of that family.
	Unprotected4, Unprotected6 bool
}

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
	// IPv4 and IPv6 are the endpoint's addresses from the controller's
	// pools; for a driver with OwnAddresses, the ones the caller asked
	// for (--ip, --ip6), if any, until Join returns those it gave.
	IPv4 netip.Prefix
	IPv6 netip.Prefix
	// Ports are the endpoint's published ports, for a driver that
	// publishes them itself (NetworkInfo.PublishesPorts).
	Ports []PortBinding
}

// PortBinding is a published port: HostPort on HostIP (every address of
// the host when zero) leads to the endpoint's Port.
type PortBinding struct {
	// Proto is tcp, udp or sctp.
	Proto    string
	HostIP   netip.Addr
	HostPort uint16
	Port     uint16
}

// Addrs are the endpoint's addresses, IPv4 first.
func (ep *Endpoint) Addrs() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []netip.Prefix{ep.IPv4, ep.IPv6} {
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// JoinInfo is what a join gives the sandbox besides the interface: where
// its default routes may go and which routes it needs. The controller
// decides which endpoint's gateway the sandbox routes through.
type JoinInfo struct {
	// Index is the interface's index inside the sandbox, when the driver
	// knows it; 0 makes the controller look it up by name.
	Index int
	// Gateway4 and Gateway6 are the gateways the sandbox may route through
	// this endpoint; zero for none of that family.
	Gateway4 netip.Addr
	Gateway6 netip.Addr
	// DefaultViaDevice: a default route through this endpoint goes out of
	// its interface with no gateway address (ipvlan's l3 modes).
	DefaultViaDevice bool
	// Routes go out of the endpoint's interface.
	Routes []Route
	// IPv4, IPv6 and MAC are what a driver with OwnAddresses gave the
	// interface; zero from other drivers.
	IPv4 netip.Prefix
	IPv6 netip.Prefix
	MAC  net.HardwareAddr
}

// Route is a static route of a sandbox.
type Route struct {
	Dst netip.Prefix
	// Via is the next hop; zero means Dst is on the interface's link.
	Via netip.Addr
}

// Gateways is the JoinInfo of an endpoint whose gateways are those of the
// subnets holding its addresses.
func Gateways(nw *Network, ep *Endpoint) JoinInfo {
	var info JoinInfo
	for _, s := range nw.IPv4 {
		if ep.IPv4.IsValid() && s.Prefix.Contains(ep.IPv4.Addr()) {
			info.Gateway4 = s.Gateway
		}
	}
	for _, s := range nw.IPv6 {
		if ep.IPv6.IsValid() && s.Prefix.Contains(ep.IPv6.Addr()) {
			info.Gateway6 = s.Gateway
		}
	}
	return info
}

// Peer is an endpoint another host has on a global network.
type Peer struct {
	EndpointID string
	// Host is the other host's underlay address (its --cluster-advertise).
	Host netip.Addr
	MAC  net.HardwareAddr
	IPv4 netip.Prefix
	IPv6 netip.Prefix
}

// Peers is implemented by drivers of global networks: the controller,
// following the cluster store, tells them of the endpoints other hosts
// have on a network, so that traffic reaches them. Calls come only for a
// network CreateNetwork made on this host, and are idempotent: the same
// peer may be added again (after a restart, say) and a peer never added
// may be removed.
type Peers interface {
	AddPeer(nw *Network, p Peer) error
	RemovePeer(nw *Network, p Peer) error
	// SetPeers makes peers all the network's peers: whatever the kernel
	// holds for any other (a peer that left while the daemon was away)
	// goes. The controller calls it once it has the cluster's state, at
	// start and when it had to take that state afresh.
	SetPeers(nw *Network, peers []Peer) error
}

// Driver is a network driver: built in, or a plugin's adapter. The
// controller knows drivers only through this contract.
// NodeWatcher is a driver that wants to know the hosts of the cluster
// (Docker's node discovery, which remote plugins get as DiscoverNew and
// DiscoverDelete). The controller tells it of every host that registers
// in the cluster store, this one (self) included, and of every host whose
// registration goes, one call at a time and never on a request's path.
type NodeWatcher interface {
	NodeJoined(addr netip.Addr, self bool) error
	NodeLeft(addr netip.Addr, self bool) error
}

type Driver interface {
	// Name is the name users give with --driver.
	Name() string
	Capabilities() Capabilities
	// ValidateOptions checks a new network's driver options on their own.
	ValidateOptions(opts map[string]string) error
	// Prepare checks a new network against the networks of the driver that
	// exist and returns the driver's state for it. It changes nothing.
	Prepare(nw *Network, existing []*Network) (json.RawMessage, error)
	// Describe tells how the controller treats a network.
	Describe(nw *Network) NetworkInfo
	// CreateNetwork makes the network's kernel state exist. It is idempotent:
	// the controller calls it again on every start.
	CreateNetwork(nw *Network) error
	// DeleteNetwork takes the network's kernel state out of service. Slow
	// deletions may finish in the background.
	DeleteNetwork(nw *Network) error
	// Join creates ep's interface inside the namespace, up and addressed.
	Join(nw *Network, ep *Endpoint, ns *netdev.Namespace) (JoinInfo, error)
	// Leave takes ep's interface out of service; nothing carries traffic for
	// ep when it returns. ns is nil when the namespace is gone.
	Leave(nw *Network, ep *Endpoint, ns *netdev.Namespace) error
	// Restore tells, when the daemon starts, whether a recorded endpoint's
	// kernel state, on the host and inside the namespace, is intact, and
	// returns what its join gave (when it is not intact, the controller
	// joins it again).
	Restore(nw *Network, ep *Endpoint, ns *netdev.Namespace) (JoinInfo, bool, error)
	// Devices lists the host devices the network itself owns (a bridge).
	Devices(nw *Network) []string
}
