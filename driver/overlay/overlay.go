package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/bridge"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
)

// Docker's option keys.
const (
	OptionMTU = bridge.OptionMTU
	// OptionVNIs is Docker's list of VXLAN IDs, one per subnet; berth's
	// networks have one for all their subnets. Inspect shows it.
	OptionVNIs = "com.docker.network.driver.overlay.vxlanid_list"
	// OptionEncrypted asks for IPsec between the hosts.
	OptionEncrypted = "encrypted"
	optionPrefix    = "com.docker.network.driver.overlay."
)

// VXLAN IDs: berth picks the lowest free one from FirstVNI up, where
// Docker swarm starts; users may give any from 1 to MaxVNI.
const (
	FirstVNI = 4096
	MaxVNI   = 1<<24 - 1
)

// maxMTU is the largest MTU of a VXLAN device on no particular underlay
// device: the largest IP packet less the tunnel's headers.
const maxMTU = 65535 - netdev.VxlanOverhead

// State is what the driver remembers of a network; every host has the
// same.
type State struct {
	VNI    int
	Bridge string
	Vxlan  string
}

// The controller finds the driver's peer methods by a type assertion, which
// would fail silently were one missing.
var _ driver.Peers = (*Driver)(nil)

// Driver is the overlay driver of one host.
type Driver struct {
	host   *netdev.Host
	reaper *reap.Reaper
	// advertise is the host's underlay address (--cluster-advertise): the
	// tunnels' source, where other hosts send this host's frames.
	advertise netip.Addr
	bridges   *bridge.Bridges

	mu       sync.Mutex
	networks map[string]*network // by network ID
}

// network is what the driver knows of a network in memory: its devices
// and the endpoints other hosts have on it. Its lock orders the requests
// of one network; networks do not wait for each other.
type network struct {
	mu      sync.Mutex
	created bool
	bridge  int // ifindex
	vxlan   int // ifindex
	mtu     int

	peers map[string]driver.Peer // by endpoint ID
	// hosts counts the peers per remote host: a host gets broadcast and
	// unknown frames while it has one.
	hosts map[netip.Addr]int
	// macs and addrs tell which peer the kernel's entry of a MAC or an
	// address is for: a peer that goes must not take the entries of
	// another that came with the same MAC or address.
	macs  map[string]string
	addrs map[netip.Addr]string
}

// New returns the overlay driver of host, whose underlay address is
// advertise.
func New(host *netdev.Host, reaper *reap.Reaper, advertise netip.Addr) *Driver {
	return &Driver{host: host, reaper: reaper, advertise: advertise, bridges: bridge.NewBridges(host, reaper), networks: map[string]*network{}}
}

func (d *Driver) Name() string { return "overlay" }

func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeGlobal, Addresses: true, Sharing: driver.Shares}
}

func (d *Driver) ValidateOptions(opts map[string]string) error {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := opts[k]
		switch {
		case k == OptionMTU:
			if n, err := strconv.Atoi(v); err != nil || n < 68 || n > maxMTU {
				return invalid("invalid value %q for %s: must be a number from 68 to %d", v, k, maxMTU)
			}
		case k == OptionVNIs:
			if _, err := parseVNIs(v); err != nil {
				return err
			}
		case k == OptionEncrypted:
			return errdefs.ErrNotImplemented.WithMessage(
				"encrypted overlay networks are not supported: they need IPsec between the hosts, which berth does not offer")
		case strings.HasPrefix(k, optionPrefix):
			return invalid("unknown option %s: the overlay driver knows %s and %s", k, OptionVNIs, OptionMTU)
		}
	}
	return nil
}

func invalid(format string, a ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, a...))
}

// parseVNIs reads OptionVNIs, which must hold one VXLAN ID.
func parseVNIs(v string) (int, error) {
	list := strings.Split(v, ",")
	if len(list) != 1 {
		return 0, invalid("invalid value %q for %s: one VXLAN ID, not %d: berth gives all the subnets of an overlay network one VXLAN ID",
			v, OptionVNIs, len(list))
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > MaxVNI {
		return 0, invalid("invalid value %q for %s: must be a VXLAN ID from 1 to %d", v, OptionVNIs, MaxVNI)
	}
	return n, nil
}

func stateOf(nw *driver.Network) (State, error) {
	var st State
	if err := json.Unmarshal(nw.State, &st); err != nil {
		return st, fmt.Errorf("network %s: bad overlay state: %w", nw.Name, err)
	}
	return st, nil
}

// Prepare gives the network its VXLAN ID: the one the options ask for, or
// the lowest free from FirstVNI up.
func (d *Driver) Prepare(nw *driver.Network, existing []*driver.Network) (json.RawMessage, error) {
	taken := map[int]*driver.Network{}
	for _, other := range existing {
		if other.State == nil || other.ID == nw.ID {
			continue
		}
		st, err := stateOf(other)
		if err != nil {
			return nil, err
		}
		taken[st.VNI] = other
	}
	st := State{Bridge: "ov-" + nw.ID[:12], Vxlan: "vx-" + nw.ID[:12]}
	if v, ok := nw.Options[OptionVNIs]; ok {
		vni, err := parseVNIs(v)
		if err != nil {
			return nil, err
		}
		if other, ok := taken[vni]; ok {
			return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("VXLAN ID %d is taken by network %s (%s)", vni, other.Name, other.ID))
		}
		st.VNI = vni
	} else {
		for vni := FirstVNI; vni <= MaxVNI && st.VNI == 0; vni++ {
			if _, ok := taken[vni]; !ok {
				st.VNI = vni
			}
		}
		if st.VNI == 0 {
			return nil, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("no VXLAN ID from %d to %d is free", FirstVNI, MaxVNI))
		}
	}
	return json.Marshal(st)
}

// Describe puts the network under berth's firewall on its bridge, which
// masquerades the traffic each host routes out for its own containers.
func (d *Driver) Describe(nw *driver.Network) driver.NetworkInfo {
	st, err := stateOf(nw)
	if err != nil {
		return driver.NetworkInfo{}
	}
	vni := strconv.Itoa(st.VNI)
	return driver.NetworkInfo{
		Firewall: &driver.Firewall{Device: st.Bridge, Masquerade: !nw.Internal, AntiSpoof: true},
		Notes:    map[string]string{OptionVNIs: vni},
		Claims:   []string{"vni/" + vni},
	}
}

func (d *Driver) Devices(nw *driver.Network) []string {
	st, err := stateOf(nw)
	if err != nil {
		return nil
	}
	return []string{st.Bridge, st.Vxlan}
}

// entry returns the network's record in memory, made when missing.
func (d *Driver) entry(id string) *network {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[id]
	if !ok {
		n = &network{peers: map[string]driver.Peer{}, hosts: map[netip.Addr]int{}, macs: map[string]string{}, addrs: map[netip.Addr]string{}}
		d.networks[id] = n
	}
	return n
}

// CreateNetwork makes the bridge and the VXLAN device, and programs again
// the peers the network had.
func (d *Driver) CreateNetwork(nw *driver.Network) error {
	n := d.entry(nw.ID)
	n.mu.Lock()
	defer n.mu.Unlock()
	return d.create(nw, n)
}

// created returns the network's record with its devices made.
func (d *Driver) created(nw *driver.Network) (*network, error) {
	n := d.entry(nw.ID)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.created {
		return n, nil
	}
	return n, d.create(nw, n)
}

func (d *Driver) create(nw *driver.Network, n *network) error {
	st, err := stateOf(nw)
	if err != nil {
		return err
	}
	if !d.advertise.IsValid() {
		return errors.New("overlay networks need the host's underlay address (--cluster-advertise)")
	}
	mtu, err := d.mtuOf(nw)
	if err != nil {
		return err
	}
	br, err := d.bridges.Ensure(nw, st.Bridge, mtu)
	if err != nil {
		return err
	}
	spec := netdev.VxlanSpec{Name: st.Vxlan, VNI: st.VNI, Local: d.advertise, MTU: mtu, Master: br}
	vx, err := d.host.EnsureVxlan(spec)
	if errors.Is(err, netdev.ErrVNIInUse) {
		vx, err = d.takeVNI(spec)
	}
	if err != nil {
		return fmt.Errorf("network %s: %w", nw.Name, err)
	}
	n.created, n.bridge, n.vxlan, n.mtu = true, br, vx, mtu
	for _, p := range n.peers {
		if err := d.program(n, p); err != nil {
			return err
		}
	}
	return nil
}

// takeVNI makes the VXLAN device when another device holds its VXLAN ID.
// One that berth retired (a network deleted a moment ago) is deleted now
// rather than when the reaper gets to it; anyone else's stays, and the
// network cannot be made.
func (d *Driver) takeVNI(spec netdev.VxlanSpec) (int, error) {
	l, ok, err := d.host.VxlanOfVNI(spec.VNI)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("VXLAN ID %d is in use on this host", spec.VNI)
	}
	if l.Group != d.host.Retired {
		return 0, fmt.Errorf("VXLAN ID %d is used by device %s on this host", spec.VNI, l.Name)
	}
	if err := d.host.DeleteIndex(l.Index); err != nil {
		return 0, err
	}
	return d.host.EnsureVxlan(spec)
}

// mtuOf is the network's MTU: the option's, or the underlay's less what
// the tunnel adds.
func (d *Driver) mtuOf(nw *driver.Network) (int, error) {
	if n, err := strconv.Atoi(nw.Options[OptionMTU]); err == nil {
		return n, nil
	}
	mtu, err := d.host.MTUOfAddr(d.advertise)
	if err != nil {
		return 0, fmt.Errorf("the underlay's MTU: %w", err)
	}
	return mtu - netdev.VxlanOverhead, nil
}

// DeleteNetwork takes the VXLAN device and the bridge out of service and
// forgets the network's peers.
func (d *Driver) DeleteNetwork(nw *driver.Network) error {
	st, err := stateOf(nw)
	if err != nil {
		return err
	}
	d.mu.Lock()
	n := d.networks[nw.ID]
	delete(d.networks, nw.ID)
	d.mu.Unlock()
	if n != nil {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.created = false
	}
	if err := d.reaper.Retire(st.Vxlan); err != nil {
		return err
	}
	return d.reaper.Retire(st.Bridge)
}

// Join plugs a veth pair into the network's bridge, as on bridge networks.
func (d *Driver) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, error) {
	master, mtu, err := d.bridgeOf(nw)
	if err != nil {
		return driver.JoinInfo{}, err
	}
	return d.bridges.Join(master, mtu, nw, ep, ns)
}

func (d *Driver) bridgeOf(nw *driver.Network) (index, mtu int, err error) {
	n, err := d.created(nw)
	if err != nil {
		return 0, 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bridge, n.mtu, nil
}

func (d *Driver) Leave(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) error {
	return d.bridges.Leave(ep, ns)
}

func (d *Driver) Restore(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, bool, error) {
	master, _, err := d.bridgeOf(nw)
	if err != nil {
		return driver.Gateways(nw, ep), false, err
	}
	return d.bridges.Restore(master, nw, ep, ns)
}

// AddPeer sends frames for the peer's MAC to its host, answers ARP and
// neighbour solicitations for its addresses with its MAC, and copies
// broadcast and unknown frames to its host. The peer is kept: a
// CreateNetwork that makes the devices again programs it again.
func (d *Driver) AddPeer(nw *driver.Network, p driver.Peer) error {
	n := d.entry(nw.ID)
	n.mu.Lock()
	defer n.mu.Unlock()
	return d.add(nw, n, p)
}

func (d *Driver) add(nw *driver.Network, n *network, p driver.Peer) error {
	if old, ok := n.peers[p.EndpointID]; ok && !samePeer(old, p) {
		if err := d.forget(n, old); err != nil {
			return err
		}
	}
	if _, ok := n.peers[p.EndpointID]; !ok {
		n.peers[p.EndpointID] = p
		n.hosts[p.Host]++
	}
	if !n.created {
		return d.create(nw, n)
	}
	return d.program(n, p)
}

// SetPeers makes peers the network's only peers. Those the driver knows
// and peers lacks go as RemovePeer takes them; then every entry of the
// VXLAN device that is none of peers' goes too, for an earlier berthd may
// have made entries for peers that left while it was away, which this one
// never heard of.
func (d *Driver) SetPeers(nw *driver.Network, peers []driver.Peer) error {
	n := d.entry(nw.ID)
	n.mu.Lock()
	defer n.mu.Unlock()
	keep := map[string]driver.Peer{}
	for _, p := range peers {
		keep[p.EndpointID] = p
	}
	for id, old := range n.peers {
		if p, ok := keep[id]; !ok || !samePeer(old, p) {
			if err := d.forget(n, old); err != nil {
				return err
			}
		}
	}
	if !n.created {
		// The entries to remove are on the devices.
		if err := d.create(nw, n); err != nil {
			return err
		}
	}
	for _, p := range peers {
		if err := d.add(nw, n, p); err != nil {
			return err
		}
	}
	return d.sweep(n)
}

// sweep deletes the VXLAN device's entries of the kinds program makes that
// are of no peer the network has: a MAC forwarded to a host no peer with
// that MAC is on, an address no peer has, a host with no peer flooded to.
func (d *Driver) sweep(n *network) error {
	macs, err := d.host.RemoteMACs(n.vxlan)
	if err != nil {
		return err
	}
	flood, err := d.host.FloodRemotes(n.vxlan)
	if err != nil {
		return err
	}
	neighbours, err := d.host.Neighbours(n.vxlan)
	if err != nil {
		return err
	}
	type remoteMAC struct {
		mac  string
		host netip.Addr
	}
	ours := map[remoteMAC]bool{}
	addrs := map[netip.Addr]bool{}
	for _, p := range n.peers {
		ours[remoteMAC{p.MAC.String(), p.Host}] = true
		for _, a := range peerAddrs(p) {
			addrs[a] = true
		}
	}
	var errs []error
	for _, e := range macs {
		if !ours[remoteMAC{e.MAC.String(), e.Remote}] {
			errs = append(errs, d.host.DeleteRemoteMAC(n.vxlan, e.MAC, e.Remote))
		}
	}
	for _, e := range neighbours {
		if !addrs[e.Addr] {
			errs = append(errs, d.host.DeleteNeighbour(n.vxlan, e.Addr))
		}
	}
	for _, host := range flood {
		if n.hosts[host] == 0 {
			errs = append(errs, d.host.DeleteFloodRemote(n.vxlan, host))
		}
	}
	return errors.Join(errs...)
}

func samePeer(a, b driver.Peer) bool {
	return a.Host == b.Host && a.MAC.String() == b.MAC.String() && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6
}

// program writes the kernel's entries of a peer; the newest peer of a MAC
// or an address has them.
func (d *Driver) program(n *network, p driver.Peer) error {
	if err := d.host.SetRemoteMAC(n.vxlan, p.MAC, p.Host); err != nil {
		return err
	}
	n.macs[p.MAC.String()] = p.EndpointID
	for _, a := range peerAddrs(p) {
		if err := d.host.SetNeighbour(n.vxlan, a, p.MAC); err != nil {
			return err
		}
		n.addrs[a] = p.EndpointID
	}
	return d.host.AddFloodRemote(n.vxlan, p.Host)
}

func peerAddrs(p driver.Peer) []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Prefix{p.IPv4, p.IPv6} {
		if a.IsValid() {
			out = append(out, a.Addr())
		}
	}
	return out
}

// RemovePeer undoes AddPeer. A peer the driver does not know (added before
// berthd restarted) has its entries removed all the same, unless another
// peer has them now.
func (d *Driver) RemovePeer(nw *driver.Network, p driver.Peer) error {
	n := d.entry(nw.ID)
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.peers[p.EndpointID]; ok {
		p = old
	}
	var err error
	if !n.created {
		// The entries to remove are on the devices.
		err = d.create(nw, n)
	}
	return errors.Join(err, d.forget(n, p))
}

// forget drops a peer, and, when the devices exist, the kernel's entries
// that are still its own.
func (d *Driver) forget(n *network, p driver.Peer) error {
	if _, ok := n.peers[p.EndpointID]; ok {
		delete(n.peers, p.EndpointID)
		if n.hosts[p.Host]--; n.hosts[p.Host] <= 0 {
			delete(n.hosts, p.Host)
		}
	}
	mac := p.MAC.String()
	ownMAC := n.macs[mac] == "" || n.macs[mac] == p.EndpointID
	if ownMAC {
		delete(n.macs, mac)
	}
	var ownAddrs []netip.Addr
	for _, a := range peerAddrs(p) {
		if n.addrs[a] == "" || n.addrs[a] == p.EndpointID {
			delete(n.addrs, a)
			ownAddrs = append(ownAddrs, a)
		}
	}
	if !n.created {
		return nil
	}
	var err error
	if ownMAC {
		err = d.host.DeleteRemoteMAC(n.vxlan, p.MAC, p.Host)
	}
	for _, a := range ownAddrs {
		if err == nil {
			err = d.host.DeleteNeighbour(n.vxlan, a)
		}
	}
	if err == nil && n.hosts[p.Host] == 0 {
		err = d.host.DeleteFloodRemote(n.vxlan, p.Host)
	}
	return err
}
