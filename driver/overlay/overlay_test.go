package overlay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/overlay"
	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
)

// These tests work on the real kernel: each builds hosts out of fresh
// network namespaces, joined by a veth pair as their underlay, with a
// driver per host and containers in namespaces of their own.

// underlayMTU is not 1500, so that an MTU that ignored the underlay shows.
const underlayMTU = 1400

// testHost is one machine of a test's cluster.
type testHost struct {
	name   string
	ns     *nettest.Namespace
	host   *netdev.Host
	reaper *reap.Reaper
	drv    *overlay.Driver
	addr   netip.Addr
	dir    string
}

// newCluster makes two hosts, 192.168.77.1 and .2, on one underlay link.
func newCluster(t *testing.T) (*testHost, *testHost) {
	t.Helper()
	nettest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "berth-overlay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h1 := newHost(t, dir, "host1", "192.168.77.1")
	h2 := newHost(t, dir, "host2", "192.168.77.2")
	ul := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: underlayMTU}, PeerName: "ul0", PeerNamespace: netlink.NsFd(h2.ns.Fd())}
	if err := h1.ns.Netlink.LinkAdd(ul); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*testHost{h1, h2} {
		l, err := h.ns.Netlink.LinkByName("ul0")
		if err == nil {
			err = h.ns.Netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: h.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}})
		}
		if err == nil {
			err = h.ns.Netlink.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("underlay of %s: %v", h.name, err)
		}
	}
	return h1, h2
}

func newHost(t *testing.T, dir, name, addr string) *testHost {
	t.Helper()
	h := &testHost{name: name, ns: nettest.NewNamespace(t, dir, name), addr: netip.MustParseAddr(addr), dir: dir}
	if err := h.ns.Do(func() (err error) { h.host, err = netdev.NewHost(filepath.Join(dir, name)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.host.Close)
	h.reaper = reap.New(h.host, func(err error) { t.Errorf("%s's reaper: %v", name, err) })
	t.Cleanup(h.reaper.Close)
	h.drv = overlay.New(h.host, h.reaper, h.addr)
	return h
}

// newNetwork is one overlay network, prepared once and created on every
// host with the same state, as the controller does.
func newNetwork(t *testing.T, id string, opts map[string]string, hosts ...*testHost) *driver.Network {
	t.Helper()
	nw := &driver.Network{
		ID: id, Name: "ov" + id[:4], EnableIPv6: true, Options: opts,
		IPv4: []driver.Subnet{{Prefix: netip.MustParsePrefix("10.10.0.0/24"), Gateway: netip.MustParseAddr("10.10.0.1")}},
		IPv6: []driver.Subnet{{Prefix: netip.MustParsePrefix("fd00:77::/64"), Gateway: netip.MustParseAddr("fd00:77::1")}},
	}
	st, err := hosts[0].drv.Prepare(nw, nil)
	if err != nil {
		t.Fatal(err)
	}
	nw.State = st
	for _, h := range hosts {
		if err := h.drv.CreateNetwork(nw); err != nil {
			t.Fatalf("create the network on %s: %v", h.name, err)
		}
	}
	return nw
}

// overlayOnTwoHosts is the start of most tests: a cluster of two hosts
// and an overlay network on both.
func overlayOnTwoHosts(t *testing.T) (*testHost, *testHost, *driver.Network) {
	t.Helper()
	t.Parallel()
	h1, h2 := newCluster(t)
	return h1, h2, newNetwork(t, netID, nil, h1, h2)
}

// containersOnTwoHosts adds to that a container on each host, c1 with
// 10.10.0.2 on host1 and c2 with 10.10.0.3 on host2, each host told of the
// other's.
func containersOnTwoHosts(t *testing.T) ([]*testHost, *driver.Network, *container, *container) {
	t.Helper()
	h1, h2, nw := overlayOnTwoHosts(t)
	hosts := []*testHost{h1, h2}
	c1 := h1.join(t, nw, "c1", 2)
	c2 := h2.join(t, nw, "c2", 3)
	addPeers(t, nw, hosts, c1, c2)
	return hosts, nw, c1, c2
}

// container is a sandbox joined to an overlay network on one host.
type container struct {
	ns   *nettest.Namespace
	sb   *netdev.Namespace
	ep   *driver.Endpoint
	on   *testHost
	info driver.JoinInfo
}

// join makes a container on h with 10.10.0.<n> and fd00:77::<n>.
func (h *testHost) join(t *testing.T, nw *driver.Network, name string, n int) *container {
	t.Helper()
	ns := nettest.NewNamespace(t, h.dir, name)
	sb, err := netdev.OpenNamespace(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	v4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 10, 0, byte(n)}), 24)
	ep := &driver.Endpoint{
		ID: name, IfName: "eth0", HostIfName: "veth" + name, MAC: netdev.MACFromIPv4(v4.Addr()),
		IPv4: v4, IPv6: netip.MustParsePrefix(fmt.Sprintf("fd00:77::%d/64", n)),
	}
	info, err := h.drv.Join(nw, ep, sb)
	if err != nil {
		t.Fatalf("join %s on %s: %v", name, h.name, err)
	}
	return &container{ns: ns, sb: sb, ep: ep, on: h, info: info}
}

func (c *container) peer() driver.Peer {
	return driver.Peer{EndpointID: c.ep.ID, Host: c.on.addr, MAC: c.ep.MAC, IPv4: c.ep.IPv4, IPv6: c.ep.IPv6}
}

// addPeers tells each host of the containers the other hosts have.
func addPeers(t *testing.T, nw *driver.Network, hosts []*testHost, cs ...*container) {
	t.Helper()
	for _, h := range hosts {
		for _, c := range cs {
			if c.on == h {
				continue
			}
			if err := h.drv.AddPeer(nw, c.peer()); err != nil {
				t.Fatalf("%s: add peer %s: %v", h.name, c.ep.ID, err)
			}
		}
	}
}

// serve answers every connection to addr inside ns with reply.
func serve(t *testing.T, ns *nettest.Namespace, addr, reply string) {
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
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(reply))
			c.Close()
		}
	}()
}

// ask connects from ns to addr and returns what it answers, all within
// timeout.
func ask(ns *nettest.Namespace, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	b, err := io.ReadAll(c)
	return string(b), err
}

func wantAnswer(t *testing.T, from *container, addr, want string) {
	t.Helper()
	if got, err := ask(from.ns, addr, 5*time.Second); err != nil || got != want {
		t.Errorf("%s asks %s: %q, %v; want %q", from.ep.ID, addr, got, err, want)
	}
}

func (h *testHost) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := h.ns.Netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("%s on %s: %v", name, h.name, err)
	}
	return l
}

// entries are what a VXLAN device knows of other hosts: MAC → remote
// host, the hosts that get flooded frames, and address → MAC.
type entries struct {
	macs       map[string]string
	flood      []string
	neighbours map[string]string
}

func (h *testHost) entries(t *testing.T, vxlan string) entries {
	t.Helper()
	idx := h.link(t, vxlan).Attrs().Index
	e := entries{macs: map[string]string{}, neighbours: map[string]string{}}
	fdb, err := h.ns.Netlink.NeighList(idx, syscall.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range fdb {
		// The bridge's entries of the port have no remote.
		if n.IP == nil {
			continue
		}
		if n.Flags&netlink.NTF_SELF == 0 || n.State&netlink.NUD_PERMANENT == 0 {
			t.Errorf("%s: entry %s → %s is not the device's own and permanent", h.name, n.HardwareAddr, n.IP)
		}
		if n.HardwareAddr.String() == "00:00:00:00:00:00" {
			e.flood = append(e.flood, n.IP.String())
		} else {
			e.macs[n.HardwareAddr.String()] = n.IP.String()
		}
	}
	slices.Sort(e.flood)
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		neigh, err := h.ns.Netlink.NeighList(idx, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range neigh {
			if n.State != netlink.NUD_PERMANENT {
				t.Errorf("%s: neighbour %s is %#x, not permanent", h.name, n.IP, n.State)
			}
			e.neighbours[n.IP.String()] = n.HardwareAddr.String()
		}
	}
	return e
}

func TestContainersOnTwoHostsTalkAcrossTheOverlay(t *testing.T) {
	_, nw, c1, c2 := containersOnTwoHosts(t)

	serve(t, c2.ns, ":7000", "c2")
	serve(t, c1.ns, ":7000", "c1")
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")
	wantAnswer(t, c2, "10.10.0.2:7000", "c1")
	wantAnswer(t, c1, "[fd00:77::3]:7000", "c2")
	wantAnswer(t, c2, "[fd00:77::2]:7000", "c1")

	if c1.info.Gateway4 != netip.MustParseAddr("10.10.0.1") || c1.info.Gateway6 != netip.MustParseAddr("fd00:77::1") || c1.info.Index == 0 {
		t.Errorf("join info %+v: the subnets' gateways and the interface's index", c1.info)
	}
	// Every device of the network has the underlay's MTU less VXLAN's 50.
	st := stateOf(t, nw)
	want := underlayMTU - 50
	for _, c := range []*container{c1, c2} {
		h := c.on
		br, vx, port := h.link(t, st.Bridge), h.link(t, st.Vxlan), h.link(t, c.ep.HostIfName)
		for _, l := range []netlink.Link{br, vx, port} {
			if l.Attrs().MTU != want {
				t.Errorf("%s: %s's MTU %d, want %d", h.name, l.Attrs().Name, l.Attrs().MTU, want)
			}
		}
		v, ok := vx.(*netlink.Vxlan)
		if !ok || v.VxlanId != overlay.FirstVNI || !v.SrcAddr.Equal(h.addr.AsSlice()) || v.Port != 4789 || v.Learning || !v.Proxy {
			t.Errorf("%s: VXLAN device %+v: VNI 4096 from %s, port 4789, no learning, proxy", h.name, vx, h.addr)
		}
		if vx.Attrs().MasterIndex != br.Attrs().Index || vx.Attrs().Flags&net.FlagUp == 0 || vx.Attrs().Group != h.host.Owned {
			t.Errorf("%s: VXLAN device on %d, flags %v, group %#x: on the bridge, up, owned", h.name, vx.Attrs().MasterIndex, vx.Attrs().Flags, vx.Attrs().Group)
		}
		if br.Attrs().Group != h.host.Owned {
			t.Errorf("%s: bridge in group %#x, not berth's", h.name, br.Attrs().Group)
		}
	}
	for _, c := range []*container{c1, c2} {
		l, err := c.ns.Netlink.LinkByName("eth0")
		if err != nil || l.Attrs().MTU != want {
			t.Errorf("%s: eth0 %v, %v: MTU %d", c.ep.ID, l, err, want)
		}
	}
}

func TestEachHostAnswersForItsOwnGateway(t *testing.T) {
	hosts, nw, c1, c2 := containersOnTwoHosts(t)
	h1, h2 := hosts[0], hosts[1]
	for _, h := range hosts {
		serve(t, h.ns, "10.10.0.1:7001", h.name)
		serve(t, h.ns, "[fd00:77::1]:7001", h.name)
	}
	for _, c := range []*container{c1, c2} {
		wantAnswer(t, c, "10.10.0.1:7001", c.on.name)
		wantAnswer(t, c, "[fd00:77::1]:7001", c.on.name)
		// The gateway's MAC each container learnt is its own host's bridge's.
		br := c.on.link(t, stateOf(t, nw).Bridge).Attrs().HardwareAddr.String()
		neigh, err := c.ns.Netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range neigh {
			if n.IP.String() == "10.10.0.1" && n.HardwareAddr.String() != br {
				t.Errorf("%s has the gateway at %s, not at its host's bridge %s", c.ep.ID, n.HardwareAddr, br)
			}
		}
	}
	// No solicitation for the gateway crossed: a host's bridge that got
	// one would have recorded the asker as a neighbour.
	for _, c := range []*container{c1, c2} {
		other := h1
		if c.on == h1 {
			other = h2
		}
		br := other.link(t, stateOf(t, nw).Bridge)
		neigh, err := other.ns.Netlink.NeighList(br.Attrs().Index, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range neigh {
			if ip := n.IP.String(); ip == c.ep.IPv4.Addr().String() || ip == c.ep.IPv6.Addr().String() {
				t.Errorf("%s's bridge heard %s ask for the gateway: %s", other.name, c.ep.ID, n.IP)
			}
		}
	}
}

func TestPeersGetForwardingNeighbourAndFloodEntries(t *testing.T) {
	h1, h2, nw := overlayOnTwoHosts(t)
	hosts := []*testHost{h1, h2}
	vx := stateOf(t, nw).Vxlan
	c1 := h1.join(t, nw, "c1", 2)
	c2 := h2.join(t, nw, "c2", 3)
	c3 := h2.join(t, nw, "c3", 4)
	addPeers(t, nw, hosts, c1, c2, c3)
	// A host with no endpoint of the network gets nothing; one that has
	// an endpoint is flooded to.
	phantom := driver.Peer{EndpointID: "far", Host: netip.MustParseAddr("192.168.77.9"), MAC: netdev.MACFromIPv4(netip.MustParseAddr("10.10.0.9")),
		IPv4: netip.MustParsePrefix("10.10.0.9/24")}
	if err := h1.drv.AddPeer(nw, phantom); err != nil {
		t.Fatal(err)
	}
	// Adding again changes nothing.
	for _, p := range []driver.Peer{c2.peer(), phantom, c2.peer()} {
		if err := h1.drv.AddPeer(nw, p); err != nil {
			t.Fatalf("add %s again: %v", p.EndpointID, err)
		}
	}
	e := h1.entries(t, vx)
	wantMACs := map[string]string{"02:42:0a:0a:00:03": "192.168.77.2", "02:42:0a:0a:00:04": "192.168.77.2", "02:42:0a:0a:00:09": "192.168.77.9"}
	wantNeigh := map[string]string{
		"10.10.0.3": "02:42:0a:0a:00:03", "fd00:77::3": "02:42:0a:0a:00:03",
		"10.10.0.4": "02:42:0a:0a:00:04", "fd00:77::4": "02:42:0a:0a:00:04",
		"10.10.0.9": "02:42:0a:0a:00:09",
	}
	if !maps.Equal(e.macs, wantMACs) || !maps.Equal(e.neighbours, wantNeigh) || !slices.Equal(e.flood, []string{"192.168.77.2", "192.168.77.9"}) {
		t.Errorf("host1's entries %+v;\nwant macs %v, neighbours %v, flood to .2 and .9 once each", e, wantMACs, wantNeigh)
	}
	if e := h2.entries(t, vx); !slices.Equal(e.flood, []string{"192.168.77.1"}) || len(e.macs) != 1 || e.macs["02:42:0a:0a:00:02"] != "192.168.77.1" {
		t.Errorf("host2's entries %+v: c1 alone, at host1", e)
	}
	serve(t, c2.ns, ":7000", "c2")
	serve(t, c3.ns, ":7000", "c3")
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")

	// c3 goes: host2 keeps its flood entry for c2, c3's entries go, and c1,
	// which never spoke to c3, gets no answer for its address.
	for range 2 {
		if err := h1.drv.RemovePeer(nw, c3.peer()); err != nil {
			t.Fatal(err)
		}
	}
	e = h1.entries(t, vx)
	if _, ok := e.macs["02:42:0a:0a:00:04"]; ok || e.neighbours["10.10.0.4"] != "" || e.neighbours["fd00:77::4"] != "" || !slices.Equal(e.flood, []string{"192.168.77.2", "192.168.77.9"}) {
		t.Errorf("after c3 went: %+v", e)
	}
	if got, err := ask(c1.ns, "10.10.0.4:7000", time.Second); err == nil {
		t.Errorf("c1 reached the removed peer c3: %q", got)
	}
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")

	// c2, host2's last, goes: c1 knows c2's MAC from the talk before, yet
	// nothing reaches c2 any more.
	if err := h1.drv.RemovePeer(nw, c2.peer()); err != nil {
		t.Fatal(err)
	}
	e = h1.entries(t, vx)
	if len(e.macs) != 1 || e.neighbours["10.10.0.3"] != "" || !slices.Equal(e.flood, []string{"192.168.77.9"}) {
		t.Errorf("after host2's last peer went: %+v", e)
	}
	if got, err := ask(c1.ns, "10.10.0.3:7000", time.Second); err == nil {
		t.Errorf("c1 reached the removed peer c2: %q", got)
	}
	// Back again, it is reachable: what failed was the removal.
	addPeers(t, nw, []*testHost{h1}, c2)
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")

	// A peer never added may be removed.
	if err := h1.drv.RemovePeer(nw, driver.Peer{EndpointID: "never", Host: netip.MustParseAddr("192.168.77.8"), MAC: netdev.RandomMAC(),
		IPv4: netip.MustParsePrefix("10.10.0.8/24")}); err != nil {
		t.Errorf("removing a peer never added: %v", err)
	}
}

// An endpoint that takes over the address of one that is going keeps its
// entries whatever order the controller hears of the two in.
func TestANewPeerKeepsTheAddressAnOldOneLeaves(t *testing.T) {
	h1, h2, nw := overlayOnTwoHosts(t)
	vx := stateOf(t, nw).Vxlan
	old := h2.join(t, nw, "old", 3)
	next := old.peer()
	next.EndpointID, next.Host = "new", netip.MustParseAddr("192.168.77.7")
	next.MAC = netdev.RandomMAC()
	addPeers(t, nw, []*testHost{h1}, old)
	if err := h1.drv.AddPeer(nw, next); err != nil {
		t.Fatal(err)
	}
	if err := h1.drv.RemovePeer(nw, old.peer()); err != nil {
		t.Fatal(err)
	}
	e := h1.entries(t, vx)
	if e.neighbours["10.10.0.3"] != next.MAC.String() || e.macs[next.MAC.String()] != "192.168.77.7" || len(e.macs) != 1 || !slices.Equal(e.flood, []string{"192.168.77.7"}) {
		t.Errorf("entries %+v: 10.10.0.3 at the new peer's MAC at 192.168.77.7 alone", e)
	}
}

func TestADeletedOverlayNetworkLeavesNoDevice(t *testing.T) {
	h1, h2, nw := overlayOnTwoHosts(t)
	hosts := []*testHost{h1, h2}
	st := stateOf(t, nw)
	c1 := h1.join(t, nw, "c1", 2)
	addPeers(t, nw, hosts, c1)
	if err := h1.drv.Leave(nw, c1.ep, c1.sb); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h1.drv.DeleteNetwork(nw); err != nil {
			t.Fatal(err)
		}
	}
	// Out of service at once: the bridge is a spare under another name,
	// the VXLAN device down and off it until the reaper deletes it.
	if _, ok, err := h1.host.Link(st.Bridge); ok || err != nil {
		t.Errorf("%s is still there after the delete (%v)", st.Bridge, err)
	}
	if l, ok, err := h1.host.Link(st.Vxlan); err != nil || ok && (l.Up || l.Master != 0 || l.Group != h1.host.Retired) {
		t.Errorf("%s after the delete: %+v, %v", st.Vxlan, l, err)
	}
	live, err := h1.host.Links.Links(func(g uint32) bool { return g == h1.host.Owned })
	if err != nil || len(live) != 0 {
		t.Errorf("devices in service after the delete: %+v, %v", live, err)
	}

	// The network made again at once (a create that failed further up
	// and is tried again) takes the place of the retired device.
	if err := h1.drv.CreateNetwork(nw); err != nil {
		t.Fatalf("the network made again: %v", err)
	}
	if l, ok, err := h1.host.Link(st.Vxlan); err != nil || !ok || !l.Up || l.Group != h1.host.Owned {
		t.Errorf("%s made again: %+v, %v, %v", st.Vxlan, l, ok, err)
	}
	if err := h1.drv.DeleteNetwork(nw); err != nil {
		t.Fatal(err)
	}

	// Another network takes the VXLAN ID at once, while the retired
	// device may still hold it.
	again := *nw
	again.ID = "f" + netID[1:]
	next := stateOf(t, nw)
	next.Bridge, next.Vxlan = "ov-f123456789ab", "vx-f123456789ab"
	if again.State, err = json.Marshal(next); err != nil {
		t.Fatal(err)
	}
	if err := h1.drv.CreateNetwork(&again); err != nil {
		t.Fatalf("a new network with the deleted one's VXLAN ID: %v", err)
	}
	if v, ok := h1.link(t, next.Vxlan).(*netlink.Vxlan); !ok || v.VxlanId != st.VNI {
		t.Errorf("the new network's device: %+v", v)
	}
	if err := h1.drv.DeleteNetwork(&again); err != nil {
		t.Fatal(err)
	}
	if err := h1.reaper.Reap(); err != nil {
		t.Fatal(err)
	}
	owned, err := h1.host.OwnedLinks()
	if err != nil || len(owned) != 0 {
		t.Errorf("devices left after the reap: %+v, %v", owned, err)
	}
}

func TestARestartedDriverKeepsTheOverlayAndMakesLostDevicesAgain(t *testing.T) {
	hosts, nw, c1, c2 := containersOnTwoHosts(t)
	h1 := hosts[0]
	st := stateOf(t, nw)
	serve(t, c2.ns, ":7000", "c2")
	before := h1.link(t, st.Vxlan).Attrs().Index

	// berthd restarts: a new driver, the network made again, the
	// endpoint restored, the peers told again.
	h1.drv = overlay.New(h1.host, h1.reaper, h1.addr)
	if err := h1.drv.CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	if after := h1.link(t, st.Vxlan).Attrs().Index; after != before {
		t.Errorf("the VXLAN device was made again (%d, was %d)", after, before)
	}
	info, ok, err := h1.drv.Restore(nw, c1.ep, c1.sb)
	if err != nil || !ok || info.Gateway4 != netip.MustParseAddr("10.10.0.1") {
		t.Fatalf("restore: %+v, %v, %v", info, ok, err)
	}
	addPeers(t, nw, []*testHost{h1}, c2)
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")

	// The VXLAN device is lost; made again, it gets the peers back.
	if err := h1.host.Delete(st.Vxlan); err != nil {
		t.Fatal(err)
	}
	if err := h1.drv.CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	if e := h1.entries(t, st.Vxlan); e.macs[c2.ep.MAC.String()] != "192.168.77.2" || e.neighbours["10.10.0.3"] != c2.ep.MAC.String() {
		t.Errorf("the made-again device's entries %+v", e)
	}
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")
}

func TestTheMTUOptionOverridesTheUnderlays(t *testing.T) {
	t.Parallel()
	h1, _ := newCluster(t)
	nw := newNetwork(t, netID, map[string]string{overlay.OptionMTU: "1300"}, h1)
	c1 := h1.join(t, nw, "c1", 2)
	st := stateOf(t, nw)
	for _, l := range []netlink.Link{h1.link(t, st.Bridge), h1.link(t, st.Vxlan), h1.link(t, "vethc1")} {
		if l.Attrs().MTU != 1300 {
			t.Errorf("%s's MTU %d, want 1300", l.Attrs().Name, l.Attrs().MTU)
		}
	}
	if l, err := c1.ns.Netlink.LinkByName("eth0"); err != nil || l.Attrs().MTU != 1300 {
		t.Errorf("eth0: %v, %v", l, err)
	}
}

func TestAnOverlayNeedsTheHostsUnderlayAddress(t *testing.T) {
	t.Parallel()
	h1, _ := newCluster(t)
	h1.drv = overlay.New(h1.host, h1.reaper, netip.MustParseAddr("192.168.78.1"))
	nw, err := prepared(t, h1.drv, netID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.drv.CreateNetwork(nw); err == nil || !strings.Contains(err.Error(), "no device in the host has the address 192.168.78.1") {
		t.Errorf("an advertise address the host lacks: %v", err)
	}
}

func TestAVXLANIDAnotherDeviceHoldsIsReportedByName(t *testing.T) {
	t.Parallel()
	h1, _ := newCluster(t)
	foreign := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "theirs"}, VxlanId: overlay.FirstVNI, Port: 4789}
	if err := h1.ns.Netlink.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	nw, err := prepared(t, h1.drv, netID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.drv.CreateNetwork(nw); err == nil || !strings.Contains(err.Error(), "VXLAN ID 4096 is used by device theirs") {
		t.Errorf("a VXLAN ID someone else's device has: %v", err)
	}
	if _, err := h1.ns.Netlink.LinkByName("theirs"); err != nil {
		t.Errorf("someone else's device was touched: %v", err)
	}
	h1.drv = overlay.New(h1.host, h1.reaper, netip.Addr{})
	if err := h1.drv.CreateNetwork(nw); err == nil || !strings.Contains(err.Error(), "--cluster-advertise") {
		t.Errorf("without an underlay address: %v", err)
	}
}

// farPeer is an endpoint of a host that takes no part in the test,
// 192.168.77.9: host1 only holds entries for it.
func farPeer() driver.Peer {
	return driver.Peer{EndpointID: "far", Host: netip.MustParseAddr("192.168.77.9"), MAC: netdev.MACFromIPv4(netip.MustParseAddr("10.10.0.9")),
		IPv4: netip.MustParsePrefix("10.10.0.9/24"), IPv6: netip.MustParsePrefix("fd00:77::9/64")}
}

// peersEntries are the entries a VXLAN device holds for exactly the given
// peers.
func peersEntries(peers ...driver.Peer) entries {
	e := entries{macs: map[string]string{}, neighbours: map[string]string{}}
	for _, p := range peers {
		e.macs[p.MAC.String()] = p.Host.String()
		for _, a := range []netip.Prefix{p.IPv4, p.IPv6} {
			if a.IsValid() {
				e.neighbours[a.Addr().String()] = p.MAC.String()
			}
		}
		if !slices.Contains(e.flood, p.Host.String()) {
			e.flood = append(e.flood, p.Host.String())
		}
	}
	slices.Sort(e.flood)
	return e
}

func (e entries) equal(o entries) bool {
	return maps.Equal(e.macs, o.macs) && maps.Equal(e.neighbours, o.neighbours) && slices.Equal(e.flood, o.flood)
}

// bridgeEntries are the bridge's permanent forwarding entries of its port
// dev (the port's own MAC), which are the kernel's, not a peer's.
func (h *testHost) bridgeEntries(t *testing.T, dev string) []string {
	t.Helper()
	list, err := h.ns.Netlink.NeighList(h.link(t, dev).Attrs().Index, syscall.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range list {
		if n.IP == nil && n.State&netlink.NUD_PERMANENT != 0 {
			out = append(out, fmt.Sprintf("%s vlan %d", n.HardwareAddr, n.Vlan))
		}
	}
	slices.Sort(out)
	return out
}

// remembered are the entries the driver makes again for the peers it
// remembers, when it makes a lost VXLAN device again.
func (h *testHost) remembered(t *testing.T, nw *driver.Network) entries {
	t.Helper()
	vx := stateOf(t, nw).Vxlan
	if err := h.host.Delete(vx); err != nil {
		t.Fatal(err)
	}
	if err := h.drv.CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	return h.entries(t, vx)
}

// berthd restarts and finds, when it has the cluster's state, that one of
// the two peers it had programmed left while it was away: that peer's
// entries go, the other's stay and carry traffic.
func TestSetPeersAfterARestartRemovesThePeersThatLeft(t *testing.T) {
	hosts, nw, c1, c2 := containersOnTwoHosts(t)
	h1 := hosts[0]
	vx := stateOf(t, nw).Vxlan
	p1, p2 := c2.peer(), farPeer()
	if err := h1.drv.AddPeer(nw, p2); err != nil {
		t.Fatal(err)
	}
	if e := h1.entries(t, vx); !e.equal(peersEntries(p1, p2)) {
		t.Fatalf("before the restart: %+v, want both peers' %+v", e, peersEntries(p1, p2))
	}
	bridged := h1.bridgeEntries(t, vx)
	if len(bridged) == 0 {
		t.Fatal("the bridge holds no entry of its VXLAN port")
	}
	index := h1.link(t, vx).Attrs().Index

	// A new driver, which has not made the network: it works on the
	// devices the old one left.
	h1.drv = overlay.New(h1.host, h1.reaper, h1.addr)
	for range 2 {
		if err := h1.drv.SetPeers(nw, []driver.Peer{p1}); err != nil {
			t.Fatal(err)
		}
		if e := h1.entries(t, vx); !e.equal(peersEntries(p1)) {
			t.Errorf("after SetPeers(P1): %+v, want P1's alone %+v", e, peersEntries(p1))
		}
	}
	if got := h1.link(t, vx).Attrs().Index; got != index {
		t.Errorf("the VXLAN device was made again (%d, was %d)", got, index)
	}
	if got := h1.bridgeEntries(t, vx); !slices.Equal(got, bridged) {
		t.Errorf("the bridge's entries of the port %v, were %v", got, bridged)
	}
	serve(t, c2.ns, ":7000", "c2")
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")
	wantAnswer(t, c1, "[fd00:77::3]:7000", "c2")

	// The driver remembers P1 alone: a lost device made again gets P1's
	// entries back and nothing of P2's.
	if e := h1.remembered(t, nw); !e.equal(peersEntries(p1)) {
		t.Errorf("the driver remembers %+v, want P1 alone", e)
	}
	if err := h1.drv.RemovePeer(nw, p1); err != nil {
		t.Fatal(err)
	}
	if e := h1.entries(t, vx); !e.equal(peersEntries()) {
		t.Errorf("after P1 went: %+v, want none", e)
	}
}

// SetPeers(nil) removes every peer's entries, those the driver remembers
// and those it never heard of, and no entry it did not make; SetPeers
// adds peers as AddPeer does.
func TestSetPeersOfNoneEmptiesTheOverlayAndSetPeersAddsThemBack(t *testing.T) {
	hosts, nw, c1, c2 := containersOnTwoHosts(t)
	h1 := hosts[0]
	vx := stateOf(t, nw).Vxlan
	p1, p2 := c2.peer(), farPeer()
	// p2 from a driver that is gone, p1 from the current one.
	if err := h1.drv.AddPeer(nw, p2); err != nil {
		t.Fatal(err)
	}
	h1.drv = overlay.New(h1.host, h1.reaper, h1.addr)
	if err := h1.drv.CreateNetwork(nw); err != nil {
		t.Fatal(err)
	}
	if err := h1.drv.AddPeer(nw, p1); err != nil {
		t.Fatal(err)
	}
	if e := h1.entries(t, vx); !e.equal(peersEntries(p1, p2)) {
		t.Fatalf("before: %+v, want both peers' %+v", e, peersEntries(p1, p2))
	}
	// Entries no peer made: as if learnt, and a neighbour resolved.
	idx := h1.link(t, vx).Attrs().Index
	learnt := netdev.RandomMAC()
	foreign := []*netlink.Neigh{
		{LinkIndex: idx, Family: syscall.AF_BRIDGE, State: netlink.NUD_REACHABLE, Flags: netlink.NTF_SELF, HardwareAddr: learnt, IP: net.ParseIP("192.168.77.8")},
		{LinkIndex: idx, State: netlink.NUD_STALE, IP: net.ParseIP("10.10.0.8"), HardwareAddr: learnt},
	}
	for _, n := range foreign {
		if err := h1.ns.Netlink.NeighAdd(n); err != nil {
			t.Fatal(err)
		}
	}
	bridged := h1.bridgeEntries(t, vx)

	for range 2 {
		if err := h1.drv.SetPeers(nw, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range foreign {
		family := n.Family
		if family == 0 {
			family = netlink.FAMILY_V4
		}
		list, err := h1.ns.Netlink.NeighList(idx, family)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(list, func(o netlink.Neigh) bool { return o.IP.Equal(n.IP) && o.State == n.State }) {
			t.Errorf("the entry %s of %s no peer made was removed", n.IP, learnt)
		}
		if err := h1.ns.Netlink.NeighDel(n); err != nil {
			t.Fatal(err)
		}
	}
	if got := h1.bridgeEntries(t, vx); !slices.Equal(got, bridged) {
		t.Errorf("the bridge's entries of the port %v, were %v", got, bridged)
	}
	if e := h1.entries(t, vx); !e.equal(peersEntries()) {
		t.Errorf("after SetPeers(nil): %+v, want none", e)
	}
	if got, err := ask(c1.ns, "10.10.0.3:7000", time.Second); err == nil {
		t.Errorf("c1 reached c2 with no peer set: %q", got)
	}
	if e := h1.remembered(t, nw); !e.equal(peersEntries()) {
		t.Errorf("the driver remembers %+v, want no peer", e)
	}

	// Set again, c2 is programmed and reachable.
	if err := h1.drv.SetPeers(nw, []driver.Peer{p1}); err != nil {
		t.Fatal(err)
	}
	if e := h1.entries(t, vx); !e.equal(peersEntries(p1)) {
		t.Errorf("after SetPeers(P1): %+v, want P1's %+v", e, peersEntries(p1))
	}
	serve(t, c2.ns, ":7000", "c2")
	wantAnswer(t, c1, "10.10.0.3:7000", "c2")
}
