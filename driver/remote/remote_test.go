package remote_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/plugins"
	"github.com/berth-net/berth/plugins/plugintest"
)

// These tests work on the real kernel: a fresh namespace stands for the
// host, where the test plugin makes its veth pairs, and others for
// sandboxes.

// vethPlugin is a network plugin written with go-plugins-helpers, as
// third-party plugins are: Join makes a veth pair on the host, gives the
// host end the network's gateway address, and returns the other end for
// the engine to move into the sandbox; DeleteEndpoint deletes the pair.
type vethPlugin struct {
	host *netlink.Handle

	// failConnectivity fails ProgramExternalConnectivity.
	failConnectivity bool
	// macAnswer is a MAC CreateEndpoint answers with.
	macAnswer string

	mu       sync.Mutex
	networks map[string]bool
	// returned lists the endpoints whose interface was back on the
	// host, under the name the plugin gave it, when they were deleted.
	returned []string
}

func hostEnd(ep string) string { return "pl" + ep[:8] }
func srcName(ep string) string { return "tmp" + ep[:8] }

func (p *vethPlugin) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: network.LocalScope, ConnectivityScope: network.LocalScope}, nil
}

func (p *vethPlugin) CreateNetwork(r *network.CreateNetworkRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.networks[r.NetworkID] {
		return fmt.Errorf("network %s already exists", r.NetworkID)
	}
	p.networks[r.NetworkID] = true
	return nil
}

func (p *vethPlugin) DeleteNetwork(r *network.DeleteNetworkRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.networks, r.NetworkID)
	return nil
}

func (p *vethPlugin) CreateEndpoint(r *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if p.macAnswer != "" {
		return &network.CreateEndpointResponse{Interface: &network.EndpointInterface{MacAddress: p.macAnswer}}, nil
	}
	return &network.CreateEndpointResponse{}, nil
}

func (p *vethPlugin) DeleteEndpoint(r *network.DeleteEndpointRequest) error {
	if _, err := p.host.LinkByName(srcName(r.EndpointID)); err == nil {
		p.mu.Lock()
		p.returned = append(p.returned, r.EndpointID)
		p.mu.Unlock()
	}
	l, err := p.host.LinkByName(hostEnd(r.EndpointID))
	if err != nil {
		return err
	}
	return p.host.LinkDel(l)
}

func (p *vethPlugin) Join(r *network.JoinRequest) (*network.JoinResponse, error) {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd(r.EndpointID)}, PeerName: srcName(r.EndpointID)}
	if err := p.host.LinkAdd(veth); err != nil {
		return nil, err
	}
	gw, _ := netlink.ParseAddr("10.1.0.1/24")
	if err := p.host.AddrAdd(veth, gw); err != nil {
		return nil, err
	}
	if err := p.host.LinkSetUp(veth); err != nil {
		return nil, err
	}
	return &network.JoinResponse{
		InterfaceName: network.InterfaceName{SrcName: srcName(r.EndpointID), DstPrefix: "eth"},
		Gateway:       "10.1.0.1",
		StaticRoutes: []*network.StaticRoute{
			{Destination: "10.9.0.0/16", RouteType: 0, NextHop: "10.1.0.254"},
			{Destination: "10.8.0.0/16", RouteType: 1},
		},
	}, nil
}

func (p *vethPlugin) Leave(*network.LeaveRequest) error { return nil }

func (p *vethPlugin) ProgramExternalConnectivity(*network.ProgramExternalConnectivityRequest) error {
	if p.failConnectivity {
		return errors.New("no way out")
	}
	return nil
}

func (p *vethPlugin) RevokeExternalConnectivity(*network.RevokeExternalConnectivityRequest) error {
	return nil
}

func (p *vethPlugin) AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return nil, errors.New("not a swarm plugin")
}
func (p *vethPlugin) FreeNetwork(*network.FreeNetworkRequest) error {
	return errors.New("not a swarm plugin")
}
func (p *vethPlugin) EndpointInfo(*network.InfoRequest) (*network.InfoResponse, error) {
	return &network.InfoResponse{Value: map[string]string{}}, nil
}
func (p *vethPlugin) DiscoverNew(*network.DiscoveryNotification) error    { return nil }
func (p *vethPlugin) DiscoverDelete(*network.DiscoveryNotification) error { return nil }

// world is a test host with the plugin served in its plugin directory.
type world struct {
	t      *testing.T
	host   *nettest.Host
	plugin *vethPlugin
	wire   *plugintest.Plugin
	dir    string
}

func newWorld(t *testing.T, p *vethPlugin) *world {
	t.Helper()
	h := nettest.NewHost(t)
	p.host, p.networks = h.Netlink, map[string]bool{}
	dir := plugintest.Dir(t)
	wire := plugintest.Serve(t, filepath.Join(dir, "veths.sock"), network.NewHandler(p).Serve)
	return &world{t: t, host: h, plugin: p, wire: wire, dir: dir}
}

// driver finds the plugin's driver as berthd does, in the test host's
// namespace; each call is a daemon started afresh.
func (w *world) driver() driver.Driver {
	w.t.Helper()
	var d driver.Driver
	err := w.host.Do(func() (err error) {
		d, err = plugins.New([]string{w.dir}, nil).NetworkDriver("veths")
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// sandbox is a fresh namespace opened as the controller opens one.
func (w *world) sandbox(name string) (*nettest.Namespace, *netdev.Namespace) {
	w.t.Helper()
	n := w.host.NewNamespace(name)
	ns, err := netdev.OpenNamespace(n.Path)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(ns.Close)
	return n, ns
}

func (w *world) sameJSON(method, want string) {
	w.t.Helper()
	var wv any
	if err := json.Unmarshal([]byte(want), &wv); err != nil {
		w.t.Fatal(err)
	}
	got, _ := json.Marshal(w.wire.Last(w.t, method).Fields(w.t))
	wb, _ := json.Marshal(wv)
	if string(got) != string(wb) {
		w.t.Errorf("%s sent\n %s\nwant\n %s", method, got, wb)
	}
}

func links(t *testing.T, n *nettest.Namespace) []string {
	t.Helper()
	names, err := n.LinkNames()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

var (
	netID = strings.Repeat("a1", 32)
	epID  = strings.Repeat("e2", 32)
)

func testNetwork() *driver.Network {
	return &driver.Network{
		ID: netID, Name: "plugged", Options: map[string]string{"color": "blue"},
		IPv4: []driver.Subnet{{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}},
	}
}

func testEndpoint() *driver.Endpoint {
	mac, _ := net.ParseMAC("02:42:0a:01:00:02")
	return &driver.Endpoint{ID: epID, IfName: "eth0", MAC: mac, IPv4: netip.MustParsePrefix("10.1.0.2/24")}
}

func TestAJoinMovesThePluginsInterfaceIntoTheSandboxAndLeaveGivesItBack(t *testing.T) {
	w := newWorld(t, &vethPlugin{})
	d := w.driver()
	if caps := d.Capabilities(); caps.Scope != driver.ScopeLocal || !caps.Addresses || caps.Sharing != driver.Shares {
		t.Errorf("capabilities %+v", caps)
	}
	nw, ep := testNetwork(), testEndpoint()
	if err := d.CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	w.sameJSON("NetworkDriver.CreateNetwork", `{"NetworkID":"`+netID+`",
		"Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"color":"blue"}},
		"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24","AuxAddresses":{}}],
		"IPv6Data":[]}`)

	c, ns := w.sandbox("c1")
	info, err := d.Join(nw, ep, ns)
	if err != nil {
		t.Fatal(err)
	}
	w.sameJSON("NetworkDriver.CreateEndpoint", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`",
		"Interface":{"Address":"10.1.0.2/24","AddressIPv6":"","MacAddress":"02:42:0a:01:00:02"},"Options":{}}`)
	w.sameJSON("NetworkDriver.Join", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","SandboxKey":"`+c.Path+`","Options":{}}`)
	w.sameJSON("NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","Options":{}}`)

	// The plugin's interface is the sandbox's eth0, with the endpoint's
	// MAC and address, up; on the host only the plugin's own end is left.
	eth0, err := c.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatalf("no eth0 in the sandbox: %v (links %v)", err, links(t, c))
	}
	if eth0.Attrs().HardwareAddr.String() != "02:42:0a:01:00:02" || eth0.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("eth0: MAC %s, flags %s", eth0.Attrs().HardwareAddr, eth0.Attrs().Flags)
	}
	if addrs, _ := c.Addrs("eth0"); !slices.Equal(addrs, []string{"10.1.0.2/24"}) {
		t.Errorf("eth0 addresses %v", addrs)
	}
	if got, want := links(t, w.host.Namespace), []string{"lo", hostEnd(epID)}; !slices.Equal(got, want) {
		t.Errorf("host links %v, want %v", got, want)
	}
	want := driver.JoinInfo{
		Index: eth0.Attrs().Index, Gateway4: netip.MustParseAddr("10.1.0.1"),
		Routes: []driver.Route{
			{Dst: netip.MustParsePrefix("10.9.0.0/16"), Via: netip.MustParseAddr("10.1.0.254")},
			{Dst: netip.MustParsePrefix("10.8.0.0/16")},
		},
		MAC: ep.MAC,
	}
	if fmt.Sprint(info) != fmt.Sprint(want) {
		t.Errorf("join info %+v, want %+v", info, want)
	}

	// Traffic passes: the sandbox reaches the plugin's host end.
	reach(t, w.host.Namespace, c, "10.1.0.1:7070")

	if _, ok, err := d.Restore(nw, ep, ns); err != nil || !ok {
		t.Errorf("restore of a joined endpoint: intact %v, %v", ok, err)
	}

	if err := d.Leave(nw, ep, ns); err != nil {
		t.Fatal(err)
	}
	if got := links(t, c); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("sandbox links after leave %v", got)
	}
	w.plugin.mu.Lock()
	returned := slices.Contains(w.plugin.returned, epID)
	w.plugin.mu.Unlock()
	if !returned {
		t.Errorf("the interface was not back on the host as %s when the endpoint was deleted", srcName(epID))
	}
	if got := links(t, w.host.Namespace); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("host links after leave %v", got)
	}
	methods := w.wire.Methods()
	if got := strings.Join(methods[len(methods)-3:], " "); got != "NetworkDriver.RevokeExternalConnectivity NetworkDriver.Leave NetworkDriver.DeleteEndpoint" {
		t.Errorf("leave sent %s", got)
	}
	if err := d.DeleteNetwork(nw); err != nil {
		t.Fatal(err)
	}
	w.sameJSON("NetworkDriver.DeleteNetwork", `{"NetworkID":"`+netID+`"}`)
}

// reach dials addr from the sandbox to a listener on the host.
func reach(t *testing.T, host, sandbox *nettest.Namespace, addr string) {
	t.Helper()
	l, err := host.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := sandbox.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from the sandbox: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(conn); err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v", b, err)
	}
}

func TestAJoinThatFailsLeavesNothingBehind(t *testing.T) {
	w := newWorld(t, &vethPlugin{failConnectivity: true})
	d := w.driver()
	nw, ep := testNetwork(), testEndpoint()
	if err := d.CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	c, ns := w.sandbox("c1")
	_, err := d.Join(nw, ep, ns)
	if err == nil || !strings.Contains(err.Error(), "no way out") {
		t.Fatalf("join: %v, want the plugin's error", err)
	}
	if got := links(t, c); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("sandbox links %v", got)
	}
	if got := links(t, w.host.Namespace); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("host links %v", got)
	}
	methods := w.wire.Methods()
	if got := strings.Join(methods[len(methods)-2:], " "); got != "NetworkDriver.Leave NetworkDriver.DeleteEndpoint" {
		t.Errorf("roll back sent %s", got)
	}
}

func TestAPluginThatChangesTheMACItWasGivenFailsTheJoin(t *testing.T) {
	w := newWorld(t, &vethPlugin{macAnswer: "02:00:00:00:00:99"})
	d := w.driver()
	nw, ep := testNetwork(), testEndpoint()
	_, ns := w.sandbox("c1")
	_, err := d.Join(nw, ep, ns)
	if err == nil || !strings.Contains(err.Error(), "modified the interface MAC address") {
		t.Fatalf("join: %v", err)
	}
	if got := strings.Join(w.wire.Methods(), " "); !strings.HasSuffix(got, "NetworkDriver.CreateEndpoint NetworkDriver.DeleteEndpoint") {
		t.Errorf("plugin got %s", got)
	}
}

// Given no MAC, as Docker gives none unless asked, a plugin may answer
// with one, which the interface takes; answering none, the interface
// keeps the plugin's. Either way the join tells the MAC the interface has.
func TestAPluginGivenNoMACMayChooseIt(t *testing.T) {
	for _, answer := range []string{"02:00:00:00:00:99", ""} {
		w := newWorld(t, &vethPlugin{macAnswer: answer})
		d := w.driver()
		nw, ep := testNetwork(), testEndpoint()
		ep.MAC = nil
		if err := d.CreateNetwork(nw); err != nil {
			t.Fatal(err)
		}
		c, ns := w.sandbox("c1")
		info, err := d.Join(nw, ep, ns)
		if err != nil {
			t.Fatalf("join with the plugin answering MAC %q: %v", answer, err)
		}
		w.sameJSON("NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nw.ID+`","EndpointID":"`+epID+`",
			"Interface":{"Address":"10.1.0.2/24","AddressIPv6":"","MacAddress":""},"Options":{}}`)
		eth0, err := c.Netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		got := eth0.Attrs().HardwareAddr
		if answer != "" && got.String() != answer {
			t.Errorf("the interface has MAC %s, want the plugin's answer %s", got, answer)
		}
		if len(got) != 6 || info.MAC.String() != got.String() {
			t.Errorf("join told MAC %s; the interface has %s", info.MAC, got)
		}
	}
}

func TestCreateNetworkAgainAtStartAcceptsANetworkThePluginKept(t *testing.T) {
	w := newWorld(t, &vethPlugin{})
	nw := testNetwork()
	if err := w.driver().CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	if err := w.driver().CreateNetwork(nw); err != nil {
		t.Errorf("create again: %v", err)
	}
	if n := len(w.wire.Calls("NetworkDriver.CreateNetwork")); n != 2 {
		t.Errorf("CreateNetwork sent %d times", n)
	}
}

func TestARestartedDaemonFindsWhatAJoinGaveAndRejoinsABrokenEndpoint(t *testing.T) {
	w := newWorld(t, &vethPlugin{})
	nw, ep := testNetwork(), testEndpoint()
	d := w.driver()
	if err := d.CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	c, ns := w.sandbox("c1")
	joined, err := d.Join(nw, ep, ns)
	if err != nil {
		t.Fatal(err)
	}

	// A new daemon: the driver remembers nothing of the join.
	d = w.driver()
	info, ok, err := d.Restore(nw, ep, ns)
	if err != nil || !ok {
		t.Fatalf("restore: intact %v, %v", ok, err)
	}
	joined.Index = 0
	if fmt.Sprint(info) != fmt.Sprint(joined) {
		t.Errorf("restored %+v, want %+v", info, joined)
	}

	// Someone removed the address: not intact; the endpoint is cleared
	// in the sandbox and in the plugin, and joins again.
	eth0, _ := c.Netlink.LinkByName("eth0")
	addr, _ := netlink.ParseAddr("10.1.0.2/24")
	if err := c.Netlink.AddrDel(eth0, addr); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.Restore(nw, ep, ns); err != nil || ok {
		t.Fatalf("restore of a broken endpoint: intact %v, %v", ok, err)
	}
	if got := links(t, c); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("sandbox links after a broken restore %v", got)
	}
	if got := links(t, w.host.Namespace); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("host links after a broken restore %v", got)
	}
	if _, err := d.Join(nw, ep, ns); err != nil {
		t.Fatalf("join again: %v", err)
	}
	reach(t, w.host.Namespace, c, "10.1.0.1:7071")
}

func TestPublishedPortsAreHandedToThePluginAsDockerHandsThem(t *testing.T) {
	w := newWorld(t, &vethPlugin{})
	d := w.driver()
	if !d.Describe(testNetwork()).PublishesPorts {
		t.Error("ports are not handed to the plugin")
	}
	nw, ep := testNetwork(), testEndpoint()
	ep.Ports = []driver.PortBinding{
		{Proto: "tcp", HostPort: 8080, Port: 80},
		{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, Port: 53},
	}
	_, ns := w.sandbox("c1")
	if _, err := d.Join(nw, ep, ns); err != nil {
		t.Fatal(err)
	}
	w.sameJSON("NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","Options":{
		"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80},{"Proto":17,"Port":53}],
		"com.docker.network.portmap":[
			{"Proto":6,"IP":"10.1.0.2","Port":80,"HostIP":"0.0.0.0","HostPort":8080,"HostPortEnd":8080},
			{"Proto":17,"IP":"10.1.0.2","Port":53,"HostIP":"127.0.0.1","HostPort":5353,"HostPortEnd":5353}]}}`)
	if err := d.Leave(nw, ep, ns); err != nil {
		t.Fatal(err)
	}
}
