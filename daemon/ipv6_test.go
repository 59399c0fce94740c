package daemon_test

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/miekg/dns"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/internal/nettest"
)

// dualStack is a network with one subnet of each family, and opts.
func dualStack(v4, v6 string, opts map[string]string) client.NetworkCreateOptions {
	v6on := true
	return client.NetworkCreateOptions{EnableIPv6: &v6on, Options: opts, IPAM: &network.IPAM{Config: []network.IPAMConfig{
		{Subnet: netip.MustParsePrefix(v4)}, {Subnet: netip.MustParsePrefix(v6)},
	}}}
}

// publishing makes a sandbox that serves TCP echo on port 80 (both
// families) and connects it to net with ports published.
func publishing(t *testing.T, d *nettest.Daemon, name, net string, ports network.PortMap) (*nettest.Namespace, network.EndpointSettings) {
	t.Helper()
	ns, ep := attachPublishing(t, d, name, net, ports)
	echoServer(t, ns, ":80")
	return ns, ep
}

// Dual-stack twin of the published-ports test: a port published on every
// address answers at [::1] (which the kernel cannot carry to another
// namespace), [::], the host's IPv6 address from the host and from
// another machine, and from containers (hairpin), for a dual-stack
// container and for an IPv4-only one, as Docker's proxy serves them.
func TestPublishedPortsOverIPv6(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	remote := h.AddRemote()
	remote.AddIPv6()
	create(t, d, "dual", dualStack("10.60.0.0/24", "fd00:60::/64", nil))
	create(t, d, "other", dualStack("10.66.0.0/24", "fd00:66::/64", nil))
	create(t, d, "v4", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.61.0.0/24")}}}})
	web, _ := publishing(t, d, "web", "dual", publish("80/tcp=:8080", "53/udp=:5353", "81/tcp=[::1]:8081"))
	echoServer(t, web, ":81")
	udpEcho(t, web, ":53", "web:")
	publishing(t, d, "old", "v4", publish("80/tcp=:8090"))
	peer, _ := attach(t, d, "peer", "dual")
	far, _ := attach(t, d, "far", "other")

	hostV6 := "[" + remote.HostAddr6.String() + "]"
	for _, c := range []struct {
		from *nettest.Namespace
		addr string
		who  string
	}{
		{h.Namespace, "[::1]:8080", "the host, via ::1"},
		{h.Namespace, "127.0.0.1:8080", "the host, via 127.0.0.1"},
		{h.Namespace, hostV6 + ":8080", "the host, via its own IPv6 address"},
		{h.Namespace, "[::1]:8081", "the host, via ::1, to a port published on ::1"},
		{remote.Namespace, hostV6 + ":8080", "another machine, via the host's IPv6 address"},
		{peer, hostV6 + ":8080", "a container on the same network (hairpin)"},
		{far, hostV6 + ":8080", "a container on another network"},
		{h.Namespace, "[::1]:8090", "the host, via ::1, to an IPv4-only container"},
		{remote.Namespace, hostV6 + ":8090", "another machine, via the host's IPv6 address, to an IPv4-only container"},
	} {
		if err := roundTrip(c.from, c.addr); err != nil {
			t.Errorf("from %s to %s: %v", c.who, c.addr, err)
		}
	}
	if err := roundTripOver(h.Namespace, "tcp6", "[::]:8080"); err != nil {
		t.Errorf("from the host to [::]:8080: %v", err)
	}
	for _, to := range []string{"[::1]:5353", hostV6 + ":5353"} {
		var udp net.PacketConn
		if err := h.Do(func() (err error) { udp, err = net.ListenPacket("udp", "[::1]:0"); return err }); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(to, "[2001") {
			udp.Close()
			if err := remote.Do(func() (err error) { udp, err = net.ListenPacket("udp6", ":0"); return err }); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := udpAsk(udp, to, "ping"); err != nil || got != "web:ping" {
			t.Errorf("UDP to %s: %q, %v", to, got, err)
		}
		udp.Close()
	}

	unreachable(t, remote.Namespace, hostV6+":8081", "a port published on ::1, from another machine")
	if err := remote.RouteVia(netip.MustParsePrefix("fd00:60::/64")); err != nil {
		t.Fatal(err)
	}
	unreachable(t, remote.Namespace, "[fd00:60::2]:80", "a container's IPv6 address, from another machine")
	unreachable(t, far, "[fd00:60::2]:80", "a container on another network, directly")
}

// Gateway mode routed for IPv6: the subnet is routed, not translated.
// Another machine that routes to it reaches the published port at the
// container's own address and nothing else; the container's traffic out
// keeps its address. IPv4 on the same network stays translated.
func TestRoutedIPv6IsNotTranslated(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	remote := h.AddRemote()
	remote.AddIPv6()
	create(t, d, "routed", dualStack("10.62.0.0/24", "fd00:62::/64", map[string]string{"com.docker.network.bridge.gateway_mode_ipv6": "routed"}))
	create(t, d, "natted", dualStack("10.63.0.0/24", "fd00:63::/64", nil))
	web, ep := publishing(t, d, "web", "routed", publish("80/tcp=:8080"))
	echoServer(t, web, ":81")
	nat, _ := publishing(t, d, "nat", "natted", publish("80/tcp=:8082"))
	for _, p := range []string{"fd00:62::/64", "fd00:63::/64"} {
		if err := remote.RouteVia(netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	if ep.GlobalIPv6Address.String() != "fd00:62::2" {
		t.Fatalf("web's IPv6 address %s", ep.GlobalIPv6Address)
	}

	if err := roundTrip(remote.Namespace, "[fd00:62::2]:80"); err != nil {
		t.Errorf("the published port at the container's routed address: %v", err)
	}
	unreachable(t, remote.Namespace, "[fd00:62::2]:81", "an unpublished port of a routed container")
	unreachable(t, remote.Namespace, "["+remote.HostAddr6.String()+"]:8080", "a host port in a routed family")
	unreachable(t, remote.Namespace, "[fd00:63::2]:80", "a container's address in a translated family")
	if err := roundTrip(remote.Namespace, "192.0.2.1:8080"); err != nil {
		t.Errorf("IPv4, still translated, at the host's port: %v", err)
	}

	peerServer(t, remote.Namespace, "[2001:db8:1::2]:7000")
	peerServer(t, remote.Namespace, "192.0.2.2:7000")
	for _, c := range []struct {
		from *nettest.Namespace
		to   string
		want string
	}{
		{web, "[2001:db8:1::2]:7000", "fd00:62::2"},
		{web, "192.0.2.2:7000", "192.0.2.1"},
		{nat, "[2001:db8:1::2]:7000", "2001:db8:1::1"},
	} {
		if got, err := askPeer(c.from, c.to); err != nil || got != c.want {
			t.Errorf("seen at %s from the container: %q, %v; want %s", c.to, got, err, c.want)
		}
	}
}

// Gateway modes are checked at create: a wrong one and isolated on a
// network that is not internal are refused with 400 and leave nothing.
func TestGatewayModesAreChecked(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	for _, c := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"com.docker.network.bridge.gateway_mode_ipv6": "bridged"}, "invalid gateway mode"},
		{map[string]string{"com.docker.network.bridge.gateway_mode_ipv4": "isolated"}, "internal"},
	} {
		_, err := d.Client.NetworkCreate(ctxT(t), "bad", dualStack("10.64.0.0/24", "fd00:64::/64", c.opts))
		if !cerrdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create with %v: %v, want 400 saying %q", c.opts, err, c.want)
		}
	}
	if _, err := d.Client.NetworkInspect(ctxT(t), "bad", client.NetworkInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("a refused network is there: %v", err)
	}
	internal := dualStack("10.65.0.0/24", "fd00:65::/64", map[string]string{"com.docker.network.bridge.gateway_mode_ipv6": "isolated"})
	internal.Internal = true
	create(t, d, "sealed", internal)
	_, ep := attach(t, d, "a", "sealed")
	if ep.IPv6Gateway.IsValid() || ep.GlobalIPv6Address.String() != "fd00:65::2" {
		t.Errorf("isolated IPv6: address %s, gateway %s; want an address and no gateway", ep.GlobalIPv6Address, ep.IPv6Gateway)
	}
	br := "br-" + inspect(t, d, "sealed").ID[:12]
	l, err := h.Netlink.LinkByName(br)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.Netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.IsGlobalUnicast() {
			t.Errorf("the bridge of an isolated family has %s", a.IPNet)
		}
	}
}

// Dual-stack twin of the names test: from a sandbox on a dual-stack
// network, a peer's name answers A and AAAA from 127.0.0.11, its IPv6
// address answers PTR in ip6.arpa, and the name reaches it over IPv6.
func TestNamesOnADualStackNetwork(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "dual", dualStack("10.67.0.0/24", "fd00:67::/64", nil))
	a := netnsOf(t, d, runContainer(t, d, sleeper("client", "dual", nil)))
	web := runContainer(t, d, sleeper("web", "dual", nil))
	epB := inspectContainer(t, d, web).NetworkSettings.Networks["dual"]
	if !epB.GlobalIPv6Address.IsValid() {
		t.Fatalf("web has no IPv6 address: %+v", epB)
	}
	if got := answers(dnsAsk(t, a, "web", dns.TypeAAAA)); !slices.Equal(got, []string{epB.GlobalIPv6Address.String()}) {
		t.Errorf("AAAA of web: %v, want %s", got, epB.GlobalIPv6Address)
	}
	if got := answers(dnsAsk(t, a, "web", dns.TypeA)); !slices.Equal(got, []string{epB.IPAddress.String()}) {
		t.Errorf("A of web: %v, want %s", got, epB.IPAddress)
	}
	ptr, err := dns.ReverseAddr(epB.GlobalIPv6Address.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := answers(dnsAsk(t, a, ptr, dns.TypePTR)); !slices.Equal(got, []string{"web.dual."}) {
		t.Errorf("PTR %s: %v, want web.dual.", ptr, got)
	}
	echoServer(t, netnsOf(t, d, web), "[::]:7000")
	if err := roundTrip(a, netip.AddrPortFrom(epB.GlobalIPv6Address, 7000).String()); err != nil {
		t.Errorf("a → web over IPv6: %v", err)
	}
}

// In a routed family no host port is held: inspect and docker port show
// the binding with host port 0 there, as Docker does.
func TestRoutedFamilyShowsNoHostPort(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "r6", dualStack("10.68.0.0/24", "fd00:68::/64", map[string]string{"com.docker.network.bridge.gateway_mode_ipv6": "routed"}))
	web := runContainer(t, d, sleeper("web", "r6", publish("80/tcp=:8080")))
	ports := inspectContainer(t, d, web).NetworkSettings.Ports
	if got := fmt.Sprint(ports[network.MustParsePort("80/tcp")]); got != "[{0.0.0.0 8080} {:: 0}]" {
		t.Errorf("inspect shows 80/tcp as %s, want [{0.0.0.0 8080} {:: 0}]", got)
	}
}
