package network

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
)

func tcp(port, hostPort uint16, hostIP string) PortSpec {
	s := PortSpec{Proto: "tcp", Port: port, HostPortMin: hostPort, HostPortMax: hostPort}
	if hostIP != "" {
		s.HostIP = netip.MustParseAddr(hostIP)
	}
	return s
}

func dualStack(v4, v6 string, opts map[string]string) CreateOptions {
	return CreateOptions{EnableIPv6: ptr(true), Options: opts, IPAM: []ipam.Config{
		{Subnet: netip.MustParsePrefix(v4)}, {Subnet: netip.MustParsePrefix(v6)},
	}}
}

func (f *fakeFirewall) bindingList() []firewall.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []firewall.Binding
	for b := range f.bindings {
		out = append(out, b)
	}
	return out
}

// IPv4 ports are the kernel's alone; every IPv6 reservation forwards what
// the kernel cannot translate (connections to ::1), to the container's
// IPv6 address, or to its IPv4 one when it has no other; a binding on
// ::1 is the reservation's alone.
func TestIPv6ReservationsForwardWhatTheKernelCannotTranslate(t *testing.T) {
	tb := newTestbed(t)
	tb.network("v4", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	tb.network("dual", dualStack("10.6.0.0/24", "fd00:6::/64", nil))
	tb.sandbox("a")
	tb.sandbox("b")
	tb.connect("a", "v4", EndpointOptions{Ports: []PortSpec{tcp(80, 8080, ""), tcp(81, 8081, "::1")}})
	tb.connect("b", "dual", EndpointOptions{Ports: []PortSpec{tcp(90, 9090, ""), tcp(91, 9091, "::1"), tcp(92, 9092, "127.0.0.1")}})
	want := []string{
		"tcp 0.0.0.0:8080 to invalid AddrPort",
		"tcp 0.0.0.0:9090 to invalid AddrPort",
		"tcp 127.0.0.1:9092 to invalid AddrPort",
		"tcp [::1]:8081 to 10.5.0.2:81",
		"tcp [::1]:9091 to [fd00:6::2]:91",
		"tcp [::]:8080 to 10.5.0.2:80",
		"tcp [::]:9090 to [fd00:6::2]:90",
	}
	if got := tb.kernel.reservations(); !slices.Equal(got, want) {
		t.Errorf("reservations\n %q\nwant\n %q", got, want)
	}
	wantBindings := []string{
		"{tcp invalid IP 8080 10.5.0.2 80 false}",
		"{tcp invalid IP 9090 10.6.0.2 90 false}",
		"{tcp invalid IP 9090 fd00:6::2 90 false}",
		"{tcp 127.0.0.1 9092 10.6.0.2 92 false}",
	}
	if got := bindingStrings(tb.fw.bindingList()); !slices.Equal(got, sorted(wantBindings)) {
		t.Errorf("the kernel translates\n %q\nwant (nothing on ::1)\n %q", got, sorted(wantBindings))
	}
	// A port published on ::1 is taken on ::1 alone.
	tb.sandbox("c")
	if _, _, err := tb.c.Connect("c", "dual", EndpointOptions{Ports: []PortSpec{tcp(91, 9091, "::1")}}); err == nil {
		t.Error("a second binding of [::1]:9091 was made")
	}
	tb.connect("c", "dual", EndpointOptions{Ports: []PortSpec{tcp(91, 8081, "127.0.0.1")}})
	if _, err := tb.c.Disconnect("a", "v4", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range tb.kernel.reservations() {
		if slices.Contains([]string{"tcp [::1]:8081 to 10.5.0.2:81", "tcp [::]:8080 to 10.5.0.2:80"}, r) {
			t.Errorf("%s is held after its endpoint left", r)
		}
	}
}

func bindingStrings(bs []firewall.Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprint(b))
	}
	return sorted(out)
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// A host without IPv6 still publishes an IPv4-only container's ports;
// one with IPv6 addresses needs IPv6.
func TestHostWithoutIPv6PublishesIPv4Alone(t *testing.T) {
	tb := newTestbed(t)
	tb.kernel.noIPv6 = true
	tb.network("v4", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	tb.sandbox("a")
	tb.connect("a", "v4", EndpointOptions{Ports: []PortSpec{tcp(80, 8080, "")}})
	if got := tb.kernel.reservations(); !slices.Equal(got, []string{"tcp 0.0.0.0:8080 to invalid AddrPort"}) {
		t.Errorf("reservations %q", got)
	}
	tb.sandbox("b")
	if _, _, err := tb.c.Connect("b", "v4", EndpointOptions{Ports: []PortSpec{tcp(80, 8081, "::1")}}); err == nil {
		t.Error("a port published on ::1 of a host without IPv6")
	}
}

// In a routed family nothing is translated or reserved: the container's
// port is opened at its own address, once however many host ports lead
// to it.
func TestRoutedFamiliesOpenTheContainersPortsInsteadOfHostPorts(t *testing.T) {
	tb := newTestbed(t)
	tb.network("r6", dualStack("10.7.0.0/24", "fd00:7::/64", map[string]string{"routed6": "true"}))
	tb.network("r46", dualStack("10.8.0.0/24", "fd00:8::/64", map[string]string{"routed4": "true", "routed6": "true"}))
	tb.sandbox("a")
	tb.sandbox("b")
	tb.connect("a", "r6", EndpointOptions{Ports: []PortSpec{tcp(80, 8080, ""), tcp(80, 8081, "")}})
	tb.connect("b", "r46", EndpointOptions{Ports: []PortSpec{tcp(80, 9090, ""), {Proto: "udp", Port: 53, HostPortMin: 9053, HostPortMax: 9053}}})
	want := []string{"tcp 0.0.0.0:8080 to invalid AddrPort", "tcp 0.0.0.0:8081 to invalid AddrPort"}
	if got := tb.kernel.reservations(); !slices.Equal(got, want) {
		t.Errorf("reservations %q, want %q: IPv4 of r6 alone", got, want)
	}
	wantBindings := sorted([]string{
		"{tcp invalid IP 8080 10.7.0.2 80 false}",
		"{tcp invalid IP 8081 10.7.0.2 80 false}",
		"{tcp invalid IP 0 fd00:7::2 80 true}",
		"{tcp invalid IP 0 10.8.0.2 80 true}",
		"{tcp invalid IP 0 fd00:8::2 80 true}",
		"{udp invalid IP 0 10.8.0.2 53 true}",
		"{udp invalid IP 0 fd00:8::2 53 true}",
	})
	if got := bindingStrings(tb.fw.bindingList()); !slices.Equal(got, wantBindings) {
		t.Errorf("firewall bindings\n %q\nwant\n %q", got, wantBindings)
	}
	if _, err := tb.c.Disconnect("a", "r6", nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range tb.fw.bindingList() {
		if b.IP == netip.MustParseAddr("fd00:7::2") {
			t.Errorf("%v stays open after its endpoint left", b)
		}
	}
}
