package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
)

// attach makes a namespace, registers it as a sandbox and connects it.
func attach(t *testing.T, d *nettest.Daemon, name, net string) (*nettest.Namespace, network.EndpointSettings) {
	t.Helper()
	return attachPublishing(t, d, name, net, nil)
}

// attachPublishing is attach with ports published.
func attachPublishing(t *testing.T, d *nettest.Daemon, name, net string, ports network.PortMap) (*nettest.Namespace, network.EndpointSettings) {
	t.Helper()
	ns := d.Host.NewNamespace(name)
	if _, err := d.API.CreateSandbox(ctxT(t), api.SandboxCreateRequest{Name: name, Key: ns.Path}); err != nil {
		t.Fatalf("create sandbox %s: %v", name, err)
	}
	ep, err := d.API.ConnectSandbox(ctxT(t), name, api.SandboxConnectRequest{Network: net, PortBindings: ports})
	if err != nil {
		t.Fatalf("connect %s to %s: %v", name, net, err)
	}
	return ns, ep
}

// echoServer answers every connection with what it reads, inside ns.
func echoServer(t *testing.T, ns *nettest.Namespace, addr string) {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

// roundTrip dials addr from ns and checks an echo comes back.
func roundTrip(ns *nettest.Namespace, addr string) error {
	return roundTripOver(ns, "tcp", addr)
}

// roundTripOver is roundTrip on the network given: "tcp6" to dial [::],
// which Go's dual-stack "tcp" sockets cannot.
func roundTripOver(ns *nettest.Namespace, network, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("berth")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "berth" {
		return fmt.Errorf("echo returned %q", buf)
	}
	return nil
}

func TestTwoSandboxesOnOneNetworkTalkTCP(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{})
	a, epA := attach(t, d, "a", "app")
	b, epB := attach(t, d, "b", "app")

	if epA.IPAddress.String() != "172.18.0.2" || epB.IPAddress.String() != "172.18.0.3" || epA.IPPrefixLen != 16 {
		t.Fatalf("addresses %s/%d and %s, want 172.18.0.2/16 and 172.18.0.3", epA.IPAddress, epA.IPPrefixLen, epB.IPAddress)
	}
	if epA.MacAddress.String() != "02:42:ac:12:00:02" || epA.Gateway.String() != "172.18.0.1" {
		t.Errorf("endpoint a: MAC %s gateway %s, want 02:42:ac:12:00:02 via 172.18.0.1", epA.MacAddress, epA.Gateway)
	}
	if got, err := a.Addrs("eth0"); err != nil || !slices.Equal(got, []string{"172.18.0.2/16"}) {
		t.Fatalf("eth0 of a has %v (%v)", got, err)
	}
	routes, err := a.Netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if !hasDefaultVia(routes, "172.18.0.1") {
		t.Errorf("a's routes %v have no default via 172.18.0.1", routes)
	}
	echoServer(t, b, "0.0.0.0:7000")
	if err := roundTrip(a, "172.18.0.3:7000"); err != nil {
		t.Fatalf("a → b over TCP: %v", err)
	}
	// The gateway is the host: it answers on the bridge address.
	echoServer(t, h.Namespace, "172.18.0.1:7001")
	if err := roundTrip(a, "172.18.0.1:7001"); err != nil {
		t.Fatalf("a → host gateway: %v", err)
	}
}

func hasDefaultVia(routes []netlink.Route, gw string) bool {
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0" || r.Dst.String() == "::/0") && r.Gw.String() == gw {
			return true
		}
	}
	return false
}

func TestSandboxesOnTwoNetworksGetAddressesOfTheirOwnSubnets(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "one", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.1.0.0/24")}}}})
	create(t, d, "two", client.NetworkCreateOptions{})
	_, ep1 := attach(t, d, "a", "one")
	_, ep2 := attach(t, d, "b", "two")
	if ep1.IPAddress.String() != "10.1.0.2" || ep2.IPAddress.String() != "172.18.0.2" {
		t.Fatalf("a got %s on one, b got %s on two; want 10.1.0.2 and 172.18.0.2", ep1.IPAddress, ep2.IPAddress)
	}
	n := inspect(t, d, "one")
	if len(n.Containers) != 1 {
		t.Fatalf("network one shows %d containers, want 1", len(n.Containers))
	}
	for _, c := range n.Containers {
		if c.Name != "a" || c.IPv4Address.String() != "10.1.0.2/24" || c.MacAddress.String() != "02:42:0a:01:00:02" {
			t.Errorf("network one's endpoint = %+v", c)
		}
	}
}

func TestSandboxOnTwoNetworksReachesBoth(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "one", client.NetworkCreateOptions{})
	create(t, d, "two", client.NetworkCreateOptions{})
	a, _ := attach(t, d, "a", "one")
	b, _ := attach(t, d, "b", "two")
	m, _ := attach(t, d, "m", "one")
	ep, err := d.API.ConnectSandbox(ctxT(t), "m", api.SandboxConnectRequest{Network: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.IPAddress.String() != "172.19.0.3" {
		t.Errorf("m on two got %s, want 172.19.0.3", ep.IPAddress)
	}
	if got, _ := m.Addrs("eth1"); !slices.Equal(got, []string{"172.19.0.3/16"}) {
		t.Errorf("m's eth1 = %v", got)
	}
	echoServer(t, a, "0.0.0.0:7000")
	echoServer(t, b, "0.0.0.0:7000")
	for _, addr := range []string{"172.18.0.2:7000", "172.19.0.2:7000"} {
		if err := roundTrip(m, addr); err != nil {
			t.Errorf("m → %s: %v", addr, err)
		}
	}
	// The first network keeps the default route.
	routes, _ := m.Netlink.RouteList(nil, netlink.FAMILY_V4)
	if !hasDefaultVia(routes, "172.18.0.1") {
		t.Errorf("m's default route is not via one's gateway: %v", routes)
	}
}

func TestDetachRemovesTheInterfaceAndFreesTheAddress(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{})
	create(t, d, "other", client.NetworkCreateOptions{})
	a, _ := attach(t, d, "a", "app")
	b, _ := attach(t, d, "b", "app")
	echoServer(t, b, "0.0.0.0:7000")
	if _, err := d.API.ConnectSandbox(ctxT(t), "a", api.SandboxConnectRequest{Network: "other"}); err != nil {
		t.Fatal(err)
	}

	if err := d.API.DisconnectSandbox(ctxT(t), "a", api.SandboxDisconnectRequest{Network: "app"}); err != nil {
		t.Fatal(err)
	}
	// Out of service at once: a's interface on app is down or gone, and no
	// route goes through it.
	if l, err := a.Netlink.LinkByName("eth0"); err == nil && l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatal("a's eth0 is still up after leaving app")
	}
	routes, _ := a.Netlink.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "172.18.0.0/16" {
			t.Errorf("a still routes app's subnet: %v", r)
		}
	}
	// The default route moved to the remaining network.
	if !hasDefaultVia(routes, "172.19.0.1") {
		t.Errorf("after leaving app, a's default route is not via other's gateway: %v", routes)
	}
	sb, err := d.API.InspectSandbox(ctxT(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sb.Networks["app"]; ok || len(sb.Networks) != 1 {
		t.Errorf("sandbox a still lists %v", sb.Networks)
	}
	// The address is free again (lowest free first), and a reconnect right
	// away works, on a new interface name as Docker gives.
	ep, err := d.API.ConnectSandbox(ctxT(t), "a", api.SandboxConnectRequest{Network: "app"})
	if err != nil {
		t.Fatalf("reconnect right after detach: %v", err)
	}
	if ep.IPAddress.String() != "172.18.0.2" {
		t.Errorf("reconnect got %s, want the freed 172.18.0.2", ep.IPAddress)
	}
	if got, _ := a.Addrs("eth2"); !slices.Equal(got, []string{"172.18.0.2/16"}) {
		t.Errorf("reconnected interface eth2 = %v", got)
	}
	if err := roundTrip(a, "172.18.0.3:7000"); err != nil {
		t.Fatalf("a → b after reconnect: %v", err)
	}
	// The retired devices are reaped in the background: eventually a has
	// no interface but lo, eth1 and eth2.
	waitFor(t, 5*time.Second, func() error {
		got, err := a.LinkNames()
		if err != nil {
			return err
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"eth1", "eth2", "lo"}) {
			return fmt.Errorf("a's links = %v", got)
		}
		return nil
	})
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, limit time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %v", limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConcurrentAttachesNeverShareAnAddress(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.9.0.0/24")}}}})
	const n = 30
	var nss []*nettest.Namespace
	for i := range n {
		ns := h.NewNamespace(fmt.Sprintf("c%d", i))
		if _, err := d.API.CreateSandbox(ctxT(t), api.SandboxCreateRequest{Name: fmt.Sprintf("c%d", i), Key: ns.Path}); err != nil {
			t.Fatal(err)
		}
		nss = append(nss, ns)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep, err := d.API.ConnectSandbox(context.Background(), fmt.Sprintf("c%d", i), api.SandboxConnectRequest{Network: "app"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("connect c%d: %v", i, err)
				return
			}
			if other, dup := seen[ep.IPAddress.String()]; dup {
				t.Errorf("c%d and %s both got %s", i, other, ep.IPAddress)
			}
			seen[ep.IPAddress.String()] = fmt.Sprintf("c%d", i)
		}()
	}
	wg.Wait()
	// Exactly .2 to .31: lowest free first, nothing skipped.
	for i := 2; i < 2+n; i++ {
		if _, ok := seen[fmt.Sprintf("10.9.0.%d", i)]; !ok {
			t.Errorf("10.9.0.%d was not handed out", i)
		}
	}
	// And the kernel agrees: every namespace has exactly its address.
	for i, ns := range nss {
		got, err := ns.Addrs("eth0")
		if err != nil || len(got) != 1 {
			t.Errorf("c%d eth0 = %v, %v", i, got, err)
		}
	}
}

func TestSandboxRulesFollowDocker(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "auto", client.NetworkCreateOptions{})
	create(t, d, "exp", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("172.29.10.0/24")}}}})
	attach(t, d, "a", "exp")
	ns := h.NewNamespace("b")
	if _, err := d.API.CreateSandbox(ctxT(t), api.SandboxCreateRequest{Name: "b", Key: ns.Path}); err != nil {
		t.Fatal(err)
	}
	static := func(ip string) *network.EndpointSettings {
		return &network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr(ip)}}
	}
	for _, c := range []struct {
		sb, net string
		cfg     *network.EndpointSettings
		want    string
		is      func(error) bool
	}{
		{"a", "exp", nil, "endpoint with name a already exists in network exp", errdefs.IsPermissionDenied},
		{"b", "host", nil, "container cannot be disconnected from host network or connected to host network", errdefs.IsInvalidArgument},
		{"a", "none", nil, "container cannot be connected to multiple networks with one of the networks in private (none) mode", errdefs.IsInvalidArgument},
		{"b", "bridge", static("172.17.0.99"), "user specified IP address is supported on user defined networks only", errdefs.IsInvalidArgument},
		{"b", "auto", static("172.18.0.50"), "user specified IP address is supported only when connecting to networks with user configured subnets", errdefs.IsInvalidArgument},
		{"b", "exp", static("172.29.99.5"), "Invalid address 172.29.99.5: It does not belong to any of this network's subnets", errdefs.IsInvalidArgument},
		{"b", "exp", static("172.29.10.2"), "Address already in use", errdefs.IsPermissionDenied},
		{"b", "nosuchnet", nil, "network nosuchnet not found", errdefs.IsNotFound},
		{"nosuchsb", "exp", nil, "sandbox nosuchsb not found", errdefs.IsNotFound},
	} {
		_, err := d.API.ConnectSandbox(ctxT(t), c.sb, api.SandboxConnectRequest{Network: c.net, EndpointConfig: c.cfg})
		if err == nil || err.Error() != c.want || !c.is(err) {
			t.Errorf("connect %s to %s: error %v, want %q of the right class", c.sb, c.net, err, c.want)
		}
	}
	// b is still on nothing, and its namespace has only lo.
	if names, _ := ns.LinkNames(); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("after refused connects b has links %v", names)
	}
	ep, err := d.API.ConnectSandbox(ctxT(t), "b", api.SandboxConnectRequest{Network: "exp", EndpointConfig: static("172.29.10.77")})
	if err != nil || ep.IPAddress.String() != "172.29.10.77" || ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address.String() != "172.29.10.77" {
		t.Fatalf("static address: %+v, %v", ep, err)
	}
	if err := d.API.DisconnectSandbox(ctxT(t), "b", api.SandboxDisconnectRequest{Network: "auto"}); err == nil || !strings.Contains(err.Error(), "is not connected to network auto") {
		t.Errorf("disconnect from a network b is not on: %v", err)
	}
}

func TestBerthCreatedSandboxNamespaceGoesWithTheSandbox(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{})
	res, err := d.API.CreateSandbox(ctxT(t), api.SandboxCreateRequest{Name: "own"})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := d.API.InspectSandbox(ctxT(t), res.ID[:8])
	if err != nil || sb.External || !strings.HasPrefix(sb.Key, d.ExecRoot+"/netns/") {
		t.Fatalf("sandbox %+v, %v: want a namespace under the exec-root", sb, err)
	}
	if _, err := d.API.ConnectSandbox(ctxT(t), "own", api.SandboxConnectRequest{Network: "app"}); err != nil {
		t.Fatal(err)
	}
	if err := d.API.RemoveSandbox(ctxT(t), "own"); err != nil {
		t.Fatal(err)
	}
	if mounted(sb.Key) {
		t.Errorf("namespace %s is still mounted after the sandbox was removed", sb.Key)
	}
	if _, err := d.Client.NetworkRemove(ctxT(t), "app", client.NetworkRemoveOptions{}); err != nil {
		t.Errorf("network with no endpoints left: %v", err)
	}
}

func mounted(path string) bool {
	var ok bool
	b, _ := readFile("/proc/self/mountinfo")
	for _, line := range strings.Split(b, "\n") {
		f := strings.Fields(line)
		ok = ok || (len(f) > 4 && f[4] == path)
	}
	return ok
}

func TestDualStackNetworkGivesBothFamilies(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	v6 := true
	create(t, d, "dual", client.NetworkCreateOptions{EnableIPv6: &v6, IPAM: &network.IPAM{Config: []network.IPAMConfig{
		{Subnet: netip.MustParsePrefix("10.60.0.0/24")},
		{Subnet: netip.MustParsePrefix("fd00:60::/64")},
	}}})
	a, epA := attach(t, d, "a", "dual")
	b, epB := attach(t, d, "b", "dual")
	if epA.GlobalIPv6Address.String() != "fd00:60::2" || epA.GlobalIPv6PrefixLen != 64 || epA.IPv6Gateway.String() != "fd00:60::1" {
		t.Fatalf("a's IPv6: %s/%d via %s", epA.GlobalIPv6Address, epA.GlobalIPv6PrefixLen, epA.IPv6Gateway)
	}
	if epB.GlobalIPv6Address.String() != "fd00:60::3" || epB.IPAddress.String() != "10.60.0.3" {
		t.Fatalf("b got %s and %s", epB.IPAddress, epB.GlobalIPv6Address)
	}
	if got := hostAddrs(t, h, "br-"+inspect(t, d, "dual").ID[:12]); !slices.Equal(got, []string{"10.60.0.1/24"}) {
		t.Errorf("bridge IPv4 addresses %v", got)
	}
	if got, _ := a.Addrs("eth0"); !slices.Contains(got, "fd00:60::2/64") || !slices.Contains(got, "10.60.0.2/24") {
		t.Errorf("a's eth0 = %v", got)
	}
	routes, _ := a.Netlink.RouteList(nil, netlink.FAMILY_V6)
	if !hasDefaultVia(routes, "fd00:60::1") {
		t.Errorf("a has no IPv6 default route via fd00:60::1: %v", routes)
	}
	echoServer(t, b, "[::]:7000")
	if err := roundTrip(a, "[fd00:60::3]:7000"); err != nil {
		t.Errorf("a → b over IPv6: %v", err)
	}
	if err := roundTrip(a, "10.60.0.3:7000"); err != nil {
		t.Errorf("a → b over IPv4: %v", err)
	}
	// The host ends are bridge ports without IPv6 addresses of their own
	// (no link-local routes piling up in the host's table).
	br, err := h.Netlink.LinkByName("br-" + inspect(t, d, "dual").ID[:12])
	if err != nil {
		t.Fatal(err)
	}
	links, err := h.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	ports := 0
	for _, l := range links {
		if l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().OperState != netlink.OperUp {
			continue
		}
		ports++
		if addrs, _ := h.Netlink.AddrList(l, netlink.FAMILY_V6); len(addrs) != 0 {
			t.Errorf("host end %s has IPv6 addresses %v", l.Attrs().Name, addrs)
		}
	}
	if ports != 2 {
		t.Errorf("%d working ports on the bridge, want 2", ports)
	}
}

// --ipv6 without an IPv6 subnet: a /64 of the host's unique local /48, the
// same after a restart, and working.
func TestIPv6WithoutASubnetGetsAUniqueLocal64(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	v6 := true
	create(t, d, "ula", client.NetworkCreateOptions{EnableIPv6: &v6})
	var sub6 netip.Prefix
	for _, c := range inspect(t, d, "ula").IPAM.Config {
		if c.Subnet.Addr().Is6() {
			sub6 = c.Subnet
		}
	}
	if sub6.Bits() != 64 || sub6.Addr().As16()[0] != 0xfd {
		t.Fatalf("IPv6 subnet %s, want a unique local /64", sub6)
	}
	a, epA := attach(t, d, "a", "ula")
	b, epB := attach(t, d, "b", "ula")
	if !sub6.Contains(epA.GlobalIPv6Address) || !sub6.Contains(epB.GlobalIPv6Address) || epA.IPv6Gateway != sub6.Addr().Next() {
		t.Fatalf("IPv6 addresses %s and %s via %s, want them in %s", epA.GlobalIPv6Address, epB.GlobalIPv6Address, epA.IPv6Gateway, sub6)
	}
	echoServer(t, b, "[::]:7000")
	if err := roundTrip(a, netip.AddrPortFrom(epB.GlobalIPv6Address, 7000).String()); err != nil {
		t.Errorf("a → b over the unique local subnet: %v", err)
	}
	// The /48 is the host's: a restart takes the next /64 of the same one.
	d.Stop()
	d.Start()
	create(t, d, "ula2", client.NetworkCreateOptions{EnableIPv6: &v6})
	for _, c := range inspect(t, d, "ula2").IPAM.Config {
		if c.Subnet.Addr().Is6() && (c.Subnet == sub6 || netip.PrefixFrom(c.Subnet.Addr(), 48).Masked() != netip.PrefixFrom(sub6.Addr(), 48).Masked()) {
			t.Errorf("second network's IPv6 subnet %s, want another /64 of %s's /48", c.Subnet, sub6)
		}
	}
}

// dockerd's --ipv6, --fixed-cidr and --fixed-cidr-v6 for the default
// bridge; the network follows the flags across restarts while nothing is
// on it.
func TestDefaultBridgeDualStackFromTheDaemonsFlags(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon("--ipv6", "--fixed-cidr", "10.117.0.0/24", "--fixed-cidr-v6", "fd00:117::/64")
	subnets := func() []string {
		var out []string
		for _, c := range inspect(t, d, "bridge").IPAM.Config {
			out = append(out, c.Subnet.String())
		}
		slices.Sort(out)
		return out
	}
	if got := subnets(); !slices.Equal(got, []string{"10.117.0.0/24", "fd00:117::/64"}) || !inspect(t, d, "bridge").EnableIPv6 {
		t.Fatalf("default bridge subnets %v, want the flags'", got)
	}
	a, epA := attach(t, d, "a", "bridge")
	b, epB := attach(t, d, "b", "bridge")
	if epA.GlobalIPv6Address.String() != "fd00:117::2" || epA.IPAddress.String() != "10.117.0.2" || epA.IPv6Gateway.String() != "fd00:117::1" {
		t.Fatalf("a on the default bridge: %s and %s via %s", epA.IPAddress, epA.GlobalIPv6Address, epA.IPv6Gateway)
	}
	echoServer(t, b, "[::]:7000")
	if err := roundTrip(a, netip.AddrPortFrom(epB.GlobalIPv6Address, 7000).String()); err != nil {
		t.Errorf("a → b over IPv6 on the default bridge: %v", err)
	}
	// Restarted with other flags while a and b are on it: it stays.
	d.Stop()
	d.Args = nil
	d.Start()
	if got := subnets(); !slices.Equal(got, []string{"10.117.0.0/24", "fd00:117::/64"}) {
		t.Fatalf("default bridge with endpoints changed to %v", got)
	}
	for _, name := range []string{"a", "b"} {
		if err := d.API.DisconnectSandbox(ctxT(t), name, api.SandboxDisconnectRequest{Network: "bridge"}); err != nil {
			t.Fatal(err)
		}
	}
	// With nothing on it, it follows the flags: back to Docker's default.
	d.Stop()
	d.Start()
	if got := subnets(); !slices.Equal(got, []string{"172.17.0.0/16"}) || inspect(t, d, "bridge").EnableIPv6 {
		t.Errorf("default bridge without the flags: %v, want 172.17.0.0/16 alone", got)
	}
}
