package netdev_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
)

// These tests work on the real kernel, each in fresh network namespaces:
// one stands for the host, others for sandboxes.

func TestMain(m *testing.M) { nettest.Main(m) }

// testHost is a Host opened in a fresh namespace, with a directory for
// sandbox namespaces.
type testHost struct {
	*netdev.Host
	ns  *nettest.Namespace
	dir string
}

func newTestHost(t testing.TB) *testHost {
	t.Helper()
	nettest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "berth-netdev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := nettest.NewNamespace(t, dir, "host")
	var h *netdev.Host
	if err := ns.Do(func() (err error) { h, err = netdev.NewHost(dir); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &testHost{Host: h, ns: ns, dir: dir}
}

// sandbox is a fresh namespace, opened as netdev opens a sandbox's.
func (h *testHost) sandbox(t testing.TB, name string) *netdev.Namespace {
	t.Helper()
	nettest.NewNamespace(t, h.dir, name)
	ns, err := netdev.OpenNamespace(filepath.Join(h.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

func (h *testHost) bridge(t testing.TB, name string, mtu int, addrs ...netip.Prefix) netdev.Link {
	t.Helper()
	if err := h.EnsureBridge(netdev.BridgeSpec{Name: name, MTU: mtu, Addrs: addrs, MAC: netdev.RandomMAC()}); err != nil {
		t.Fatal(err)
	}
	l, ok, err := h.Link(name)
	if err != nil || !ok {
		t.Fatalf("bridge %s: %v, %v", name, ok, err)
	}
	return l
}

// plug makes a veth pair from the bridge into ns, named eth0 inside, up
// with addr.
func (h *testHost) plug(t testing.TB, br netdev.Link, hostName string, ns *netdev.Namespace, addr netip.Prefix) (int, int) {
	t.Helper()
	hostIdx, err := h.AddVeth(netdev.VethSpec{HostName: hostName, Master: br.Index, MTU: 1500, PeerName: "eth0", PeerMAC: netdev.MACFromIPv4(addr.Addr()), PeerNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	peerIdx, err := ns.Configure(netdev.Interface{Name: "eth0", Addrs: []netip.Prefix{addr}})
	if err != nil {
		t.Fatal(err)
	}
	return hostIdx, peerIdx
}

func TestAVethPairFromABridgeIntoASandbox(t *testing.T) {
	h := newTestHost(t)
	gw := netip.MustParsePrefix("10.9.0.1/24")
	br := h.bridge(t, "br-test", 1500, gw)
	sb := h.sandbox(t, "sb")
	addr := netip.MustParsePrefix("10.9.0.2/24")
	hostIdx, peerIdx := h.plug(t, br, "vethtest", sb, addr)

	l, ok, err := h.Link("vethtest")
	if err != nil || !ok || l.Index != hostIdx || l.Master != br.Index || !l.Up || l.Group != h.Owned || !h.Owns(l) {
		t.Fatalf("host end %+v (%v, %v): up, on the bridge, owned", l, ok, err)
	}
	ifc := netdev.Interface{Name: "eth0", Addrs: []netip.Prefix{addr}}
	if ok, err := sb.HasInterface(ifc); !ok || err != nil {
		t.Fatalf("inside: %v, %v", ok, err)
	}
	if err := sb.SetDefaultRoute(gw.Addr(), peerIdx, false); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddRoute(netip.MustParsePrefix("192.0.2.0/24"), netip.Addr{}, peerIdx); err != nil {
		t.Fatal(err)
	}
	routes := routesOf(t, sb.Path(), peerIdx)
	if routes["0.0.0.0/0"] != "10.9.0.1" || routes["192.0.2.0/24"] != "on-link" {
		t.Errorf("routes %v", routes)
	}
	// The host end carries no IPv6: no route of it in the host's table.
	var v6 []netlink.Route
	if err := h.ns.Do(func() (err error) {
		v6, err = netlink.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: hostIdx, Table: allTables}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(v6) != 0 {
		t.Errorf("the host end has IPv6 routes %v", v6)
	}

	if err := sb.TakeDown("eth0", peerIdx, []netip.Prefix{addr}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := sb.HasInterface(ifc); ok {
		t.Error("a taken down interface counts as configured")
	}
	if _, err := sb.Configure(netdev.Interface{Name: "nope"}); err == nil {
		t.Error("configuring a missing interface succeeded")
	}
	if err := sb.TakeDown("nope", 0, nil); err != nil {
		t.Errorf("taking down a missing interface: %v", err)
	}
	if err := h.Delete("vethtest"); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete("vethtest"); err != nil {
		t.Errorf("deleting what is gone: %v", err)
	}
	if _, ok, _ := sb.Link("eth0"); ok {
		t.Error("the peer outlived its pair")
	}
}

// allTables asks netlink for the routes of every table.
const allTables = 0

func routesOf(t testing.TB, path string, ifindex int) map[string]string {
	t.Helper()
	ns := nettest.OpenNamespace(t, path)
	list, err := ns.Netlink.RouteList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range list {
		dst := "0.0.0.0/0"
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		via := "on-link"
		if r.Gw != nil {
			via = r.Gw.String()
		}
		out[dst] = via
	}
	return out
}

func TestABridgeKeepsItsMTUWhenPortsJoin(t *testing.T) {
	h := newTestHost(t)
	br := h.bridge(t, "br-mtu", 1500)
	sb := h.sandbox(t, "sb")
	if _, err := h.AddVeth(netdev.VethSpec{HostName: "vethsmall", Master: br.Index, MTU: 1400, PeerName: "eth0", PeerNS: sb}); err != nil {
		t.Fatal(err)
	}
	l, err := h.ns.Netlink.LinkByName("br-mtu")
	if err != nil || l.Attrs().MTU != 1500 {
		t.Fatalf("bridge MTU after a 1400 port joined: %v, %v", l, err)
	}
	// Made again: the existing bridge is kept, with its addresses.
	h.bridge(t, "br-mtu", 1500, netip.MustParsePrefix("10.8.0.1/24"))
	if err := h.EnsureBridge(netdev.BridgeSpec{Name: "vethsmall", MTU: 1500}); err == nil {
		t.Error("a veth taken for a bridge")
	}
}

func TestRetiredDevicesGoInOneGroupAndSpareBridgesAreReused(t *testing.T) {
	h := newTestHost(t)
	r := reap.New(h.Host, func(err error) { t.Error(err) })
	br := h.bridge(t, "br-a", 1500, netip.MustParsePrefix("10.7.0.1/24"))
	var sandboxes []*netdev.Namespace
	for i := range 3 {
		sb := h.sandbox(t, fmt.Sprintf("sb%d", i))
		sandboxes = append(sandboxes, sb)
		h.plug(t, br, fmt.Sprintf("vethr%d", i), sb, netip.MustParsePrefix(fmt.Sprintf("10.7.0.%d/24", i+2)))
	}
	for i, sb := range sandboxes {
		if err := sb.TakeDown("eth0", 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := r.RetireVeth(fmt.Sprintf("vethr%d", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RetireVeth("gone", 0); err != nil {
		t.Errorf("retiring a missing pair: %v", err)
	}
	// The bridge becomes a spare: renamed, without addresses.
	if err := r.Retire("br-a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := h.Link("br-a"); ok {
		t.Error("the retired bridge keeps its name")
	}
	spare := fmt.Sprintf("brx%d", br.Index)
	if l, ok, _ := h.Link(spare); !ok || l.Group != h.Spare || l.Up {
		t.Errorf("spare %+v, %v", l, ok)
	}
	// A new network takes the spare over.
	if err := r.EnsureBridge(netdev.BridgeSpec{Name: "br-b", MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("10.6.0.1/24")}}); err != nil {
		t.Fatal(err)
	}
	if l, ok, _ := h.Link("br-b"); !ok || l.Index != br.Index || l.Group != h.Owned || !l.Up {
		t.Errorf("br-b %+v, %v: the spare, owned and up", l, ok)
	}
	if err := r.Reap(); err != nil {
		t.Fatal(err)
	}
	retired, err := h.Links.Links(func(g uint32) bool { return g == h.Retired })
	if err != nil || len(retired) != 0 {
		t.Errorf("retired devices left after a reap: %v, %v", retired, err)
	}
	// Unwanted owned devices are retired; wanted ones stay.
	h.bridge(t, "br-c", 1500)
	n, err := r.RetireUnwanted(map[string]bool{"br-b": true})
	if err != nil || n != 1 {
		t.Errorf("retired %d, %v; want br-c only", n, err)
	}
	r.Close()
	owned, err := h.OwnedLinks()
	if err != nil || len(owned) != 1 || owned[0].Name != "br-b" {
		t.Errorf("owned after close %+v, %v", owned, err)
	}
}

// A crash between a spare bridge's rename and its regrouping leaves a
// spare under the name a network wants: the next EnsureBridge takes it
// back, and reaping spares leaves it alone.
func TestABridgeLeftASpareUnderItsNameIsTakenBack(t *testing.T) {
	h := newTestHost(t)
	r := reap.New(h.Host, func(err error) { t.Error(err) })
	defer r.Close()
	br := h.bridge(t, "br-old", 1500)
	if err := r.Retire("br-old"); err != nil {
		t.Fatal(err)
	}
	// What the crashed reuse did: the rename only.
	spare, ok, err := h.Link(fmt.Sprintf("brx%d", br.Index))
	if err != nil || !ok || spare.Group != h.Spare {
		t.Fatalf("spare %+v, %v, %v", spare, ok, err)
	}
	if err := h.Rename(spare.Index, "br-new"); err != nil {
		t.Fatal(err)
	}
	if err := h.EnsureBridge(netdev.BridgeSpec{Name: "br-new", MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("10.8.0.1/24")}}); err != nil {
		t.Fatal(err)
	}
	if l, ok, _ := h.Link("br-new"); !ok || l.Index != br.Index || l.Group != h.Owned || !l.Up {
		t.Errorf("br-new %+v, %v: the spare, owned and up", l, ok)
	}
	if _, err := r.RetireUnwanted(map[string]bool{"br-new": true}); err != nil {
		t.Fatal(err)
	}
	if err := r.Reap(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := h.Link("br-new"); !ok {
		t.Error("br-new was reaped")
	}
}

// BenchmarkBridgePortChurn measures the kernel alone: a veth pair plugged
// into a bridge and brought up, then taken down and unplugged, with 1 and
// 500 other ports up on the bridge. Whatever grows here grows in berth's
// attach too.
func BenchmarkBridgePortChurn(b *testing.B) {
	for _, ports := range []int{1, 500} {
		b.Run(fmt.Sprintf("ports=%d", ports), func(b *testing.B) {
			h := newTestHost(b)
			br := h.bridge(b, "br-churn", 1500, netip.MustParsePrefix("10.0.0.1/16"))
			for i := range ports {
				sb := h.sandbox(b, fmt.Sprintf("f%d", i))
				h.plug(b, br, fmt.Sprintf("vethf%d", i), sb, netip.MustParsePrefix(fmt.Sprintf("10.0.%d.%d/16", 1+i/250, 1+i%250)))
			}
			sb := h.sandbox(b, "measured")
			addr := netip.MustParsePrefix("10.0.200.1/16")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				hostIdx, peerIdx := h.plug(b, br, "vethm", sb, addr)
				if err := sb.TakeDown("eth0", peerIdx, nil); err != nil {
					b.Fatal(err)
				}
				if err := h.Unplug(hostIdx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := h.DeleteIndex(hostIdx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
