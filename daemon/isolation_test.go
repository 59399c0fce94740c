package daemon_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/internal/nettest"
)

// isolation is what every kind of network lets through, as a table: a row
// per source, a column per destination; "yes" must get through, "no" must
// not, "-" is not asked.
//
// Sources are a container of each kind of network, and the host itself.
// Destinations:
//   - default … lan: a container's own address. The same kind is the same
//     network: another container of it.
//   - default:port … quiet:port: the port a container of that network
//     publishes, through the host. Containers dial the host's uplink
//     address 192.0.2.1; an internal network's containers their gateway,
//     the one host address on their link; a macvlan network's containers
//     the host's address on the LAN, through the parent.
//   - host: a service of the host, on the source network's gateway (a
//     macvlan network's: the host's address on the LAN). Internal networks
//     reach it, as in Docker since 25.0.4 (moby/moby#47356): what they
//     must not reach is anything beyond the host.
//   - machine: another machine on the macvlan network's LAN.
//   - remote: another machine behind the host's uplink. The LAN's router
//     has no route there, so it is not asked of macvlan containers.
//
// Kinds: the default bridge; a user-defined bridge; a bridge with
// enable_icc=false; an internal network; a macvlan network.
const isolation = `
from     default user quiet int  lan  default:port user:port quiet:port host machine remote
default  yes     no   no    no   no   yes          yes       yes        yes  yes     yes
user     no      yes  no    no   no   yes          yes       yes        yes  yes     yes
quiet    no      no   no    no   no   yes          yes       yes        yes  yes     yes
int      no      no   no    yes  no   no           no        no         yes  no      no
lan      no      no   no    no   yes  no           no        no         no   yes     -
host     yes     yes  yes   yes  no   -            -         -          -    -       -
`

// TestIsolationBetweenEveryPairOfNetworkKinds runs the isolation table
// against one daemon with two containers on each kind of network.
func TestIsolationBetweenEveryPairOfNetworkKinds(t *testing.T) {
	t.Parallel()
	start := time.Now()
	h, d := containerHost(t)
	remote := h.AddRemote()
	lan := h.AddLAN()
	// The host is on the LAN too, as a machine with a macvlan parent is.
	lan0, err := h.Netlink.LinkByName(lan.Parent)
	if err == nil {
		a, _ := netlink.ParseAddr("10.77.0.254/24")
		err = h.Netlink.AddrAdd(lan0, a)
	}
	if err != nil {
		t.Fatal(err)
	}
	create(t, d, "user", client.NetworkCreateOptions{})
	create(t, d, "quiet", client.NetworkCreateOptions{Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"}})
	create(t, d, "int", client.NetworkCreateOptions{Internal: true})
	macvlanNet(t, d, "lan", lan.Parent, nil)

	// Each kind: its network, a container "a" that publishes port 80 where
	// the network publishes ports, a container "b" the checks start from.
	type kind struct {
		network string
		port    string // published by a; "" where nothing is
		a, b    *nettest.Namespace
		aAddr   string
		gateway string // the host as the network's containers reach it
	}
	kinds := map[string]*kind{
		"default": {network: "bridge", port: "8001"},
		"user":    {network: "user", port: "8002"},
		"quiet":   {network: "quiet", port: "8003"},
		"int":     {network: "int"},
		"lan":     {network: "lan", gateway: "10.77.0.254"},
	}
	for name, k := range kinds {
		var ports network.PortMap
		if k.port != "" {
			ports = publish("80/tcp=:" + k.port)
		}
		a := runContainer(t, d, sleeper(name+"-a", k.network, ports))
		k.a = netnsOf(t, d, a)
		k.b = netnsOf(t, d, runContainer(t, d, sleeper(name+"-b", k.network, nil)))
		k.aAddr = inspectContainer(t, d, a).NetworkSettings.Networks[k.network].IPAddress.String()
		if k.gateway == "" {
			k.gateway = inspect(t, d, k.network).IPAM.Config[0].Gateway.String()
		}
		echoServer(t, k.a, ":80")
		echoServer(t, k.b, ":80")
	}
	echoServer(t, h.Namespace, ":9000")
	echoServer(t, lan.Machine, ":7000")
	echoServer(t, remote.Namespace, ":7000")
	setup := time.Since(start)

	// Where a source finds a destination.
	target := func(from, to string) string {
		if k, ok := kinds[to]; ok {
			return k.aAddr + ":80"
		}
		if owner, ok := strings.CutSuffix(to, ":port"); ok {
			via := "192.0.2.1"
			if from == "int" || from == "lan" {
				via = kinds[from].gateway
			}
			return via + ":" + kinds[owner].port
		}
		switch to {
		case "host":
			return kinds[from].gateway + ":9000"
		case "machine":
			return "10.77.0.100:7000"
		case "remote":
			return "192.0.2.2:7000"
		}
		t.Fatalf("isolation table: unknown destination %q", to)
		return ""
	}
	source := func(from string) *nettest.Namespace {
		if from == "host" {
			return h.Namespace
		}
		return kinds[from].b
	}

	// Every check at once: most of the time is the wait of those that
	// must fail, bounded by roundTrip's timeouts.
	lines := strings.Split(strings.TrimSpace(isolation), "\n")
	columns := strings.Fields(lines[0])[1:]
	checks, n := time.Now(), 0
	var wg sync.WaitGroup
	for _, line := range lines[1:] {
		cells := strings.Fields(line)
		from := cells[0]
		for i, want := range cells[1:] {
			if want == "-" {
				continue
			}
			to := columns[i]
			addr := target(from, to)
			n++
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := roundTrip(source(from), addr)
				switch {
				case want == "yes" && err != nil:
					t.Errorf("%s → %s: cannot reach %s: %v", from, to, addr, err)
				case want == "no" && err == nil:
					t.Errorf("%s → %s: reaches %s", from, to, addr)
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("isolation table: setup %v, %d checks in %v", setup.Round(time.Millisecond), n, time.Since(checks).Round(time.Millisecond))
}
