package network

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
)

// TestTheFirewallModelIsWhatTheFirewallWasTold builds state through the
// controller's operations and holds the model a trace reads to what those
// operations applied to the firewall, element by element.
func TestTheFirewallModelIsWhatTheFirewallWasTold(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	tb.network("quiet", CreateOptions{Options: map[string]string{"icc": "false"}, IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.6.0.0/24")}}})
	tb.network("vault", CreateOptions{Internal: true, IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.7.0.0/24")}}})
	for _, s := range []string{"web", "q1", "q2", "both"} {
		tb.sandbox(s)
	}
	web := tb.connect("web", "app", EndpointOptions{Ports: []PortSpec{{Proto: "tcp", Port: 80, HostPortMin: 8080, HostPortMax: 8080}}})
	tb.connect("q1", "quiet", EndpointOptions{})
	tb.connect("q2", "quiet", EndpointOptions{})
	tb.connect("both", "vault", EndpointOptions{})
	tb.connect("both", "app", EndpointOptions{})
	if _, err := tb.c.Disconnect("q2", "quiet", nil); err != nil {
		t.Fatal(err)
	}

	m := tb.c.FirewallModel("berth_test")
	if m.Table != "berth_test" {
		t.Errorf("table %q", m.Table)
	}
	if len(m.Networks) != len(tb.fw.networks) {
		t.Errorf("model networks %+v, firewall %+v", m.Networks, tb.fw.networks)
	}
	isolated := 0
	for _, n := range m.Networks {
		told, ok := tb.fw.networks[n.Bridge]
		if !ok || told.Internal != n.Internal || told.Isolated != n.Isolated || told.Masquerade != n.Masquerade {
			t.Errorf("network %+v, the firewall was told %+v", n, told)
		}
		for _, p := range n.Ports {
			isolated++
			if !tb.fw.isolated[p] {
				t.Errorf("port %s of %s is isolated in the model, not in the firewall", p, n.Bridge)
			}
		}
	}
	if isolated != len(tb.fw.isolated) || isolated != 1 {
		t.Errorf("%d isolated ports in the model, %d in the firewall; want q1's alone", isolated, len(tb.fw.isolated))
	}
	if len(m.Bindings) != len(tb.fw.bindings) || len(m.Bindings) != 1 {
		t.Errorf("model bindings %+v, firewall %v", m.Bindings, tb.fw.bindings)
	}
	for _, b := range m.Bindings {
		if !tb.fw.bindings[b] {
			t.Errorf("binding %+v is not the firewall's", b)
		}
	}
	if len(m.Guards) != len(tb.fw.guarded) {
		t.Errorf("%d guards in the model, %d in the firewall", len(m.Guards), len(tb.fw.guarded))
	}
	if o := m.Owners[web.IPv4.Addr()]; o != (firewall.Owner{Peer: "web", Network: "app", Bridge: "br-app"}) {
		t.Errorf("owner of web's address: %+v", o)
	}

	// both joined vault first: internal, so the default route is app's.
	p, err := tb.c.TracePeer("both")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Endpoints) != 2 || p.Endpoints[0].Network != "vault" || p.Endpoints[0].Default4 || !p.Endpoints[1].Default4 ||
		p.Endpoints[1].Bridge != "br-app" || p.Endpoints[1].Gateway4 != netip.MustParseAddr("10.5.0.1") || p.Endpoints[1].Port == "" {
		t.Errorf("both as a trace sees it: %+v", p)
	}
	w, _ := tb.c.TracePeer("web")
	if tr := m.Trace(p, firewall.Target{Peer: &w}); tr.Verdict != firewall.Allowed {
		t.Errorf("both → web on app: %+v", tr)
	}
	if id, ok := tb.c.SandboxWithAddress(web.IPv4.Addr()); !ok || id != web.SandboxID {
		t.Errorf("web's address belongs to %q, %t", id, ok)
	}
	if _, err := tb.c.TracePeer("nobody"); err == nil {
		t.Error("a trace peer of no sandbox")
	}

	o := tb.c.Owned()
	for dev, want := range map[string]WantedDevice{
		"br-app":       {Who: "network app"},
		"br-quiet":     {Who: "network quiet"},
		web.HostIfName: {Who: "web's endpoint on app", Master: "br-app"},
	} {
		if got := o.Devices[dev]; got != want {
			t.Errorf("device %s wanted by %+v, want %+v", dev, got, want)
		}
	}
	// Bare sandboxes' namespaces are their callers'.
	if len(o.Namespaces) != 0 || o.NamespaceDir != tb.cfg.NamespaceDir {
		t.Errorf("namespaces %v in %s", o.Namespaces, o.NamespaceDir)
	}
	names := []string{}
	for _, d := range tb.c.Drivers() {
		names = append(names, d.Name())
	}
	if !slices.IsSorted(names) || !slices.Contains(names, "bridge") {
		t.Errorf("drivers %q", names)
	}
}
