package network

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
)

func TestPublishedPorts(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	tb.network("local", CreateOptions{Options: map[string]string{"hostip": "127.0.0.1"}, IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.6.0.0/24")}}})
	for _, s := range []string{"a", "b", "c", "d"} {
		tb.sandbox(s)
	}
	ep := tb.connect("a", "app", EndpointOptions{Ports: []PortSpec{
		{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080},
		{Proto: "udp", Port: 53, HostIP: netip.MustParseAddr("127.0.0.1"), HostPortMin: 5353, HostPortMax: 5353},
		{Proto: "tcp", Port: 90},
		{Proto: "tcp", Port: 91},
	}})
	want := []PortBinding{
		{Proto: "tcp", Port: 80, HostPort: 8080},
		{Proto: "udp", Port: 53, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353},
		{Proto: "tcp", Port: 90, HostPort: ephemeralMin},
		{Proto: "tcp", Port: 91, HostPort: ephemeralMin + 1},
	}
	if len(ep.Ports) != len(want) {
		t.Fatalf("bindings %+v", ep.Ports)
	}
	for i := range want {
		if ep.Ports[i] != want[i] {
			t.Errorf("binding %d is %+v, want %+v", i, ep.Ports[i], want[i])
		}
	}
	addr := ep.IPv4.Addr()
	if !tb.fw.bindings[firewall.Binding{Proto: "tcp", HostPort: 8080, IP: addr, Port: 80}] ||
		!tb.fw.bindings[firewall.Binding{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, IP: addr, Port: 53}] {
		t.Errorf("firewall bindings %v", tb.fw.bindings)
	}

	// The network's host_binding_ipv4 is the default address.
	if ep := tb.connect("d", "local", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 8088, HostPortMax: 8088}}}); ep.Ports[0].HostIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("binding %+v: the network's default host address was not used", ep.Ports[0])
	}

	conflicts := []struct {
		name string
		spec PortSpec
		text string
	}{
		{"same port", PortSpec{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}, "Bind for 0.0.0.0:8080 failed: port is already allocated"},
		{"same port on one address", PortSpec{Proto: "udp", Port: 53, HostIP: netip.MustParseAddr("0.0.0.0"), HostPortMin: 5353, HostPortMax: 5353}, "Bind for 0.0.0.0:5353 failed: port is already allocated"},
		{"held by another process", PortSpec{Proto: "tcp", Port: 80, HostPortMin: 9090, HostPortMax: 9090}, "Error starting userland proxy: listen 0.0.0.0:9090: bind: address already in use"},
		{"whole range taken", PortSpec{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}, "driver failed programming external connectivity on endpoint b ("},
	}
	tb.kernel.busyPorts[9090] = true
	for _, tc := range conflicts {
		_, _, err := tb.c.Connect("b", "app", EndpointOptions{Ports: []PortSpec{tc.spec}})
		if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.text)
		}
	}
	// A range gives the first free port of it; tcp and udp are apart.
	ep = tb.connect("b", "app", EndpointOptions{Ports: []PortSpec{
		{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8082},
		{Proto: "udp", Port: 80, HostPortMin: 8080, HostPortMax: 8080},
	}})
	if ep.Ports[0].HostPort != 8081 || ep.Ports[1].HostPort != 8080 {
		t.Errorf("bindings %+v", ep.Ports)
	}

	// No ports on internal networks or networks outside the firewall.
	tb.network("inner", CreateOptions{Internal: true})
	if ep := tb.connect("c", "inner", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80}}}); len(ep.Ports) != 0 {
		t.Errorf("an internal network published %+v", ep.Ports)
	}

	// Leaving releases the ports and forgets the endpoint's flows.
	held := tb.kernel.heldPorts()
	if _, err := tb.c.Disconnect("a", "app", nil); err != nil {
		t.Fatal(err)
	}
	if tb.kernel.heldPorts() >= held {
		t.Error("ports stay held after the endpoint left")
	}
	if !containsAddr(tb.kernel.forgotten, addr) {
		t.Error("the endpoint's tracked connections were not forgotten")
	}
	if tb.fw.bindings[firewall.Binding{Proto: "tcp", HostPort: 8080, IP: addr, Port: 80}] {
		t.Error("the firewall still publishes the port")
	}
	ep = tb.connect("a", "app", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}}})
	if ep.Ports[0].HostPort != 8080 {
		t.Errorf("a released port was not given again: %+v", ep.Ports)
	}
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, v := range list {
		if v == a {
			return true
		}
	}
	return false
}

func TestPublishedPortsOfADualStackEndpoint(t *testing.T) {
	tb := newTestbed(t)
	tb.network("dual", CreateOptions{EnableIPv6: ptr(true), IPAM: []ipam.Config{
		{Subnet: netip.MustParsePrefix("10.5.0.0/24")}, {Subnet: netip.MustParsePrefix("fd00:5::/64")},
	}})
	tb.sandbox("a")
	ep := tb.connect("a", "dual", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 80, HostPortMax: 80}}})
	if !tb.fw.bindings[firewall.Binding{Proto: "tcp", HostPort: 80, IP: ep.IPv6.Addr(), Port: 80}] ||
		!tb.fw.bindings[firewall.Binding{Proto: "tcp", HostPort: 80, IP: ep.IPv4.Addr(), Port: 80}] {
		t.Errorf("bindings %v: both families are published", tb.fw.bindings)
	}
	if n := tb.kernel.heldPorts(); n != 2 {
		t.Errorf("%d reservations, want one per family", n)
	}
}

func TestPortsAreHeldAgainAfterARestart(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{})
	tb.sandbox("a")
	tb.connect("a", "app", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}}})
	tb.c.Close()
	// The old daemon's sockets died with it.
	tb.kernel.ports = map[string]bool{}
	tb.start()
	if got := tb.kernel.reservations(); len(got) != 2 {
		t.Errorf("held after a restart: %q, want the port on IPv4 and IPv6", got)
	}
	if tb.fw.rebuilt == 0 || len(tb.fw.bindings) != 1 {
		t.Errorf("the firewall was not rebuilt with the port: %v", tb.fw.bindings)
	}
	tb.sandbox("b")
	if _, _, err := tb.c.Connect("b", "app", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}}}); !errdefs.IsConflict(err) {
		t.Errorf("a port published before the restart was given again: %v", err)
	}
}

func TestNoPortsWhereTheDriverDescribesNoFirewall(t *testing.T) {
	lan := newFakeDriver("lan", driver.Capabilities{Scope: driver.ScopeLocal, Addresses: true})
	tb := newTestbed(t, lan)
	tb.network("lan", CreateOptions{Driver: "lan"})
	sb, err := tb.c.CreateSandbox(SandboxOptions{Name: "s", Networks: []Attachment{{Network: "lan"}}, Ports: []PortSpec{{Proto: "tcp", Port: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Endpoints[0].Ports) != 0 || tb.kernel.heldPorts() != 0 {
		t.Errorf("ports published on a network outside the firewall: %+v", sb.Endpoints[0].Ports)
	}
}
