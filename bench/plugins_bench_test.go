package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	pnet "github.com/docker/go-plugins-helpers/network"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/cnitest"
	"github.com/berth-net/berth/internal/nettest"
)

// Third-party plugins (issue 16): a namespace attached and detached
// through berth's /sandboxes API, as BenchmarkAttachDetach does, on
// berth's own bridge, on a network of a remote network plugin and on a
// CNI configuration list, and the same configuration run by libcni
// directly. What berth adds to a plugin's own cost is its overhead:
// target ≤ 1 ms at p50. Run them with make bench BENCH=Plugin
// BENCHTIME=100x, or as a section of make bench-compare.

// pluginWarmup rounds run before the measured ones: the first join of a
// CNI network makes its bridge and the chains of its firewall rules.
const pluginWarmup = 5

// measured is the sandbox each round connects and disconnects.
const measured = "measured"

// BenchmarkPluginAttachDetach: connect + disconnect of a namespace on
// each path, one test host per path; p50-ms (p90, p99) are berth's
// rounds. On every path, from berthd's own metrics read before and after
// the measured rounds: berthd-mean-ms is the time berthd took to answer
// a round's connect and disconnect, driver-mean-ms the time of the
// driver's join and leave within them (for a plugin, its HTTP calls or
// libcni running the chain) and berthd-own-mean-ms the difference.
//
//   - path=bridge: berth's bridge driver, for scale.
//   - path=remote: a network of timedPlugin, served on a socket in
//     berthd's --plugins-dir. plugin-p50-ms is the time the plugin spent
//     in its handlers in a round; overhead-p50-ms (p90, p99) are the
//     percentiles of each round's time minus the plugin's in it.
//     kernel-p50-ms is what the kernel alone takes for the moves Docker's
//     protocol has the engine make (kernelProbe), timed between the
//     rounds; overhead-beyond-kernel-p50-ms is the rest of the overhead.
//   - path=cni and path=cni,port=1: a conflist (bridge, host-local,
//     portmap) in berthd's --cni-conf-dir, the second publishing one port;
//     the rounds take turns with the same configuration's ADD + DEL run
//     by libcni in the same host (libcni-p50-ms, p90, p99).
//     overhead-p50-ms is berth's median minus libcni's: the two sides'
//     rounds are separate runs of the plugins, so medians are compared,
//     and its resolution is that of the plugins' own spread (they exec
//     iptables some tens of times a round). outside-p50-ms and
//     libcni-outside-p50-ms are each side's rounds minus the time its
//     plugin processes lived (ChildTimes), and overhead-outside-p50-ms
//     their difference: the same overhead without the plugins' spread.
//     plugin-runs/op and libcni-plugin-runs/op count the processes.
func BenchmarkPluginAttachDetach(b *testing.B) {
	b.Run("path=bridge", func(b *testing.B) {
		h := nettest.NewHost(b)
		d := h.StartDaemon()
		createNetwork(b, d, "app", client.NetworkCreateOptions{
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.100.0.0/24")}}},
		})
		lat := connectRounds(b, h, d, api.SandboxConnectRequest{Network: "app"}, roundHooks{})
		lat.Report(b)
	})
	b.Run("path=remote", benchRemotePlugin)
	b.Run("path=cni", func(b *testing.B) { benchCNI(b, false) })
	b.Run("path=cni,port=1", func(b *testing.B) { benchCNI(b, true) })
}

func createNetwork(b *testing.B, d *nettest.Daemon, name string, opts client.NetworkCreateOptions) {
	b.Helper()
	if _, err := d.Client.NetworkCreate(context.Background(), name, opts); err != nil {
		b.Fatalf("create network %s: %v", name, err)
	}
}

// connectRounds makes the sandbox measured in a namespace of h, runs
// pluginWarmup rounds and then b.N measured ones of connect + disconnect
// with req, and returns the measured rounds' times. The hooks run around
// every round, outside its time.
func connectRounds(b *testing.B, h *nettest.Host, d *nettest.Daemon, req api.SandboxConnectRequest, hooks roundHooks) Latencies {
	b.Helper()
	ctx := context.Background()
	ns := h.NewNamespace(measured)
	if _, err := d.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: measured, Key: ns.Path}); err != nil {
		b.Fatal(err)
	}
	round := func() time.Duration {
		start := time.Now()
		if _, err := d.API.ConnectSandbox(ctx, measured, req); err != nil {
			b.Fatalf("connect to %s: %v", req.Network, err)
		}
		if err := d.API.DisconnectSandbox(ctx, measured, api.SandboxDisconnectRequest{Network: req.Network}); err != nil {
			b.Fatalf("disconnect from %s: %v", req.Network, err)
		}
		return time.Since(start)
	}
	for range pluginWarmup {
		hooks.runBefore()
		hooks.runAfter(round())
	}
	var lat Latencies
	before := berthdTimes(b, d)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		hooks.runBefore()
		b.StartTimer()
		took := round()
		b.StopTimer()
		lat = append(lat, took)
		hooks.runAfter(took)
		b.StartTimer()
	}
	b.StopTimer()
	after := berthdTimes(b, d)
	n := float64(b.N)
	b.ReportMetric((after.requests-before.requests)/n*1000, "berthd-mean-ms")
	b.ReportMetric((after.driver-before.driver)/n*1000, "driver-mean-ms")
	b.ReportMetric(((after.requests-after.driver)-(before.requests-before.driver))/n*1000, "berthd-own-mean-ms")
	return lat
}

// berthdSums are totals, in seconds, from berthd's metrics: the time it
// spent answering connects and disconnects of sandboxes, and the time of
// the drivers' join and leave calls within them (for a plugin, the
// plugin's: its HTTP round trips, or libcni running the chain).
type berthdSums struct{ requests, driver float64 }

// berthdTimes reads berthdSums from d's /metrics.
func berthdTimes(b *testing.B, d *nettest.Daemon) berthdSums {
	b.Helper()
	text, err := d.API.Call(context.Background(), "GET", "/metrics", nil, nil, nil)
	if err != nil {
		b.Fatalf("GET /metrics: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		b.Fatalf("parse /metrics: %v", err)
	}
	sum := func(name string, keep func(labels map[string]string) bool) float64 {
		var total float64
		if mf := mfs[name]; mf != nil {
			for _, m := range mf.Metric {
				labels := map[string]string{}
				for _, l := range m.Label {
					labels[l.GetName()] = l.GetValue()
				}
				if keep(labels) {
					total += m.GetHistogram().GetSampleSum()
				}
			}
		}
		return total
	}
	return berthdSums{
		requests: sum("berth_api_request_duration_seconds", func(l map[string]string) bool {
			return l["route"] == "/sandboxes/{id}/connect" || l["route"] == "/sandboxes/{id}/disconnect"
		}),
		driver: sum("berth_driver_call_duration_seconds", func(map[string]string) bool { return true }),
	}
}

// roundHooks run before and after each round of connectRounds, warm-up
// rounds included; either may be nil.
type roundHooks struct {
	before func()
	after  func(took time.Duration)
}

func (r roundHooks) runBefore() {
	if r.before != nil {
		r.before()
	}
}

func (r roundHooks) runAfter(took time.Duration) {
	if r.after != nil {
		r.after(took)
	}
}

// timedPlugin is a network plugin as third parties write them with
// go-plugins-helpers (weave's, kuryr's): a bridge of its own per network
// in the host, and per endpoint a veth pair whose one end it hands berthd
// in Join and deletes in Leave. It adds up the time spent in its
// handlers, which is its own cost of a round: berth's share is the rest.
type timedPlugin struct {
	h *nettest.Host

	mu    sync.Mutex
	gw    map[string]string // network ID → gateway
	busy  time.Duration
	calls int
}

// timed adds the time since start to the plugin's; deferred by every
// handler.
func (p *timedPlugin) timed(start time.Time) {
	took := time.Since(start)
	p.mu.Lock()
	p.busy += took
	p.calls++
	p.mu.Unlock()
}

// take returns the handlers' time and calls since the last take.
func (p *timedPlugin) take() (time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	busy, calls := p.busy, p.calls
	p.busy, p.calls = 0, 0
	return busy, calls
}

func (p *timedPlugin) bridgeName(networkID string) string { return "tb" + networkID[:8] }

func (p *timedPlugin) GetCapabilities() (*pnet.CapabilitiesResponse, error) {
	defer p.timed(time.Now())
	return &pnet.CapabilitiesResponse{Scope: pnet.LocalScope}, nil
}

func (p *timedPlugin) CreateNetwork(r *pnet.CreateNetworkRequest) error {
	defer p.timed(time.Now())
	if len(r.IPv4Data) == 0 {
		return fmt.Errorf("network %s has no IPv4 subnet", r.NetworkID)
	}
	gw, err := netlink.ParseAddr(r.IPv4Data[0].Gateway)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.gw[r.NetworkID] = gw.IP.String()
	p.mu.Unlock()
	name := p.bridgeName(r.NetworkID)
	if _, err := p.h.Netlink.LinkByName(name); err == nil {
		return nil // berthd tells the plugin again at every start
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := p.h.Netlink.LinkAdd(br); err != nil {
		return err
	}
	if err := p.h.Netlink.AddrAdd(br, gw); err != nil {
		return err
	}
	return p.h.Netlink.LinkSetUp(br)
}

func (p *timedPlugin) DeleteNetwork(r *pnet.DeleteNetworkRequest) error {
	defer p.timed(time.Now())
	if l, err := p.h.Netlink.LinkByName(p.bridgeName(r.NetworkID)); err == nil {
		return p.h.Netlink.LinkDel(l)
	}
	return nil
}

func (p *timedPlugin) CreateEndpoint(*pnet.CreateEndpointRequest) (*pnet.CreateEndpointResponse, error) {
	defer p.timed(time.Now())
	return &pnet.CreateEndpointResponse{}, nil
}

func (p *timedPlugin) Join(r *pnet.JoinRequest) (*pnet.JoinResponse, error) {
	defer p.timed(time.Now())
	br, err := p.h.Netlink.LinkByName(p.bridgeName(r.NetworkID))
	if err != nil {
		return nil, err
	}
	host, peer := "tbh"+r.EndpointID[:8], "tbc"+r.EndpointID[:8]
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index}, PeerName: peer}
	if err := p.h.Netlink.LinkAdd(veth); err != nil {
		return nil, err
	}
	if err := p.h.Netlink.LinkSetUp(veth); err != nil {
		p.h.Netlink.LinkDel(veth)
		return nil, err
	}
	p.mu.Lock()
	gw := p.gw[r.NetworkID]
	p.mu.Unlock()
	return &pnet.JoinResponse{InterfaceName: pnet.InterfaceName{SrcName: peer, DstPrefix: "eth"}, Gateway: gw}, nil
}

func (p *timedPlugin) Leave(r *pnet.LeaveRequest) error {
	defer p.timed(time.Now())
	if l, err := p.h.Netlink.LinkByName("tbh" + r.EndpointID[:8]); err == nil {
		return p.h.Netlink.LinkDel(l)
	}
	return nil
}

func (p *timedPlugin) DeleteEndpoint(*pnet.DeleteEndpointRequest) error {
	defer p.timed(time.Now())
	return nil
}

func (p *timedPlugin) EndpointInfo(*pnet.InfoRequest) (*pnet.InfoResponse, error) {
	defer p.timed(time.Now())
	return &pnet.InfoResponse{Value: map[string]string{}}, nil
}

func (p *timedPlugin) AllocateNetwork(*pnet.AllocateNetworkRequest) (*pnet.AllocateNetworkResponse, error) {
	defer p.timed(time.Now())
	return &pnet.AllocateNetworkResponse{}, nil
}

func (p *timedPlugin) FreeNetwork(*pnet.FreeNetworkRequest) error {
	defer p.timed(time.Now())
	return nil
}

func (p *timedPlugin) DiscoverNew(*pnet.DiscoveryNotification) error {
	defer p.timed(time.Now())
	return nil
}

func (p *timedPlugin) DiscoverDelete(*pnet.DiscoveryNotification) error {
	defer p.timed(time.Now())
	return nil
}

func (p *timedPlugin) ProgramExternalConnectivity(*pnet.ProgramExternalConnectivityRequest) error {
	defer p.timed(time.Now())
	return nil
}

func (p *timedPlugin) RevokeExternalConnectivity(*pnet.RevokeExternalConnectivityRequest) error {
	defer p.timed(time.Now())
	return nil
}

// benchRemotePlugin measures rounds on a network of timedPlugin, the
// plugin serving in the benchmark's process, in the test host.
func benchRemotePlugin(b *testing.B) {
	h := nettest.NewHost(b)
	dir := filepath.Join(h.Dir, "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	p := &timedPlugin{h: h, gw: map[string]string{}}
	l, err := net.Listen("unix", filepath.Join(dir, "tbridge.sock"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go pnet.NewHandler(p).Serve(l)
	d := h.StartDaemon("--plugins-dir", dir)
	createNetwork(b, d, "tb", client.NetworkCreateOptions{
		Driver: "tbridge",
		IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.124.0.0/24")}}},
	})
	kernel, err := newKernelProbe(b, h)
	if err != nil {
		b.Fatal(err)
	}
	var plugin, overhead, inKernel Latencies
	var calls []int
	lat := connectRounds(b, h, d, api.SandboxConnectRequest{Network: "tb"}, roundHooks{
		before: func() { p.take() },
		after: func(took time.Duration) {
			busy, n := p.take()
			plugin = append(plugin, busy)
			overhead = append(overhead, took-busy)
			calls = append(calls, n)
			k, err := kernel.round()
			if err != nil {
				b.Fatal(err)
			}
			inKernel = append(inKernel, k)
		},
	})
	plugin, overhead, calls, inKernel = plugin[pluginWarmup:], overhead[pluginWarmup:], calls[pluginWarmup:], inKernel[pluginWarmup:]
	// A round is CreateEndpoint, Join and ProgramExternalConnectivity,
	// then RevokeExternalConnectivity, Leave and DeleteEndpoint: fewer
	// would mean a handler's time fell outside the round it belongs to.
	for i, n := range calls {
		if n < 6 {
			b.Fatalf("round %d: the plugin heard %d calls, want 6", i, n)
		}
	}
	lat.Report(b)
	plugin.ReportAs(b, "plugin-", 50)
	overhead.ReportAs(b, "overhead-", 50, 90, 99)
	inKernel.ReportAs(b, "kernel-", 50)
	b.ReportMetric(ms(overhead.Percentile(50)-inKernel.Percentile(50)), "overhead-beyond-kernel-p50-ms")
	b.ReportMetric(mean(calls), "plugin-calls/op")
}

// kernelProbe times what Docker's protocol has the engine do with a
// plugin's interface, without an engine: a veth end moved from the host
// into a namespace and set up, then set down and moved back. Each of the
// three waits for the kernel's RCU grace period (a move, and a device
// going down): no one's code, a price of the protocol. The overhead
// beyond it is berth's.
type kernelProbe struct {
	h  *nettest.Host
	ns *nettest.Namespace
	// hostFd is the host's namespace, to move the device back to.
	hostFd int
}

func newKernelProbe(b *testing.B, h *nettest.Host) (*kernelProbe, error) {
	f, err := os.Open(h.Path)
	if err != nil {
		return nil, err
	}
	b.Cleanup(func() { f.Close() })
	return &kernelProbe{h: h, ns: h.NewNamespace("probe"), hostFd: int(f.Fd())}, nil
}

// round makes a pair in the host, times the moves of one end and deletes
// the pair again.
func (k *kernelProbe) round() (time.Duration, error) {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "kph0"}, PeerName: "kpc0"}
	if err := k.h.Netlink.LinkAdd(veth); err != nil {
		return 0, fmt.Errorf("make the pair to move: %w", err)
	}
	defer k.h.Netlink.LinkDel(veth)
	peer, err := k.h.Netlink.LinkByName("kpc0")
	if err != nil {
		return 0, err
	}
	nsFile, err := os.Open(k.ns.Path)
	if err != nil {
		return 0, err
	}
	defer nsFile.Close()
	start := time.Now()
	if err := k.h.Netlink.LinkSetNsFd(peer, int(nsFile.Fd())); err != nil {
		return 0, fmt.Errorf("move into the namespace: %w", err)
	}
	if peer, err = k.ns.Netlink.LinkByName("kpc0"); err != nil {
		return 0, err
	}
	if err := k.ns.Netlink.LinkSetUp(peer); err != nil {
		return 0, err
	}
	if err := k.ns.Netlink.LinkSetDown(peer); err != nil {
		return 0, err
	}
	if err := k.ns.Netlink.LinkSetNsFd(peer, k.hostFd); err != nil {
		return 0, fmt.Errorf("move back to the host: %w", err)
	}
	return time.Since(start), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// podsConf is a CNI network as containerd's, nerdctl's or flannel's: the
// reference bridge plugin as the containers' gateway, masquerading their
// traffic, with host-local addresses (its leases kept in the directory
// given), then portmap for published ports.
const podsConf = `{"cniVersion":"1.0.0","name":"pods","plugins":[
	{"type":"bridge","bridge":"cni-pods0","isGateway":true,"ipMasq":true,
	 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.88.0.0/16"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
	{"type":"portmap","capabilities":{"portMappings":true}}]}`

// The port path=cni,port=1 publishes: the container's 80 on the host's
// 18080.
const (
	cniContainerPort = 80
	cniHostPort      = 18080
)

// benchCNI measures rounds on the CNI network of podsConf through berthd,
// taking turns with the same configuration's ADD + DEL run by libcni as a
// runtime does, with the reference plugins of cnitest: both sides share
// the host, the bridge, the binaries and the leases' directory.
func benchCNI(b *testing.B, publish bool) {
	bin := cnitest.Plugins(b)
	h := nettest.NewHost(b)
	confDir := filepath.Join(h.Dir, "cni-conf")
	if err := os.Mkdir(confDir, 0o755); err != nil {
		b.Fatal(err)
	}
	conf := fmt.Appendf(nil, podsConf, filepath.Join(h.Dir, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(confDir, "10-pods.conflist"), conf, 0o644); err != nil {
		b.Fatal(err)
	}
	d := h.StartDaemon("--cni-conf-dir", confDir, "--cni-bin-dir", bin)
	req := api.SandboxConnectRequest{Network: "pods"}
	direct := &directCNI{
		cni: libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(h.Dir, "cni-cache"), nil),
		ns:  h.NewNamespace("direct"), host: h,
	}
	if publish {
		req.PortBindings = network.PortMap{
			network.MustParsePort(fmt.Sprintf("%d/tcp", cniContainerPort)): {{HostPort: fmt.Sprint(cniHostPort)}},
		}
		direct.ports = []map[string]any{{"hostPort": cniHostPort, "containerPort": cniContainerPort, "protocol": "tcp"}}
	}
	var err error
	if direct.list, err = libcni.ConfListFromBytes(conf); err != nil {
		b.Fatal(err)
	}
	children, err := WatchChildren(d.PID(), os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	defer children.Close()
	// childrenOf is the time pid's children lived since the last call for
	// it, and how many ran.
	childrenOf := func(pid int) (time.Duration, int) {
		spent, runs, err := children.Take(pid)
		if err != nil {
			b.Fatal(err)
		}
		return spent, runs
	}
	var libcniLat, outside, libcniOutside Latencies
	var runs, libcniRuns []int
	directRound := func() {
		childrenOf(os.Getpid())
		took, err := direct.round()
		if err != nil {
			b.Fatal(err)
		}
		spent, n := childrenOf(os.Getpid())
		libcniLat = append(libcniLat, took)
		libcniOutside = append(libcniOutside, took-spent)
		libcniRuns = append(libcniRuns, n)
	}
	// The sides take turns, each going first in every other round, so
	// that neither always follows the other's cleanup.
	turn := 0
	lat := connectRounds(b, h, d, req, roundHooks{
		before: func() {
			if turn%2 == 0 {
				directRound()
			}
			childrenOf(d.PID())
		},
		after: func(took time.Duration) {
			spent, n := childrenOf(d.PID())
			outside = append(outside, took-spent)
			runs = append(runs, n)
			if turn%2 == 1 {
				directRound()
			}
			turn++
		},
	})
	libcniLat, libcniOutside, libcniRuns = libcniLat[pluginWarmup:], libcniOutside[pluginWarmup:], libcniRuns[pluginWarmup:]
	outside, runs = outside[pluginWarmup:], runs[pluginWarmup:]
	lat.Report(b)
	libcniLat.ReportAs(b, "libcni-", 50, 90, 99)
	b.ReportMetric(ms(lat.Percentile(50)-libcniLat.Percentile(50)), "overhead-p50-ms")
	outside.ReportAs(b, "outside-", 50)
	libcniOutside.ReportAs(b, "libcni-outside-", 50)
	b.ReportMetric(ms(outside.Percentile(50)-libcniOutside.Percentile(50)), "overhead-outside-p50-ms")
	b.ReportMetric(mean(runs), "plugin-runs/op")
	b.ReportMetric(mean(libcniRuns), "libcni-plugin-runs/op")
}

func mean(n []int) float64 {
	sum := 0
	for _, v := range n {
		sum += v
	}
	return float64(sum) / float64(max(len(n), 1))
}

// directCNI runs a configuration list as a container runtime does: ADD
// with a new container ID, the result read, then DEL.
type directCNI struct {
	cni   *libcni.CNIConfig
	list  *libcni.NetworkConfigList
	ns    *nettest.Namespace
	host  *nettest.Host
	ports []map[string]any
}

// round is one ADD + DEL, timed from a thread in the host: the plugins
// are its children and work in its namespace.
func (c *directCNI) round() (time.Duration, error) {
	id := make([]byte, 32)
	rand.Read(id)
	rt := &libcni.RuntimeConf{ContainerID: hex.EncodeToString(id), NetNS: c.ns.Path, IfName: "eth0"}
	if len(c.ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": c.ports}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var took time.Duration
	err := c.host.Do(func() error {
		start := time.Now()
		res, err := c.cni.AddNetworkList(ctx, c.list, rt)
		if err != nil {
			return fmt.Errorf("libcni ADD: %w", err)
		}
		if _, err := types100.NewResultFromResult(res); err != nil {
			return fmt.Errorf("libcni ADD's result: %w", err)
		}
		if err := c.cni.DelNetworkList(ctx, c.list, rt); err != nil {
			return fmt.Errorf("libcni DEL: %w", err)
		}
		took = time.Since(start)
		return nil
	})
	return took, err
}
