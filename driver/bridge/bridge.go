// Package bridge is the driver of Linux-bridge networks: one bridge per
// network carrying the gateway addresses, and one veth pair per endpoint
// from the bridge into the sandbox's namespace. Firewall rules (ICC,
// masquerade, published ports) are not this package's business; it only
// validates and keeps the options that ask for them.
package bridge

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

// Docker's option keys, shown in inspect exactly as given.
const (
	OptionBridgeName    = "com.docker.network.bridge.name"
	OptionEnableICC     = "com.docker.network.bridge.enable_icc"
	OptionMasquerade    = "com.docker.network.bridge.enable_ip_masquerade"
	OptionHostBindingV4 = "com.docker.network.bridge.host_binding_ipv4"
	OptionDefaultBridge = "com.docker.network.bridge.default_bridge"
	OptionMTU           = "com.docker.network.driver.mtu"
)

const defaultMTU = 1500

// State is what the driver remembers of a network.
type State struct {
	Bridge string
	// External is set when the bridge existed before the network and is
	// therefore never deleted by berth.
	External bool `json:",omitempty"`
}

// Driver is the bridge driver.
type Driver struct {
	host *netdev.Host

	mu      sync.Mutex
	indexes map[string]int         // network ID → bridge ifindex
	ports   map[string]vethIndexes // endpoint ID → its pair
}

// vethIndexes remembers a pair's interface indexes from Join to Leave, so
// that Leave needs no lookups.
type vethIndexes struct{ host, peer int }

func New(host *netdev.Host) *Driver {
	return &Driver{host: host, indexes: map[string]int{}, ports: map[string]vethIndexes{}}
}

func (d *Driver) Name() string         { return "bridge" }
func (d *Driver) NeedsAddresses() bool { return true }

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
	l, exists, err := d.host.LinkByName(name)
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
		case OptionEnableICC, OptionMasquerade, OptionDefaultBridge:
			_, perr := strconv.ParseBool(v)
			if perr != nil {
				err = fmt.Errorf("invalid value %q for %s: must be true or false", v, k)
			}
		case OptionHostBindingV4:
			if a, perr := netip.ParseAddr(v); perr != nil || !a.Is4() {
				err = fmt.Errorf("invalid value %q for %s: must be an IPv4 address", v, k)
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
	var addrs []netip.Prefix
	for _, s := range append(append([]driver.Subnet(nil), nw.IPv4...), nw.IPv6...) {
		if s.Gateway.IsValid() {
			addrs = append(addrs, netip.PrefixFrom(s.Gateway, s.Prefix.Bits()))
		}
	}
	if _, err := d.host.EnsureBridge(netdev.BridgeSpec{Name: st.Bridge, MTU: mtuOf(nw), Addrs: addrs, MAC: randomMAC()}); err != nil {
		return err
	}
	l, ok, err := d.host.LinkByName(st.Bridge)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("bridge %s vanished while it was set up", st.Bridge)
	}
	d.mu.Lock()
	d.indexes[nw.ID] = l.Index
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
	return d.host.Retire(st.Bridge)
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

func (d *Driver) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) error {
	master, err := d.bridgeIndex(nw)
	if err != nil {
		return err
	}
	spec := netdev.VethSpec{HostName: ep.HostIfName, Master: master, MTU: mtuOf(nw), PeerName: ep.IfName, PeerMAC: ep.MAC, PeerNS: ns}
	hostIdx, err := d.host.AddVeth(spec)
	if err != nil {
		return err
	}
	peerIdx, err := ns.ConfigureInterface(netdev.Interface{Name: ep.IfName, Addrs: endpointAddrs(ep)})
	if err != nil {
		d.host.Delete(ep.HostIfName)
		return err
	}
	d.mu.Lock()
	d.ports[ep.ID] = vethIndexes{host: hostIdx, peer: peerIdx}
	d.mu.Unlock()
	return nil
}

// Leave sets the inside end down — from then on the pair carries nothing —
// and hands the host end to the reaper.
func (d *Driver) Leave(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) error {
	d.mu.Lock()
	idx := d.ports[ep.ID]
	delete(d.ports, ep.ID)
	d.mu.Unlock()
	if ns != nil {
		if err := ns.RetireInterface(ep.IfName, idx.peer, endpointAddrs(ep)); err != nil {
			return err
		}
	} else if err := d.host.Retire(ep.HostIfName); err != nil {
		// Without the namespace the host end must stop the traffic.
		return err
	}
	return d.host.RetireVeth(ep.HostIfName, idx.host)
}

func (d *Driver) Attached(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (bool, error) {
	master, err := d.bridgeIndex(nw)
	if err != nil {
		return false, err
	}
	l, ok, err := d.host.LinkByName(ep.HostIfName)
	if err != nil || !ok {
		return false, err
	}
	if l.Group != d.host.Owned || l.Master != master || !l.Up {
		return false, nil
	}
	// A crash between creating the pair and configuring its inside leaves
	// a pair that looks fine from the host.
	return ns.HasInterface(netdev.Interface{Name: ep.IfName, Addrs: endpointAddrs(ep)})
}

func endpointAddrs(ep *driver.Endpoint) []netip.Prefix {
	var addrs []netip.Prefix
	for _, p := range []netip.Prefix{ep.IPv4, ep.IPv6} {
		if p.IsValid() {
			addrs = append(addrs, p)
		}
	}
	return addrs
}

func (d *Driver) Devices(nw *driver.Network) []string {
	st, err := stateOf(nw)
	if err != nil || st.External {
		return nil
	}
	return []string{st.Bridge}
}

// randomMAC is a locally administered unicast address in Docker's 02:42
// range, so that a bridge's address does not change as ports come and go.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	rand.Read(mac[2:])
	mac[0], mac[1] = 0x02, 0x42
	return mac
}
