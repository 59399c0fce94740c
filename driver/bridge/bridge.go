// Package bridge is the driver of Linux-bridge networks: one bridge per
// network carrying the gateway addresses, and one veth pair per endpoint
// from the bridge into the sandbox's namespace. Firewall rules (ICC,
// masquerade, published ports) are not this package's business; it only
// validates and keeps the options that ask for them.
package bridge

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
)

// Docker's option keys, shown in inspect exactly as given.
const (
	OptionBridgeName    = "com.docker.network.bridge.name"
	OptionEnableICC     = "com.docker.network.bridge.enable_icc"
	OptionMasquerade    = "com.docker.network.bridge.enable_ip_masquerade"
	OptionHostBindingV4 = "com.docker.network.bridge.host_binding_ipv4"
	OptionDefaultBridge = "com.docker.network.bridge.default_bridge"
	OptionMTU           = "com.docker.network.driver.mtu"
	// Gateway modes, per family: how the network meets the outside.
	OptionGatewayModeV4 = "com.docker.network.bridge.gateway_mode_ipv4"
	OptionGatewayModeV6 = "com.docker.network.bridge.gateway_mode_ipv6"
	// OptionAntiSpoofing is berth's own: "false" lets containers send from
	// addresses that are not theirs (a container routing for others).
	OptionAntiSpoofing = "com.berth.bridge.anti_spoofing"
)

const defaultMTU = 1500

// Docker's gateway modes.
const (
	// gatewayNAT, the default: ports published on the host's addresses
	// are translated to the containers', traffic out is masqueraded, and
	// nothing else from outside reaches the containers.
	gatewayNAT = "nat"
	// gatewayNATUnprotected: as nat, and every port of the containers can
	// be reached from outside by routing to their addresses.
	gatewayNATUnprotected = "nat-unprotected"
	// gatewayRouted: the subnet is routed, not translated: no masquerade,
	// no host ports; from outside, the ports the containers publish are
	// open at their own addresses, and ICMP gets in.
	gatewayRouted = "routed"
	// gatewayIsolated, for internal networks only: the bridge has no
	// address of the family, so not even the host reaches the containers.
	gatewayIsolated = "isolated"
)

// gatewayMode is the network's gateway mode for a family.
func gatewayMode(nw *driver.Network, v6 bool) string {
	key := OptionGatewayModeV4
	if v6 {
		key = OptionGatewayModeV6
	}
	if m := nw.Options[key]; m != "" {
		return m
	}
	return gatewayNAT
}

// State is what the driver remembers of a network.
type State struct {
	Bridge string
	// External is set when the bridge existed before the network and is
	// therefore never deleted by berth.
	External bool `json:",omitempty"`
}

// Driver is the bridge driver.
type Driver struct {
	host   *netdev.Host
	reaper *reap.Reaper
	// defaultBridge is the device of the predefined "bridge" network;
	// defaultIPv6 and defaultIPAM its address settings.
	defaultBridge string
	defaultIPv6   bool
	defaultIPAM   []ipam.Config

	bridges *Bridges

	mu      sync.Mutex
	indexes map[string]int // network ID → bridge ifindex
}

// New returns the bridge driver; defaultBridge is the device of the
// predefined "bridge" network (berthd's --bridge-name).
func New(host *netdev.Host, reaper *reap.Reaper, defaultBridge string) *Driver {
	return &Driver{host: host, reaper: reaper, defaultBridge: defaultBridge, bridges: NewBridges(host, reaper), indexes: map[string]int{}}
}

func (d *Driver) Name() string { return "bridge" }

// Capabilities: local networks with addresses, and the default "bridge"
// network with the options Docker shows for it.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Scope: driver.ScopeLocal, Addresses: true, Sharing: driver.Shares,
		Predefined: []driver.Predefined{{Name: "bridge", Options: map[string]string{
			OptionDefaultBridge: "true",
			OptionEnableICC:     "true",
			OptionMasquerade:    "true",
			OptionHostBindingV4: "0.0.0.0",
			OptionBridgeName:    d.defaultBridge,
			OptionMTU:           strconv.Itoa(defaultMTU),
		}, EnableIPv6: d.defaultIPv6, IPAM: d.defaultIPAM}},
	}
}

// DefaultAddresses sets the default "bridge" network's addresses, as
// dockerd's --ipv6, --fixed-cidr and --fixed-cidr-v6 do: a subnet given
// for a family replaces the one from the default pools.
func (d *Driver) DefaultAddresses(ipv6 bool, fixed4, fixed6 netip.Prefix) {
	d.defaultIPv6 = ipv6
	d.defaultIPAM = nil
	for _, p := range []netip.Prefix{fixed4, fixed6} {
		if p.IsValid() {
			d.defaultIPAM = append(d.defaultIPAM, ipam.Config{Subnet: p.Masked()})
		}
	}
}

// Describe puts every bridge network under berth's firewall, matched on
// its bridge.
func (d *Driver) Describe(nw *driver.Network) driver.NetworkInfo {
	fw := &driver.Firewall{
		Device:     BridgeName(nw),
		Masquerade: optionTrue(nw.Options, OptionMasquerade),
		Isolated:   !optionTrue(nw.Options, OptionEnableICC),
		AntiSpoof:  optionTrue(nw.Options, OptionAntiSpoofing),

		Routed4:      gatewayMode(nw, false) == gatewayRouted,
		Routed6:      gatewayMode(nw, true) == gatewayRouted,
		Unprotected4: gatewayMode(nw, false) == gatewayNATUnprotected,
		Unprotected6: gatewayMode(nw, true) == gatewayNATUnprotected,
	}
	if a, err := netip.ParseAddr(nw.Options[OptionHostBindingV4]); err == nil && !a.IsUnspecified() {
		fw.HostIP = a
	}
	return driver.NetworkInfo{Firewall: fw}
}

// optionTrue reads a boolean option that is true unless set otherwise.
func optionTrue(opts map[string]string, key string) bool {
	b, err := strconv.ParseBool(opts[key])
	return err != nil || b
}

func stateOf(nw *driver.Network) (State, error) {
	var st State
	if err := json.Unmarshal(nw.State, &st); err != nil {
		return st, fmt.Errorf("network %s: bad bridge state: %w", nw.Name, err)
	}
	return st, nil
}

// BridgeName is the bridge a network of this driver uses: the
// com.docker.network.bridge.name option or br-<first 12 hex of the ID>.
func BridgeName(nw *driver.Network) string {
	if name := nw.Options[OptionBridgeName]; name != "" {
		return name
	}
	return "br-" + nw.ID[:12]
}

func (d *Driver) Prepare(nw *driver.Network, existing []*driver.Network) (json.RawMessage, error) {
	if (gatewayMode(nw, false) == gatewayIsolated || gatewayMode(nw, true) == gatewayIsolated) && !nw.Internal {
		return nil, errdefs.ErrInvalidArgument.WithMessage("gateway mode 'isolated' can only be used for an internal network")
	}
	name := BridgeName(nw)
	for _, other := range existing {
		if other.State == nil {
			continue
		}
		st, err := stateOf(other)
		if err != nil {
			return nil, err
		}
		if st.Bridge == name {
			return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf(
				"cannot create network %s (%s): conflicts with network %s (%s): networks have same bridge name",
				nw.ID, name, other.ID, st.Bridge))
		}
	}
	l, exists, err := d.host.Link(name)
	if err != nil {
		return nil, err
	}
	st := State{Bridge: name}
	if exists {
		if l.Kind != "bridge" {
			return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("device %s exists and is not a bridge", name))
		}
		st.External = !d.host.Owns(l)
	}
	return json.Marshal(st)
}

func (d *Driver) ValidateOptions(opts map[string]string) error {
	for k, v := range opts {
		var err error
		switch k {
		case OptionBridgeName:
			if len(v) == 0 || len(v) > 15 || !validIfName(v) {
				err = fmt.Errorf("invalid bridge name %q: 1 to 15 characters, no '/', ':' or whitespace", v)
			}
		case OptionEnableICC, OptionMasquerade, OptionDefaultBridge, OptionAntiSpoofing:
			_, perr := strconv.ParseBool(v)
			if perr != nil {
				err = fmt.Errorf("invalid value %q for %s: must be true or false", v, k)
			}
		case OptionHostBindingV4:
			if a, perr := netip.ParseAddr(v); perr != nil || !a.Is4() {
				err = fmt.Errorf("invalid value %q for %s: must be an IPv4 address", v, k)
			}
		case OptionGatewayModeV4, OptionGatewayModeV6:
			switch v {
			case gatewayNAT, gatewayNATUnprotected, gatewayRouted, gatewayIsolated:
			default:
				err = fmt.Errorf("invalid gateway mode %q for %s: must be %s, %s, %s or %s", v, k, gatewayNAT, gatewayNATUnprotected, gatewayRouted, gatewayIsolated)
			}
		case OptionMTU:
			if n, perr := strconv.Atoi(v); perr != nil || n < 68 || n > 65535 {
				err = fmt.Errorf("invalid value %q for %s: must be a number from 68 to 65535", v, k)
			}
		}
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
	}
	return nil
}

func validIfName(s string) bool {
	if s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}

func mtuOf(nw *driver.Network) int {
	if n, err := strconv.Atoi(nw.Options[OptionMTU]); err == nil {
		return n
	}
	return defaultMTU
}

func (d *Driver) CreateNetwork(nw *driver.Network) error {
	st, err := stateOf(nw)
	if err != nil {
		return err
	}
	idx, err := d.bridges.Ensure(nw, st.Bridge, mtuOf(nw))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.indexes[nw.ID] = idx
	d.mu.Unlock()
	return nil
}

func (d *Driver) DeleteNetwork(nw *driver.Network) error {
	st, err := stateOf(nw)
	if err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.indexes, nw.ID)
	d.mu.Unlock()
	if st.External {
		return nil
	}
	return d.reaper.Retire(st.Bridge)
}

func (d *Driver) bridgeIndex(nw *driver.Network) (int, error) {
	d.mu.Lock()
	idx, ok := d.indexes[nw.ID]
	d.mu.Unlock()
	if ok {
		return idx, nil
	}
	if err := d.CreateNetwork(nw); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.indexes[nw.ID], nil
}

// Join plugs a veth pair into the bridge; the sandbox routes through the
// gateway addresses the bridge carries.
func (d *Driver) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, error) {
	master, err := d.bridgeIndex(nw)
	if err != nil {
		return driver.JoinInfo{}, err
	}
	info, err := d.bridges.Join(master, mtuOf(nw), nw, ep, ns)
	return withoutIsolatedGateways(nw, info), err
}

// withoutIsolatedGateways leaves out the gateway of a family in gateway
// mode isolated: the bridge has no such address to route through.
func withoutIsolatedGateways(nw *driver.Network, info driver.JoinInfo) driver.JoinInfo {
	if gatewayMode(nw, false) == gatewayIsolated {
		info.Gateway4 = netip.Addr{}
	}
	if gatewayMode(nw, true) == gatewayIsolated {
		info.Gateway6 = netip.Addr{}
	}
	return info
}

func (d *Driver) Leave(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) error {
	return d.bridges.Leave(ep, ns)
}

func (d *Driver) Restore(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, bool, error) {
	master, err := d.bridgeIndex(nw)
	if err != nil {
		return withoutIsolatedGateways(nw, driver.Gateways(nw, ep)), false, err
	}
	info, ok, err := d.bridges.Restore(master, nw, ep, ns)
	return withoutIsolatedGateways(nw, info), ok, err
}

func (d *Driver) Devices(nw *driver.Network) []string {
	st, err := stateOf(nw)
	if err != nil || st.External {
		return nil
	}
	return []string{st.Bridge}
}

// Bridges are networks' bridges of berth's with the gateway addresses, and
// endpoints' veth pairs from them into their sandboxes: the bridge
// driver's, and those of any driver whose networks are such a bridge
// (overlay).
type Bridges struct {
	host   *netdev.Host
	reaper *reap.Reaper

	mu    sync.Mutex
	pairs map[string]vethIndexes // endpoint ID → its pair
}

// vethIndexes remembers a pair's interface indexes from Join to Leave, so
// that Leave needs no lookups.
type vethIndexes struct{ host, peer int }

// NewBridges returns the bridges of host.
func NewBridges(host *netdev.Host, reaper *reap.Reaper) *Bridges {
	return &Bridges{host: host, reaper: reaper, pairs: map[string]vethIndexes{}}
}

// Ensure makes the network's bridge exist, up, with its gateway addresses
// (and, when it makes the bridge, the MTU), and returns its index.
func (b *Bridges) Ensure(nw *driver.Network, name string, mtu int) (int, error) {
	if err := b.reaper.EnsureBridge(netdev.BridgeSpec{Name: name, MTU: mtu, Addrs: gatewayAddrs(nw), MAC: netdev.RandomMAC()}); err != nil {
		return 0, err
	}
	l, ok, err := b.host.Link(name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("bridge %s vanished while it was set up", name)
	}
	return l.Index, nil
}

// gatewayAddrs are the addresses a network's bridge carries: each subnet's
// gateway with the subnet's length, but in gateway mode isolated.
func gatewayAddrs(nw *driver.Network) []netip.Prefix {
	var addrs []netip.Prefix
	for _, s := range append(append([]driver.Subnet(nil), nw.IPv4...), nw.IPv6...) {
		if s.Gateway.IsValid() && gatewayMode(nw, s.Prefix.Addr().Is6()) != gatewayIsolated {
			addrs = append(addrs, netip.PrefixFrom(s.Gateway, s.Prefix.Bits()))
		}
	}
	return addrs
}

// Join plugs ep's veth pair into the bridge with index master, with the
// given MTU; the sandbox routes through the gateways of nw's subnets.
func (b *Bridges) Join(master, mtu int, nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, error) {
	spec := netdev.VethSpec{HostName: ep.HostIfName, Master: master, MTU: mtu, PeerName: ep.IfName, PeerMAC: ep.MAC, PeerNS: ns}
	hostIdx, err := b.host.AddVeth(spec)
	if err != nil {
		return driver.JoinInfo{}, err
	}
	peerIdx, err := ns.Configure(netdev.Interface{Name: ep.IfName, Addrs: ep.Addrs()})
	if err != nil {
		b.host.DeleteIndex(hostIdx)
		return driver.JoinInfo{}, err
	}
	b.mu.Lock()
	b.pairs[ep.ID] = vethIndexes{host: hostIdx, peer: peerIdx}
	b.mu.Unlock()
	info := driver.Gateways(nw, ep)
	info.Index = peerIdx
	return info, nil
}

// Leave sets the inside end down — from then on the pair carries nothing —
// and hands the host end to the reaper.
func (b *Bridges) Leave(ep *driver.Endpoint, ns *netdev.Namespace) error {
	b.mu.Lock()
	idx := b.pairs[ep.ID]
	delete(b.pairs, ep.ID)
	b.mu.Unlock()
	if ns != nil {
		if err := ns.TakeDown(ep.IfName, idx.peer, ep.Addrs()); err != nil {
			return err
		}
	} else if err := b.host.TakeDown(ep.HostIfName, idx.host, nil); err != nil {
		// Without the namespace the host end must stop the traffic.
		return err
	}
	return b.reaper.RetireVeth(ep.HostIfName, idx.host)
}

// Restore tells whether ep's pair is intact: its host end owned, up and on
// the bridge with index master, its inside end up with its addresses.
func (b *Bridges) Restore(master int, nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, bool, error) {
	info := driver.Gateways(nw, ep)
	l, ok, err := b.host.Link(ep.HostIfName)
	if err != nil || !ok {
		return info, false, err
	}
	if l.Group != b.host.Owned || l.Master != master || !l.Up {
		return info, false, nil
	}
	// A crash between creating the pair and configuring its inside leaves
	// a pair that looks fine from the host.
	ok, err = ns.HasInterface(netdev.Interface{Name: ep.IfName, Addrs: ep.Addrs()})
	return info, ok, err
}
