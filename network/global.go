package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/resolver"
)

// Global networks (drivers of scope global: overlay) live in the cluster
// store that the hosts share, not in the local store. Every host follows
// the store through a watch-fed cache and keeps each global network in
// memory like a local one; request paths read memory and write the
// cluster store only in their own transaction.
//
// Keys, under the cluster store's prefix:
//
//	networks/<id>                 the network's record (JSON)
//	names/networks/<name>         <id>: names are unique in the cluster
//	subnets/<prefix>              <id>: so are subnets
//	<driver claims>               <id>: the driver's own (vni/<n>)
//	endpoints/<network>/<id>      an endpoint (JSON), under its host's lease
//	addresses/<network>/<addr>    <endpoint id>, under its host's lease
//
// A host that dies loses its endpoints and addresses when its lease
// expires; its networks stay.
const (
	keyNetworks  = "networks/"
	keyNames     = "names/networks/"
	keySubnets   = "subnets/"
	keyEndpoints = "endpoints/"
	keyAddresses = "addresses/"
)

// scopeSwarm is how Docker shows the scope of networks that span hosts.
const scopeSwarm = "swarm"

// globalPool is where global networks' subnets come from by default, as
// in Docker's swarm: 10.0.0.0/8 in /24s.
var globalPool = ipam.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 24}

// claimAttempts bounds how often a create or a join tries again after
// another host took what it chose. Every round of a race has a winner, so
// this many creates (or joins) racing for the same lowest free subnet (or
// address) all get through.
const claimAttempts = 32

// clusterWait bounds how long a request waits for the cache to show what
// another host took.
const clusterWait = 2 * time.Second

// globalEndpoint is an endpoint of a global network as the cluster store
// holds it: what other hosts need to reach it and to name it.
type globalEndpoint struct {
	ID      string
	Network string
	Sandbox string
	Host    string
	// VTEP is the host's underlay address.
	VTEP  netip.Addr
	MAC   string
	IPv4  netip.Prefix `json:",omitzero"`
	IPv6  netip.Prefix `json:",omitzero"`
	Names []string     `json:",omitempty"`
}

func (g *globalEndpoint) peer() driver.Peer {
	mac, _ := net.ParseMAC(g.MAC)
	return driver.Peer{EndpointID: g.ID, Host: g.VTEP, MAC: mac, IPv4: g.IPv4, IPv6: g.IPv6}
}

func (g *globalEndpoint) addrs() []netip.Addr {
	var out []netip.Addr
	for _, p := range []netip.Prefix{g.IPv4, g.IPv6} {
		if p.IsValid() {
			out = append(out, p.Addr())
		}
	}
	return out
}

// errNoClusterStore is the answer to a global network's create on a host
// that is in no cluster.
func errNoClusterStore(drv string) error {
	return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf(
		"%s networks span hosts and need a cluster store: start berthd with --cluster-store embedded (or etcd://IP:PORT) and --cluster-advertise IP", drv))
}

// errClaimRace: another host took what this one chose, and the cache now
// shows it; choosing again will pick something else.
var errClaimRace = errors.New("another host took it first")

// global is what the controller keeps of the cluster store.
type global struct {
	store *cluster.Store
	cache *cluster.Cache
	host  string
	vtep  netip.Addr
	space *ipam.Space
	stop  context.CancelFunc
	done  chan struct{}

	mu sync.Mutex
	// applied closes after each batch of changes the follower applied.
	applied chan struct{}
	// creating are networks this host is creating: the follower leaves
	// them to the create.
	creating map[string]bool
	// orphans are other hosts' endpoints of networks not known yet.
	orphans map[string]*globalEndpoint
	// nodes are the hosts of the cluster, for the drivers that follow them.
	nodes *nodes
}

// startGlobal loads the cluster's state; the follower starts after load.
func (c *Controller) startGlobal(st *cluster.Store) ([]cluster.KV, *cluster.Subscription, error) {
	space, err := ipam.NewSpace([]ipam.PoolSpec{globalPool})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &global{
		store: st, host: st.HostID(), vtep: st.Advertise(), space: space, stop: cancel, done: make(chan struct{}),
		applied: make(chan struct{}), creating: map[string]bool{}, orphans: map[string]*globalEndpoint{},
		nodes: newNodes(),
	}
	g.cache = st.Watch(ctx, "")
	select {
	case <-g.cache.Ready():
	case <-time.After(30 * time.Second):
		cancel()
		return nil, nil, fmt.Errorf("cluster store: no state within 30 s")
	}
	c.global = g
	go c.tellNodes(ctx)
	snap, sub := g.cache.Subscribe(4096)
	return snap, sub, nil
}

// globalNetworks are the networks of a snapshot.
func globalNetworks(snap []cluster.KV) (nets []Network, raw map[string]string) {
	raw = map[string]string{}
	for _, kv := range snap {
		if !strings.HasPrefix(kv.Key, keyNetworks) {
			continue
		}
		var rec Network
		if err := json.Unmarshal([]byte(kv.Value), &rec); err != nil {
			continue
		}
		nets = append(nets, rec)
		raw[rec.ID] = kv.Value
	}
	return nets, raw
}

// restoreGlobal, after load, takes this host's endpoints back under its
// new lease, forgets those of its own the local store does not have (a
// crash between the two writes), learns the other hosts' and follows the
// store from then on.
func (c *Controller) restoreGlobal(snap []cluster.KV, sub *cluster.Subscription) {
	g := c.global
	ctx := context.Background()
	for _, kv := range snap {
		if !strings.HasPrefix(kv.Key, keyEndpoints) {
			continue
		}
		ge := decodeEndpoint(kv.Value)
		if ge == nil || ge.Host != g.host {
			continue
		}
		if ep := c.localEndpoint(ge.Network, ge.ID); ep == nil {
			c.log.Info("releasing an endpoint the cluster store had and this host did not", "endpoint", ge.ID)
			kvs := []cluster.KV{{Key: kv.Key, Value: kv.Value}}
			for _, a := range ge.addrs() {
				kvs = append(kvs, cluster.KV{Key: addressKey(ge.Network, a), Value: ge.ID})
			}
			c.releaseKVs(kvs)
		}
	}
	for _, nw := range c.networks {
		if !nw.global {
			continue
		}
		for _, ep := range nw.endpoints {
			sb := c.sandboxes[ep.rec.SandboxID]
			ep.globalKVs = c.endpointKVs(sb, ep)
			for _, kv := range ep.globalKVs {
				if holder, won, err := g.store.Claim(ctx, kv.Key, kv.Value, true); err != nil || !won {
					c.log.Error("take back an endpoint's record in the cluster store", "endpoint", ep.rec.ID, "key", kv.Key, "holder", holder, "err", err)
				}
			}
		}
	}
	// The drivers hear of the peers once, from settlePeers.
	c.applyChanges(snapshotChanges(snap), false)
	c.settlePeers()
	go c.follow(sub)
}

// settlePeers tells each global network's driver its whole set of peers,
// so that what the kernel kept of peers that left while this host did not
// follow the store goes.
func (c *Controller) settlePeers() {
	c.mu.RLock()
	var nets []*netState
	for _, nw := range c.networks {
		if nw.global {
			nets = append(nets, nw)
		}
	}
	c.mu.RUnlock()
	for _, nw := range nets {
		pd, ok := nw.drv.(driver.Peers)
		if !ok {
			continue
		}
		nw.mu.Lock()
		peers := make([]driver.Peer, 0, len(nw.remote))
		for _, ge := range nw.remote {
			peers = append(peers, ge.peer())
		}
		nw.mu.Unlock()
		if err := pd.SetPeers(nw.dn, peers); err != nil {
			c.log.Warn("settle another host's endpoints", "network", nw.rec.Name, "err", err)
		}
	}
}

func snapshotChanges(snap []cluster.KV) []cluster.Change {
	out := make([]cluster.Change, 0, len(snap))
	for _, kv := range snap {
		out = append(out, cluster.Change{Key: kv.Key, Value: kv.Value})
	}
	return out
}

func decodeEndpoint(v string) *globalEndpoint {
	var ge globalEndpoint
	if err := json.Unmarshal([]byte(v), &ge); err != nil || ge.ID == "" || ge.Network == "" {
		return nil
	}
	return &ge
}

func (c *Controller) localEndpoint(networkID, id string) *epState {
	c.mu.RLock()
	nw := c.networks[networkID]
	c.mu.RUnlock()
	if nw == nil {
		return nil
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.endpoints[id]
}

// follow applies the cluster store's changes until the controller closes.
// A subscription that fell behind is taken again from a snapshot.
func (c *Controller) follow(sub *cluster.Subscription) {
	g := c.global
	defer close(g.done)
	for {
		ch, ok := <-sub.Changes()
		if ok {
			batch := []cluster.Change{ch}
		drain:
			for len(batch) < 256 {
				select {
				case ch, ok = <-sub.Changes():
					if !ok {
						break drain
					}
					batch = append(batch, ch)
				default:
					break drain
				}
			}
			c.applyChanges(batch, true)
			if ok {
				continue
			}
		}
		if !errors.Is(sub.Err(), cluster.ErrLagged) {
			return
		}
		c.log.Warn("cluster store follower fell behind; taking a snapshot")
		var snap []cluster.KV
		snap, sub = g.cache.Subscribe(4096)
		c.resync(snap)
	}
}

// resync makes memory match a snapshot: what is not in it goes.
func (c *Controller) resync(snap []cluster.KV) {
	have := map[string]bool{}
	for _, kv := range snap {
		have[kv.Key] = true
	}
	var gone []cluster.Change
	c.mu.RLock()
	for _, nw := range c.networks {
		if !nw.global {
			continue
		}
		if !have[keyNetworks+nw.rec.ID] {
			gone = append(gone, cluster.Change{Key: keyNetworks + nw.rec.ID, Deleted: true})
		}
		nw.mu.Lock()
		for id := range nw.remote {
			if !have[endpointKey(nw.rec.ID, id)] {
				gone = append(gone, cluster.Change{Key: endpointKey(nw.rec.ID, id), Deleted: true})
			}
		}
		nw.mu.Unlock()
	}
	c.mu.RUnlock()
	g := c.global
	g.nodes.mu.Lock()
	for id := range g.nodes.hosts {
		if !have[cluster.HostsPrefix+id] {
			gone = append(gone, cluster.Change{Key: cluster.HostsPrefix + id, Deleted: true})
		}
	}
	g.nodes.mu.Unlock()
	c.applyChanges(append(gone, snapshotChanges(snap)...), false)
	c.settlePeers()
}

// applyChanges brings memory, the resolver and, when tell, the drivers'
// peers to what the changes say, then wakes requests waiting for them.
// Without tell the caller settles the peers afterwards, in one call per
// network.
func (c *Controller) applyChanges(batch []cluster.Change, tell bool) {
	g := c.global
	for _, ch := range batch {
		switch {
		case strings.HasPrefix(ch.Key, keyNetworks):
			id := strings.TrimPrefix(ch.Key, keyNetworks)
			if ch.Deleted {
				c.dropGlobalNetwork(id)
			} else {
				c.addGlobalNetwork(id, ch.Value)
			}
		case strings.HasPrefix(ch.Key, cluster.HostsPrefix):
			c.hostChanged(ch)
		case strings.HasPrefix(ch.Key, keyEndpoints):
			netID, epID, _ := strings.Cut(strings.TrimPrefix(ch.Key, keyEndpoints), "/")
			if ch.Deleted {
				c.dropRemote(netID, epID, tell)
			} else if ge := decodeEndpoint(ch.Value); ge != nil && ge.Host != g.host {
				c.addRemote(ge, tell)
			}
		}
	}
	g.mu.Lock()
	close(g.applied)
	g.applied = make(chan struct{})
	g.mu.Unlock()
}

// waitApplied waits, at most clusterWait, until cond holds after a batch
// of changes.
func (c *Controller) waitApplied(cond func() bool) bool {
	deadline := time.NewTimer(clusterWait)
	defer deadline.Stop()
	for {
		c.global.mu.Lock()
		applied := c.global.applied
		c.global.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-applied:
		case <-deadline.C:
			return cond()
		}
	}
}

// addGlobalNetwork makes a network another host created exist here.
func (c *Controller) addGlobalNetwork(id, value string) {
	g := c.global
	c.mu.RLock()
	_, known := c.networks[id]
	c.mu.RUnlock()
	g.mu.Lock()
	creating := g.creating[id]
	g.mu.Unlock()
	if known || creating {
		return
	}
	var rec Network
	if err := json.Unmarshal([]byte(value), &rec); err != nil {
		c.log.Error("unreadable network in the cluster store", "id", id, "err", err)
		return
	}
	drv, plugin, err := c.driversOf(&rec)
	if err != nil {
		c.log.Error("network left alone", "network", rec.Name, "err", err)
		return
	}
	nw, err := newNetState(rec, drv, plugin)
	if err != nil {
		c.log.Error("network in the cluster store", "network", rec.Name, "err", err)
		return
	}
	nw.globalValue = value
	if err := drv.CreateNetwork(nw.dn); err != nil {
		c.log.Error("create network from the cluster store", "network", rec.Name, "err", err)
	} else if err := c.addToFirewall(nw); err != nil {
		c.log.Error("firewall of a network from the cluster store", "network", rec.Name, "err", err)
	}
	c.mu.Lock()
	c.networks[id] = nw
	if owner, taken := c.netNames[rec.Name]; taken && owner != "" {
		c.log.Warn("a network of the cluster has the name of a local one: reach it by ID", "network", rec.Name, "id", id)
	} else {
		c.netNames[rec.Name] = id
	}
	c.mu.Unlock()
	c.log.Info("network joined from the cluster store", "name", rec.Name, "id", id, "driver", rec.Driver)
	g.mu.Lock()
	var adopt []*globalEndpoint
	for key, ge := range g.orphans {
		if ge.Network == id {
			adopt = append(adopt, ge)
			delete(g.orphans, key)
		}
	}
	g.mu.Unlock()
	for _, ge := range adopt {
		c.addRemote(ge, true)
	}
}

// dropGlobalNetwork takes away a network another host removed.
func (c *Controller) dropGlobalNetwork(id string) {
	c.mu.RLock()
	nw := c.networks[id]
	c.mu.RUnlock()
	if nw == nil || !nw.global {
		return
	}
	nw.mu.Lock()
	if nw.removing {
		nw.mu.Unlock()
		return
	}
	nw.removing = true
	local := len(nw.endpoints)
	nw.mu.Unlock()
	if local > 0 {
		// The cluster refuses such removals; a host that had endpoints
		// while its lease was lost keeps them working until they go.
		c.log.Error("network removed from the cluster store while this host has endpoints on it", "network", nw.rec.Name, "endpoints", local)
	}
	c.takeDown(nw)
}

// takeDown removes a global network's kernel state and memory.
func (c *Controller) takeDown(nw *netState) {
	if fn, ok := firewallNetwork(nw); ok {
		if err := c.applyFirewall(firewall.Change{RemoveNetworks: []firewall.Network{fn}}); err != nil {
			c.log.Warn("remove network from the firewall", "network", nw.rec.Name, "err", err)
		}
	}
	if err := nw.drv.DeleteNetwork(nw.dn); err != nil {
		c.log.Warn("remove network", "network", nw.rec.Name, "err", err)
	}
	nw.mu.Lock()
	remote := nw.remote
	nw.remote = map[string]*globalEndpoint{}
	nw.mu.Unlock()
	for _, ge := range remote {
		c.withdrawRemoteNames(nw, ge)
	}
	c.mu.Lock()
	delete(c.networks, nw.rec.ID)
	if c.netNames[nw.rec.Name] == nw.rec.ID {
		delete(c.netNames, nw.rec.Name)
	}
	c.mu.Unlock()
	c.log.Info("network removed", "name", nw.rec.Name, "id", nw.rec.ID)
}

// addRemote makes another host's endpoint reachable and named here.
func (c *Controller) addRemote(ge *globalEndpoint, tell bool) {
	c.mu.RLock()
	nw := c.networks[ge.Network]
	c.mu.RUnlock()
	if nw == nil {
		c.global.mu.Lock()
		c.global.orphans[endpointKey(ge.Network, ge.ID)] = ge
		c.global.mu.Unlock()
		return
	}
	nw.mu.Lock()
	if nw.removing {
		nw.mu.Unlock()
		return
	}
	if old, ok := nw.remote[ge.ID]; ok {
		nw.releaseRemote(old)
	}
	for _, a := range ge.addrs() {
		for _, p := range nw.pools {
			if nw.ipam == nil && p.cfg.Subnet.Masked().Contains(a) {
				// Taken here already means this host chose it in a race
				// it lost; the join that chose it gives it up.
				p.alloc.Reserve(a)
			}
		}
		nw.remoteAddrs[a] = ge.ID
	}
	nw.remote[ge.ID] = ge
	nw.mu.Unlock()
	if pd, ok := nw.drv.(driver.Peers); ok && tell {
		if err := pd.AddPeer(nw.dn, ge.peer()); err != nil {
			c.log.Warn("reach another host's endpoint", "network", nw.rec.Name, "endpoint", ge.ID, "host", ge.VTEP, "err", err)
		}
	}
	if c.dns != nil && len(ge.Names) > 0 {
		rec := resolver.Record{Network: nw.rec.Name, NetworkID: nw.rec.ID, Container: ge.Sandbox, Names: ge.Names}
		if ge.IPv4.IsValid() {
			rec.IPv4 = ge.IPv4.Addr()
		}
		if ge.IPv6.IsValid() {
			rec.IPv6 = ge.IPv6.Addr()
		}
		c.dns.Table.Add(rec)
	}
}

// releaseRemote returns a remote endpoint's addresses. Called with nw.mu
// held.
func (nw *netState) releaseRemote(ge *globalEndpoint) {
	for _, a := range ge.addrs() {
		if nw.remoteAddrs[a] == ge.ID {
			delete(nw.remoteAddrs, a)
			nw.releaseAddr(a)
		}
	}
}

// dropRemote forgets another host's endpoint that left.
func (c *Controller) dropRemote(netID, epID string, tell bool) {
	c.global.mu.Lock()
	delete(c.global.orphans, endpointKey(netID, epID))
	c.global.mu.Unlock()
	c.mu.RLock()
	nw := c.networks[netID]
	c.mu.RUnlock()
	if nw == nil {
		return
	}
	nw.mu.Lock()
	ge, ok := nw.remote[epID]
	if ok {
		delete(nw.remote, epID)
		nw.releaseRemote(ge)
	}
	nw.mu.Unlock()
	if !ok {
		return
	}
	if pd, ok := nw.drv.(driver.Peers); ok && tell {
		if err := pd.RemovePeer(nw.dn, ge.peer()); err != nil {
			c.log.Warn("forget another host's endpoint", "network", nw.rec.Name, "endpoint", ge.ID, "err", err)
		}
	}
	c.withdrawRemoteNames(nw, ge)
}

func (c *Controller) withdrawRemoteNames(nw *netState, ge *globalEndpoint) {
	if c.dns != nil && len(ge.Names) > 0 {
		c.dns.Table.Remove(nw.rec.ID, ge.Sandbox)
	}
}

func endpointKey(netID, epID string) string { return keyEndpoints + netID + "/" + epID }

func addressKey(netID string, a netip.Addr) string { return keyAddresses + netID + "/" + a.String() }

// networkKVs are the keys a global network holds with their values.
func networkKVs(nw *netState) []cluster.KV {
	id := nw.rec.ID
	kvs := []cluster.KV{{Key: keyNames + nw.rec.Name, Value: id}}
	for _, p := range nw.rec.IPAM.Pools {
		kvs = append(kvs, cluster.KV{Key: keySubnets + p.Subnet.Masked().String(), Value: id})
	}
	for _, k := range nw.info.Claims {
		kvs = append(kvs, cluster.KV{Key: k, Value: id})
	}
	return append(kvs, cluster.KV{Key: keyNetworks + id, Value: nw.globalValue})
}

// claimNetwork records a new global network in the cluster store with
// everything it holds alone, in one transaction. When another host took
// something it chose, it waits for the cache to show that host's network
// and returns errClaimRace (or, for a name or a subnet the user gave, the
// error Docker gives for a local network).
func (c *Controller) claimNetwork(nw *netState, userSubnets bool) error {
	b, err := json.Marshal(&nw.rec)
	if err != nil {
		return err
	}
	nw.globalValue = string(b)
	taken, won, err := c.global.store.ClaimAll(context.Background(), networkKVs(nw), false)
	if err != nil {
		return fmt.Errorf("record network %s in the cluster store: %w", nw.rec.Name, err)
	}
	if won {
		return nil
	}
	var holders []string
	for _, kv := range taken {
		switch {
		case strings.HasPrefix(kv.Key, keyNames):
			return errNetworkExists(nw.rec.Name)
		case strings.HasPrefix(kv.Key, keySubnets) && userSubnets:
			// The error a local network's overlap gives.
			subnet := netip.MustParsePrefix(strings.TrimPrefix(kv.Key, keySubnets))
			return ipam.CheckPoolOverlap(subnet, []netip.Prefix{subnet})
		}
		holders = append(holders, kv.Value)
	}
	c.waitApplied(func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		for _, id := range holders {
			if _, ok := c.networks[id]; !ok {
				return false
			}
		}
		return true
	})
	return errClaimRace
}

// endpointKVs are the keys a local endpoint of a global network holds.
// Called with sb.mu held.
func (c *Controller) endpointKVs(sb *sbState, ep *epState) []cluster.KV {
	ge := globalEndpoint{
		ID: ep.rec.ID, Network: ep.nw.rec.ID, Sandbox: sb.rec.ID, Host: c.global.host, VTEP: c.global.vtep,
		MAC: ep.rec.MAC, IPv4: ep.rec.IPv4, IPv6: ep.rec.IPv6, Names: c.endpointNames(sb, ep),
	}
	b, _ := json.Marshal(&ge)
	var kvs []cluster.KV
	for _, a := range ge.addrs() {
		kvs = append(kvs, cluster.KV{Key: addressKey(ge.Network, a), Value: ge.ID})
	}
	return append(kvs, cluster.KV{Key: endpointKey(ge.Network, ge.ID), Value: string(b)})
}

// claimEndpoint records a joining endpoint of a global network, its
// addresses held alone in the cluster. When another host took an address
// this one chose, the endpoint gets the next free one (a static address
// fails as taken). Called with sb.mu held, after register.
func (c *Controller) claimEndpoint(sb *sbState, ep *epState, opts EndpointOptions) error {
	nw := ep.nw
	for attempt := 1; ; attempt++ {
		kvs := c.endpointKVs(sb, ep)
		taken, won, err := c.global.store.ClaimAll(context.Background(), kvs, true)
		if err != nil {
			return fmt.Errorf("record endpoint in the cluster store: %w", err)
		}
		if won {
			ep.globalKVs = kvs
			return nil
		}
		if opts.IPv4.IsValid() || opts.IPv6.IsValid() || attempt == claimAttempts {
			return ipam.ErrAddressInUse
		}
		var lost []netip.Addr
		for _, kv := range taken {
			if a, err := netip.ParseAddr(kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]); err == nil {
				lost = append(lost, a)
			}
		}
		c.waitApplied(func() bool {
			nw.mu.Lock()
			defer nw.mu.Unlock()
			for _, a := range lost {
				if _, ok := nw.remoteAddrs[a]; !ok {
					return false
				}
			}
			return true
		})
		// Choose again: the lost addresses are the other host's now.
		nw.mu.Lock()
		for _, a := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
			if a.IsValid() && !slices.Contains(lost, a.Addr()) {
				nw.releaseAddr(a.Addr())
			}
		}
		ep.rec.IPv4, ep.rec.IPv6 = netip.Prefix{}, netip.Prefix{}
		err = nw.allocate(ep, opts)
		nw.mu.Unlock()
		if err != nil {
			return err
		}
		if opts.MAC == "" && ep.rec.IPv4.IsValid() {
			ep.rec.MAC = netdev.MACFromIPv4(ep.rec.IPv4.Addr()).String()
		}
	}
}

// releaseEndpoint gives back what a leaving endpoint of a global network
// held in the cluster store.
func (c *Controller) releaseEndpoint(ep *epState) {
	if !ep.nw.global || len(ep.globalKVs) == 0 {
		return
	}
	c.releaseKVs(ep.globalKVs)
	ep.globalKVs = nil
}

// releaseKVs deletes keys that hold what this host put there.
func (c *Controller) releaseKVs(kvs []cluster.KV) {
	if err := c.tryRelease(kvs); err != nil {
		// The store is unreachable: try again until it answers, or the
		// records would outlive what they describe (the lease keeps them).
		c.log.Warn("release records in the cluster store; trying again in the background", "key", kvs[0].Key, "err", err)
		go c.retryRelease(kvs)
	}
}

// tryRelease deletes kvs at once if all hold their values, else one by
// one those that do.
func (c *Controller) tryRelease(kvs []cluster.KV) error {
	ctx := context.Background()
	ok, err := c.global.store.ReleaseAll(ctx, kvs, "")
	if err != nil || ok {
		return err
	}
	for _, kv := range kvs {
		if _, err := c.global.store.Release(ctx, kv.Key, kv.Value); err != nil {
			return err
		}
	}
	return nil
}

// retryRelease releases kvs once the cluster store answers again, backing
// off from 1 s to 30 s, until the controller closes.
func (c *Controller) retryRelease(kvs []cluster.KV) {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		select {
		case <-c.global.done:
			return
		case <-time.After(wait):
		}
		if c.tryRelease(kvs) == nil {
			c.log.Info("released records in the cluster store", "key", kvs[0].Key)
			return
		}
	}
}

// deleteGlobal removes a global network: from the cluster store first,
// which refuses while any host has an endpoint on it, then here; the
// other hosts follow the store.
func (c *Controller) deleteGlobal(nw *netState) error {
	nw.mu.Lock()
	if nw.removing {
		nw.mu.Unlock()
		return errNetworkNotFound(nw.rec.Name)
	}
	if len(nw.endpoints) > 0 || len(nw.remote) > 0 {
		nw.mu.Unlock()
		return errActiveEndpoints(nw.rec.Name, nw.rec.ID)
	}
	nw.removing = true
	nw.mu.Unlock()
	released, err := c.global.store.ReleaseAll(context.Background(), networkKVs(nw), keyEndpoints+nw.rec.ID+"/")
	if err != nil || !released {
		nw.mu.Lock()
		nw.removing = false
		nw.mu.Unlock()
		if err != nil {
			return fmt.Errorf("remove network %s: %w", nw.rec.Name, err)
		}
		return errActiveEndpoints(nw.rec.Name, nw.rec.ID)
	}
	c.takeDown(nw)
	c.givePoolsBack(nw)
	return nil
}

// endpointNames are the names an endpoint answers to on its network: the
// sandbox's name, its hostname and the endpoint's aliases. None for a
// sandbox without names (a bare namespace) or on a predefined network.
// Called with sb.mu held.
func (c *Controller) endpointNames(sb *sbState, ep *epState) []string {
	if c.dns == nil || sb.rec.DNS == nil || IsPredefined(ep.nw.rec.Name) {
		return nil
	}
	names := []string{sb.rec.Name}
	if h := sb.rec.DNS.Hostname; h != "" && h != sb.rec.Name {
		names = append(names, h)
	}
	return append(names, ep.rec.Aliases...)
}

// closeGlobal stops following the cluster store.
func (c *Controller) closeGlobal() {
	if c.global == nil {
		return
	}
	c.global.stop()
	c.global.cache.Close()
	select {
	case <-c.global.done:
	case <-time.After(5 * time.Second):
	}
}
