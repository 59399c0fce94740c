package firewall

import (
	"net/netip"
	"slices"
	"testing"
)

func TestElementsAreShownAsNftListsThem(t *testing.T) {
	want, err := wantElements(Model{Networks: stateNetworks, Bindings: stateBindings, Guards: stateGuards})
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string][]string{}
	for set, els := range want {
		for _, e := range els {
			shown[set] = append(shown[set], describe(set, e))
		}
	}
	// The elements of rebuild.golden, as testdata/nft/rebuild.nft adds
	// them.
	for set, els := range map[string][]string{
		setBridges:      {`"berth0"`, `"br-plain"`, `"br-internal"`, `"br-noicc"`, `"br-routed"`, `"br-open"`},
		setIntra:        {`"berth0" . "berth0"`, `"br-plain" . "br-plain"`, `"br-internal" . "br-internal"`, `"br-routed" . "br-routed"`, `"br-open" . "br-open"`},
		setMasquerade4:  {`"berth0"`, `"br-noicc"`, `"br-routed"`, `"br-open"`},
		setMasquerade6:  {`"berth0"`, `"br-noicc"`, `"br-open"`},
		setRouted6:      {`"br-routed"`},
		setUnprotected4: {`"br-open"`},
		setOpen4:        {"10.20.0.2 . tcp . 80"},
		setOpen6:        {"2001:db8:d::2 . tcp . 80", "2001:db8:d::2 . udp . 53"},
		setIsolated:     {`"veth1a2b3c"`, `"veth4d5e6f"`},
		setGuardMAC:     {`"veth1a2b3c" . 02:42:ac:12:00:02`, `"veth4d5e6f" . 02:42:ac:12:00:03`},
		setGuard4:       {`"veth1a2b3c" . 172.18.0.2`, `"veth4d5e6f" . 172.18.0.3`},
		setGuard6:       {`"veth1a2b3c" . fd00:b::2`},
		setEtherTypes:   {"ip", "arp", "ip6"},
		mapPorts4:       {"tcp . 8080 : 172.18.0.2 . 80", "sctp . 9999 : 172.18.0.4 . 9999"},
		mapHostPorts4:   {"127.0.0.1 . udp . 5353 : 172.18.0.3 . 53", "192.0.2.10 . tcp . 443 : 172.18.0.5 . 8443"},
		mapPorts6:       {"tcp . 8080 : fd00:b::2 . 80"},
		mapHostPorts6:   {"::1 . udp . 5353 : fd00:b::3 . 53", "2001:db8::1 . sctp . 38412 : fd00:b::4 . 38412"},
	} {
		if got := shown[set]; !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(els))) {
			t.Errorf("%s shown as %q, want %q", set, got, els)
		}
	}
}

func TestAnElementOfAnUnexpectedShapeIsShownInHex(t *testing.T) {
	e, _ := bindingElement(Binding{Proto: "tcp", HostPort: 80, IP: netip.MustParseAddr("10.0.0.1"), Port: 80})
	if got := describe(mapPorts6, e); got != "0x0600000000500000 : 0x0a00000100500000" {
		t.Errorf("an IPv4 element shown as an IPv6 one: %q", got)
	}
}
