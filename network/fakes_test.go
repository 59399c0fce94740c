package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/miekg/dns"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/resolver"
	"github.com/berth-net/berth/store"
)

// The controller's unit tests run it against fakes of the kernel, the
// firewall and the drivers, and the in-memory store: no root, no netlink.

var errInjected = errors.New("injected failure")

// fakeKernel is a host whose namespaces are tokens and whose routes,
// ports and devices are maps.
type fakeKernel struct {
	mu       sync.Mutex
	prefixes []netip.Prefix
	// namespaces are the paths that exist, each with its token.
	namespaces map[string]*netdev.Namespace
	paths      map[*netdev.Namespace]string
	closed     int
	// routes: namespace path → "default4"/"default6"/destination → "ifName via gw [dev]".
	routes map[string]map[string]string
	// ports held: "proto addr:port/family".
	ports       map[string]bool
	forgottenIn []netip.Addr
	forgotten   []netip.Addr
	localnet    []string
	forwarding  []bool
	wanted      []map[string]bool
	reaped      int
	// failures: operation name → error.
	fail map[string]error
	// busyPorts are host ports another process holds.
	busyPorts map[uint16]bool
	// noIPv6: the host has no IPv6 (turned off at boot).
	noIPv6 bool
	// resolvers are the UDP addresses of the resolver sockets made in
	// each namespace.
	resolvers map[*netdev.Namespace]netip.AddrPort
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		namespaces: map[string]*netdev.Namespace{}, paths: map[*netdev.Namespace]string{},
		routes: map[string]map[string]string{}, ports: map[string]bool{}, fail: map[string]error{}, busyPorts: map[uint16]bool{},
		resolvers: map[*netdev.Namespace]netip.AddrPort{},
	}
}

func (k *fakeKernel) failure(op string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fail[op]
}

func (k *fakeKernel) setFailure(op string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		delete(k.fail, op)
	} else {
		k.fail[op] = err
	}
}

// addNamespace makes a namespace exist at path, as a caller's own.
func (k *fakeKernel) addNamespace(path string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ns := new(netdev.Namespace)
	k.namespaces[path] = ns
	k.paths[ns] = path
}

func (k *fakeKernel) exists(path string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.namespaces[path]
	return ok
}

func (k *fakeKernel) Prefixes() ([]netip.Prefix, error) {
	if err := k.failure("Prefixes"); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.prefixes), nil
}

func (k *fakeKernel) ForgetConnections(a netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.forgotten = append(k.forgotten, a)
	return nil
}

func (k *fakeKernel) ForgetConnectionsIn(_ *netdev.Namespace, a netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.forgottenIn = append(k.forgottenIn, a)
	return nil
}

func (k *fakeKernel) AllowLocalnet(dev string) error {
	if err := k.failure("AllowLocalnet"); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.localnet = append(k.localnet, dev)
	return nil
}

func (k *fakeKernel) EnableForwarding(v6 bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.forwarding = append(k.forwarding, v6)
	return nil
}

type heldPort struct {
	k   *fakeKernel
	key string
}

func (h heldPort) Close() error {
	h.k.mu.Lock()
	defer h.k.mu.Unlock()
	delete(h.k.ports, h.key)
	return nil
}

func (k *fakeKernel) ReservePort(r netdev.Reservation) (io.Closer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.noIPv6 && r.Addr.Is6() {
		return nil, fmt.Errorf("reserve %s port %d: %w", r.Proto, r.Port, syscall.EAFNOSUPPORT)
	}
	if k.busyPorts[r.Port] {
		return nil, fmt.Errorf("listen %s: bind: address already in use", netip.AddrPortFrom(r.Addr, r.Port))
	}
	key := fmt.Sprintf("%s %s to %s", r.Proto, netip.AddrPortFrom(r.Addr, r.Port), r.To)
	k.ports[key] = true
	return heldPort{k, key}, nil
}

// reservations are the held ports as "proto addr:port to destination".
func (k *fakeKernel) reservations() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Sorted(maps.Keys(k.ports))
}

func (k *fakeKernel) heldPorts() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.ports)
}

func (k *fakeKernel) RetireUnwanted(wanted map[string]bool) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.wanted = append(k.wanted, wanted)
	return 0, nil
}

func (k *fakeKernel) Reap() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reaped++
	return nil
}

func (k *fakeKernel) CreateNamespace(path string) (*netdev.Namespace, error) {
	if err := k.failure("CreateNamespace"); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.namespaces[path]; ok {
		return nil, fmt.Errorf("create namespace mount point: %s exists", path)
	}
	ns := new(netdev.Namespace)
	k.namespaces[path] = ns
	k.paths[ns] = path
	return ns, nil
}

func (k *fakeKernel) OpenNamespace(path string) (*netdev.Namespace, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	target, ok := k.namespaces[path]
	if !ok {
		return nil, fmt.Errorf("open network namespace %s: no such file or directory", path)
	}
	// Another handle of the same namespace.
	ns := new(netdev.Namespace)
	k.paths[ns] = k.paths[target]
	return ns, nil
}

func (k *fakeKernel) DeleteNamespace(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.namespaces, path)
	delete(k.routes, path)
	return nil
}

func (k *fakeKernel) CloseNamespace(*netdev.Namespace) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed++
}

func (k *fakeKernel) SameNamespace(a, b *netdev.Namespace) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.paths[a] == k.paths[b]
}

func (k *fakeKernel) LoopbackUp(*netdev.Namespace) error { return k.failure("LoopbackUp") }

func (k *fakeKernel) setRoute(ns *netdev.Namespace, key, val string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.paths[ns]
	if k.routes[p] == nil {
		k.routes[p] = map[string]string{}
	}
	k.routes[p][key] = val
}

// route is a namespace's route, as the fake records it.
func (k *fakeKernel) route(path, key string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.routes[path][key]
}

func (k *fakeKernel) SetDefaultRoute(ns *netdev.Namespace, ifName string, _ int, gw netip.Addr, viaDevice bool) error {
	if err := k.failure("SetDefaultRoute"); err != nil {
		return err
	}
	family := "default4"
	if gw.Is6() {
		family = "default6"
	}
	val := ifName + " via " + gw.String()
	if viaDevice {
		val = ifName + " dev"
	}
	k.setRoute(ns, family, val)
	return nil
}

func (k *fakeKernel) AddRoute(ns *netdev.Namespace, ifName string, _ int, r driver.Route) error {
	if err := k.failure("AddRoute"); err != nil {
		return err
	}
	val := ifName
	if r.Via.IsValid() {
		val += " via " + r.Via.String()
	}
	k.setRoute(ns, r.Dst.String(), val)
	return nil
}

func (k *fakeKernel) Listen(ns *netdev.Namespace, addr netip.Addr) (*net.UDPConn, net.Listener, error) {
	if err := k.failure("Listen"); err != nil {
		return nil, nil, err
	}
	udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		return nil, nil, err
	}
	tcp, err := net.Listen("tcp4", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		udp.Close()
		return nil, nil, err
	}
	k.mu.Lock()
	k.resolvers[ns] = netip.MustParseAddrPort(udp.LocalAddr().String())
	k.mu.Unlock()
	return udp, tcp, nil
}

// fakeFirewall keeps the state the controller's changes leave.
type fakeFirewall struct {
	mu       sync.Mutex
	networks map[string]firewall.Network
	bindings map[firewall.Binding]bool
	isolated map[string]bool
	guarded  map[string]firewall.Guard
	// redirects are the resolver ports DNS was redirected to.
	redirects []uint16
	applied   int
	rebuilt   int
	fail      error
	// failNext fails only the next Apply.
	failNext error
}

func newFakeFirewall() *fakeFirewall {
	return &fakeFirewall{networks: map[string]firewall.Network{}, bindings: map[firewall.Binding]bool{}, isolated: map[string]bool{}, guarded: map[string]firewall.Guard{}}
}

func (f *fakeFirewall) Rebuild(nets []firewall.Network, binds []firewall.Binding, guards []firewall.Guard) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rebuilt++
	f.networks, f.bindings, f.isolated, f.guarded = map[string]firewall.Network{}, map[firewall.Binding]bool{}, map[string]bool{}, map[string]firewall.Guard{}
	for _, g := range guards {
		f.guarded[g.Port] = g
	}
	for _, n := range nets {
		f.networks[n.Bridge] = n
		for _, p := range n.Ports {
			f.isolated[p] = true
		}
	}
	for _, b := range binds {
		f.bindings[b] = true
	}
	return nil
}

func (f *fakeFirewall) Apply(ch firewall.Change) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	if f.fail != nil {
		return f.fail
	}
	f.applied++
	for _, n := range ch.RemoveNetworks {
		delete(f.networks, n.Bridge)
	}
	for _, n := range ch.AddNetworks {
		f.networks[n.Bridge] = n
	}
	for _, b := range ch.Unpublish {
		delete(f.bindings, b)
	}
	for _, b := range ch.Publish {
		f.bindings[b] = true
	}
	for _, p := range ch.Unisolate {
		delete(f.isolated, p)
	}
	for _, p := range ch.Isolate {
		f.isolated[p] = true
	}
	for _, g := range ch.Unguard {
		delete(f.guarded, g.Port)
	}
	for _, g := range ch.Guard {
		f.guarded[g.Port] = g
	}
	return nil
}

func (f *fakeFirewall) RedirectDNS(nsFd int, udp, tcp uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.redirects = append(f.redirects, udp)
	return nil
}

func (f *fakeFirewall) state() (nets int, binds int, isolated int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.networks), len(f.bindings), len(f.isolated)
}

// fakeDriver is a driver whose kernel state is a set of joined endpoints.
type fakeDriver struct {
	name string
	caps driver.Capabilities
	// describe gives a network's info; nil: none.
	describe func(*driver.Network) driver.NetworkInfo
	// join gives a join's info; nil: the subnets' gateways.
	join func(*driver.Network, *driver.Endpoint) driver.JoinInfo

	mu       sync.Mutex
	networks map[string]bool
	joined   map[string]bool // endpoint ID
	fail     map[string]error
	// broken endpoints answer Restore with not intact.
	broken map[string]bool
	// blockJoin, when set, holds joins to the network of that name until
	// released.
	blockJoin string
	entered   chan struct{}
	release   chan struct{}
}

func newFakeDriver(name string, caps driver.Capabilities) *fakeDriver {
	return &fakeDriver{name: name, caps: caps, networks: map[string]bool{}, joined: map[string]bool{}, fail: map[string]error{}, broken: map[string]bool{}}
}

// bridgeLike is a fake of a driver whose networks get addresses, a
// firewall device named after them, and gateways.
func bridgeLike(name string) *fakeDriver {
	d := newFakeDriver(name, driver.Capabilities{Scope: driver.ScopeLocal, Addresses: true, Sharing: driver.Shares})
	d.describe = func(nw *driver.Network) driver.NetworkInfo {
		fw := &driver.Firewall{Device: "br-" + nw.Name, Masquerade: true, Isolated: nw.Options["icc"] == "false", AntiSpoof: nw.Options["spoof"] != "allow",
			Routed4: nw.Options["routed4"] == "true", Routed6: nw.Options["routed6"] == "true"}
		if a, err := netip.ParseAddr(nw.Options["hostip"]); err == nil {
			fw.HostIP = a
		}
		return driver.NetworkInfo{Firewall: fw, Notes: map[string]string{"com.test.note": "x"}}
	}
	return d
}

func (d *fakeDriver) setFailure(op string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.fail, op)
	} else {
		d.fail[op] = err
	}
}

func (d *fakeDriver) failure(op string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fail[op]
}

func (d *fakeDriver) Name() string                        { return d.name }
func (d *fakeDriver) Capabilities() driver.Capabilities   { return d.caps }
func (d *fakeDriver) Devices(nw *driver.Network) []string { return []string{"br-" + nw.Name} }
func (d *fakeDriver) ValidateOptions(opts map[string]string) error {
	if v, ok := opts["bad"]; ok {
		return invalid("bad option %s", v)
	}
	return nil
}

func (d *fakeDriver) Prepare(nw *driver.Network, existing []*driver.Network) (json.RawMessage, error) {
	if err := d.failure("Prepare"); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]int{"existing": len(existing)})
}

func (d *fakeDriver) Describe(nw *driver.Network) driver.NetworkInfo {
	if d.describe == nil {
		return driver.NetworkInfo{}
	}
	return d.describe(nw)
}

func (d *fakeDriver) CreateNetwork(nw *driver.Network) error {
	if err := d.failure("CreateNetwork"); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.networks[nw.ID] = true
	return nil
}

func (d *fakeDriver) DeleteNetwork(nw *driver.Network) error {
	if err := d.failure("DeleteNetwork"); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.networks, nw.ID)
	return nil
}

func (d *fakeDriver) info(nw *driver.Network, ep *driver.Endpoint) driver.JoinInfo {
	if d.join != nil {
		return d.join(nw, ep)
	}
	return driver.Gateways(nw, ep)
}

func (d *fakeDriver) Join(nw *driver.Network, ep *driver.Endpoint, _ *netdev.Namespace) (driver.JoinInfo, error) {
	if d.blockJoin != "" && nw.Name == d.blockJoin {
		d.entered <- struct{}{}
		<-d.release
	}
	if err := d.failure("Join"); err != nil {
		return driver.JoinInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.joined[ep.ID] = true
	return d.info(nw, ep), nil
}

func (d *fakeDriver) Leave(_ *driver.Network, ep *driver.Endpoint, _ *netdev.Namespace) error {
	if err := d.failure("Leave"); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.joined, ep.ID)
	return nil
}

func (d *fakeDriver) Restore(nw *driver.Network, ep *driver.Endpoint, _ *netdev.Namespace) (driver.JoinInfo, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info(nw, ep), d.joined[ep.ID] && !d.broken[ep.ID], nil
}

func (d *fakeDriver) joinedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.joined)
}

// testbed is a controller with its fakes.
type testbed struct {
	t      testing.TB
	c      *Controller
	store  *flakyStore
	kernel *fakeKernel
	fw     *fakeFirewall
	bridge *fakeDriver
	dns    *DNS
	cfg    Config
	// upstream answers every forwarded name with NXDOMAIN.
	upstream netip.AddrPort
}

// nxdomainServer is an upstream DNS server on loopback that knows no name.
func nxdomainServer(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// host and none drivers, as the real ones describe themselves.
func stateless() []driver.Driver {
	return []driver.Driver{
		driver.Stateless{DriverName: "host", Network: NameHost, Sharing: driver.HostNamespace},
		driver.Stateless{DriverName: "null", Network: NameNone, Sharing: driver.Alone},
	}
}

// newTestbed starts a controller on fakes, with a bridge-like driver
// "bridge" that brings the predefined "bridge" network, host and none.
func newTestbed(t testing.TB, extra ...driver.Driver) *testbed {
	t.Helper()
	return newTestbedIn(t, nil, extra...)
}

// newTestbedIn is newTestbed on a host of a cluster.
func newTestbedIn(t testing.TB, cl *cluster.Store, extra ...driver.Driver) *testbed {
	t.Helper()
	br := bridgeLike("bridge")
	br.caps.Predefined = []driver.Predefined{{Name: NameBridge, Options: map[string]string{"default": "true"}}}
	table := resolver.NewTable()
	upstream := nxdomainServer(t)
	tb := &testbed{
		t: t, store: &flakyStore{Store: store.NewMemory(), fail: map[string]error{}}, kernel: newFakeKernel(), fw: newFakeFirewall(), bridge: br,
		upstream: upstream,
		dns: &DNS{
			Table: table, Resolver: resolver.New(table, resolver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
			Upstreams: func() []netip.AddrPort { return []netip.AddrPort{upstream} },
		},
	}
	tb.cfg = Config{
		Store: tb.store, Kernel: tb.kernel, Firewall: tb.fw, DNS: tb.dns, DefaultDriver: "bridge",
		Drivers: append(append([]driver.Driver{br}, stateless()...), extra...),
		Pools:   ipam.DefaultLocalPools(), NamespaceDir: "/run/test/netns",
		HostResolvConf: "testdata/resolv.conf",
		Log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Cluster:        cl,
	}
	tb.start()
	return tb
}

// start (re)starts the controller on the same store and kernel, as berthd
// does after a restart.
func (tb *testbed) start() {
	tb.t.Helper()
	c, err := New(tb.cfg)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.c = c
	tb.t.Cleanup(c.Close)
}

// restart stops the controller and starts a new one on the same state.
func (tb *testbed) restart() {
	tb.t.Helper()
	tb.c.Close()
	tb.start()
}

func (tb *testbed) network(name string, opts CreateOptions) Network {
	tb.t.Helper()
	opts.Name = name
	n, err := tb.c.CreateNetwork(opts)
	if err != nil {
		tb.t.Fatalf("create network %s: %v", name, err)
	}
	return n
}

// sandbox makes a bare sandbox on a namespace of the caller's.
func (tb *testbed) sandbox(name string) {
	tb.t.Helper()
	path := "/run/test/own/" + name
	tb.kernel.addNamespace(path)
	if _, err := tb.c.CreateSandbox(SandboxOptions{Name: name, Key: path}); err != nil {
		tb.t.Fatalf("create sandbox %s: %v", name, err)
	}
}

func (tb *testbed) connect(sb, nw string, opts EndpointOptions) EndpointDetail {
	tb.t.Helper()
	ep, _, err := tb.c.Connect(sb, nw, opts)
	if err != nil {
		tb.t.Fatalf("connect %s to %s: %v", sb, nw, err)
	}
	return ep
}

// records counts the store's records in a bucket.
func (tb *testbed) records(bucket string) int {
	tb.t.Helper()
	n := 0
	if err := tb.store.View(func(tx store.Tx) error {
		return tx.ForEach(bucket, func(string, []byte) error { n++; return nil })
	}); err != nil {
		tb.t.Fatal(err)
	}
	return n
}

// flakyStore fails writes to chosen buckets, for rollback tests.
type flakyStore struct {
	store.Store
	mu   sync.Mutex
	fail map[string]error // bucket → error of Put and Delete there
}

func (s *flakyStore) failBucket(bucket string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, bucket)
	} else {
		s.fail[bucket] = err
	}
}

func (s *flakyStore) Update(fn func(store.Tx) error) error {
	return s.Store.Update(func(tx store.Tx) error { return fn(flakyTx{tx, s}) })
}

type flakyTx struct {
	store.Tx
	s *flakyStore
}

func (t flakyTx) err(bucket string) error {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.s.fail[bucket]
}

func (t flakyTx) Put(bucket, key string, v []byte) error {
	if err := t.err(bucket); err != nil {
		return err
	}
	return t.Tx.Put(bucket, key, v)
}

func (t flakyTx) Delete(bucket, key string) error {
	if err := t.err(bucket); err != nil {
		return err
	}
	return t.Tx.Delete(bucket, key)
}
