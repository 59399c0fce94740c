package netdev_test

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/netdev"
)

// underlay gives the test host a link with addr, of the given MTU: a veth
// pair whose ends both stay in the host.
func (h *testHost) underlay(t *testing.T, addr netip.Prefix, mtu int) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: mtu}, PeerName: "ul1"}
	if err := h.ns.Netlink.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	err := h.ns.Netlink.AddrAdd(v, &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}})
	if err == nil {
		err = h.ns.Netlink.LinkSetUp(v)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (h *testHost) vxlan(t *testing.T, name string) *netlink.Vxlan {
	t.Helper()
	l, err := h.ns.Netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := l.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("%s is a %s", name, l.Type())
	}
	return v
}

func TestAVxlanDeviceOnABridgeIsMadeOnceAndRemadeForANewAddress(t *testing.T) {
	h := newTestHost(t)
	h.underlay(t, netip.MustParsePrefix("192.168.88.1/24"), 1400)
	mtu, err := h.MTUOfAddr(netip.MustParseAddr("192.168.88.1"))
	if err != nil || mtu != 1400 {
		t.Errorf("MTU of the underlay: %d, %v", mtu, err)
	}
	if _, err := h.MTUOfAddr(netip.MustParseAddr("192.168.88.2")); err == nil {
		t.Error("an address no device has gave an MTU")
	}
	br := h.bridge(t, "br-ov", 1350)
	spec := netdev.VxlanSpec{Name: "vx-test", VNI: 4096, Local: netip.MustParseAddr("192.168.88.1"), MTU: 1350, Master: br.Index}
	idx, err := h.EnsureVxlan(spec)
	if err != nil {
		t.Fatal(err)
	}
	v := h.vxlan(t, "vx-test")
	if v.Index != idx || v.VxlanId != 4096 || !v.SrcAddr.Equal(net.ParseIP("192.168.88.1")) || v.Port != netdev.VxlanPort || v.Learning || !v.Proxy ||
		v.MTU != 1350 || v.MasterIndex != br.Index || v.Flags&net.FlagUp == 0 || v.LinkAttrs.Group != h.Owned {
		t.Errorf("device %+v", v)
	}
	// No link-local address: nothing of its own goes to the other hosts.
	if addrs, err := h.ns.Netlink.AddrList(v, netlink.FAMILY_ALL); err != nil || len(addrs) != 0 {
		t.Errorf("addresses of the VXLAN device: %v, %v", addrs, err)
	}

	// Made again: the same device, set right where it drifted.
	if err := h.ns.Netlink.LinkSetDown(v); err != nil {
		t.Fatal(err)
	}
	if err := h.ns.Netlink.LinkSetNoMaster(v); err != nil {
		t.Fatal(err)
	}
	again, err := h.EnsureVxlan(spec)
	if v := h.vxlan(t, "vx-test"); err != nil || again != idx || v.Flags&net.FlagUp == 0 || v.MasterIndex != br.Index {
		t.Errorf("made again: %d (was %d), %v; up %v on %d", again, idx, err, v.Flags&net.FlagUp != 0, v.MasterIndex)
	}

	// Another underlay address: a new device.
	h.underlay2(t)
	spec.Local = netip.MustParseAddr("192.168.89.1")
	moved, err := h.EnsureVxlan(spec)
	if v := h.vxlan(t, "vx-test"); err != nil || moved == idx || !v.SrcAddr.Equal(net.ParseIP("192.168.89.1")) {
		t.Errorf("for a new address: %d (was %d), %v, %+v", moved, idx, err, v)
	}

	// Another device with the VXLAN ID, and someone else's with the name.
	_, err = h.EnsureVxlan(netdev.VxlanSpec{Name: "vx-other", VNI: 4096, Local: spec.Local, MTU: 1350, Master: br.Index})
	if !errors.Is(err, netdev.ErrVNIInUse) {
		t.Errorf("a second device with VXLAN ID 4096: %v", err)
	}
	if _, ok, _ := h.Link("vx-other"); ok {
		t.Error("the refused device was left behind")
	}
	if l, ok, err := h.VxlanOfVNI(4096); err != nil || !ok || l.Index != moved {
		t.Errorf("the device of VXLAN ID 4096: %+v, %v, %v", l, ok, err)
	}
	if _, ok, err := h.VxlanOfVNI(4097); ok || err != nil {
		t.Errorf("a device of VXLAN ID 4097: %v, %v", ok, err)
	}
	foreign := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vx-foreign"}, VxlanId: 9, Port: netdev.VxlanPort}
	if err := h.ns.Netlink.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	_, err = h.EnsureVxlan(netdev.VxlanSpec{Name: "vx-foreign", VNI: 9, Local: spec.Local, MTU: 1350, Master: br.Index})
	if err == nil || !strings.Contains(err.Error(), "not berth's") {
		t.Errorf("someone else's device taken: %v", err)
	}
}

func (h *testHost) underlay2(t *testing.T) {
	t.Helper()
	l, err := h.ns.Netlink.LinkByName("ul0")
	if err == nil {
		err = h.ns.Netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("192.168.89.1"), Mask: net.CIDRMask(24, 32)}})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// vxlanEntries lists a VXLAN device's own forwarding entries as
// "MAC>remote", and its neighbours as "address>MAC".
func (h *testHost) vxlanEntries(t *testing.T, index int) (fdb, neigh []string) {
	t.Helper()
	list, err := h.ns.Netlink.NeighList(index, syscall.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list {
		if n.Flags&netlink.NTF_SELF != 0 && n.IP != nil {
			fdb = append(fdb, n.HardwareAddr.String()+">"+n.IP.String())
		}
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := h.ns.Netlink.NeighList(index, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range list {
			neigh = append(neigh, n.IP.String()+">"+n.HardwareAddr.String())
		}
	}
	slices.Sort(fdb)
	slices.Sort(neigh)
	return fdb, neigh
}

func TestVxlanEntriesAreSetOnceAndDeletedOneByOne(t *testing.T) {
	h := newTestHost(t)
	h.underlay(t, netip.MustParsePrefix("192.168.88.1/24"), 1500)
	br := h.bridge(t, "br-ov", 1450)
	vx, err := h.EnsureVxlan(netdev.VxlanSpec{Name: "vx-test", VNI: 42, Local: netip.MustParseAddr("192.168.88.1"), MTU: 1450, Master: br.Index})
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:42:0a:00:00:05")
	b, c := netip.MustParseAddr("192.168.88.2"), netip.MustParseAddr("192.168.88.3")
	v4, v6 := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")
	for range 2 {
		for _, err := range []error{
			h.SetRemoteMAC(vx, mac, b), h.AddFloodRemote(vx, b), h.AddFloodRemote(vx, c),
			h.SetNeighbour(vx, v4, mac), h.SetNeighbour(vx, v6, mac),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	fdb, neigh := h.vxlanEntries(t, vx)
	want := []string{"00:00:00:00:00:00>192.168.88.2", "00:00:00:00:00:00>192.168.88.3", "02:42:0a:00:00:05>192.168.88.2"}
	if !slices.Equal(fdb, want) || !slices.Equal(neigh, []string{"10.0.0.5>02:42:0a:00:00:05", "fd00::5>02:42:0a:00:00:05"}) {
		t.Errorf("entries set twice: %v, %v", fdb, neigh)
	}
	// The MAC moves to another host; deleting it at the old one leaves it.
	if err := h.SetRemoteMAC(vx, mac, c); err != nil {
		t.Fatal(err)
	}
	if err := h.DeleteRemoteMAC(vx, mac, b); err != nil {
		t.Fatal(err)
	}
	if fdb, _ := h.vxlanEntries(t, vx); !slices.Contains(fdb, "02:42:0a:00:00:05>192.168.88.3") || len(fdb) != 3 {
		t.Errorf("after the MAC moved to .3: %v", fdb)
	}
	for range 2 {
		for _, err := range []error{
			h.DeleteRemoteMAC(vx, mac, c), h.DeleteFloodRemote(vx, b), h.DeleteNeighbour(vx, v4),
		} {
			if err != nil {
				t.Fatalf("delete (twice): %v", err)
			}
		}
	}
	fdb, neigh = h.vxlanEntries(t, vx)
	if !slices.Equal(fdb, []string{"00:00:00:00:00:00>192.168.88.3"}) || !slices.Equal(neigh, []string{"fd00::5>02:42:0a:00:00:05"}) {
		t.Errorf("after the deletes: %v, %v", fdb, neigh)
	}
}

// The list verbs report what the set verbs made and nothing else of the
// device: not the bridge's entries of the port, not entries the kernel
// learnt or resolved.
func TestVxlanEntriesAreListedAsTheSetVerbsMadeThem(t *testing.T) {
	h := newTestHost(t)
	h.underlay(t, netip.MustParsePrefix("192.168.88.1/24"), 1500)
	br := h.bridge(t, "br-ov", 1450)
	vx, err := h.EnsureVxlan(netdev.VxlanSpec{Name: "vx-test", VNI: 42, Local: netip.MustParseAddr("192.168.88.1"), MTU: 1450, Master: br.Index})
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:42:0a:00:00:05")
	b, c := netip.MustParseAddr("192.168.88.2"), netip.MustParseAddr("192.168.88.3")
	v4, v6 := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")
	for _, err := range []error{
		h.SetRemoteMAC(vx, mac, b), h.AddFloodRemote(vx, b), h.AddFloodRemote(vx, c),
		h.SetNeighbour(vx, v4, mac), h.SetNeighbour(vx, v6, mac),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Entries berth does not make: one as if learnt from a remote, one on
	// the bridge for the port, and a neighbour the kernel resolved.
	learnt, _ := net.ParseMAC("02:42:0a:00:00:06")
	others := []*netlink.Neigh{
		{LinkIndex: vx, Family: syscall.AF_BRIDGE, State: netlink.NUD_REACHABLE, Flags: netlink.NTF_SELF, HardwareAddr: learnt, IP: net.ParseIP("192.168.88.4")},
		{LinkIndex: vx, Family: syscall.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_MASTER, HardwareAddr: learnt},
		{LinkIndex: vx, State: netlink.NUD_STALE, IP: net.ParseIP("10.0.0.6"), HardwareAddr: learnt},
	}
	for _, n := range others {
		if err := h.ns.Netlink.NeighAdd(n); err != nil {
			t.Fatalf("add %+v: %v", n, err)
		}
	}

	macs, err := h.RemoteMACs(vx)
	if err != nil || len(macs) != 1 || macs[0].MAC.String() != mac.String() || macs[0].Remote != b {
		t.Errorf("remote MACs %+v, %v: %s at %s alone", macs, err, mac, b)
	}
	flood, err := h.FloodRemotes(vx)
	slices.SortFunc(flood, netip.Addr.Compare)
	if err != nil || !slices.Equal(flood, []netip.Addr{b, c}) {
		t.Errorf("flood remotes %v, %v: %s and %s", flood, err, b, c)
	}
	neigh, err := h.Neighbours(vx)
	var got []string
	for _, n := range neigh {
		got = append(got, n.Addr.String()+">"+n.MAC.String())
	}
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"10.0.0.5>02:42:0a:00:00:05", "fd00::5>02:42:0a:00:00:05"}) {
		t.Errorf("neighbours %v, %v", got, err)
	}
	// The entries berth does not make are there, so leaving them out of the
	// lists was the lists' doing.
	fdb, all := h.vxlanEntries(t, vx)
	if !slices.Contains(fdb, "02:42:0a:00:00:06>192.168.88.4") {
		t.Errorf("the learnt-like entry is missing: %v", fdb)
	}
	list, err := h.ns.Netlink.NeighList(vx, syscall.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(list, func(n netlink.Neigh) bool {
		return n.MasterIndex == br.Index && n.HardwareAddr.String() == learnt.String()
	}) {
		t.Errorf("the bridge's entry for the port is missing: %+v", list)
	}
	if !slices.Contains(all, "10.0.0.6>02:42:0a:00:00:06") {
		t.Errorf("the resolved neighbour is missing: %v", all)
	}

	// Emptied, the lists are empty.
	for _, err := range []error{
		h.DeleteRemoteMAC(vx, mac, b), h.DeleteFloodRemote(vx, b), h.DeleteFloodRemote(vx, c),
		h.DeleteNeighbour(vx, v4), h.DeleteNeighbour(vx, v6),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	macs, err1 := h.RemoteMACs(vx)
	flood, err2 := h.FloodRemotes(vx)
	neigh, err3 := h.Neighbours(vx)
	if len(macs)+len(flood)+len(neigh) != 0 || errors.Join(err1, err2, err3) != nil {
		t.Errorf("after the deletes: %+v, %v, %+v, %v", macs, flood, neigh, errors.Join(err1, err2, err3))
	}
}
