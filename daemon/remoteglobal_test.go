package daemon_test

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	pnet "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/internal/nettest"
)

// stretchPlugin is a global-scope network plugin as weave's is: one layer-2
// segment per network across the hosts, a bridge on each host joined by
// VXLAN over the underlay to every host berthd told it of (DiscoverNew),
// flooding to all of them. One plugin serves every host of the cluster:
// a join's sandbox path tells which host asks.
type stretchPlugin struct {
	c *nettest.Cluster

	mu      sync.Mutex
	creates int
	deletes int
	hostOf  map[string]*nettest.ClusterHost // endpoint ID → host
	// nodes counts the hosts berthds announced (address, self), gone
	// those they said left.
	nodes map[nodeNote]int
	gone  map[string]int
}

type nodeNote struct {
	addr string
	self bool
}

// stretchPort keeps the plugin's VXLAN off berth's own overlay port.
const stretchPort = 4790

func (p *stretchPlugin) GetCapabilities() (*pnet.CapabilitiesResponse, error) {
	return &pnet.CapabilitiesResponse{Scope: pnet.GlobalScope, ConnectivityScope: pnet.GlobalScope}, nil
}

func (p *stretchPlugin) CreateNetwork(r *pnet.CreateNetworkRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creates++
	if len(r.IPv4Data) != 1 || r.IPv4Data[0].AddressSpace != "GlobalDefault" {
		return fmt.Errorf("CreateNetwork %s: IPv4 data %+v, want one pool of the global address space", short(r.NetworkID), r.IPv4Data)
	}
	return nil
}

// segment makes the network's bridge and VXLAN device on host h, once.
func (p *stretchPlugin) segment(h *nettest.ClusterHost, id string) (netlink.Link, error) {
	if br, err := h.Netlink.LinkByName("sp" + short(id)); err == nil {
		return br, nil
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "sp" + short(id)}}
	if err := h.Netlink.LinkAdd(br); err != nil {
		return nil, err
	}
	uplink, err := h.Netlink.LinkByName("uplink")
	if err != nil {
		return nil, err
	}
	sum := fnv.New32a()
	sum.Write([]byte(id))
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "sv" + short(id), MasterIndex: br.Index},
		VxlanId: int(sum.Sum32() & 0xffffff), SrcAddr: h.Addr.AsSlice(), VtepDevIndex: uplink.Attrs().Index,
		Port: stretchPort, Learning: true}
	if err := h.Netlink.LinkAdd(vx); err != nil {
		return nil, err
	}
	for n := range p.nodes {
		if n.addr == h.Addr.String() || n.self {
			continue
		}
		flood := &netlink.Neigh{LinkIndex: vx.Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT, IP: net.ParseIP(n.addr), HardwareAddr: net.HardwareAddr{0, 0, 0, 0, 0, 0}}
		if err := h.Netlink.NeighAppend(flood); err != nil {
			return nil, fmt.Errorf("flood entry for %s: %w", n.addr, err)
		}
	}
	for _, l := range []netlink.Link{vx, br} {
		if err := h.Netlink.LinkSetUp(l); err != nil {
			return nil, err
		}
	}
	return br, nil
}

func (p *stretchPlugin) DeleteNetwork(r *pnet.DeleteNetworkRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deletes++
	for _, h := range p.c.Hosts {
		for _, name := range []string{"sv", "sp"} {
			if l, err := h.Netlink.LinkByName(name + short(r.NetworkID)); err == nil {
				h.Netlink.LinkDel(l)
			}
		}
	}
	return nil
}

func (p *stretchPlugin) CreateEndpoint(*pnet.CreateEndpointRequest) (*pnet.CreateEndpointResponse, error) {
	return &pnet.CreateEndpointResponse{}, nil
}

func (p *stretchPlugin) Join(r *pnet.JoinRequest) (*pnet.JoinResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var h *nettest.ClusterHost
	for _, ch := range p.c.Hosts {
		if strings.HasPrefix(r.SandboxKey, ch.Daemon.ExecRoot+"/") {
			h = ch
		}
	}
	if h == nil {
		return nil, fmt.Errorf("join from a sandbox of no host of the cluster: %s", r.SandboxKey)
	}
	br, err := p.segment(h, r.NetworkID)
	if err != nil {
		return nil, err
	}
	// VXLAN takes 50 bytes of the underlay's frames.
	mtu := p.c.MTU - 50
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sph" + short(r.EndpointID), MasterIndex: br.Attrs().Index, MTU: mtu},
		PeerName: "spc" + short(r.EndpointID), PeerMTU: uint32(mtu)}
	if err := h.Netlink.LinkAdd(veth); err != nil {
		return nil, err
	}
	if err := h.Netlink.LinkSetUp(veth); err != nil {
		return nil, err
	}
	p.hostOf[r.EndpointID] = h
	return &pnet.JoinResponse{InterfaceName: pnet.InterfaceName{SrcName: "spc" + short(r.EndpointID), DstPrefix: "eth"}, DisableGatewayService: true}, nil
}

func (p *stretchPlugin) Leave(r *pnet.LeaveRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.hostOf[r.EndpointID]; h != nil {
		if l, err := h.Netlink.LinkByName("sph" + short(r.EndpointID)); err == nil {
			h.Netlink.LinkDel(l)
		}
		delete(p.hostOf, r.EndpointID)
	}
	return nil
}

func (p *stretchPlugin) DeleteEndpoint(*pnet.DeleteEndpointRequest) error { return nil }
func (p *stretchPlugin) EndpointInfo(*pnet.InfoRequest) (*pnet.InfoResponse, error) {
	return &pnet.InfoResponse{}, nil
}
func (p *stretchPlugin) AllocateNetwork(*pnet.AllocateNetworkRequest) (*pnet.AllocateNetworkResponse, error) {
	return &pnet.AllocateNetworkResponse{}, nil
}
func (p *stretchPlugin) FreeNetwork(*pnet.FreeNetworkRequest) error { return nil }
func (p *stretchPlugin) DiscoverNew(r *pnet.DiscoveryNotification) error {
	n, err := nodeOf(r)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nodes[n]++
	return nil
}

func (p *stretchPlugin) DiscoverDelete(r *pnet.DiscoveryNotification) error {
	n, err := nodeOf(r)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gone[n.addr]++
	return nil
}

// nodeOf reads a node discovery as libnetwork sends it.
func nodeOf(r *pnet.DiscoveryNotification) (nodeNote, error) {
	data, ok := r.DiscoveryData.(map[string]any)
	addr, _ := data["Address"].(string)
	self, _ := data["Self"].(bool)
	if r.DiscoveryType != 1 || !ok || net.ParseIP(addr) == nil {
		return nodeNote{}, fmt.Errorf("not a node discovery: %+v", r)
	}
	return nodeNote{addr, self}, nil
}

// heard tells whether every host announced every host, itself as self.
func (p *stretchPlugin) heard() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.c.Hosts {
		if p.nodes[nodeNote{h.Addr.String(), true}] != 1 || p.nodes[nodeNote{h.Addr.String(), false}] != len(p.c.Hosts)-1 {
			return fmt.Errorf("node discoveries so far: %v", p.nodes)
		}
	}
	return nil
}
func (p *stretchPlugin) ProgramExternalConnectivity(*pnet.ProgramExternalConnectivityRequest) error {
	return nil
}
func (p *stretchPlugin) RevokeExternalConnectivity(*pnet.RevokeExternalConnectivityRequest) error {
	return nil
}

// A global-scope plugin's network is shared through the cluster store:
// made once, it exists on every host, whose containers get addresses of
// one subnet without clashes, reach each other through the plugin's
// devices and resolve each other's names through berth's resolvers.
func TestGlobalPluginNetworkSpansTheCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := overlayCluster(t, 2, nettest.DaemonArgs("--plugins-dir", dir))
	p := &stretchPlugin{c: c, hostOf: map[string]*nettest.ClusterHost{}, nodes: map[nodeNote]int{}, gone: map[string]int{}}
	servePlugin(t, dir, "stretch", p)
	h1, h2 := c.Hosts[0].Daemon, c.Hosts[1].Daemon

	id := berthOK(t, h1, "network", "create", "-d", "stretch", "wide")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "wide", id) })
	// Each berthd tells the plugin of the cluster's hosts once it uses
	// the plugin (Docker's node discovery), and that is how the plugin
	// knows where to send.
	waitFor(t, 5*time.Second, p.heard)
	nw := inspect(t, h2, "wide")
	if nw.Scope == "local" || nw.Driver != "stretch" || len(nw.IPAM.Config) != 1 {
		t.Fatalf("host 2 shows wide as %s, driver %s, IPAM %+v; want a cluster-wide network of the plugin with one subnet", nw.Scope, nw.Driver, nw.IPAM.Config)
	}
	subnet := nw.IPAM.Config[0].Subnet

	a := berthOK(t, h1, "run", "-d", "--network", "wide", "--name", "alpha", "busybox", "sleep", "1000")
	b := berthOK(t, h2, "run", "-d", "--network", "wide", "--name", "bravo", "busybox", "sleep", "1000")
	aAddr, bAddr := overlayAddr(t, h1, a, "wide"), overlayAddr(t, h2, b, "wide")
	if aAddr == bAddr || !subnet.Contains(aAddr) || !subnet.Contains(bAddr) {
		t.Fatalf("alpha has %s and bravo %s on wide (%s); want distinct addresses of its subnet", aAddr, bAddr, subnet)
	}
	aNS, bNS := netnsOf(t, h1, a), netnsOf(t, h2, b)
	echoServer(t, aNS, ":7000")
	waitFor(t, 3*time.Second, func() error { return roundTrip(bNS, netip.AddrPortFrom(aAddr, 7000).String()) })
	if err := resolvesTo(bNS, "alpha", aAddr); err != nil {
		t.Errorf("from bravo: %v", err)
	}
	if out, _, code := execIn(t, h1, a, "ping", "-c1", "-W2", "bravo"); code != 0 || !strings.Contains(out, bAddr.String()) {
		t.Errorf("alpha pings bravo by name: exit %d\n%s", code, out)
	}
	p.mu.Lock()
	creates := p.creates
	p.mu.Unlock()
	if creates < 2 {
		t.Errorf("the plugin was told of the network %d times, want once by each host", creates)
	}

	berthOK(t, h1, "rm", "-f", "alpha")
	berthOK(t, h2, "rm", "-f", "bravo")
	berthOK(t, h2, "network", "rm", "wide")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return gone(d, "wide") })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.deletes == 0 || len(p.hostOf) != 0 {
		t.Errorf("after the removal the plugin saw %d deletes and still has endpoints %v", p.deletes, p.hostOf)
	}
	if _, err := c.Hosts[0].Netlink.LinkByName("sp" + short(id)); err == nil {
		t.Errorf("the plugin's bridge is still on host 1")
	}
	p.mu.Unlock()

	// A host that dies leaves the cluster when its lease ends: the
	// other host's berthd tells the plugin (DiscoverDelete).
	c.Hosts[1].Daemon.Kill()
	waitFor(t, 2*cluster.DefaultLeaseTTL+5*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.gone[c.Hosts[1].Addr.String()] != 1 || len(p.gone) != 1 {
			return fmt.Errorf("hosts said to have left: %v", p.gone)
		}
		return nil
	})
	p.mu.Lock()
}
