package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/netdev"
)

func TestRestartKeepsNetworksEndpointsAndTraffic(t *testing.T) {
	t.Parallel()
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			t.Parallel()
			h := nettest.NewHost(t)
			d := h.StartDaemon()
			appID := create(t, d, "app", client.NetworkCreateOptions{})
			a, _ := attach(t, d, "a", "app")
			b, _ := attach(t, d, "b", "app")
			echoServer(t, b, "0.0.0.0:7000")
			bridgeID := inspect(t, d, "bridge").ID

			if crash {
				d.Kill()
			} else {
				d.Stop()
			}
			// Containers outlive the daemon: traffic flows while it is down.
			if err := roundTrip(a, "172.18.0.3:7000"); err != nil {
				t.Fatalf("a → b while berthd is down: %v", err)
			}
			d.Start()

			if got := inspect(t, d, "app"); got.ID != appID || len(got.Containers) != 2 {
				t.Fatalf("after restart app is %s with %d endpoints, want %s with 2", got.ID, len(got.Containers), appID)
			}
			if got := inspect(t, d, "bridge").ID; got != bridgeID {
				t.Errorf("default bridge ID changed across restart: %s → %s", bridgeID, got)
			}
			if err := roundTrip(a, "172.18.0.3:7000"); err != nil {
				t.Fatalf("a → b after restart: %v", err)
			}
			// Pool state survived: the next address is .4, not a taken one.
			_, ep := attach(t, d, "c", "app")
			if ep.IPAddress.String() != "172.18.0.4" {
				t.Errorf("first address after restart = %s, want 172.18.0.4", ep.IPAddress)
			}
			if _, err := d.Client.NetworkCreate(ctxT(t), "app", client.NetworkCreateOptions{}); err == nil {
				t.Errorf("a duplicate name was accepted after restart")
			}
		})
	}
}

func TestReconcileRepairsWhatWasLostAndRemovesOnlyWhatIsBerths(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	appID := create(t, d, "app", client.NetworkCreateOptions{})
	a, _ := attach(t, d, "a", "app")
	b, _ := attach(t, d, "b", "app")
	echoServer(t, b, "0.0.0.0:7000")
	d.Kill()

	// While berthd is down: app's bridge disappears, a device that carries
	// berth's mark but that no network wants appears, and someone else
	// makes bridges of their own, one with a berth-like name.
	br, err := h.Netlink.LinkByName("br-" + appID[:12])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Netlink.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	owned, _, _ := netdev.Groups(d.Root)
	stray := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethdead000", Group: owned}, PeerName: "vethdead001"}
	if err := h.Netlink.LinkAdd(stray); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"br-0123456789ab", "docker0"} {
		if err := h.Netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}

	d.Start()
	if got := hostAddrs(t, h, "br-"+appID[:12]); !slices.Equal(got, []string{"172.18.0.1/16"}) {
		t.Errorf("re-created bridge has %v", got)
	}
	if err := roundTrip(a, "172.18.0.3:7000"); err != nil {
		t.Errorf("a → b after the bridge was re-created: %v", err)
	}
	waitFor(t, 5*time.Second, func() error {
		if _, err := h.Netlink.LinkByName("vethdead000"); err == nil {
			return fmt.Errorf("berth's stray device is still there")
		}
		return nil
	})
	for _, name := range []string{"br-0123456789ab", "docker0"} {
		if _, err := h.Netlink.LinkByName(name); err != nil {
			t.Errorf("someone else's bridge %s was touched: %v", name, err)
		}
	}
}

// TestCrashInTheMiddleOfCreatesAndAttachesLosesAndLeaksNothing kills berthd
// with SIGKILL while a stream of creates, attaches and detaches runs, then
// checks the restarted daemon against the kernel.
func TestCrashInTheMiddleOfCreatesAndAttachesLosesAndLeaksNothing(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "shared", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.50.0.0/24")}}}})
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	seq := 0
	for round := range 4 {
		stop := make(chan struct{})
		var done atomic.Bool
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seq++
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				name := fmt.Sprintf("n%d", seq)
				d.Client.NetworkCreate(ctx, name, client.NetworkCreateOptions{})
				sb := fmt.Sprintf("s%d", seq)
				d.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: sb})
				d.API.ConnectSandbox(ctx, sb, api.SandboxConnectRequest{Network: "shared"})
				d.API.ConnectSandbox(ctx, sb, api.SandboxConnectRequest{Network: name})
				if seq%3 == 0 {
					d.API.DisconnectSandbox(ctx, sb, api.SandboxDisconnectRequest{Network: "shared"})
				}
				if seq%5 == 0 {
					d.API.RemoveSandbox(ctx, sb)
					d.Client.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
				}
				cancel()
				if i > 200 {
					done.Store(true)
					return
				}
			}
		}()
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		d.Kill()
		close(stop)
		<-finished
		d.Start()
		checkStoreMatchesKernel(t, d, fmt.Sprintf("round %d", round))
	}
}

// checkStoreMatchesKernel compares what the daemon reports with the kernel:
// no address twice, every network's bridge and every endpoint's interface
// present, no berth device or namespace that nothing accounts for.
func checkStoreMatchesKernel(t *testing.T, d *nettest.Daemon, when string) {
	t.Helper()
	h := d.Host
	nets, err := d.Client.NetworkList(ctxT(t), client.NetworkListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantBridges := map[string]bool{}
	endpoints := 0
	for _, n := range nets.Items {
		if n.Driver != "bridge" {
			continue
		}
		full := inspect(t, d, n.ID)
		name := full.Options["com.docker.network.bridge.name"]
		if name == "" {
			name = "br-" + n.ID[:12]
		}
		wantBridges[name] = true
		if l, err := h.Netlink.LinkByName(name); err != nil || l.Attrs().Flags&1 == 0 {
			t.Errorf("%s: bridge %s of network %s missing or down (%v)", when, name, n.Name, err)
		}
		seen := map[string]string{}
		for id, c := range full.Containers {
			if other, dup := seen[c.IPv4Address.String()]; dup {
				t.Errorf("%s: %s and %s share %s on %s", when, id, other, c.IPv4Address, n.Name)
			}
			seen[c.IPv4Address.String()] = id
			endpoints++
		}
	}
	sbs, err := d.API.Sandboxes(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	sbPaths := map[string]bool{}
	for _, sb := range sbs {
		sbPaths[sb.Key] = true
		ns := nettest.OpenNamespace(t, sb.Key)
		for netName, ep := range sb.Networks {
			found := false
			links, _ := ns.Netlink.LinkList()
			for _, l := range links {
				addrs, _ := ns.Netlink.AddrList(l, netlink.FAMILY_V4)
				for _, a := range addrs {
					found = found || (a.IP.String() == ep.IPAddress.String() && l.Attrs().Flags&1 != 0)
				}
			}
			if !found {
				t.Errorf("%s: sandbox %s has no interface up with %s of network %s", when, sb.Name, ep.IPAddress, netName)
			}
		}
		ns.Close()
	}
	// Retired devices are reaped in the background; give it a moment.
	waitFor(t, 10*time.Second, func() error {
		links, err := h.Netlink.LinkList()
		if err != nil {
			return err
		}
		veths := 0
		var stray []string
		for _, l := range links {
			name := l.Attrs().Name
			switch {
			case strings.HasPrefix(name, "veth"):
				veths++
			case l.Type() == "bridge" && !wantBridges[name]:
				stray = append(stray, name)
			}
		}
		if len(stray) > 0 || veths != endpoints {
			return fmt.Errorf("%s: %d host veths for %d endpoints, stray bridges %v", when, veths, endpoints, stray)
		}
		return nil
	})
	t.Logf("%s: %d networks, %d sandboxes, %d endpoints consistent", when, len(nets.Items), len(sbs), endpoints)
	entries, _ := os.ReadDir(d.ExecRoot + "/netns")
	for _, e := range entries {
		if p := d.ExecRoot + "/netns/" + e.Name(); !sbPaths[p] {
			t.Errorf("%s: namespace %s belongs to no sandbox", when, p)
		}
	}
}

// TestACrashDuringRunsLeavesNoGhosts kills berthd while containers start:
// after the restart every container listed as running has its process,
// its address and its way out, the others have no endpoint, and once they
// are all removed nothing of theirs is left.
func TestACrashDuringRunsLeavesNoGhosts(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 14))
	for round := range 3 {
		var wg sync.WaitGroup
		for i := range 8 {
			name := fmt.Sprintf("r%dc%d", round, i)
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
					Config:     &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}},
					HostConfig: &ctypes.HostConfig{NetworkMode: "app"}})
				if err == nil {
					d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
				}
			})
		}
		// The kill lands somewhere in the creates and starts.
		time.Sleep(time.Duration(100+rng.IntN(800)) * time.Millisecond)
		d.Kill()
		wg.Wait()
		d.Start()
		checkNoGhosts(t, d, fmt.Sprintf("round %d (seed %d)", round, seed))
	}
	list, err := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		if _, err := d.Client.ContainerRemove(ctxT(t), c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("rm -f %s: %v", c.Names, err)
		}
	}
	checkStoreMatchesKernel(t, d, "after every container was removed")
}

// checkNoGhosts checks that the containers listed as running run, and that
// only they have endpoints.
func checkNoGhosts(t *testing.T, d *nettest.Daemon, when string) {
	t.Helper()
	list, err := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	for _, c := range list.Items {
		st := inspectContainer(t, d, c.ID).State
		if !st.Running {
			if st.Status != ctypes.StateCreated && st.Status != ctypes.StateExited {
				t.Errorf("%s: %s is %s, want created or exited", when, c.Names, st.Status)
			}
			continue
		}
		running[c.ID] = true
		if st.Pid == 0 {
			t.Errorf("%s: %s is running with no process", when, c.Names)
			continue
		}
		if out, _, code := execIn(t, d, c.ID, "ping", "-c1", "-W2", "172.18.0.1"); code != 0 {
			t.Errorf("%s: %s cannot reach its gateway: %s", when, c.Names, out)
		}
	}
	for id := range inspect(t, d, "app").Containers {
		if !running[id] {
			t.Errorf("%s: %s has an endpoint on app but does not run", when, id[:12])
		}
	}
	checkStoreMatchesKernel(t, d, when)
}
