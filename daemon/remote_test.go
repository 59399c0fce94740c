package daemon_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	pipam "github.com/docker/go-plugins-helpers/ipam"
	pnet "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/internal/nettest"
)

// bridgePlugin is a third-party network plugin as weave's or kuryr's are,
// written with go-plugins-helpers: a bridge of its own per network in the
// host, a veth pair per endpoint whose one end it hands berthd in Join.
type bridgePlugin struct {
	h     *nettest.Host
	mu    sync.Mutex
	gw    map[string]string // network ID → gateway
	calls []string
}

func (p *bridgePlugin) called(m string) {
	p.mu.Lock()
	p.calls = append(p.calls, m)
	p.mu.Unlock()
}

func short(id string) string { return id[:8] }

func (p *bridgePlugin) GetCapabilities() (*pnet.CapabilitiesResponse, error) {
	return &pnet.CapabilitiesResponse{Scope: pnet.LocalScope}, nil
}

func (p *bridgePlugin) CreateNetwork(r *pnet.CreateNetworkRequest) error {
	p.called("CreateNetwork")
	name := "tp" + short(r.NetworkID)
	if _, err := p.h.Netlink.LinkByName(name); err == nil {
		return nil // berthd asks again at every start
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := p.h.Netlink.LinkAdd(br); err != nil {
		return err
	}
	gw, err := netlink.ParseAddr(r.IPv4Data[0].Gateway)
	if err != nil {
		return err
	}
	if err := p.h.Netlink.AddrAdd(br, gw); err != nil {
		return err
	}
	p.mu.Lock()
	p.gw[r.NetworkID] = gw.IP.String()
	p.mu.Unlock()
	return p.h.Netlink.LinkSetUp(br)
}

func (p *bridgePlugin) DeleteNetwork(r *pnet.DeleteNetworkRequest) error {
	p.called("DeleteNetwork")
	if l, err := p.h.Netlink.LinkByName("tp" + short(r.NetworkID)); err == nil {
		return p.h.Netlink.LinkDel(l)
	}
	return nil
}

func (p *bridgePlugin) CreateEndpoint(*pnet.CreateEndpointRequest) (*pnet.CreateEndpointResponse, error) {
	p.called("CreateEndpoint")
	return &pnet.CreateEndpointResponse{}, nil
}

func (p *bridgePlugin) Join(r *pnet.JoinRequest) (*pnet.JoinResponse, error) {
	p.called("Join")
	br, err := p.h.Netlink.LinkByName("tp" + short(r.NetworkID))
	if err != nil {
		return nil, err
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tph" + short(r.EndpointID), MasterIndex: br.Attrs().Index}, PeerName: "tpc" + short(r.EndpointID)}
	if err := p.h.Netlink.LinkAdd(veth); err != nil {
		return nil, err
	}
	if err := p.h.Netlink.LinkSetUp(veth); err != nil {
		return nil, err
	}
	p.mu.Lock()
	gw := p.gw[r.NetworkID]
	p.mu.Unlock()
	return &pnet.JoinResponse{InterfaceName: pnet.InterfaceName{SrcName: "tpc" + short(r.EndpointID), DstPrefix: "eth"}, Gateway: gw}, nil
}

func (p *bridgePlugin) Leave(r *pnet.LeaveRequest) error {
	p.called("Leave")
	if l, err := p.h.Netlink.LinkByName("tph" + short(r.EndpointID)); err == nil {
		return p.h.Netlink.LinkDel(l)
	}
	return nil
}

func (p *bridgePlugin) DeleteEndpoint(*pnet.DeleteEndpointRequest) error {
	p.called("DeleteEndpoint")
	return nil
}

func (p *bridgePlugin) EndpointInfo(*pnet.InfoRequest) (*pnet.InfoResponse, error) {
	return &pnet.InfoResponse{Value: map[string]string{}}, nil
}
func (p *bridgePlugin) AllocateNetwork(*pnet.AllocateNetworkRequest) (*pnet.AllocateNetworkResponse, error) {
	return &pnet.AllocateNetworkResponse{}, nil
}
func (p *bridgePlugin) FreeNetwork(*pnet.FreeNetworkRequest) error       { return nil }
func (p *bridgePlugin) DiscoverNew(*pnet.DiscoveryNotification) error    { return nil }
func (p *bridgePlugin) DiscoverDelete(*pnet.DiscoveryNotification) error { return nil }
func (p *bridgePlugin) ProgramExternalConnectivity(*pnet.ProgramExternalConnectivityRequest) error {
	p.called("ProgramExternalConnectivity")
	return nil
}
func (p *bridgePlugin) RevokeExternalConnectivity(*pnet.RevokeExternalConnectivityRequest) error {
	p.called("RevokeExternalConnectivity")
	return nil
}

// servePlugin serves p as NAME.sock in dir until the test ends.
func servePlugin(t *testing.T, dir, name string, p pnet.Driver) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go pnet.NewHandler(p).Serve(l)
}

// A network of a third-party plugin carries containers that reach and
// resolve each other, and comes back after a restart of berthd.
func TestRemoteNetworkPluginCarriesContainers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h, d := containerHost(t, "--plugins-dir", dir)
	p := &bridgePlugin{h: h, gw: map[string]string{}}
	servePlugin(t, dir, "tbridge", p)

	if _, stderr, code := docker(t, d, "network", "create", "-d", "nosuchplugin", "x"); code == 0 || !strings.Contains(stderr, `plugin "nosuchplugin" not found`) {
		t.Errorf("unknown plugin: exit %d, %s", code, stderr)
	}
	dockerOK(t, d, "network", "create", "-d", "tbridge", "--subnet", "10.123.0.0/24", "weave")
	id := strings.TrimSpace(dockerOK(t, d, "network", "inspect", "-f", "{{.ID}}", "weave"))
	if _, err := h.Netlink.LinkByName("tp" + short(id)); err != nil {
		t.Fatalf("the plugin's bridge: %v", err)
	}
	dockerOK(t, d, "run", "-d", "--name", "ca", "--network", "weave", "busybox", "sleep", "100000")
	dockerOK(t, d, "run", "-d", "--name", "cb", "--network", "weave", "--network-alias", "bee", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	if ip := strings.TrimSpace(dockerOK(t, d, "inspect", "-f", "{{.NetworkSettings.Networks.weave.IPAddress}}", "cb")); ip != "10.123.0.3" {
		t.Errorf("b's address %q, want 10.123.0.3 from berth's IPAM", ip)
	}
	check := func(when string) {
		t.Helper()
		if out := dockerOK(t, d, "exec", "ca", "wget", "-qO-", "http://bee/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("%s: a → bee by name: empty answer", when)
		}
		if out := dockerOK(t, d, "exec", "ca", "ip", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.123.0.2/24") {
			t.Errorf("%s: a's eth0: %s", when, out)
		}
	}
	check("after run")
	d.Stop()
	d.Start()
	check("after a restart of berthd")
	dockerOK(t, d, "rm", "-f", "ca", "cb")
	if _, stderr, code := docker(t, d, "network", "rm", "weave"); code != 0 {
		t.Fatalf("network rm: %s", stderr)
	}
	if _, err := h.Netlink.LinkByName("tp" + short(id)); err == nil {
		t.Error("the plugin's bridge is still there after network rm")
	}
	if out := dockerOK(t, d, "plugin", "ls", "--format", "{{.Name}} {{.Enabled}}"); strings.TrimSpace(out) != "tbridge true" {
		t.Errorf("docker plugin ls: %q, want the plugin in use", out)
	}
	if out := dockerOK(t, d, "plugin", "ls", "-q", "--filter", "capability=ipamdriver"); strings.TrimSpace(out) != "" {
		t.Errorf("docker plugin ls --filter capability=ipamdriver: %q, want none", out)
	}
	p.mu.Lock()
	calls := strings.Join(p.calls, ",")
	p.mu.Unlock()
	for _, m := range []string{"CreateNetwork", "CreateEndpoint", "Join", "Leave", "DeleteEndpoint", "DeleteNetwork"} {
		if !strings.Contains(calls, m) {
			t.Errorf("the plugin never heard %s: %s", m, calls)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("plugin dir holds %d entries", len(entries))
	}
}

// hundredIPAM is a remote IPAM plugin handing out 10.124.0.100 and up of
// one pool, with .1 as every pool's gateway, and keeping what it gave.
type hundredIPAM struct {
	mu    sync.Mutex
	next  int
	taken map[string]bool
	pools int
}

func (p *hundredIPAM) GetCapabilities() (*pipam.CapabilitiesResponse, error) {
	return &pipam.CapabilitiesResponse{}, nil
}
func (p *hundredIPAM) GetDefaultAddressSpaces() (*pipam.AddressSpacesResponse, error) {
	return &pipam.AddressSpacesResponse{LocalDefaultAddressSpace: "hl", GlobalDefaultAddressSpace: "hg"}, nil
}
func (p *hundredIPAM) RequestPool(r *pipam.RequestPoolRequest) (*pipam.RequestPoolResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.V6 || r.AddressSpace != "hl" {
		return nil, fmt.Errorf("only IPv4 in hl, not %+v", r)
	}
	p.pools++
	return &pipam.RequestPoolResponse{PoolID: "hl/10.124.0.0/24", Pool: "10.124.0.0/24", Data: map[string]string{"com.docker.network.gateway": "10.124.0.1/24"}}, nil
}
func (p *hundredIPAM) ReleasePool(*pipam.ReleasePoolRequest) error {
	p.mu.Lock()
	p.pools--
	p.mu.Unlock()
	return nil
}
func (p *hundredIPAM) RequestAddress(r *pipam.RequestAddressRequest) (*pipam.RequestAddressResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Options["RequestAddressType"] == "com.docker.network.gateway" {
		return &pipam.RequestAddressResponse{Address: "10.124.0.1/24"}, nil
	}
	a := fmt.Sprintf("10.124.0.%d", 100+p.next)
	p.next++
	p.taken[a] = true
	return &pipam.RequestAddressResponse{Address: a + "/24"}, nil
}
func (p *hundredIPAM) ReleaseAddress(r *pipam.ReleaseAddressRequest) error {
	p.mu.Lock()
	delete(p.taken, r.Address)
	p.mu.Unlock()
	return nil
}

// A remote network plugin with a remote IPAM plugin: the addresses are the
// IPAM plugin's, and go back to it.
func TestRemoteNetworkWithRemoteIPAM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h, d := containerHost(t, "--plugins-dir", dir)
	servePlugin(t, dir, "tbridge", &bridgePlugin{h: h, gw: map[string]string{}})
	ip := &hundredIPAM{taken: map[string]bool{}}
	l, err := net.Listen("unix", filepath.Join(dir, "hundred.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go pipam.NewHandler(ip).Serve(l)

	dockerOK(t, d, "network", "create", "-d", "tbridge", "--ipam-driver", "hundred", "rnet")
	if out := dockerOK(t, d, "network", "inspect", "-f", "{{.IPAM.Driver}} {{range .IPAM.Config}}{{.Subnet}}{{end}}", "rnet"); strings.TrimSpace(out) != "hundred 10.124.0.0/24" {
		t.Errorf("inspect: %q", out)
	}
	dockerOK(t, d, "run", "-d", "--name", "r1", "--network", "rnet", "busybox", "sleep", "100000")
	dockerOK(t, d, "run", "-d", "--name", "r2", "--network", "rnet", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	if got := strings.TrimSpace(dockerOK(t, d, "inspect", "-f", "{{.NetworkSettings.Networks.rnet.IPAddress}}", "r2")); got != "10.124.0.101" {
		t.Errorf("r2's address %q, want the IPAM plugin's 10.124.0.101", got)
	}
	if out := dockerOK(t, d, "exec", "r1", "wget", "-qO-", "http://r2/hostname"); strings.TrimSpace(out) == "" {
		t.Error("r1 → r2 by name: empty answer")
	}
	dockerOK(t, d, "rm", "-f", "r1", "r2")
	dockerOK(t, d, "network", "rm", "rnet")
	ip.mu.Lock()
	defer ip.mu.Unlock()
	if len(ip.taken) != 0 || ip.pools != 0 {
		t.Errorf("the IPAM plugin still gives out %v and %d pools", ip.taken, ip.pools)
	}
}
