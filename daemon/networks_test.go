package daemon_test

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/internal/nettest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func names(t *testing.T, d *nettest.Daemon, f client.Filters) []string {
	t.Helper()
	res, err := d.Client.NetworkList(ctxT(t), client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range res.Items {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

func inspect(t *testing.T, d *nettest.Daemon, name string) network.Inspect {
	t.Helper()
	res, err := d.Client.NetworkInspect(ctxT(t), name, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Network
}

func create(t *testing.T, d *nettest.Daemon, name string, opts client.NetworkCreateOptions) string {
	t.Helper()
	res, err := d.Client.NetworkCreate(ctxT(t), name, opts)
	if err != nil {
		t.Fatalf("create network %s: %v", name, err)
	}
	return res.ID
}

// hostAddrs returns the addresses on a device of the test host.
func hostAddrs(t *testing.T, h *nettest.Host, dev string) []string {
	t.Helper()
	l, err := h.Netlink.LinkByName(dev)
	if err != nil {
		t.Fatalf("device %s in the host: %v", dev, err)
	}
	addrs, err := h.Netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

func TestFreshDaemonHasTheThreePredefinedNetworks(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()

	if got := strings.Join(names(t, d, nil), ","); got != "bridge,host,none" {
		t.Fatalf("networks on a fresh daemon = %s, want bridge,host,none", got)
	}
	br := inspect(t, d, "bridge")
	if br.Driver != "bridge" || len(br.IPAM.Config) != 1 ||
		br.IPAM.Config[0].Subnet != netip.MustParsePrefix("172.17.0.0/16") ||
		br.IPAM.Config[0].Gateway != netip.MustParseAddr("172.17.0.1") {
		t.Fatalf("default bridge = driver %s, IPAM %+v; want bridge on 172.17.0.0/16 via 172.17.0.1", br.Driver, br.IPAM.Config)
	}
	if br.Options["com.docker.network.bridge.name"] != "berth0" || br.Options["com.docker.network.bridge.default_bridge"] != "true" {
		t.Errorf("default bridge options = %v", br.Options)
	}
	if got := hostAddrs(t, h, "berth0"); len(got) != 1 || got[0] != "172.17.0.1/16" {
		t.Errorf("berth0 addresses = %v, want [172.17.0.1/16]", got)
	}
	if n := inspect(t, d, "none"); n.Driver != "null" {
		t.Errorf("none's driver = %s, want null", n.Driver)
	}
	if n := inspect(t, d, "host"); n.Driver != "host" {
		t.Errorf("host's driver = %s, want host", n.Driver)
	}
}

func TestNetworksTakeSubnetsFromTheDefaultPoolsInOrder(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()

	id1 := create(t, d, "app", client.NetworkCreateOptions{})
	id2 := create(t, d, "app2", client.NetworkCreateOptions{})
	for _, c := range []struct{ name, id, subnet, gw string }{
		{"app", id1, "172.18.0.0/16", "172.18.0.1"},
		{"app2", id2, "172.19.0.0/16", "172.19.0.1"},
	} {
		n := inspect(t, d, c.name)
		if len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet.String() != c.subnet || n.IPAM.Config[0].Gateway.String() != c.gw {
			t.Errorf("%s IPAM config = %+v, want subnet %s gateway %s", c.name, n.IPAM.Config, c.subnet, c.gw)
		}
		if got := hostAddrs(t, h, "br-"+c.id[:12]); len(got) != 1 || got[0] != c.gw+"/16" {
			t.Errorf("br-%s addresses = %v, want [%s/16]", c.id[:12], got, c.gw)
		}
	}
}

func TestRoutesOfTheHostAreSkippedWhenChoosingASubnet(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	// Something on the host already uses 172.18.5.0/24.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "uplink-peer"}
	if err := h.Netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("172.18.5.1/24")
	if err := h.Netlink.AddrAdd(veth, addr); err != nil {
		t.Fatal(err)
	}
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{})
	if got := inspect(t, d, "app").IPAM.Config[0].Subnet.String(); got != "172.19.0.0/16" {
		t.Fatalf("subnet next to a host address in 172.18.0.0/16 = %s, want 172.19.0.0/16", got)
	}
}

func TestExplicitIPAMConfigAndOptionsAreKeptAndShown(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()

	create(t, d, "lab", client.NetworkCreateOptions{
		IPAM: &network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{{
			Subnet:     netip.MustParsePrefix("10.20.0.0/24"),
			IPRange:    netip.MustParsePrefix("10.20.0.128/25"),
			Gateway:    netip.MustParseAddr("10.20.0.1"),
			AuxAddress: map[string]netip.Addr{"r": netip.MustParseAddr("10.20.0.2")},
		}}},
		Options: map[string]string{"com.docker.network.bridge.name": "br-app", "com.docker.network.driver.mtu": "1400"},
		Labels:  map[string]string{"team": "x"},
	})
	n := inspect(t, d, "lab")
	c := n.IPAM.Config[0]
	if c.Subnet.String() != "10.20.0.0/24" || c.IPRange.String() != "10.20.0.128/25" || c.Gateway.String() != "10.20.0.1" || c.AuxAddress["r"].String() != "10.20.0.2" {
		t.Errorf("IPAM config = %+v", c)
	}
	if n.Labels["team"] != "x" || n.Options["com.docker.network.bridge.name"] != "br-app" || n.Scope != "local" {
		t.Errorf("labels %v, options %v, scope %s", n.Labels, n.Options, n.Scope)
	}
	l, err := h.Netlink.LinkByName("br-app")
	if err != nil {
		t.Fatalf("bridge br-app: %v", err)
	}
	if l.Attrs().MTU != 1400 {
		t.Errorf("br-app MTU = %d, want 1400", l.Attrs().MTU)
	}
	if got := hostAddrs(t, h, "br-app"); len(got) != 1 || got[0] != "10.20.0.1/24" {
		t.Errorf("br-app addresses = %v", got)
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	idLab := create(t, d, "lab", client.NetworkCreateOptions{Labels: map[string]string{"team": "x", "tier": "db"}})
	create(t, d, "lab2", client.NetworkCreateOptions{Labels: map[string]string{"team": "y"}})
	create(t, d, "other", client.NetworkCreateOptions{})

	for _, c := range []struct {
		name string
		f    client.Filters
		want string
	}{
		{"driver", client.Filters{}.Add("driver", "bridge"), "bridge,lab,lab2,other"},
		{"driver and label", client.Filters{}.Add("driver", "bridge").Add("label", "team=x"), "lab"},
		{"label key", client.Filters{}.Add("label", "team"), "lab,lab2"},
		{"two labels", client.Filters{}.Add("label", "team=x", "tier=db"), "lab"},
		{"name part", client.Filters{}.Add("name", "lab"), "lab,lab2"},
		{"id prefix", client.Filters{}.Add("id", idLab[:10]), "lab"},
		{"type builtin", client.Filters{}.Add("type", "builtin"), "bridge,host,none"},
		{"type custom", client.Filters{}.Add("type", "custom"), "lab,lab2,other"},
		{"scope", client.Filters{}.Add("scope", "local"), "bridge,host,lab,lab2,none,other"},
		{"dangling", client.Filters{}.Add("dangling", "true"), "lab,lab2,other"},
		{"not dangling", client.Filters{}.Add("dangling", "false"), "bridge,host,none"},
	} {
		if got := strings.Join(names(t, d, c.f), ","); got != c.want {
			t.Errorf("filter %s: got %s, want %s", c.name, got, c.want)
		}
	}
	for _, f := range []client.Filters{
		client.Filters{}.Add("colour", "red"),
		client.Filters{}.Add("type", "weird"),
		client.Filters{}.Add("dangling", "maybe"),
	} {
		if _, err := d.Client.NetworkList(ctxT(t), client.NetworkListOptions{Filters: f}); err == nil || !strings.Contains(err.Error(), "invalid filter") {
			t.Errorf("filter %v: error %v, want an invalid filter error", f, err)
		}
	}
}
