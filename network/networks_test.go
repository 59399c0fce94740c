package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
)

func TestPredefinedNetworksComeFromTheDrivers(t *testing.T) {
	tb := newTestbed(t)
	byName := map[string]Network{}
	for _, n := range tb.c.Networks() {
		byName[n.Name] = n
	}
	want := map[string]string{NameBridge: "bridge", NameHost: "host", NameNone: "null"}
	if len(byName) != len(want) {
		t.Fatalf("networks %v, want the three predefined ones", byName)
	}
	for name, drv := range want {
		if byName[name].Driver != drv {
			t.Errorf("%s has driver %q, want %q", name, byName[name].Driver, drv)
		}
	}
	if byName[NameBridge].Options["default"] != "true" {
		t.Errorf("bridge options %v: the driver's predefined options were not used", byName[NameBridge].Options)
	}
	if p := byName[NameBridge].IPAM.Pools; len(p) != 1 || p[0].Subnet != netip.MustParsePrefix("172.17.0.0/16") {
		t.Errorf("bridge pools %+v, want 172.17.0.0/16 first", p)
	}
	if len(byName[NameHost].IPAM.Pools)+len(byName[NameNone].IPAM.Pools) != 0 || byName[NameHost].EnableIPv4 {
		t.Error("host and none have no addresses")
	}
	if got := tb.c.DriverNames(); strings.Join(got, ",") != "bridge,host,null" {
		t.Errorf("drivers %v", got)
	}
	// A restart creates nothing again.
	tb.restart()
	if n := len(tb.c.Networks()); n != 3 {
		t.Fatalf("%d networks after a restart", n)
	}
}

func TestCreateNetworkBadInput(t *testing.T) {
	tb := newTestbed(t)
	v4 := false
	cases := []struct {
		name string
		opts CreateOptions
		is   func(error) bool
		text string
	}{
		{"empty name", CreateOptions{}, errdefs.IsInvalidArgument, "network name cannot be empty"},
		{"control character", CreateOptions{Name: "a\tb"}, errdefs.IsInvalidArgument, "control characters are not allowed, berth's limit"},
		{"blank name", CreateOptions{Name: "  "}, errdefs.IsInvalidArgument, "network name cannot be empty"},
		{"long name", CreateOptions{Name: strings.Repeat("a", 129)}, errdefs.IsInvalidArgument, "longer than 128"},
		{"predefined", CreateOptions{Name: "host"}, errdefs.IsPermissionDenied, "operation is not permitted on predefined host network"},
		{"unknown driver", CreateOptions{Name: "x", Driver: "nope"}, errdefs.IsNotFound, `plugin "nope" not found`},
		{"unknown IPAM driver", CreateOptions{Name: "x", IPAMDriver: "nope"}, errdefs.IsNotFound, `plugin "nope" not found`},
		{"scope", CreateOptions{Name: "x", Scope: "global"}, errdefs.IsInvalidArgument, `scope "global" is not supported by driver bridge: berth networks of this driver are local`},
		{"second host network", CreateOptions{Name: "x", Driver: "host"}, errdefs.IsPermissionDenied, `only one instance of "host" network is allowed`},
		{"second none network", CreateOptions{Name: "x", Driver: "null"}, errdefs.IsPermissionDenied, `only one instance of "null" network is allowed`},
		{"driver option", CreateOptions{Name: "x", Options: map[string]string{"bad": "1"}}, errdefs.IsInvalidArgument, "bad option 1"},
		{"no family", CreateOptions{Name: "x", EnableIPv4: &v4}, errdefs.IsInvalidArgument, "a network needs IPv4 or IPv6"},
		{"IPv6 subnet without IPv6", CreateOptions{Name: "x", IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("fd00::/64")}}}, errdefs.IsInvalidArgument, "IPv6 is not enabled"},
		{"IPv4 subnet without IPv4", CreateOptions{Name: "x", EnableIPv4: &v4, EnableIPv6: ptr(true), IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.9.0.0/24")}, {Subnet: netip.MustParsePrefix("fd00::/64")}}}, errdefs.IsInvalidArgument, "IPv4 is disabled"},
		{"overlap with bridge", CreateOptions{Name: "x", IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("172.17.1.0/24")}}}, errdefs.IsPermissionDenied, "overlaps"},
		{"gateway outside", CreateOptions{Name: "x", IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.9.0.0/24"), Gateway: netip.MustParseAddr("10.8.0.1")}}}, errdefs.IsInvalidArgument, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tb.c.CreateNetwork(tc.opts)
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v (%T), want one of its class with %q", err, err, tc.text)
			}
		})
	}
	if n := len(tb.c.Networks()); n != 3 {
		t.Errorf("%d networks after refused creates, want the 3 predefined", n)
	}
	if n := tb.records(bucketNetworks); n != 3 {
		t.Errorf("%d network records after refused creates", n)
	}
}

func ptr[T any](v T) *T { return &v }

func TestSubnetsComeFromTheDefaultPoolsAvoidingTheHostsRoutes(t *testing.T) {
	tb := newTestbed(t)
	tb.kernel.prefixes = []netip.Prefix{netip.MustParsePrefix("172.18.0.0/24")}
	a := tb.network("a", CreateOptions{})
	b := tb.network("b", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("172.20.0.0/16"), Gateway: netip.MustParseAddr("172.20.0.254")}}})
	c := tb.network("c", CreateOptions{})
	if got := a.IPAM.Pools[0].Subnet.String(); got != "172.19.0.0/16" {
		t.Errorf("a got %s, want 172.19.0.0/16: 172.17 is the bridge's, 172.18 holds a host route", got)
	}
	if got := c.IPAM.Pools[0].Subnet.String(); got != "172.21.0.0/16" {
		t.Errorf("c got %s, want 172.21.0.0/16 (172.20 is b's)", got)
	}
	if !a.IPAM.Pools[0].AutoSubnet || !a.IPAM.Pools[0].ShowGateway() || a.IPAM.Pools[0].Gateway != netip.MustParseAddr("172.19.0.1") {
		t.Errorf("a's pool %+v: an automatic subnet with its first address as gateway", a.IPAM.Pools[0])
	}
	if b.IPAM.Pools[0].AutoSubnet || !b.IPAM.Pools[0].UserGateway {
		t.Errorf("b's pool %+v: given subnet and gateway", b.IPAM.Pools[0])
	}
	tb.kernel.setFailure("Prefixes", errInjected)
	if _, err := tb.c.CreateNetwork(CreateOptions{Name: "d"}); !errors.Is(err, errInjected) {
		t.Errorf("create while the host's routes cannot be read: %v", err)
	}
}

func TestDualStackNetworkGetsPoolsOfBothFamilies(t *testing.T) {
	tb := newTestbed(t)
	tb.cfg.Pools = append(ipam.DefaultLocalPools(), ipam.PoolSpec{Base: netip.MustParsePrefix("fd00:b::/48"), Size: 64})
	tb.restart()
	n := tb.network("dual", CreateOptions{EnableIPv6: ptr(true)})
	if len(n.IPAM.Pools) != 2 || !n.IPAM.Pools[1].Subnet.Addr().Is6() {
		t.Fatalf("pools %+v, want IPv4 and IPv6", n.IPAM.Pools)
	}
	if len(tb.kernel.forwarding) == 0 || !tb.kernel.forwarding[len(tb.kernel.forwarding)-1] {
		t.Error("IPv6 forwarding was not turned on for the first IPv6 network")
	}
	v6only := tb.network("six", CreateOptions{EnableIPv4: ptr(false), EnableIPv6: ptr(true)})
	if len(v6only.IPAM.Pools) != 1 || !v6only.IPAM.Pools[0].Subnet.Addr().Is6() {
		t.Fatalf("an IPv6-only network has pools %+v", v6only.IPAM.Pools)
	}
	tb.sandbox("s")
	ep := tb.connect("s", "dual", EndpointOptions{})
	if !ep.IPv4.IsValid() || !ep.IPv6.IsValid() || !ep.GatewayV6.IsValid() {
		t.Fatalf("endpoint on a dual-stack network: %+v", ep)
	}
	if got := tb.kernel.route("/run/test/own/s", "default6"); got != "eth0 via "+ep.GatewayV6.String() {
		t.Errorf("IPv6 default route %q", got)
	}
}

func TestANetworkIsUnderTheFirewallWhenItsDriverSaysSo(t *testing.T) {
	plain := newFakeDriver("plain", driver.Capabilities{Scope: driver.ScopeLocal, Addresses: true})
	tb := newTestbed(t, plain)
	n := tb.network("app", CreateOptions{Options: map[string]string{"icc": "false"}})
	if n.Notes["com.test.note"] != "x" {
		t.Errorf("notes %v: the driver's notes are the network's", n.Notes)
	}
	tb.network("lan", CreateOptions{Driver: "plain"})
	fw, ok := tb.fw.networks["br-app"]
	if !ok || !fw.Isolated || !fw.Masquerade {
		t.Fatalf("firewall has %+v for app", tb.fw.networks)
	}
	if _, ok := tb.fw.networks["br-lan"]; ok {
		t.Error("a network whose driver describes no firewall is in the firewall")
	}
	if !contains(tb.kernel.localnet, "br-app") || contains(tb.kernel.localnet, "br-lan") {
		t.Errorf("127.0.0.1 allowed through %v", tb.kernel.localnet)
	}
	tb.sandbox("s")
	ep := tb.connect("s", "app", EndpointOptions{})
	if !tb.fw.isolated[ep.HostIfName] {
		t.Error("an endpoint of an isolated network is not isolated")
	}
	if g := tb.fw.guarded[ep.HostIfName]; g.MAC.String() != ep.MAC || g.IPv4 != ep.IPv4.Addr() || g.IPv6.IsValid() {
		t.Errorf("guard %+v for endpoint %+v: its MAC and its IPv4 address", g, ep)
	}
	tb.restart()
	if _, ok := tb.fw.guarded[ep.HostIfName]; !ok || tb.fw.rebuilt == 0 {
		t.Error("the guard is not in the rebuilt firewall")
	}
	if _, err := tb.c.Disconnect("s", "app", nil); err != nil {
		t.Fatal(err)
	}
	if tb.fw.isolated[ep.HostIfName] {
		t.Error("isolation stays after disconnect")
	}
	if _, ok := tb.fw.guarded[ep.HostIfName]; ok {
		t.Error("the guard stays after disconnect")
	}
	tb.network("router", CreateOptions{Options: map[string]string{"spoof": "allow"}})
	if ep := tb.connect("s", "router", EndpointOptions{}); len(tb.fw.guarded) != 0 {
		t.Errorf("an endpoint of a network that allows spoofing is guarded: %+v", tb.fw.guarded[ep.HostIfName])
	}
	if err := tb.c.DeleteNetwork("app"); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.fw.networks["br-app"]; ok {
		t.Error("removed network stays in the firewall")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestNetworksAreFoundByIDNameAndUniquePrefix(t *testing.T) {
	tb := newTestbed(t)
	n := tb.network("app", CreateOptions{})
	for _, term := range []string{n.ID, "app", n.ID[:5]} {
		ref, err := tb.c.LookupNetwork(term)
		if err != nil || ref.ID != n.ID || ref.Name != "app" {
			t.Errorf("lookup %q: %+v, %v", term, ref, err)
		}
	}
	if _, err := tb.c.LookupNetwork("nope"); !errdefs.IsNotFound(err) || err.Error() != "network nope not found" {
		t.Errorf("lookup of a missing network: %v", err)
	}
	// Enough networks that some share a first hex digit.
	for i := range 20 {
		tb.network(fmt.Sprintf("n%d", i), CreateOptions{})
	}
	counts := map[byte]int{}
	for _, nw := range tb.c.Networks() {
		counts[nw.ID[0]]++
	}
	for digit, k := range counts {
		if k > 1 {
			_, err := tb.c.LookupNetwork(string(digit))
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "is ambiguous") {
				t.Errorf("an ambiguous prefix: %v", err)
			}
			break
		}
	}
	host, _ := tb.c.LookupNetwork(NameHost)
	none, _ := tb.c.LookupNetwork(NameNone)
	if !host.HostNamespace() || host.Alone() || !none.Alone() || none.HostNamespace() {
		t.Errorf("host %+v none %+v: how they combine comes from their drivers", host, none)
	}
}

func TestConcurrentCreatesOfOneNameLeaveOneNetwork(t *testing.T) {
	tb := newTestbed(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, exists := 0, 0
	for range 20 {
		wg.Go(func() {
			_, err := tb.c.CreateNetwork(CreateOptions{Name: "same"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errdefs.IsConflict(err) && err.Error() == "network with name same already exists":
				exists++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || exists != 19 {
		t.Fatalf("%d created, %d refused", ok, exists)
	}
}

func TestRemoveAndPruneNetworks(t *testing.T) {
	tb := newTestbed(t)
	tb.network("used", CreateOptions{Labels: map[string]string{"keep": "no"}})
	tb.network("idle", CreateOptions{Labels: map[string]string{"keep": "no"}})
	tb.network("kept", CreateOptions{Labels: map[string]string{"keep": "yes"}})
	tb.sandbox("s")
	tb.connect("s", "used", EndpointOptions{})

	err := tb.c.DeleteNetwork("used")
	var active *activeEndpointsError
	if !errors.As(err, &active) || !strings.Contains(err.Error(), "has active endpoints") {
		t.Fatalf("removing a network in use: %v", err)
	}
	if err := tb.c.DeleteNetwork(NameBridge); !errdefs.IsPermissionDenied(err) || err.Error() != "bridge is a pre-defined network and cannot be removed" {
		t.Errorf("removing bridge: %v", err)
	}
	removed, err := tb.c.PruneNetworks(func(n Network) bool { return n.Labels["keep"] != "yes" })
	if err != nil || strings.Join(removed, ",") != "idle" {
		t.Fatalf("prune removed %v, %v; want idle only (used has endpoints, kept is kept, predefined stay)", removed, err)
	}
	if err := tb.c.DeleteNetwork("idle"); !errdefs.IsNotFound(err) {
		t.Errorf("removing a removed network: %v", err)
	}
	if _, err := tb.c.Disconnect("s", "used", nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.c.DeleteNetwork("used"); err != nil {
		t.Fatal(err)
	}
	if tb.bridge.networks[tb.c.netNames["kept"]] != true || len(tb.bridge.networks) != 2 {
		t.Errorf("driver's networks %v: want bridge and kept", tb.bridge.networks)
	}
	if n := tb.records(bucketNetworks); n != 4 {
		t.Errorf("%d network records, want 4 (3 predefined and kept)", n)
	}
	// The subnet of a removed network is free again.
	n := tb.network("again", CreateOptions{})
	if n.IPAM.Pools[0].Subnet.String() != "172.18.0.0/16" {
		t.Errorf("new network got %s, want the freed 172.18.0.0/16", n.IPAM.Pools[0].Subnet)
	}
}

func TestAFailedCreateLeavesNothing(t *testing.T) {
	for _, step := range []string{"prepare", "store", "driver", "localnet", "firewall"} {
		t.Run(step, func(t *testing.T) {
			tb := newTestbed(t)
			switch step {
			case "prepare":
				tb.bridge.setFailure("Prepare", errInjected)
			case "store":
				tb.store.failBucket(bucketNetworks, errInjected)
			case "driver":
				tb.bridge.setFailure("CreateNetwork", errInjected)
			case "localnet":
				tb.kernel.setFailure("AllowLocalnet", errInjected)
			case "firewall":
				tb.fw.fail = errInjected
			}
			if _, err := tb.c.CreateNetwork(CreateOptions{Name: "x"}); !errors.Is(err, errInjected) {
				t.Fatalf("create: %v", err)
			}
			tb.store.failBucket(bucketNetworks, nil)
			tb.bridge.setFailure("Prepare", nil)
			tb.bridge.setFailure("CreateNetwork", nil)
			tb.kernel.setFailure("AllowLocalnet", nil)
			tb.fw.fail = nil
			if n := tb.records(bucketNetworks); n != 3 {
				t.Errorf("%d network records", n)
			}
			if len(tb.bridge.networks) != 1 {
				t.Errorf("driver has %d networks, want only bridge's", len(tb.bridge.networks))
			}
			if nets, _, _ := tb.fw.state(); nets != 1 {
				t.Errorf("firewall has %d networks", nets)
			}
			// The name and the subnet are free.
			if n := tb.network("x", CreateOptions{}); n.IPAM.Pools[0].Subnet.String() != "172.18.0.0/16" {
				t.Errorf("after the failure the subnet %s was chosen", n.IPAM.Pools[0].Subnet)
			}
		})
	}
}

func TestAFailedRemoveKeepsTheNetworkWhole(t *testing.T) {
	for _, step := range []string{"firewall", "driver", "store"} {
		t.Run(step, func(t *testing.T) {
			tb := newTestbed(t)
			tb.network("x", CreateOptions{})
			switch step {
			case "firewall":
				tb.fw.failNext = errInjected
			case "driver":
				tb.bridge.setFailure("DeleteNetwork", errInjected)
			case "store":
				tb.store.failBucket(bucketNetworks, errInjected)
			}
			if err := tb.c.DeleteNetwork("x"); !errors.Is(err, errInjected) {
				t.Fatalf("remove: %v", err)
			}
			tb.store.failBucket(bucketNetworks, nil)
			tb.bridge.setFailure("DeleteNetwork", nil)
			if _, ok := tb.fw.networks["br-x"]; !ok {
				t.Error("the network left the firewall")
			}
			if len(tb.bridge.networks) != 2 {
				t.Error("the driver's network is gone")
			}
			// Still usable, and removable once the fault is gone.
			tb.sandbox("s")
			tb.connect("s", "x", EndpointOptions{})
			if _, err := tb.c.Disconnect("s", "x", nil); err != nil {
				t.Fatal(err)
			}
			if err := tb.c.DeleteNetwork("x"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestIPv6WithoutASubnetTakesA64OfTheHostsUniqueLocal48(t *testing.T) {
	tb := newTestbed(t)
	tb.c.Close()
	tb.cfg.HostID = "host-a"
	tb.start()
	ula := ipam.ULAPool("host-a").Base
	if ula.Bits() != 48 || ula.Addr().As16()[0] != 0xfd || ula == ipam.ULAPool("host-b").Base {
		t.Fatalf("pool %s: want a unique local /48 that differs between hosts", ula)
	}
	a := tb.network("a", CreateOptions{EnableIPv6: ptr(true)})
	b := tb.network("b", CreateOptions{EnableIPv6: ptr(true)})
	var got []netip.Prefix
	for _, n := range []Network{a, b} {
		if len(n.IPAM.Pools) != 2 || !n.IPAM.Pools[0].Subnet.Addr().Is4() {
			t.Fatalf("%s pools %+v, want an IPv4 and an IPv6 subnet", n.Name, n.IPAM.Pools)
		}
		p := n.IPAM.Pools[1]
		if p.Subnet.Bits() != 64 || !ula.Contains(p.Subnet.Addr()) || p.Gateway != p.Subnet.Addr().Next() {
			t.Errorf("%s IPv6 pool %+v, want a /64 of %s with its first address as gateway", n.Name, p, ula)
		}
		got = append(got, p.Subnet)
	}
	if got[0] == got[1] {
		t.Errorf("two networks got the same subnet %s", got[0])
	}
	tb.sandbox("s")
	if ep := tb.connect("s", "a", EndpointOptions{}); !ep.IPv6.IsValid() || !got[0].Contains(ep.IPv6.Addr()) {
		t.Errorf("endpoint IPv6 %s, want one of %s", ep.IPv6, got[0])
	}
	// Pools of the operator's with an IPv6 one replace the default.
	tb.c.Close()
	tb.cfg.Pools = []ipam.PoolSpec{{Base: netip.MustParsePrefix("10.50.0.0/16"), Size: 24}, {Base: netip.MustParsePrefix("fd12:3456::/48"), Size: 64}}
	tb.start()
	c := tb.network("c", CreateOptions{EnableIPv6: ptr(true)})
	if s := c.IPAM.Pools[1].Subnet.String(); s != "fd12:3456::/64" {
		t.Errorf("with an IPv6 pool given, the subnet is %s", s)
	}
}
