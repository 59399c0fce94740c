package firewall

import (
	"bytes"
	"net/netip"
	"testing"
)

// The encodings below are what nft itself sends for the same elements
// (nft --debug=netlink add element inet t ports4 { udp . 53 : 172.17.0.3 . 53 }).
func TestBindingElementsMatchNftsEncoding(t *testing.T) {
	el, ok := bindingElement(Binding{Proto: "udp", HostPort: 53, IP: netip.MustParseAddr("172.17.0.3"), Port: 53})
	if !ok {
		t.Fatal("udp refused")
	}
	if want := []byte{0x11, 0, 0, 0, 0x00, 0x35, 0, 0}; !bytes.Equal(el.Key, want) {
		t.Errorf("key = % x, want % x", el.Key, want)
	}
	if want := []byte{172, 17, 0, 3, 0x00, 0x35, 0, 0}; !bytes.Equal(el.Val, want) {
		t.Errorf("value = % x, want % x", el.Val, want)
	}
	el, _ = bindingElement(Binding{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, IP: netip.MustParseAddr("172.17.0.2"), Port: 80})
	if want := []byte{127, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0}; !bytes.Equal(el.Key, want) {
		t.Errorf("host-address key = % x, want % x", el.Key, want)
	}
	if _, ok := bindingElement(Binding{Proto: "icmp"}); ok {
		t.Error("icmp accepted as a port protocol")
	}
}

func TestElementsOfAState(t *testing.T) {
	e := elements{}
	e.addNetwork(Network{Bridge: "br-a", Masquerade: true})
	e.addNetwork(Network{Bridge: "br-int", Internal: true, Masquerade: true})
	e.addNetwork(Network{Bridge: "br-iso", Isolated: true, Ports: []string{"veth1", "veth2"}})
	if err := e.addBinding(Binding{Proto: "tcp", HostPort: 80, IP: netip.MustParseAddr("fd00::2"), Port: 80}); err != nil {
		t.Fatal(err)
	}
	for set, want := range map[string]int{setBridges: 3, setInternal: 1, setMasquerade: 1, setIsolated: 2, mapPorts6: 1, mapPorts4: 0} {
		if got := len(e[set]); got != want {
			t.Errorf("%s has %d elements, want %d", set, got, want)
		}
	}
	if got := string(bytes.TrimRight(e[setMasquerade][0].Key, "\x00")); got != "br-a" {
		t.Errorf("masquerade holds %q; internal networks are never masqueraded", got)
	}
}
