package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

// Caller sends one call of Docker's plugin protocol: args as JSON to
// /method, the answer decoded into ret. A method the plugin does not
// implement gives an error errdefs reports as NotImplemented.
type Caller interface {
	Call(method string, args, ret any) error
}

// Driver is a plugin's network driver.
type Driver struct {
	name   string
	plugin Caller
	caps   driver.Capabilities
	host   *host
	log    *slog.Logger

	mu sync.Mutex
	// joined are the endpoints joined since the daemon started: the
	// plugin's name for each interface, to give it back under, and what
	// the join gave.
	joined map[string]joined
}

type joined struct {
	src  string
	info driver.JoinInfo
}

// New asks the plugin for its capabilities and returns its driver. The
// plugin's interfaces are taken from the network namespace New runs in:
// the daemon's own.
func New(name string, plugin Caller, log *slog.Logger) (*Driver, error) {
	var c capabilitiesAnswer
	if err := plugin.Call("NetworkDriver.GetCapabilities", nil, &c); err != nil {
		return nil, fmt.Errorf("capabilities of plugin %s: %w", name, err)
	}
	validScope := func(s string) bool { return s == driver.ScopeLocal || s == driver.ScopeGlobal }
	if !validScope(c.Scope) || (c.ConnectivityScope != "" && !validScope(c.ConnectivityScope)) {
		return nil, fmt.Errorf("capabilities of plugin %s: invalid scope %q (connectivity %q): expecting 'local' or 'global'", name, c.Scope, c.ConnectivityScope)
	}
	h, err := openHost()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Driver{
		name: name, plugin: plugin, host: h, log: log.With("plugin", name),
		caps:   driver.Capabilities{Scope: c.Scope, Addresses: true, Sharing: driver.Shares, DriverMAC: true},
		joined: map[string]joined{},
	}, nil
}

func (d *Driver) call(method string, args, ret any) error {
	return d.plugin.Call("NetworkDriver."+method, args, ret)
}

// NodeJoined tells the plugin of a host of the cluster (DiscoverNew).
func (d *Driver) NodeJoined(addr netip.Addr, self bool) error {
	return d.call("DiscoverNew", discoveryNotification{nodeDiscovery, nodeDiscoveryData{addr.String(), self}}, nil)
}

// NodeLeft tells the plugin a host left the cluster (DiscoverDelete).
func (d *Driver) NodeLeft(addr netip.Addr, self bool) error {
	return d.call("DiscoverDelete", discoveryNotification{nodeDiscovery, nodeDiscoveryData{addr.String(), self}}, nil)
}

func (d *Driver) Name() string                      { return d.name }
func (d *Driver) Capabilities() driver.Capabilities { return d.caps }

// ValidateOptions accepts everything: the plugin judges its options when
// the network is created.
func (d *Driver) ValidateOptions(map[string]string) error { return nil }

// Prepare: the plugin keeps its own state.
func (d *Driver) Prepare(*driver.Network, []*driver.Network) (json.RawMessage, error) {
	return nil, nil
}

// Describe: the plugin, not berth's firewall, wires the network's traffic
// to the world, and it is handed the endpoints' published ports, as Docker
// hands them (ProgramExternalConnectivity).
func (d *Driver) Describe(*driver.Network) driver.NetworkInfo {
	return driver.NetworkInfo{PublishesPorts: true}
}

func (d *Driver) Devices(*driver.Network) []string { return nil }

// CreateNetwork tells the plugin of the network. The controller calls it
// again at every start and Docker's protocol has no way to ask whether the
// plugin still has a network, so an error saying the network exists
// (any text with "exists", and not "not exist") counts as success.
func (d *Driver) CreateNetwork(nw *driver.Network) error {
	space := localAddressSpace
	if d.caps.Scope == driver.ScopeGlobal {
		space = globalAddressSpace
	}
	generic := nw.Options
	if generic == nil {
		generic = map[string]string{}
	}
	req := createNetworkRequest{
		NetworkID: nw.ID,
		Options:   map[string]any{optionGeneric: generic, optionEnableIPv6: nw.EnableIPv6},
		IPv4Data:  ipamDataOf(space, nw.IPv4),
		IPv6Data:  ipamDataOf(space, nw.IPv6),
	}
	err := d.call("CreateNetwork", req, nil)
	if err != nil && saysExists(err) {
		d.log.Info("plugin already has the network", "network", nw.Name, "answer", err)
		return nil
	}
	return err
}

func saysExists(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "exists") && !strings.Contains(s, "not exist")
}

func ipamDataOf(space string, subnets []driver.Subnet) []ipamData {
	out := []ipamData{}
	for _, s := range subnets {
		data := ipamData{AddressSpace: space, Pool: s.Prefix.Masked().String(), AuxAddresses: map[string]string{}}
		if s.Gateway.IsValid() {
			data.Gateway = netip.PrefixFrom(s.Gateway, s.Prefix.Bits()).String()
		}
		out = append(out, data)
	}
	return out
}

// DeleteNetwork tells the plugin the network is gone. As Docker, a
// plugin's error is logged and the network goes all the same: what the
// plugin kept is its own.
func (d *Driver) DeleteNetwork(nw *driver.Network) error {
	if err := d.call("DeleteNetwork", networkRequest{NetworkID: nw.ID}, nil); err != nil {
		d.log.Warn("plugin failed to delete network", "network", nw.Name, "err", err)
	}
	return nil
}

// Join creates the endpoint in the plugin and joins it, moves the
// interface the plugin made into the sandbox as ep.IfName with the
// endpoint's MAC and addresses, and asks the plugin to connect it to the
// world. Anything failing undoes what was done, in the plugin and in the
// kernel.
func (d *Driver) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (info driver.JoinInfo, err error) {
	ports := portOptions(ep)
	mac, err := d.createEndpoint(nw, ep, ports)
	if err != nil {
		return driver.JoinInfo{}, err
	}
	var done progress
	defer func() {
		if err != nil {
			err = errors.Join(err, d.undoJoin(nw, ep, ns, done))
			info = driver.JoinInfo{}
		}
	}()
	var ans joinAnswer
	req := joinRequest{NetworkID: nw.ID, EndpointID: ep.ID, SandboxKey: ns.Path(), Options: map[string]any{}}
	if err := d.call("Join", req, &ans); err != nil {
		return driver.JoinInfo{}, err
	}
	done.joined = true
	if ans.InterfaceName == nil || ans.InterfaceName.SrcName == "" {
		return driver.JoinInfo{}, fmt.Errorf("plugin %s joined endpoint %s without an interface", d.name, ep.ID)
	}
	src := ans.InterfaceName.SrcName
	if info, err = joinInfoOf(ans); err != nil {
		return driver.JoinInfo{}, fmt.Errorf("join answer of plugin %s: %w", d.name, err)
	}
	done.src = src
	if info.MAC, err = d.host.moveIn(src, ns, ep.IfName, mac, aliasOf(info)); err != nil {
		return info, err
	}
	if info.Index, err = ns.Configure(netdev.Interface{Name: ep.IfName, Addrs: ep.Addrs()}); err != nil {
		return info, err
	}
	req2 := connectivityRequest{NetworkID: nw.ID, EndpointID: ep.ID, Options: ports}
	if err := d.call("ProgramExternalConnectivity", req2, nil); err != nil && !errdefs.IsNotImplemented(err) {
		return info, err
	}
	d.mu.Lock()
	d.joined[ep.ID] = joined{src: src, info: info}
	d.mu.Unlock()
	return info, nil
}

// createEndpoint sends CreateEndpoint with the endpoint's addresses and
// MAC, if it has one, and returns the MAC the interface is to have: the
// endpoint's, else the one the plugin answered with, else none (the
// interface keeps the plugin's). As Docker, a plugin that answers with an
// address or MAC of its own after being given one fails the join; so does
// one that gives addresses berth did not allocate, which berth could not
// record.
func (d *Driver) createEndpoint(nw *driver.Network, ep *driver.Endpoint, ports map[string]any) (net.HardwareAddr, error) {
	ifc := &endpointInterface{}
	if ep.IPv4.IsValid() {
		ifc.Address = ep.IPv4.String()
	}
	if ep.IPv6.IsValid() {
		ifc.AddressIPv6 = ep.IPv6.String()
	}
	if ep.MAC != nil {
		ifc.MacAddress = ep.MAC.String()
	}
	var ans createEndpointAnswer
	req := createEndpointRequest{NetworkID: nw.ID, EndpointID: ep.ID, Interface: ifc, Options: ports}
	if err := d.call("CreateEndpoint", req, &ans); err != nil {
		return nil, err
	}
	mac := ep.MAC
	var bad error
	if got := ans.Interface; got != nil {
		switch {
		case got.MacAddress != "" && ifc.MacAddress == "":
			if mac, bad = net.ParseMAC(got.MacAddress); bad != nil {
				bad = fmt.Errorf("plugin %s answered endpoint %s with a MAC address that is none: %w", d.name, ep.ID, bad)
			}
		case got.MacAddress != "" && ifc.MacAddress != "" && !strings.EqualFold(got.MacAddress, ifc.MacAddress):
			bad = fmt.Errorf("plugin %s modified the interface MAC address of endpoint %s", d.name, ep.ID)
		case got.Address != "" && got.Address != ifc.Address, got.AddressIPv6 != "" && got.AddressIPv6 != ifc.AddressIPv6:
			bad = fmt.Errorf("plugin %s modified the interface address of endpoint %s: berth's IPAM gives endpoints their addresses", d.name, ep.ID)
		}
	}
	if bad != nil {
		if err := d.call("DeleteEndpoint", endpointRequest{NetworkID: nw.ID, EndpointID: ep.ID}, nil); err != nil {
			return nil, errors.Join(bad, fmt.Errorf("roll back: %w", err))
		}
		return nil, bad
	}
	return mac, nil
}

// progress is how far a join got past creating the endpoint.
type progress struct {
	joined bool
	// src is the plugin's interface, on its way into the sandbox.
	src string
}

// undoJoin undoes what a join that failed did, last first.
func (d *Driver) undoJoin(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace, done progress) error {
	var errs []error
	if done.src != "" {
		// The interface may have stopped anywhere between the host and
		// its final name in the sandbox.
		err := d.host.giveBack(ns, ep.IfName, done.src)
		if err == nil && done.src != ep.IfName {
			err = d.host.giveBack(ns, done.src, done.src)
		}
		errs = append(errs, err)
	}
	req := endpointRequest{NetworkID: nw.ID, EndpointID: ep.ID}
	if done.joined {
		errs = append(errs, d.call("Leave", req, nil))
	}
	errs = append(errs, d.call("DeleteEndpoint", req, nil))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	return nil
}

// joinInfoOf reads the gateways and static routes of a join's answer.
func joinInfoOf(ans joinAnswer) (driver.JoinInfo, error) {
	var info driver.JoinInfo
	var err error
	if ans.Gateway != "" {
		if info.Gateway4, err = netip.ParseAddr(ans.Gateway); err != nil || !info.Gateway4.Is4() {
			return info, fmt.Errorf("bad Gateway %q", ans.Gateway)
		}
	}
	if ans.GatewayIPv6 != "" {
		if info.Gateway6, err = netip.ParseAddr(ans.GatewayIPv6); err != nil || !info.Gateway6.Is6() {
			return info, fmt.Errorf("bad GatewayIPv6 %q", ans.GatewayIPv6)
		}
	}
	for _, r := range ans.StaticRoutes {
		dst, err := netip.ParsePrefix(r.Destination)
		if err != nil {
			return info, fmt.Errorf("bad route destination %q", r.Destination)
		}
		route := driver.Route{Dst: dst.Masked()}
		switch {
		case r.RouteType == routeConnected:
		case r.RouteType == routeNextHop && r.NextHop != "":
			if route.Via, err = netip.ParseAddr(r.NextHop); err != nil {
				return info, fmt.Errorf("bad route next hop %q", r.NextHop)
			}
		default:
			return info, fmt.Errorf("bad route to %s: type %d with next hop %q", r.Destination, r.RouteType, r.NextHop)
		}
		info.Routes = append(info.Routes, route)
	}
	return info, nil
}

// portOptions are the endpoint's published and exposed ports as Docker
// gives them to a plugin.
func portOptions(ep *driver.Endpoint) map[string]any {
	opts := map[string]any{}
	if len(ep.Ports) == 0 {
		return opts
	}
	var bindings []portBinding
	var exposed []transportPort
	for _, p := range ep.Ports {
		b := portBinding{Proto: protoNumber(p.Proto), Port: p.Port, HostIP: "0.0.0.0", HostPort: p.HostPort, HostPortEnd: p.HostPort}
		if p.HostIP.IsValid() {
			b.HostIP = p.HostIP.String()
		}
		if ep.IPv4.IsValid() {
			b.IP = ep.IPv4.Addr().String()
		}
		bindings = append(bindings, b)
		tp := transportPort{Proto: b.Proto, Port: p.Port}
		if !slices.Contains(exposed, tp) {
			exposed = append(exposed, tp)
		}
	}
	opts[optionPortMap] = bindings
	opts[optionExposedPorts] = exposed
	return opts
}

func protoNumber(proto string) uint8 {
	switch proto {
	case "udp":
		return 17
	case "sctp":
		return 132
	}
	return 6
}

// Leave withdraws the endpoint's connectivity, gives its interface back
// to the host (or deletes it; nothing is left in the sandbox), then tells
// the plugin the endpoint left and is deleted. As Docker, the plugin's
// errors are logged, not returned: the endpoint goes all the same.
func (d *Driver) Leave(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) error {
	req := endpointRequest{NetworkID: nw.ID, EndpointID: ep.ID}
	if err := d.call("RevokeExternalConnectivity", req, nil); err != nil && !errdefs.IsNotImplemented(err) {
		d.log.Warn("plugin failed to revoke external connectivity", "endpoint", ep.ID, "err", err)
	}
	d.mu.Lock()
	j := d.joined[ep.ID]
	d.mu.Unlock()
	var kernelErr error
	if ns != nil {
		kernelErr = d.host.giveBack(ns, ep.IfName, j.src)
	}
	d.forget(nw, ep)
	d.mu.Lock()
	delete(d.joined, ep.ID)
	d.mu.Unlock()
	return kernelErr
}

// forget tells the plugin the endpoint left and is deleted.
func (d *Driver) forget(nw *driver.Network, ep *driver.Endpoint) {
	req := endpointRequest{NetworkID: nw.ID, EndpointID: ep.ID}
	if err := d.call("Leave", req, nil); err != nil {
		d.log.Warn("plugin failed to leave", "endpoint", ep.ID, "err", err)
	}
	if err := d.call("DeleteEndpoint", req, nil); err != nil {
		d.log.Warn("plugin failed to delete endpoint", "endpoint", ep.ID, "err", err)
	}
}

// Restore tells whether the endpoint's interface is in the sandbox, up
// and addressed. An endpoint that is not is cleared, in the sandbox and in
// the plugin, for the controller to join it afresh. What the join gave
// comes from memory, else from the interface's alias, else (a daemon
// restarted after someone changed the alias) from the network's subnets.
func (d *Driver) Restore(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, bool, error) {
	if ns == nil {
		return driver.JoinInfo{}, false, nil
	}
	ok, err := ns.HasInterface(netdev.Interface{Name: ep.IfName, Addrs: ep.Addrs()})
	if err != nil {
		return driver.JoinInfo{}, false, err
	}
	d.mu.Lock()
	j, known := d.joined[ep.ID]
	d.mu.Unlock()
	info := j.info
	if !known {
		var fromAlias bool
		if info, fromAlias = infoOfAlias(alias(ns, ep.IfName)); !fromAlias {
			info = driver.Gateways(nw, ep)
		}
	}
	if ok {
		// The interface keeps the MAC recorded at its join.
		info.MAC = ep.MAC
		return info, true, nil
	}
	if err := d.host.giveBack(ns, ep.IfName, j.src); err != nil {
		return driver.JoinInfo{}, false, err
	}
	d.forget(nw, ep)
	d.mu.Lock()
	delete(d.joined, ep.ID)
	d.mu.Unlock()
	return driver.JoinInfo{}, false, nil
}
