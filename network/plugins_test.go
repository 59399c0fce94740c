package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
)

// fakePlugins finds the drivers and IPAM plugins it was given, and counts
// the lookups.
type fakePlugins struct {
	mu      sync.Mutex
	drivers map[string]driver.Driver
	ipams   map[string]ipam.Plugin
	lookups int
	down    error // every lookup fails with it when set
}

func (p *fakePlugins) NetworkDriver(name string) (driver.Driver, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lookups++
	if p.down != nil {
		return nil, p.down
	}
	if d, ok := p.drivers[name]; ok {
		return d, nil
	}
	return nil, errdefs.ErrNotFound.WithMessage("no plugin " + name)
}

func (p *fakePlugins) IPAMDriver(name string) (ipam.Plugin, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lookups++
	if p.down != nil {
		return nil, p.down
	}
	if i, ok := p.ipams[name]; ok {
		return i, nil
	}
	return nil, errdefs.ErrNotFound.WithMessage("no plugin " + name)
}

// fakeIPAM hands out 10.99.N.0/24 pools and their addresses from .2 up,
// and keeps every call.
type fakeIPAM struct {
	mu    sync.Mutex
	next  int
	pools map[string]netip.Prefix
	taken map[netip.Addr]string // address → its request's options
	calls []string
	fail  map[string]error
}

func newFakeIPAM() *fakeIPAM {
	return &fakeIPAM{pools: map[string]netip.Prefix{}, taken: map[netip.Addr]string{}, fail: map[string]error{}}
}

func (f *fakeIPAM) Name() string { return "fake-ipam" }

func (f *fakeIPAM) RequestPool(req ipam.PoolRequest) (ipam.PoolGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RequestPool")
	if err := f.fail["RequestPool"]; err != nil {
		return ipam.PoolGrant{}, err
	}
	pool := req.Subnet
	if !pool.IsValid() {
		pool = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(f.next), 0}), 24)
		f.next++
	}
	id := "pool-" + pool.String()
	f.pools[id] = pool
	return ipam.PoolGrant{ID: id, Pool: pool}, nil
}

func (f *fakeIPAM) ReleasePool(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "ReleasePool")
	delete(f.pools, id)
	return nil
}

func (f *fakeIPAM) RequestAddress(id string, want netip.Addr, opts map[string]string) (netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RequestAddress")
	if err := f.fail["RequestAddress"]; err != nil {
		return netip.Prefix{}, err
	}
	pool, ok := f.pools[id]
	if !ok {
		return netip.Prefix{}, fmt.Errorf("no pool %s", id)
	}
	if want.IsValid() {
		if _, taken := f.taken[want]; taken || !pool.Contains(want) {
			return netip.Prefix{}, fmt.Errorf("%s is taken or outside %s", want, pool)
		}
		f.taken[want] = opts[ipam.RequestAddressType]
		return netip.PrefixFrom(want, pool.Bits()), nil
	}
	for a := pool.Addr().Next(); pool.Contains(a); a = a.Next() {
		if _, taken := f.taken[a]; !taken {
			f.taken[a] = opts[ipam.RequestAddressType]
			return netip.PrefixFrom(a, pool.Bits()), nil
		}
	}
	return netip.Prefix{}, errors.New("pool full")
}

func (f *fakeIPAM) ReleaseAddress(id string, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "ReleaseAddress")
	delete(f.taken, a)
	return nil
}

func (f *fakeIPAM) state() (pools, addrs, calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pools), len(f.taken), len(f.calls)
}

func newPluginTestbed(t *testing.T, p *fakePlugins) *testbed {
	t.Helper()
	tb := &testbed{t: t}
	*tb = *newTestbed(t)
	tb.c.Close()
	tb.cfg.Plugins = p
	tb.start()
	return tb
}

func TestPluginDriversAreFoundByNameOnFirstUseAndAfterARestart(t *testing.T) {
	weave := bridgeLike("weave")
	p := &fakePlugins{drivers: map[string]driver.Driver{"weave": weave}}
	tb := newPluginTestbed(t, p)
	if _, err := tb.c.CreateNetwork(CreateOptions{Name: "x", Driver: "nosuch"}); !errdefs.IsNotFound(err) || err.Error() != `plugin "nosuch" not found` {
		t.Fatalf("unknown driver: %v, want Docker's not found", err)
	}
	tb.network("w1", CreateOptions{Driver: "weave"})
	tb.network("w2", CreateOptions{Driver: "weave"})
	if p.lookups != 2 {
		t.Errorf("%d lookups: a plugin's driver is looked up once, then kept (and nosuch once)", p.lookups)
	}
	if got := strings.Join(tb.c.DriverNames(), ","); !strings.Contains(got, "weave") {
		t.Errorf("drivers %s lack the plugin's", got)
	}
	tb.sandbox("s")
	ep := tb.connect("s", "w1", EndpointOptions{})
	if !ep.IPv4.IsValid() || weave.joinedCount() != 1 {
		t.Fatalf("endpoint %+v on the plugin's network", ep)
	}
	tb.restart()
	if _, err := tb.c.InspectNetwork("w1"); err != nil {
		t.Fatalf("after a restart the plugin's network is gone: %v", err)
	}

	// A plugin that cannot be reached at start leaves its networks alone
	// (logged), the rest of the daemon starts.
	p.down = errors.New("plugin weave: connection refused")
	tb.restart()
	if _, err := tb.c.InspectNetwork("w1"); !errdefs.IsNotFound(err) {
		t.Fatalf("network of an unreachable plugin: %v", err)
	}
	if _, err := tb.c.InspectNetwork(NameBridge); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.c.CreateNetwork(CreateOptions{Name: "w3", Driver: "weave2"}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("create on an unreachable plugin: %v, want the plugin's error", err)
	}
	// Back, it finds its networks and endpoints as they were.
	p.down = nil
	tb.restart()
	d, err := tb.c.InspectSandbox("s")
	if err != nil || len(d.Endpoints) != 1 || d.Endpoints[0].NetworkName != "w1" || d.Endpoints[0].IPv4 != ep.IPv4 {
		t.Fatalf("after the plugin's return: %+v, %v; want the endpoint on w1 kept", d, err)
	}
}

func TestIPAMPluginGivesPoolsGatewaysAndAddresses(t *testing.T) {
	fi := newFakeIPAM()
	p := &fakePlugins{ipams: map[string]ipam.Plugin{"fake-ipam": fi}}
	tb := newPluginTestbed(t, p)

	if _, err := tb.c.CreateNetwork(CreateOptions{Name: "x", IPAMDriver: "nosuch"}); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown IPAM driver: %v", err)
	}
	n := tb.network("app", CreateOptions{IPAMDriver: "fake-ipam"})
	if n.IPAM.Driver != "fake-ipam" || len(n.IPAM.Pools) != 1 || n.IPAM.Pools[0].Subnet.String() != "10.99.0.0/24" ||
		n.IPAM.Pools[0].Gateway.String() != "10.99.0.1" || n.IPAM.Pools[0].PoolID == "" {
		t.Fatalf("network %+v: pool and gateway should come from the plugin", n.IPAM)
	}
	if fi.taken[netip.MustParseAddr("10.99.0.1")] != ipam.GatewayAddressType {
		t.Errorf("the gateway was not asked for as one: %v", fi.taken)
	}
	aux := tb.network("aux", CreateOptions{IPAMDriver: "fake-ipam", IPAM: []ipam.Config{{
		Subnet: netip.MustParsePrefix("10.98.0.0/24"), Gateway: netip.MustParseAddr("10.98.0.254"),
		AuxAddresses: map[string]netip.Addr{"r": netip.MustParseAddr("10.98.0.2")},
	}}})
	if g := aux.IPAM.Pools[0].Gateway.String(); g != "10.98.0.254" {
		t.Errorf("user's gateway became %s", g)
	}

	tb.sandbox("s")
	ep := tb.connect("s", "app", EndpointOptions{})
	if ep.IPv4.String() != "10.99.0.2/24" {
		t.Fatalf("endpoint address %s, want the plugin's first free one", ep.IPv4)
	}
	ep2 := tb.connect("s", "aux", EndpointOptions{IPv4: netip.MustParseAddr("10.98.0.9")})
	if ep2.IPv4.String() != "10.98.0.9/24" {
		t.Fatalf("static address on a plugin's pool: %s", ep2.IPv4)
	}
	_, _, calls := fi.state()

	// A restart asks the plugin for nothing: it kept its state.
	tb.restart()
	if _, _, c := fi.state(); c != calls {
		t.Errorf("a restart made %d calls to the IPAM plugin", c-calls)
	}
	if d, err := tb.c.InspectSandbox("s"); err != nil || len(d.Endpoints) != 2 {
		t.Fatalf("sandbox after a restart: %+v, %v", d, err)
	}

	if _, err := tb.c.Disconnect("s", "app", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := fi.taken[netip.MustParseAddr("10.99.0.2")]; ok {
		t.Error("disconnect left the address taken in the plugin")
	}
	if _, err := tb.c.Disconnect("s", "aux", nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"app", "aux"} {
		if err := tb.c.DeleteNetwork(name); err != nil {
			t.Fatal(err)
		}
	}
	if pools, addrs, _ := fi.state(); pools != 0 || addrs != 0 {
		t.Errorf("after removal the plugin still holds %d pools and %d addresses", pools, addrs)
	}

	// A failure half way gives back what was granted.
	fi.fail["RequestAddress"] = errors.New("out of gateways")
	if _, err := tb.c.CreateNetwork(CreateOptions{Name: "bad", IPAMDriver: "fake-ipam"}); err == nil || !strings.Contains(err.Error(), "fake-ipam") {
		t.Fatalf("create with a failing plugin: %v, want an error naming it", err)
	}
	if pools, _, _ := fi.state(); pools != 0 {
		t.Errorf("a failed create left %d pools in the plugin", pools)
	}
	if _, err := tb.c.InspectNetwork("bad"); !errdefs.IsNotFound(err) {
		t.Errorf("a failed create left the network: %v", err)
	}
	// host and none take no pools.
	if _, err := tb.c.CreateNetwork(CreateOptions{Name: "m", Driver: "null2", IPAMDriver: "fake-ipam"}); err == nil {
		t.Error("an unknown driver with an IPAM plugin was accepted")
	}
}

// cniLike is a fake of a driver that addresses its endpoints itself and
// publishes their ports (CNI).
type cniLike struct {
	*fakeDriver
	mu     sync.Mutex
	next   byte
	joined []driver.Endpoint
}

func (d *cniLike) Describe(*driver.Network) driver.NetworkInfo {
	return driver.NetworkInfo{PublishesPorts: true}
}

func (d *cniLike) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, error) {
	if _, err := d.fakeDriver.Join(nw, ep, ns); err != nil {
		return driver.JoinInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.joined = append(d.joined, *ep)
	addr := ep.IPv4
	if !addr.IsValid() {
		d.next++
		addr = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 88, 0, 1 + d.next}), 16)
	} else {
		addr = netip.PrefixFrom(addr.Addr(), 16)
	}
	mac, _ := net.ParseMAC("0a:58:0a:58:00:09")
	return driver.JoinInfo{IPv4: addr, MAC: mac, Gateway4: netip.MustParseAddr("10.88.0.1")}, nil
}

func TestDriverWithOwnAddressesAndPorts(t *testing.T) {
	cni := &cniLike{fakeDriver: newFakeDriver("cni", driver.Capabilities{
		Scope: driver.ScopeLocal, OwnAddresses: true, Sharing: driver.Shares, Singleton: true,
		Predefined: []driver.Predefined{{Name: "podnet"}},
	})}
	tb := newTestbed(t, cni)
	n, err := tb.c.InspectNetwork("podnet")
	if err != nil || len(n.IPAM.Pools) != 0 {
		t.Fatalf("the driver's predefined network: %+v, %v", n, err)
	}
	if err := tb.c.DeleteNetwork("podnet"); !errdefs.IsPermissionDenied(err) {
		t.Errorf("removing the driver's network: %v, want refused", err)
	}
	tb.sandbox("a")
	tb.sandbox("b")
	port := PortSpec{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}
	a := tb.connect("a", "podnet", EndpointOptions{Ports: []PortSpec{port}, Aliases: []string{"web"}})
	if a.IPv4.String() != "10.88.0.2/16" || a.MAC != "0a:58:0a:58:00:09" || a.Gateway.String() != "10.88.0.1" {
		t.Fatalf("endpoint %+v: the addresses and MAC the driver gave are not recorded", a)
	}
	if got := cni.joined[0].Ports; len(got) != 1 || got[0].HostPort != 8080 || got[0].Port != 80 || got[0].Proto != "tcp" {
		t.Errorf("Join had ports %+v, want 8080→80/tcp", got)
	}
	if _, binds, _ := tb.fw.state(); binds != 0 {
		t.Errorf("berth's firewall published %d ports the driver publishes itself", binds)
	}
	if tb.kernel.heldPorts() != 1 {
		t.Errorf("%d host ports held, want 8080 reserved", tb.kernel.heldPorts())
	}
	b := tb.connect("b", "podnet", EndpointOptions{IPv4: netip.MustParseAddr("10.88.7.7")})
	if got := cni.joined[1].IPv4; got.String() != "10.88.7.7/32" {
		t.Errorf("Join was asked for %s, want the static address", got)
	}
	if b.IPv4.String() != "10.88.7.7/16" {
		t.Errorf("static endpoint %s", b.IPv4)
	}
	tb.restart()
	d, err := tb.c.InspectSandbox("a")
	if err != nil || len(d.Endpoints) != 1 || d.Endpoints[0].IPv4.String() != "10.88.0.2/16" {
		t.Fatalf("after a restart: %+v, %v", d, err)
	}
	if tb.kernel.heldPorts() != 1 {
		t.Errorf("after a restart %d host ports held, want 1", tb.kernel.heldPorts())
	}
	if _, err := tb.c.Disconnect("a", "podnet", nil); err != nil {
		t.Fatal(err)
	}
	if tb.kernel.heldPorts() != 0 {
		t.Errorf("disconnect left %d host ports held", tb.kernel.heldPorts())
	}
	// The driver translated the port, and forgets its own flows: berth
	// does not search the kernel's connections for them.
	if containsAddr(tb.kernel.forgotten, netip.MustParseAddr("10.88.0.2")) {
		t.Error("berth forgot the tracked connections of ports a driver publishes itself")
	}
	// A configuration named as a network of another driver leaves that
	// network alone.
	tb.network("mine", CreateOptions{})
	cni.caps.Predefined = []driver.Predefined{{Name: "podnet"}, {Name: "mine", EnableIPv6: true}}
	tb.restart()
	if n, err := tb.c.InspectNetwork("mine"); err != nil || n.Driver != "bridge" {
		t.Fatalf("the user's network after a CNI configuration took its name: %+v, %v", n, err)
	}
	// Its configuration replaced by another: the old network goes, once
	// nothing is on it, and the new one comes.
	cni.caps.Predefined = []driver.Predefined{{Name: "other"}}
	tb.restart()
	if _, err := tb.c.InspectNetwork("podnet"); err != nil {
		t.Fatalf("a network the driver dropped went while b is on it: %v", err)
	}
	if _, err := tb.c.Disconnect("b", "podnet", nil); err != nil {
		t.Fatal(err)
	}
	tb.restart()
	if _, err := tb.c.InspectNetwork("podnet"); !errdefs.IsNotFound(err) {
		t.Errorf("the network the driver no longer brings: %v, want gone", err)
	}
	if _, err := tb.c.InspectNetwork("other"); err != nil {
		t.Error(err)
	}
}

// macChooser is a fake of a driver that chooses its endpoints' MACs when
// not given one (a remote plugin answering CreateEndpoint with a MAC).
type macChooser struct {
	*fakeDriver
	given []net.HardwareAddr
}

func (d *macChooser) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, error) {
	info, err := d.fakeDriver.Join(nw, ep, ns)
	d.given = append(d.given, ep.MAC)
	info.MAC = ep.MAC
	if info.MAC == nil {
		info.MAC, _ = net.ParseMAC("0a:00:00:00:00:01")
	}
	return info, err
}

// A driver with DriverMAC is given a MAC only when the caller asked for
// one, and the MAC it chose is the endpoint's, across a restart.
func TestADriverChoosesTheMACWhenNoneWasAskedFor(t *testing.T) {
	d := &macChooser{fakeDriver: newFakeDriver("chooser", driver.Capabilities{Scope: driver.ScopeLocal, Addresses: true, Sharing: driver.Shares, DriverMAC: true})}
	tb := newTestbed(t, d)
	tb.network("plug", CreateOptions{Driver: "chooser"})
	tb.sandbox("a")
	tb.sandbox("b")
	a := tb.connect("a", "plug", EndpointOptions{})
	b := tb.connect("b", "plug", EndpointOptions{MAC: "02:00:00:00:00:0b"})
	if len(d.given) != 2 || d.given[0] != nil || d.given[1].String() != "02:00:00:00:00:0b" {
		t.Errorf("the driver was given MACs %v, want none and then the one asked for", d.given)
	}
	if a.MAC != "0a:00:00:00:00:01" || b.MAC != "02:00:00:00:00:0b" {
		t.Errorf("endpoints' MACs %s and %s, want the driver's and the one asked for", a.MAC, b.MAC)
	}
	tb.restart()
	sb, err := tb.c.InspectSandbox("a")
	if err != nil || len(sb.Endpoints) != 1 || sb.Endpoints[0].MAC != "0a:00:00:00:00:01" {
		t.Fatalf("after a restart: %+v, %v", sb, err)
	}
}

// macIPAM is fakeIPAM requiring endpoints' MACs (Docker's
// RequiresMACAddress), keeping the MAC each address was asked with.
type macIPAM struct {
	*fakeIPAM
	macs map[netip.Addr]string
}

func (f *macIPAM) RequiresMACAddress() bool { return true }

func (f *macIPAM) RequestAddress(id string, want netip.Addr, opts map[string]string) (netip.Prefix, error) {
	a, err := f.fakeIPAM.RequestAddress(id, want, opts)
	if err == nil {
		f.mu.Lock()
		f.macs[a.Addr()] = opts[ipam.MACAddressOption]
		f.mu.Unlock()
	}
	return a, err
}

// An IPAM plugin that requires MACs gets each endpoint's with its
// address: the one asked for, or one chosen for it, which the endpoint
// then has.
func TestAnIPAMPluginRequiringMACsGetsTheEndpointsMAC(t *testing.T) {
	fi := &macIPAM{fakeIPAM: newFakeIPAM(), macs: map[netip.Addr]string{}}
	tb := newPluginTestbed(t, &fakePlugins{ipams: map[string]ipam.Plugin{"fake-ipam": fi}})
	tb.network("app", CreateOptions{IPAMDriver: "fake-ipam"})
	tb.sandbox("a")
	tb.sandbox("b")
	a := tb.connect("a", "app", EndpointOptions{})
	b := tb.connect("b", "app", EndpointOptions{MAC: "02:00:00:00:00:0b"})
	if got := fi.macs[a.IPv4.Addr()]; got == "" || got != a.MAC {
		t.Errorf("a's address was asked with MAC %q; a has %s", got, a.MAC)
	}
	if got := fi.macs[b.IPv4.Addr()]; got != "02:00:00:00:00:0b" || b.MAC != got {
		t.Errorf("b's address was asked with MAC %q; b has %s, asked for 02:00:00:00:00:0b", got, b.MAC)
	}
	if gw := fi.macs[netip.MustParseAddr("10.99.0.1")]; gw != "" {
		t.Errorf("the gateway was asked with MAC %q", gw)
	}
}
