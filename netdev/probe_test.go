package netdev_test

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/netdev"
)

func TestProbeLinkKindsTellsWhatTheKernelMakesAndLeavesNothing(t *testing.T) {
	h := newTestHost(t)
	before, err := h.ns.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{netdev.KindBridge, netdev.KindVeth, netdev.KindMacvlan, netdev.KindIPVlan, netdev.KindVLAN, netdev.KindDummy, netdev.KindVxlan, "wormhole"}
	var got map[string]error
	if err := h.ns.Do(func() (err error) { got, err = netdev.ProbeLinkKinds(kinds); return err }); err != nil {
		t.Fatal(err)
	}
	t.Logf("probed: %v", got)
	for _, k := range kinds {
		err, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: no answer", k)
		case k == "wormhole":
			if err == nil || errors.Is(err, netdev.ErrUnsupported) {
				t.Errorf("an unknown kind: %v, want an error that is not the kernel's", err)
			}
		case k == netdev.KindBridge || k == netdev.KindVeth || k == netdev.KindMacvlan || k == netdev.KindVxlan:
			// Every kernel berth runs on has these (DESIGN.md).
			if err != nil {
				t.Errorf("%s: %v", k, err)
			}
		case err != nil && !errors.Is(err, netdev.ErrUnsupported):
			t.Errorf("%s: %v, want nil or ErrUnsupported", k, err)
		}
	}
	after, err := h.ns.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("the probe left devices in the calling namespace: %d before, %d after", len(before), len(after))
	}
}

func TestRoutesNameTheirDevicesAndWhetherTheDaemonOwnsThem(t *testing.T) {
	h := newTestHost(t)
	h.bridge(t, "br-mine", 1500, netip.MustParsePrefix("10.40.0.1/24"))
	// Someone else's device, with a route.
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, PeerName: "other1"}
	err := h.ns.Netlink.LinkAdd(v)
	if err == nil {
		err = h.ns.Netlink.LinkSetUp(v)
	}
	if err == nil {
		err = h.ns.Netlink.RouteAdd(&netlink.Route{LinkIndex: v.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("10.41.0.0"), Mask: net.CIDRMask(16, 32)}})
	}
	if err != nil {
		t.Fatal(err)
	}
	routes, err := h.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []netdev.Route{
		{Dst: netip.MustParsePrefix("10.40.0.0/24"), Device: "br-mine", Owned: true},
		{Dst: netip.MustParsePrefix("10.41.0.0/16"), Device: "other0"},
	} {
		if !slices.Contains(routes, want) {
			t.Errorf("routes %+v: no %+v", routes, want)
		}
	}
}
