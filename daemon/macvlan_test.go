package daemon_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/internal/nettest"
)

func macvlanNet(t *testing.T, d *nettest.Daemon, name, parent string, opts map[string]string) {
	t.Helper()
	o := map[string]string{"parent": parent}
	for k, v := range opts {
		o[k] = v
	}
	create(t, d, name, client.NetworkCreateOptions{Driver: "macvlan", Options: o,
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: mustPrefix("10.77.0.0/24"), Gateway: mustAddr("10.77.0.1")}}}})
}

func TestMacvlanContainersAreHostsOfTheLAN(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	lan := h.AddLAN()
	macvlanNet(t, d, "lan", lan.Parent, nil)
	a := runContainer(t, d, withAliases("ma", "lan"))
	b := runContainer(t, d, withAliases("mb", "lan"))
	aNS, bNS := netnsOf(t, d, a), netnsOf(t, d, b)
	echoServer(t, bNS, ":80")
	echoServer(t, lan.Machine, ":80")
	echoServer(t, aNS, ":80")
	if err := roundTrip(aNS, "10.77.0.3:80"); err != nil {
		t.Errorf("container to container on the macvlan network: %v", err)
	}
	if err := roundTrip(aNS, "10.77.0.100:80"); err != nil {
		t.Errorf("container to the other machine on the LAN: %v", err)
	}
	if err := roundTrip(lan.Machine, "10.77.0.2:80"); err != nil {
		t.Errorf("the other machine to a container: %v", err)
	}
	// The LAN sees each container with its own MAC.
	eth0, err := lan.Machine.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	neigh, err := lan.Machine.Netlink.NeighList(eth0.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	macs := map[string]string{}
	for _, n := range neigh {
		macs[n.IP.String()] = n.HardwareAddr.String()
	}
	if macs["10.77.0.2"] != "02:42:0a:4d:00:02" {
		t.Errorf("the machine's neighbour table: %v, want 10.77.0.2 at 02:42:0a:4d:00:02", macs)
	}
	// Default route through the LAN's router, names through berth's resolver.
	routes, _ := aNS.Netlink.RouteList(nil, netlink.FAMILY_V4)
	if !hasDefaultVia(routes, "10.77.0.1") {
		t.Errorf("no default route via the LAN's router: %v", routes)
	}
	if got := answers(dnsAsk(t, aNS, "mb", dns.TypeA)); strings.Join(got, ",") != "10.77.0.3" {
		t.Errorf("mb resolves to %v on the macvlan network", got)
	}
	if got := inspect(t, d, "lan").Options["com.berth.host_reach"]; !strings.HasPrefix(got, "none:") {
		t.Errorf("inspect does not say the host cannot reach the containers: %q", got)
	}

	// --ip and --mac-address, and connect/disconnect of a running container.
	c := runContainer(t, d, spec{name: "mc", network: "bridge", cmd: []string{"sleep", "100000"}})
	if _, err := d.Client.NetworkConnect(ctxT(t), "lan", client.NetworkConnectOptions{Container: "mc", EndpointConfig: &network.EndpointSettings{
		IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: mustAddr("10.77.0.50")}, MacAddress: mustMAC("02:00:00:00:00:50")}}); err != nil {
		t.Fatal(err)
	}
	cNS := netnsOf(t, d, c)
	if err := roundTrip(cNS, "10.77.0.100:80"); err != nil {
		t.Errorf("connected container to the machine: %v", err)
	}
	l, err := cNS.Netlink.LinkByName("eth1")
	if err != nil || l.Attrs().HardwareAddr.String() != "02:00:00:00:00:50" || l.Type() != "macvlan" {
		t.Errorf("connected container's eth1: %v (%v)", l, err)
	}
	if _, err := d.Client.NetworkDisconnect(ctxT(t), "lan", client.NetworkDisconnectOptions{Container: "mc"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cNS.Netlink.LinkByName("eth1"); err == nil {
		t.Errorf("eth1 is still there after disconnect")
	}
	// The retired interface is deleted in the background.
	waitFor(t, 10*time.Second, func() error {
		links, err := cNS.Netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Type() == "macvlan" {
				return errStill(l.Attrs().Name)
			}
		}
		return nil
	})

	// A restarted container comes back on the LAN with its address.
	zero := 0
	if _, err := d.Client.ContainerRestart(ctxT(t), b, client.ContainerRestartOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	bNS = netnsOf(t, d, b)
	echoServer(t, bNS, ":80")
	if err := roundTrip(lan.Machine, "10.77.0.3:80"); err != nil {
		t.Errorf("the machine to a restarted container: %v", err)
	}

	// Live restore.
	d.Kill()
	d.Start()
	waitFor(t, 5*time.Second, func() error { return roundTrip(aNS, "10.77.0.100:80") })
	if err := roundTrip(aNS, "10.77.0.3:80"); err != nil {
		t.Errorf("after a daemon crash: %v", err)
	}
}

func TestMacvlanBadInputAndKernelLimits(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	lan := h.AddLAN()
	create(t, d, "app", client.NetworkCreateOptions{})
	macvlanNet(t, d, "lan", lan.Parent, nil)
	before := strings.Join(names(t, d, nil), ",")
	beforeKernel := kernelView(t, h)
	appBridge := "br-" + inspect(t, d, "app").ID[:12]
	for _, c := range []struct {
		name, driver string
		opts         map[string]string
		subnet       string
		want         string
	}{
		{"m1", "macvlan", map[string]string{"parent": "eth9"}, "10.78.0.0/24", "-o parent interface was not found on the host: eth9"},
		{"m2", "macvlan", map[string]string{"parent": appBridge}, "10.78.0.0/24", "is a bridge of one of berth's networks"},
		{"m3", "macvlan", map[string]string{"parent": "uplink", "macvlan_mode": "sideways"}, "10.78.0.0/24", "requested macvlan mode 'sideways' is not valid"},
		{"m4", "macvlan", map[string]string{"parent": lan.Parent}, "10.79.0.0/24", "network lan is already using parent interface lan0"},
		{"m5", "macvlan", map[string]string{"parent": "uplink"}, "10.77.0.128/25", "Pool overlaps with other one on this address space"},
		{"m6", "ipvlan", map[string]string{"parent": "uplink", "ipvlan_mode": "l4"}, "10.78.0.0/24", "requested ipvlan mode 'l4' is not valid"},
	} {
		_, err := d.Client.NetworkCreate(ctxT(t), c.name, client.NetworkCreateOptions{Driver: c.driver, Options: c.opts,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: mustPrefix(c.subnet)}}}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create %s: %v, want %q", c.name, err, c.want)
		}
	}
	if got := strings.Join(names(t, d, nil), ","); got != before {
		t.Errorf("refused creates changed the networks: %s → %s", before, got)
	}
	if got := kernelView(t, h); got != beforeKernel {
		t.Errorf("refused creates changed the kernel:\n%s\n%s", beforeKernel, got)
	}

	// What this kernel lacks fails cleanly, naming it; where it has it, it works.
	h.AddRemote() // an "uplink" to hang ipvlan and VLANs on
	for _, c := range []struct {
		name, driver, parent, feature string
		opts                          map[string]string
	}{
		{"iv", "ipvlan", "uplink", "ipvlan is not supported by this kernel", nil},
		{"vl", "macvlan", "uplink.10", "802.1q VLAN (sub-interface uplink.10) is not supported by this kernel", nil},
		{"dm", "macvlan", "", "the dummy link kind is not supported by this kernel", nil},
	} {
		opts := map[string]string{}
		if c.parent != "" {
			opts["parent"] = c.parent
		}
		_, err := d.Client.NetworkCreate(ctxT(t), c.name, client.NetworkCreateOptions{Driver: c.driver, Options: opts,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: mustPrefix("10.80.0.0/24")}}}})
		switch {
		case err == nil:
			t.Logf("%s: this kernel supports it", c.name)
			if _, err := d.Client.NetworkRemove(ctxT(t), c.name, client.NetworkRemoveOptions{}); err != nil {
				t.Error(err)
			}
		case !strings.Contains(err.Error(), c.feature):
			t.Errorf("create %s: %v, want an error naming %q", c.name, err, c.feature)
		default:
			t.Logf("%s: %v", c.name, err)
		}
		if _, err := d.Client.NetworkInspect(ctxT(t), c.name, client.NetworkInspectOptions{}); err == nil {
			t.Errorf("a failed create left network %s", c.name)
		}
	}
}

// createOrSkip creates a network of a kind this kernel may lack, skipping
// the test with the daemon's words when it does.
func createOrSkip(t *testing.T, d *nettest.Daemon, name string, opts client.NetworkCreateOptions) {
	t.Helper()
	if _, err := d.Client.NetworkCreate(ctxT(t), name, opts); err != nil {
		if strings.Contains(err.Error(), "not supported by this kernel") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
}

func TestIPVlanContainersReachTheLAN(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	lan := h.AddLAN()
	createOrSkip(t, d, "ipv", client.NetworkCreateOptions{Driver: "ipvlan", Options: map[string]string{"parent": lan.Parent},
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: mustPrefix("10.77.0.0/24"), Gateway: mustAddr("10.77.0.1")}}}})
	a := netnsOf(t, d, runContainer(t, d, withAliases("ia", "ipv")))
	echoServer(t, lan.Machine, ":80")
	if err := roundTrip(a, "10.77.0.100:80"); err != nil {
		t.Errorf("ipvlan container to the machine: %v", err)
	}
}

func TestMacvlanOnAVLAN(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	h.AddRemote()
	createOrSkip(t, d, "vlan", client.NetworkCreateOptions{Driver: "macvlan", Options: map[string]string{"parent": "uplink.10"},
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: mustPrefix("10.81.0.0/24")}}}})
	if _, err := h.Netlink.LinkByName("uplink.10"); err != nil {
		t.Errorf("the VLAN sub-interface was not created: %v", err)
	}
	if _, err := d.Client.NetworkRemove(ctxT(t), "vlan", client.NetworkRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if _, err := h.Netlink.LinkByName("uplink.10"); err == nil {
			return errStill("uplink.10")
		}
		return nil
	})
}

func TestMacvlanWithoutParent(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	createOrSkip(t, d, "alone", client.NetworkCreateOptions{Driver: "macvlan", Internal: true,
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: mustPrefix("10.82.0.0/24")}}}})
	a := netnsOf(t, d, runContainer(t, d, withAliases("da", "alone")))
	b := netnsOf(t, d, runContainer(t, d, withAliases("db", "alone")))
	echoServer(t, b, ":80")
	if err := roundTrip(a, "10.82.0.3:80"); err != nil {
		t.Errorf("containers of a macvlan network without parent: %v", err)
	}
}

type errStill string

func (e errStill) Error() string { return string(e) + " is still there" }

func TestStockDockerCLICreatesMacvlanNetworks(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	h, d := containerHost(t)
	lan := h.AddLAN()
	dockerOK(t, d, "network", "create", "-d", "macvlan", "-o", "parent="+lan.Parent, "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.1", "lan")
	if got := dockerOK(t, d, "network", "ls", "--filter", "driver=macvlan", "--format", "{{.Name}} {{.Driver}}"); got != "lan macvlan\n" {
		t.Errorf("docker network ls: %q", got)
	}
	id := strings.TrimSpace(dockerOK(t, d, "run", "-d", "--network", "lan", "--ip", "10.77.0.9", "busybox", "sleep", "100000"))
	echoServer(t, lan.Machine, ":80")
	if err := roundTrip(netnsOf(t, d, id), "10.77.0.100:80"); err != nil {
		t.Errorf("container started by docker on the macvlan network: %v", err)
	}
}

// A macvlan network takes an IPv6 subnet too: containers are IPv6 hosts of
// the LAN, with names answering AAAA.
func TestMacvlanDualStack(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	lan := h.AddLAN()
	eth0, err := lan.Machine.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	machine6, _ := netlink.ParseAddr("fd00:77::100/64")
	machine6.Flags = unix.IFA_F_NODAD
	if err := lan.Machine.Netlink.AddrAdd(eth0, machine6); err != nil {
		t.Fatal(err)
	}
	v6 := true
	create(t, d, "lan6", client.NetworkCreateOptions{Driver: "macvlan", EnableIPv6: &v6, Options: map[string]string{"parent": lan.Parent},
		IPAM: &network.IPAM{Config: []network.IPAMConfig{
			{Subnet: mustPrefix("10.77.0.0/24"), Gateway: mustAddr("10.77.0.1")},
			{Subnet: mustPrefix("fd00:77::/64"), Gateway: mustAddr("fd00:77::1")},
		}}})
	a := runContainer(t, d, withAliases("m6a", "lan6"))
	runContainer(t, d, withAliases("m6b", "lan6"))
	ep := inspectContainer(t, d, a).NetworkSettings.Networks["lan6"]
	if ep == nil || ep.GlobalIPv6Address.String() != "fd00:77::2" || ep.IPv6Gateway.String() != "fd00:77::1" {
		t.Fatalf("a's endpoint on lan6: %+v", ep)
	}
	aNS := netnsOf(t, d, a)
	echoServer(t, lan.Machine, "[::]:80")
	echoServer(t, aNS, "[::]:81")
	if err := roundTrip(aNS, "[fd00:77::100]:80"); err != nil {
		t.Errorf("container to the LAN's machine over IPv6: %v", err)
	}
	if err := roundTrip(lan.Machine, "[fd00:77::2]:81"); err != nil {
		t.Errorf("the LAN's machine to a container over IPv6: %v", err)
	}
	if got := answers(dnsAsk(t, aNS, "m6b", dns.TypeAAAA)); strings.Join(got, ",") != "fd00:77::3" {
		t.Errorf("m6b's AAAA on the macvlan network: %v", got)
	}
}
