package cni_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/cni"
	"github.com/berth-net/berth/internal/cnitest"
	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/netdev"
)

// These tests run the CNI reference plugins on the real kernel: each in a
// fresh namespace standing for the host, where the driver is made (the
// plugins work on the namespace the driver was made in), with further
// namespaces as sandboxes.

// chain is the network of these tests: a bridge whose host-local range
// has two addresses, so that an address not released shows as a join
// that fails, and portmap.
const chain = `{"cniVersion":"1.0.0","name":"cni-test","plugins":[
	{"type":"bridge","bridge":"cni-t0","isGateway":true,"ipMasq":false,"capabilities":{"ips":true,"mac":true},
	 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.77.0.0/24","rangeStart":"10.77.0.2","rangeEnd":"10.77.0.3"}]],
	         "routes":[{"dst":"0.0.0.0/0"},{"dst":"10.99.0.0/16","gw":"10.77.0.254"}]}},
	{"type":"portmap","capabilities":{"portMappings":true}}]}`

type testNet struct {
	host    *nettest.Host
	drv     *cni.Driver
	nw      *driver.Network
	dataDir string
	bin     string
	cache   string
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	nettest.RequireRoot(t)
	t.Parallel()
	return newNet(t)
}

func newNet(t testing.TB) *testNet {
	t.Helper()
	nettest.RequireRoot(t)
	n := &testNet{host: nettest.NewHost(t), dataDir: t.TempDir(), bin: cnitest.Plugins(t), cache: t.TempDir()}
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), fmt.Appendf(nil, chain, n.dataDir), 0o644); err != nil {
		t.Fatal(err)
	}
	n.drv = n.newDriver(t, confDir)
	p := n.drv.Capabilities().Predefined
	if len(p) != 1 {
		t.Fatalf("predefined networks %+v", p)
	}
	n.nw = &driver.Network{ID: strings.Repeat("c", 64), Name: p[0].Name, Options: p[0].Options}
	if _, err := n.drv.Prepare(n.nw, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.drv.CreateNetwork(n.nw); err != nil {
		t.Fatal(err)
	}
	return n
}

// newDriver makes a driver in the host, as berthd does at its start.
func (n *testNet) newDriver(t testing.TB, confDir string) *cni.Driver {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	var d *cni.Driver
	n.host.Do(func() error {
		d = cni.New(confDir, []string{n.bin}, n.cache, log)
		return nil
	})
	t.Cleanup(d.Close)
	return d
}

// sandbox is a fresh namespace, for the test to look into and opened as
// the controller opens a sandbox's.
func (n *testNet) sandbox(t testing.TB, name string) (*nettest.Namespace, *netdev.Namespace) {
	t.Helper()
	tn := n.host.NewNamespace(name)
	ns, err := netdev.OpenNamespace(tn.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return tn, ns
}

func endpoint(id byte) *driver.Endpoint {
	return &driver.Endpoint{ID: strings.Repeat(string(id), 64), IfName: "eth0"}
}

func (n *testNet) join(t testing.TB, ep *driver.Endpoint, ns *netdev.Namespace) driver.JoinInfo {
	t.Helper()
	info, err := n.drv.Join(n.nw, ep, ns)
	if err != nil {
		t.Fatalf("join %s: %v", ep.ID[:4], err)
	}
	return info
}

// serve answers every connection to addr inside ns with a greeting.
func serve(t *testing.T, ns *nettest.Namespace, addr string) {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
}

func expectGreeting(t *testing.T, from *nettest.Namespace, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, filepath.Base(from.Path), err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Fatalf("from %s: read %q, %v", addr, b, err)
	}
}

func TestContainersOnACNINetworkReachEachOther(t *testing.T) {
	n := newTestNet(t)
	c1, ns1 := n.sandbox(t, "c1")
	c2, ns2 := n.sandbox(t, "c2")
	info1 := n.join(t, endpoint('a'), ns1)
	info2 := n.join(t, endpoint('b'), ns2)

	for _, tc := range []struct {
		ns   *nettest.Namespace
		info driver.JoinInfo
		addr string
	}{{c1, info1, "10.77.0.2/24"}, {c2, info2, "10.77.0.3/24"}} {
		name := filepath.Base(tc.ns.Path)
		if tc.info.IPv4 != netip.MustParsePrefix(tc.addr) || tc.info.IPv6.IsValid() {
			t.Errorf("%s: addresses %v %v, want %s", name, tc.info.IPv4, tc.info.IPv6, tc.addr)
		}
		if tc.info.Gateway4 != netip.MustParseAddr("10.77.0.1") {
			t.Errorf("%s: gateway %v, want 10.77.0.1", name, tc.info.Gateway4)
		}
		want := []driver.Route{{Dst: netip.MustParsePrefix("10.99.0.0/16"), Via: netip.MustParseAddr("10.77.0.254")}}
		if !slices.Equal(tc.info.Routes, want) {
			t.Errorf("%s: routes %v, want %v", name, tc.info.Routes, want)
		}
		l, err := tc.ns.Netlink.LinkByName("eth0")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tc.info.Index != l.Attrs().Index || tc.info.MAC.String() != l.Attrs().HardwareAddr.String() {
			t.Errorf("%s: index %d MAC %v, the kernel has %d %v", name, tc.info.Index, tc.info.MAC, l.Attrs().Index, l.Attrs().HardwareAddr)
		}
		if addrs, _ := tc.ns.Addrs("eth0"); !slices.Equal(addrs, []string{tc.addr}) {
			t.Errorf("%s: eth0 has %v", name, addrs)
		}
	}
	serve(t, c2, "10.77.0.3:80")
	expectGreeting(t, c1, "10.77.0.3:80")
}

func TestPublishedPortReachableThroughPortmap(t *testing.T) {
	n := newTestNet(t)
	if !n.drv.Describe(n.nw).PublishesPorts {
		t.Fatal("a chain with portmap does not publish ports")
	}
	c1, ns1 := n.sandbox(t, "c1")
	ep := endpoint('a')
	ep.Ports = []driver.PortBinding{{Proto: "tcp", HostPort: 18080, Port: 80}}
	n.join(t, ep, ns1)
	serve(t, c1, ":80")
	// From the host itself, to its own address on the bridge: portmap's
	// DNAT of locally made connections.
	expectGreeting(t, n.host.Namespace, "10.77.0.1:18080")
}

// addressesHeld are the addresses host-local has on record.
func (n *testNet) addressesHeld(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.dataDir, n.nw.Name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			out = append(out, e.Name())
		}
	}
	return out
}

func hostLinks(t *testing.T, h *nettest.Host) []string {
	t.Helper()
	names, err := h.LinkNames()
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestLeaveRemovesInterfacesAndReleasesAddresses(t *testing.T) {
	n := newTestNet(t)
	c1, ns1 := n.sandbox(t, "c1")
	c2, ns2 := n.sandbox(t, "c2")
	ep1, ep2 := endpoint('a'), endpoint('b')
	n.join(t, ep1, ns1)
	n.join(t, ep2, ns2)
	if got := hostLinks(t, n.host); len(got) != 4 {
		t.Fatalf("host links after two joins: %v, want lo, the bridge and two veths", got)
	}
	for _, c := range []struct {
		ep *driver.Endpoint
		ns *netdev.Namespace
		tn *nettest.Namespace
	}{{ep1, ns1, c1}, {ep2, ns2, c2}} {
		if err := n.drv.Leave(n.nw, c.ep, c.ns); err != nil {
			t.Fatal(err)
		}
		if names, _ := c.tn.LinkNames(); slices.Contains(names, "eth0") {
			t.Errorf("%s still has eth0 after leaving", filepath.Base(c.tn.Path))
		}
	}
	if got := hostLinks(t, n.host); !slices.Equal(got, []string{"lo", "cni-t0"}) {
		t.Errorf("host links after leaving: %v, want lo and the bridge", got)
	}
	if held := n.addressesHeld(t); len(held) != 0 {
		t.Errorf("host-local still holds %v", held)
	}
	// The range has two addresses: both were given back.
	_, ns3 := n.sandbox(t, "c3")
	_, ns4 := n.sandbox(t, "c4")
	n.join(t, endpoint('c'), ns3)
	n.join(t, endpoint('d'), ns4)
}

// A sandbox gone before its endpoint left: DEL runs without a namespace,
// and the plugins still release the address.
func TestLeaveWithoutNamespaceReleasesAddress(t *testing.T) {
	n := newTestNet(t)
	_, ns1 := n.sandbox(t, "c1")
	ep := endpoint('a')
	n.join(t, ep, ns1)
	if err := n.drv.Leave(n.nw, ep, nil); err != nil {
		t.Fatal(err)
	}
	if held := n.addressesHeld(t); len(held) != 0 {
		t.Errorf("host-local still holds %v", held)
	}
	// Leaving again finds nothing to do.
	if err := n.drv.Leave(n.nw, ep, nil); err != nil {
		t.Errorf("second leave: %v", err)
	}
}

func TestRestoreTellsIntactFromBroken(t *testing.T) {
	n := newTestNet(t)
	c1, ns1 := n.sandbox(t, "c1")
	ep := endpoint('a')
	joined := n.join(t, ep, ns1)
	ep.IPv4 = joined.IPv4 // as the controller records it
	info, ok, err := n.drv.Restore(n.nw, ep, ns1)
	if err != nil || !ok {
		t.Fatalf("restore of a working endpoint: intact %v, %v", ok, err)
	}
	if info.IPv4 != joined.IPv4 || info.Gateway4 != joined.Gateway4 || info.Index != joined.Index || info.MAC.String() != joined.MAC.String() {
		t.Errorf("restore gave %+v, the join %+v", info, joined)
	}

	l, err := c1.Netlink.LinkByName("eth0")
	if err == nil {
		err = c1.Netlink.LinkDel(l)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := n.drv.Restore(n.nw, ep, ns1); err != nil || ok {
		t.Fatalf("restore after eth0 was deleted: intact %v, %v", ok, err)
	}
	// The controller joins it again: the earlier join is undone first, so
	// the address comes back and the range's other one stays free.
	again := n.join(t, ep, ns1)
	if again.IPv4 != joined.IPv4 {
		t.Errorf("join again gave %v, want the requested %v", again.IPv4, joined.IPv4)
	}
	if held := n.addressesHeld(t); len(held) != 1 {
		t.Errorf("host-local holds %v, want one address", held)
	}
	if _, ok, err := n.drv.Restore(n.nw, ep, ns1); err != nil || !ok {
		t.Errorf("restore after joining again: intact %v, %v", ok, err)
	}

	// An interface that lost its address is there, but the chain's CHECK
	// finds it broken.
	l, err = c1.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := c1.Netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 {
		t.Fatalf("eth0's addresses %v, %v", addrs, err)
	}
	if err := c1.Netlink.AddrDel(l, &addrs[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := n.drv.Restore(n.nw, ep, ns1); err != nil || ok {
		t.Errorf("restore after eth0 lost its address: intact %v, %v", ok, err)
	}
}

// A configuration deleted while containers are on its network: berthd
// starts again without it, and what the plugins made is still undone,
// from libcni's cache of each join.
func TestConfigurationRemovedWhileJoined(t *testing.T) {
	n := newTestNet(t)
	c1, ns1 := n.sandbox(t, "c1")
	c2, ns2 := n.sandbox(t, "c2")
	ep1, ep2 := endpoint('a'), endpoint('b')
	n.join(t, ep1, ns1)
	n.join(t, ep2, ns2)

	d := n.newDriver(t, t.TempDir())
	if p := d.Capabilities().Predefined; len(p) != 0 {
		t.Fatalf("predefined %+v from an empty directory", p)
	}
	// The controller finds the endpoint broken and joins it again, which
	// fails: the endpoint is dropped.
	if _, ok, err := d.Restore(n.nw, ep1, ns1); ok || err != nil {
		t.Fatalf("restore: intact %v, %v", ok, err)
	}
	if _, err := d.Join(n.nw, ep1, ns1); !errdefs.IsNotFound(err) {
		t.Fatalf("join: %v, want not found", err)
	}
	// The network is removed, its endpoints leaving.
	if err := d.Leave(n.nw, ep2, ns2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*nettest.Namespace{c1, c2} {
		if names, _ := c.LinkNames(); slices.Contains(names, "eth0") {
			t.Errorf("%s still has eth0", filepath.Base(c.Path))
		}
	}
	if held := n.addressesHeld(t); len(held) != 0 {
		t.Errorf("host-local still holds %v", held)
	}
	if got := hostLinks(t, n.host); !slices.Equal(got, []string{"lo", "cni-t0"}) {
		t.Errorf("host links: %v, want lo and the bridge", got)
	}
}

// The caller's --ip and --mac reach the plugins that declare them.
func TestRequestedAddressAndMAC(t *testing.T) {
	n := newTestNet(t)
	c1, ns1 := n.sandbox(t, "c1")
	ep := endpoint('a')
	ep.IPv4 = netip.MustParsePrefix("10.77.0.3/32")
	ep.MAC, _ = net.ParseMAC("02:42:0a:4d:00:03")
	// Called, as berthd calls it, from a thread in the driver's own
	// namespace.
	var info driver.JoinInfo
	if err := n.host.Do(func() (err error) { info, err = n.drv.Join(n.nw, ep, ns1); return err }); err != nil {
		t.Fatal(err)
	}
	if info.IPv4 != netip.MustParsePrefix("10.77.0.3/24") || info.MAC.String() != ep.MAC.String() {
		t.Errorf("join gave %v %v, want 10.77.0.3/24 and %v", info.IPv4, info.MAC, ep.MAC)
	}
	if addrs, _ := c1.Addrs("eth0"); !slices.Equal(addrs, []string{"10.77.0.3/24"}) {
		t.Errorf("eth0 has %v", addrs)
	}
}

// BenchmarkJoinLeave is one container's attach and detach through the
// chain: bridge, host-local and portmap, each an exec of its own, for ADD
// and for DEL.
func BenchmarkJoinLeave(b *testing.B) {
	n := newNet(b)
	_, ns := n.sandbox(b, "c1")
	ep := endpoint('a')
	ep.Ports = []driver.PortBinding{{Proto: "tcp", HostPort: 18080, Port: 80}}
	for b.Loop() {
		n.join(b, ep, ns)
		if err := n.drv.Leave(n.nw, ep, ns); err != nil {
			b.Fatal(err)
		}
	}
}
