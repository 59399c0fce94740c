package network

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/store"
)

func TestConnectRules(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{})
	tb.network("fixed", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	tb.sandbox("s")
	tb.connect("s", "app", EndpointOptions{})
	tb.sandbox("alone")
	tb.connect("alone", NameNone, EndpointOptions{})

	cases := []struct {
		name, sandbox, network string
		opts                   EndpointOptions
		is                     func(error) bool
		text                   string
	}{
		{"host network", "s", NameHost, EndpointOptions{}, errdefs.IsInvalidArgument, "container cannot be disconnected from host network or connected to host network"},
		{"twice", "s", "app", EndpointOptions{}, errdefs.IsPermissionDenied, "endpoint with name s already exists in network app"},
		{"none besides others", "s", NameNone, EndpointOptions{}, errdefs.IsInvalidArgument, "one of the networks in private (none) mode"},
		{"others besides none", "alone", "app", EndpointOptions{}, errdefs.IsInvalidArgument, "one of the networks in private (none) mode"},
		{"alias on a predefined network", "s", NameBridge, EndpointOptions{Aliases: []string{"x"}}, errdefs.IsInvalidArgument, "network-scoped aliases are only supported for user-defined networks"},
		{"alias that is no DNS name", "s", "fixed", EndpointOptions{Aliases: []string{"a b"}}, errdefs.IsInvalidArgument, `invalid alias "a b"`},
		{"static address on bridge", "s", NameBridge, EndpointOptions{IPv4: netip.MustParseAddr("172.17.0.9")}, errdefs.IsInvalidArgument, "user specified IP address is supported on user defined networks only"},
		{"static address on an automatic subnet", "alone2", "app", EndpointOptions{IPv4: netip.MustParseAddr("172.18.0.9")}, errdefs.IsInvalidArgument, "user configured subnets"},
		{"static address outside", "alone2", "fixed", EndpointOptions{IPv4: netip.MustParseAddr("10.6.0.9")}, errdefs.IsInvalidArgument, "does not belong to any of this network's subnets"},
		{"static IPv6 without IPv6", "alone2", "fixed", EndpointOptions{IPv6: netip.MustParseAddr("fd00::9")}, errdefs.IsInvalidArgument, "does not belong to any of this network's subnets"},
		{"bad MAC", "s", "fixed", EndpointOptions{MAC: "zz"}, errdefs.IsInvalidArgument, "invalid MAC address zz"},
		{"missing network", "s", "nope", EndpointOptions{}, errdefs.IsNotFound, "network nope not found"},
		{"missing sandbox", "nope", "app", EndpointOptions{}, errdefs.IsNotFound, "sandbox nope not found"},
	}
	tb.sandbox("alone2")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tb.c.Connect(tc.sandbox, tc.network, tc.opts)
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want %q", err, tc.text)
			}
		})
	}
	// Stopped containers are checked by the same rules.
	for _, tc := range cases[:6] {
		on := []string{"app"}
		if tc.sandbox == "alone" {
			on = []string{NameNone}
		}
		if _, err := tb.c.CheckConnect(tc.sandbox, on, tc.network, tc.opts); err == nil || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s, checked for a stopped container: %v", tc.name, err)
		}
	}
	if ref, err := tb.c.CheckConnect("c", []string{"app", "gone"}, "fixed", EndpointOptions{}); err != nil || ref.Name != "fixed" {
		t.Errorf("a valid connect of a stopped container: %+v, %v", ref, err)
	}
	if n := tb.records(bucketEndpoints); n != 2 {
		t.Errorf("%d endpoint records after refused connects, want 2", n)
	}
}

func TestAddressesAreHandedOutLowestFirstAndComeBack(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{IPAM: []ipam.Config{{
		Subnet: netip.MustParsePrefix("10.5.0.0/29"), AuxAddresses: map[string]netip.Addr{"r": netip.MustParseAddr("10.5.0.2")},
	}}})
	var got []string
	for _, name := range []string{"a", "b", "c", "d"} {
		tb.sandbox(name)
		got = append(got, tb.connect(name, "app", EndpointOptions{}).IPv4.String())
	}
	// .1 is the gateway, .2 an aux address, .7 the broadcast.
	if strings.Join(got, " ") != "10.5.0.3/29 10.5.0.4/29 10.5.0.5/29 10.5.0.6/29" {
		t.Errorf("addresses %v", got)
	}
	tb.sandbox("f")
	_, _, err := tb.c.Connect("f", "app", EndpointOptions{})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "no available IPv4 addresses on this network's address pools: app") {
		t.Fatalf("connect to a full network: %v", err)
	}
	if _, err := tb.c.Disconnect("b", "app", nil); err != nil {
		t.Fatal(err)
	}
	if ep := tb.connect("f", "app", EndpointOptions{}); ep.IPv4.String() != "10.5.0.4/29" {
		t.Errorf("after b left, f got %s, want b's 10.5.0.4", ep.IPv4)
	}
	if _, err := tb.c.Disconnect("b", "app", nil); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "is not connected to network app") {
		t.Errorf("disconnecting what is not connected: %v", err)
	}
	if _, err := tb.c.Disconnect("b", NameHost, nil); !errors.Is(err, ErrHostNetwork) {
		t.Errorf("disconnecting from host: %v", err)
	}
}

func TestMACsFollowDocker(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	tb.sandbox("a")
	tb.sandbox("b")
	if ep := tb.connect("a", "app", EndpointOptions{}); ep.MAC != "02:42:0a:05:00:02" {
		t.Errorf("MAC %s, want 02:42 and the address", ep.MAC)
	}
	if ep := tb.connect("b", "app", EndpointOptions{MAC: "02:00:00:00:00:01"}); ep.MAC != "02:00:00:00:00:01" {
		t.Errorf("asked MAC not used: %s", ep.MAC)
	}
	if ep := tb.connect("a", NameBridge, EndpointOptions{}); ep.IfName != "eth1" || ep.HostIfName == "" {
		t.Errorf("second endpoint %+v: eth1 with a host end", ep)
	}
}

func TestStaticAddressesStayReservedForTheirSandbox(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	static := netip.MustParseAddr("10.5.0.50")
	sb, err := tb.c.CreateSandbox(SandboxOptions{ID: "0123456789abcdef" + strings.Repeat("0", 48), Name: "web",
		Networks: []Attachment{{Network: "app", Endpoint: EndpointOptions{IPv4: static}}}})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Endpoints[0].IPv4.Addr() != static || sb.Endpoints[0].StaticIPv4 != static {
		t.Fatalf("endpoint %+v", sb.Endpoints[0])
	}
	// The container stops: its sandbox goes, the address stays its own.
	if err := tb.c.DeleteSandbox("web", true); err != nil {
		t.Fatal(err)
	}
	if n := tb.records(bucketReservations); n != 1 {
		t.Fatalf("%d reservations", n)
	}
	tb.sandbox("other")
	if _, _, err := tb.c.Connect("other", "app", EndpointOptions{IPv4: static}); !errors.Is(err, ipam.ErrAddressInUse) {
		t.Fatalf("another sandbox took a reserved address: %v", err)
	}
	// Kept across a restart.
	tb.restart()
	if _, _, err := tb.c.Connect("other", "app", EndpointOptions{IPv4: static}); !errors.Is(err, ipam.ErrAddressInUse) {
		t.Fatalf("after a restart another sandbox took a reserved address: %v", err)
	}
	sb, err = tb.c.CreateSandbox(SandboxOptions{ID: sb.ID, Name: "web", Networks: []Attachment{{Network: "app", Endpoint: EndpointOptions{IPv4: static}}}})
	if err != nil || sb.Endpoints[0].IPv4.Addr() != static {
		t.Fatalf("the owner starts again: %+v, %v", sb.Endpoints, err)
	}
	if n := tb.records(bucketReservations); n != 0 {
		t.Fatalf("%d reservations while the owner holds the address", n)
	}
	if err := tb.c.DeleteSandbox("web", true); err != nil {
		t.Fatal(err)
	}
	// The container is removed: the address is free for anyone.
	if err := tb.c.ReleaseReservations(sb.ID); err != nil {
		t.Fatal(err)
	}
	if ep := tb.connect("other", "app", EndpointOptions{IPv4: static}); ep.IPv4.Addr() != static {
		t.Fatalf("released address not given: %s", ep.IPv4)
	}
	// Removing the network drops reservations on it.
	if _, err := tb.c.Disconnect("other", "app", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.c.CreateSandbox(SandboxOptions{ID: sb.ID, Name: "web", Networks: []Attachment{{Network: "app", Endpoint: EndpointOptions{IPv4: static}}}}); err != nil {
		t.Fatal(err)
	}
	if err := tb.c.DeleteSandbox("web", true); err != nil {
		t.Fatal(err)
	}
	if err := tb.c.DeleteNetwork("app"); err != nil {
		t.Fatal(err)
	}
	if n := tb.records(bucketReservations); n != 0 {
		t.Fatalf("%d reservations of a removed network", n)
	}
}

func TestDefaultRouteFollowsTheFirstNetworkWithAWayOut(t *testing.T) {
	tb := newTestbed(t)
	tb.network("inner", CreateOptions{Internal: true, IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.1.0.0/24")}}})
	tb.network("outer", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.2.0.0/24")}}})
	tb.network("more", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.3.0.0/24")}}})
	tb.sandbox("s")
	path := "/run/test/own/s"
	route := func() string { return tb.kernel.route(path, "default4") }

	tb.connect("s", "inner", EndpointOptions{})
	if got := route(); got != "eth0 via 10.1.0.1" {
		t.Errorf("only on an internal network: %q; Docker routes through its gateway", got)
	}
	tb.connect("s", "outer", EndpointOptions{})
	if got := route(); got != "eth1 via 10.2.0.1" {
		t.Errorf("with a network with a way out: %q", got)
	}
	tb.connect("s", "more", EndpointOptions{})
	if got := route(); got != "eth1 via 10.2.0.1" {
		t.Errorf("a later network took the route: %q", got)
	}
	if _, err := tb.c.Disconnect("s", "outer", nil); err != nil {
		t.Fatal(err)
	}
	if got := route(); got != "eth2 via 10.3.0.1" {
		t.Errorf("after the gateway's network left: %q", got)
	}
	// After a restart the routes are pointed again from the record.
	tb.kernel.setRoute(tb.c.sandboxes[tb.c.sbNames["s"]].ns, "default4", "stale")
	tb.restart()
	if got := route(); got != "eth2 via 10.3.0.1" {
		t.Errorf("after a restart: %q", got)
	}
	tb.kernel.setFailure("SetDefaultRoute", errInjected)
	if _, err := tb.c.Disconnect("s", "more", nil); err != nil {
		t.Fatalf("a failing route change fails no disconnect: %v", err)
	}
}

func TestJoinInfoRoutesTheSandbox(t *testing.T) {
	l3 := newFakeDriver("l3", driver.Capabilities{Scope: driver.ScopeLocal, Addresses: true})
	l3.join = func(nw *driver.Network, ep *driver.Endpoint) driver.JoinInfo {
		info := driver.Gateways(nw, ep)
		info.DefaultViaDevice = true
		info.Routes = []driver.Route{{Dst: netip.MustParsePrefix("192.0.2.0/24"), Via: netip.MustParseAddr("10.7.0.254")}, {Dst: netip.MustParsePrefix("198.51.100.0/24")}}
		return info
	}
	tb := newTestbed(t, l3)
	tb.network("routed", CreateOptions{Driver: "l3", IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.7.0.0/24")}}})
	tb.sandbox("s")
	ep := tb.connect("s", "routed", EndpointOptions{})
	path := "/run/test/own/s"
	if got := tb.kernel.route(path, "default4"); got != "eth0 dev" {
		t.Errorf("default route %q, want out of the device", got)
	}
	if got := tb.kernel.route(path, "192.0.2.0/24"); got != "eth0 via 10.7.0.254" {
		t.Errorf("static route %q", got)
	}
	if got := tb.kernel.route(path, "198.51.100.0/24"); got != "eth0" {
		t.Errorf("on-link route %q", got)
	}
	if ep.Gateway != netip.MustParseAddr("10.7.0.1") {
		t.Errorf("gateway %s", ep.Gateway)
	}
	// A route the kernel refuses fails the join, leaving nothing.
	tb.kernel.setFailure("AddRoute", errInjected)
	tb.sandbox("t")
	if _, _, err := tb.c.Connect("t", "routed", EndpointOptions{}); !errors.Is(err, errInjected) {
		t.Fatalf("connect with a failing route: %v", err)
	}
	if l3.joinedCount() != 1 || tb.records(bucketEndpoints) != 1 {
		t.Errorf("a failed join left %d joined, %d records", l3.joinedCount(), tb.records(bucketEndpoints))
	}
}

func TestAFailedJoinLeavesNothing(t *testing.T) {
	for _, step := range []string{"store", "driver", "firewall"} {
		t.Run(step, func(t *testing.T) {
			tb := newTestbed(t)
			tb.network("app", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
			tb.sandbox("s")
			switch step {
			case "store":
				tb.store.failBucket(bucketEndpoints, errInjected)
			case "driver":
				tb.bridge.setFailure("Join", errInjected)
			case "firewall":
				tb.fw.failNext = errInjected
			}
			_, _, err := tb.c.Connect("s", "app", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}}})
			if !errors.Is(err, errInjected) {
				t.Fatalf("connect: %v", err)
			}
			tb.store.failBucket(bucketEndpoints, nil)
			tb.bridge.setFailure("Join", nil)
			if n := tb.records(bucketEndpoints); n != 0 {
				t.Errorf("%d endpoint records", n)
			}
			if tb.bridge.joinedCount() != 0 {
				t.Error("the driver's join stays")
			}
			if tb.kernel.heldPorts() != 0 {
				t.Error("the published port stays held")
			}
			if _, binds, _ := tb.fw.state(); binds != 0 {
				t.Error("the firewall publishes the port")
			}
			if d, _ := tb.c.InspectNetwork("app"); len(d.Endpoints) != 0 {
				t.Error("the network keeps the endpoint")
			}
			// The address, the port and the name are free again.
			ep := tb.connect("s", "app", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}}})
			if ep.IPv4.String() != "10.5.0.2/24" || len(ep.Ports) != 1 {
				t.Errorf("after the failure: %+v", ep)
			}
		})
	}
}

func TestAFailedLeaveKeepsTheEndpoint(t *testing.T) {
	for _, step := range []string{"firewall", "driver", "store"} {
		t.Run(step, func(t *testing.T) {
			tb := newTestbed(t)
			tb.network("app", CreateOptions{})
			tb.sandbox("s")
			tb.connect("s", "app", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80}}})
			switch step {
			case "firewall":
				tb.fw.failNext = errInjected
			case "driver":
				tb.bridge.setFailure("Leave", errInjected)
			case "store":
				tb.store.failBucket(bucketEndpoints, errInjected)
			}
			if _, err := tb.c.Disconnect("s", "app", nil); !errors.Is(err, errInjected) {
				t.Fatalf("disconnect: %v", err)
			}
			tb.bridge.setFailure("Leave", nil)
			tb.store.failBucket(bucketEndpoints, nil)
			if d, _ := tb.c.InspectSandbox("s"); len(d.Endpoints) != 1 {
				t.Errorf("endpoints %+v", d.Endpoints)
			}
			if step != "store" {
				if _, binds, _ := tb.fw.state(); binds != 1 {
					t.Error("the firewall no longer publishes the port of a kept endpoint")
				}
			}
			if _, err := tb.c.Disconnect("s", "app", nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCreateSandboxJoinsEverythingOrNothing(t *testing.T) {
	tb := newTestbed(t)
	tb.network("a", CreateOptions{})
	tb.network("b", CreateOptions{Internal: true})
	tb.network("c", CreateOptions{})

	// Validation comes first: nothing is made for a bad request.
	_, err := tb.c.CreateSandbox(SandboxOptions{Name: "x", Networks: []Attachment{{Network: "a"}, {Network: "a"}}})
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("the same network twice: %v", err)
	}
	if _, err := tb.c.CreateSandbox(SandboxOptions{Name: "x", Networks: []Attachment{{Network: "nope"}}}); !errdefs.IsNotFound(err) {
		t.Fatalf("a missing network: %v", err)
	}
	if tb.records(bucketSandboxes) != 0 || len(tb.kernel.namespaces) != 0 {
		t.Fatal("a refused sandbox left a record or a namespace")
	}

	// A failure on the third network undoes the first two.
	tb.bridge.setFailure("Join", nil)
	calls := 0
	tb.bridge.join = func(nw *driver.Network, ep *driver.Endpoint) driver.JoinInfo {
		calls++
		return driver.Gateways(nw, ep)
	}
	tb.fw.fail = nil
	tb.kernel.setFailure("Listen", errInjected)
	_, err = tb.c.CreateSandbox(SandboxOptions{
		Name: "x", DNS: &DNSConfig{Hostname: "x", Resolver: true},
		Networks: []Attachment{{Network: "a"}, {Network: "b"}, {Network: "c"}},
		Ports:    []PortSpec{{Proto: "tcp", Port: 80}},
	})
	if !errors.Is(err, errInjected) {
		t.Fatalf("sandbox whose resolver fails: %v", err)
	}
	if calls != 3 {
		t.Errorf("%d joins made before the failure", calls)
	}
	if tb.records(bucketSandboxes)+tb.records(bucketEndpoints) != 0 || tb.bridge.joinedCount() != 0 || tb.kernel.heldPorts() != 0 {
		t.Fatal("a failed sandbox left records, joins or ports")
	}
	if len(tb.kernel.namespaces) != 0 {
		t.Fatalf("a failed sandbox left its namespace: %v", tb.kernel.namespaces)
	}
	if _, err := tb.c.InspectSandbox("x"); !errdefs.IsNotFound(err) {
		t.Fatalf("a failed sandbox is found: %v", err)
	}
	tb.kernel.setFailure("Listen", nil)

	// Ports go through the first network that publishes: b is internal.
	sb, err := tb.c.CreateSandbox(SandboxOptions{
		Name: "x", Networks: []Attachment{{Network: "b"}, {Network: "c"}, {Network: "a"}},
		Ports: []PortSpec{{Proto: "tcp", Port: 80}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Endpoints) != 3 || len(sb.Endpoints[0].Ports)+len(sb.Endpoints[2].Ports) != 0 || len(sb.Endpoints[1].Ports) != 1 {
		t.Fatalf("ports published on %+v, want c's endpoint only", sb.Endpoints)
	}
	if !strings.HasPrefix(sb.Key, "/run/test/netns/") || sb.External {
		t.Errorf("key %q: a namespace of berth's", sb.Key)
	}
	if sb.Files != nil {
		t.Error("a sandbox without DNS configuration has files")
	}
	if err := tb.c.DeleteSandbox(sb.ID[:6], false); err != nil {
		t.Fatal(err)
	}
	if tb.kernel.exists(sb.Key) {
		t.Error("berth's namespace outlives its sandbox")
	}
}

func TestSandboxesOnNamespacesOfTheirOwn(t *testing.T) {
	tb := newTestbed(t)
	tb.sandbox("a")
	cases := []struct {
		name string
		opts SandboxOptions
		is   func(error) bool
		text string
	}{
		{"relative key", SandboxOptions{Name: "b", Key: "ns/b"}, errdefs.IsInvalidArgument, "must be an absolute path"},
		{"no namespace", SandboxOptions{Name: "b", Key: "/nowhere"}, errdefs.IsInvalidArgument, "open network namespace /nowhere"},
		{"same namespace", SandboxOptions{Name: "b", Key: "/run/test/own/a"}, errdefs.IsConflict, "is already sandbox a"},
		{"same name", SandboxOptions{Name: "a"}, errdefs.IsConflict, `sandbox name "a" is already in use`},
		{"bad name", SandboxOptions{Name: "-a"}, errdefs.IsInvalidArgument, "invalid sandbox name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tb.c.CreateSandbox(tc.opts); err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("%v, want %q", err, tc.text)
			}
		})
	}
	a, _ := tb.c.InspectSandbox("a")
	if _, err := tb.c.CreateSandbox(SandboxOptions{ID: a.ID, Name: "c"}); !errdefs.IsConflict(err) {
		t.Errorf("a second sandbox with a's ID: %v", err)
	}
	tb.kernel.addNamespace("/run/test/own/lo")
	tb.kernel.setFailure("LoopbackUp", errInjected)
	if _, err := tb.c.CreateSandbox(SandboxOptions{Name: "lo", Key: "/run/test/own/lo"}); !errors.Is(err, errInjected) {
		t.Errorf("a namespace whose lo cannot go up: %v", err)
	}
	tb.kernel.setFailure("LoopbackUp", nil)
	tb.store.failBucket(bucketSandboxes, errInjected)
	if _, err := tb.c.CreateSandbox(SandboxOptions{Name: "d"}); !errors.Is(err, errInjected) {
		t.Errorf("a sandbox that cannot be recorded: %v", err)
	}
	tb.store.failBucket(bucketSandboxes, nil)
	tb.kernel.setFailure("CreateNamespace", errInjected)
	if _, err := tb.c.CreateSandbox(SandboxOptions{Name: "d"}); !errors.Is(err, errInjected) {
		t.Errorf("a namespace that cannot be made: %v", err)
	}
	tb.kernel.setFailure("CreateNamespace", nil)
	if names := sandboxNames(tb.c.Sandboxes()); names != "a" {
		t.Errorf("sandboxes %s after refused creates", names)
	}
	if err := tb.c.DeleteSandbox("a", false); err != nil {
		t.Fatal(err)
	}
	if !tb.kernel.exists("/run/test/own/a") {
		t.Error("the caller's namespace went with the sandbox")
	}
	if err := tb.c.DeleteSandbox("a", false); !errdefs.IsNotFound(err) {
		t.Errorf("removing a removed sandbox: %v", err)
	}
}

func sandboxNames(list []SandboxDetail) string {
	var names []string
	for _, sb := range list {
		names = append(names, sb.Name)
	}
	return strings.Join(names, ",")
}

func TestTheCallersRecordIsWrittenWithTheEndpoint(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{})
	tb.sandbox("s")
	var seen NetworkRef
	_, _, err := tb.c.Connect("s", "app", EndpointOptions{Persist: func(tx store.Tx, n NetworkRef) error {
		seen = n
		return tx.Put("callers", "s", []byte(n.Name))
	}})
	if err != nil || seen.Name != "app" {
		t.Fatalf("persist saw %+v, %v", seen, err)
	}
	_, err = tb.c.Disconnect("s", "app", func(tx store.Tx, n NetworkRef) error {
		if n.Name != "app" {
			t.Errorf("persist of a disconnect saw %+v", n)
		}
		return errInjected
	})
	if !errors.Is(err, errInjected) {
		t.Fatalf("disconnect whose caller's record fails: %v", err)
	}
	if d, _ := tb.c.InspectSandbox("s"); len(d.Endpoints) != 1 {
		t.Error("the endpoint went though the caller's record was not written")
	}
	if n := tb.records("callers"); n != 1 {
		t.Errorf("%d caller records", n)
	}
}
