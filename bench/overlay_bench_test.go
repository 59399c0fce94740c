package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/miekg/dns"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
)

// Overlay networks across hosts (issue 15), in nettest clusters: hosts on
// one underlay, the first running the embedded etcd member. Run them with
// fewer rounds than make bench's default, e.g.
// make bench BENCH=Overlay BENCHTIME=20x.

// overlayNetwork creates an overlay network on the first host and waits
// until every host lists it.
func overlayNetwork(b *testing.B, c *nettest.Cluster, name string, opts client.NetworkCreateOptions) {
	b.Helper()
	opts.Driver = "overlay"
	if _, err := c.Hosts[0].Daemon.Client.NetworkCreate(context.Background(), name, opts); err != nil {
		b.Fatalf("create overlay network %s: %v", name, err)
	}
	for _, h := range c.Hosts {
		if _, err := listedWithin(h.Daemon, name, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// listedWithin polls d until it lists the network name, for at most
// limit, and says how long that took.
func listedWithin(d *nettest.Daemon, name string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Client.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
		cancel()
		if err == nil {
			return time.Since(start), nil
		}
		if !errdefs.IsNotFound(err) {
			return 0, err
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("network %s not listed within %s", name, limit)
}

// goneWithin polls d until the network name is gone, for at most limit.
func goneWithin(d *nettest.Daemon, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Client.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
		cancel()
		if errdefs.IsNotFound(err) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("network %s still listed after %s", name, limit)
}

// BenchmarkOverlayAttachDetach: a namespace on the first host connected to
// an overlay network and disconnected again, through the API, with 1 and
// 100 other endpoints spread over three hosts. Target: p50 under 10 ms.
func BenchmarkOverlayAttachDetach(b *testing.B) {
	for _, existing := range []int{1, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", existing), func(b *testing.B) {
			c := nettest.NewCluster(b, 3)
			ctx := context.Background()
			overlayNetwork(b, c, "ov", client.NetworkCreateOptions{})
			for i := range existing {
				d := c.Hosts[i%len(c.Hosts)].Daemon
				name := fmt.Sprintf("filler%d", i)
				if _, err := d.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: name}); err != nil {
					b.Fatal(err)
				}
				if _, err := d.API.ConnectSandbox(ctx, name, api.SandboxConnectRequest{Network: "ov"}); err != nil {
					b.Fatalf("connect %s on host %d: %v", name, i%len(c.Hosts)+1, err)
				}
			}
			h := c.Hosts[0]
			ns := h.NewNamespace("measured")
			if _, err := h.Daemon.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: "measured", Key: ns.Path}); err != nil {
				b.Fatal(err)
			}
			var lat Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := h.Daemon.API.ConnectSandbox(ctx, "measured", api.SandboxConnectRequest{Network: "ov"}); err != nil {
					b.Fatal(err)
				}
				if err := h.Daemon.API.DisconnectSandbox(ctx, "measured", api.SandboxDisconnectRequest{Network: "ov"}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkOverlayNetworkCreateRemove: an overlay network created with a
// subnet from the cluster's pool and removed again, on one host of three.
func BenchmarkOverlayNetworkCreateRemove(b *testing.B) {
	c := nettest.NewCluster(b, 3)
	d := c.Hosts[0].Daemon
	ctx := context.Background()
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := d.Client.NetworkCreate(ctx, fmt.Sprintf("n%d", i), client.NetworkCreateOptions{Driver: "overlay"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Client.NetworkRemove(ctx, res.ID, client.NetworkRemoveOptions{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.Report(b)
}

// BenchmarkOverlayNetworkListedOnAnotherHost: from the return of a create
// on the first host to the network being listed on the third, polled
// every millisecond. Target: under 2 s (the bound), p99.
func BenchmarkOverlayNetworkListedOnAnotherHost(b *testing.B) {
	c := nettest.NewCluster(b, 3)
	first, third := c.Hosts[0].Daemon, c.Hosts[2].Daemon
	ctx := context.Background()
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("n%d", i)
		res, err := first.Client.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "overlay"})
		if err != nil {
			b.Fatal(err)
		}
		took, err := listedWithin(third, name, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, took)
		b.StopTimer()
		if _, err := first.Client.NetworkRemove(ctx, res.ID, client.NetworkRemoveOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := goneWithin(third, name, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	lat.Report(b)
}

// BenchmarkOverlayNameReachableFromAnotherHost: from the return of a
// container's run on the second host to a container on the first
// resolving its name and reaching it (a TCP connection answered, even
// refused). Target: p99 under 100 ms.
func BenchmarkOverlayNameReachableFromAnotherHost(b *testing.B) {
	nettest.BusyboxImage(b)
	c := nettest.NewCluster(b, 2)
	c.ImportBusybox()
	ctx := context.Background()
	overlayNetwork(b, c, "ov", client.NetworkCreateOptions{})
	first, second := c.Hosts[0].Daemon, c.Hosts[1].Daemon
	probe, err := runDetached(ctx, first, "probe", "ov")
	if err != nil {
		b.Fatal(err)
	}
	in, err := first.Client.ContainerInspect(ctx, probe, client.ContainerInspectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ns := nettest.OpenNamespace(b, in.Container.NetworkSettings.SandboxKey)
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("c%d", i)
		if _, err := runDetached(ctx, second, name, "ov"); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var reachErr error
		for time.Since(start) < 10*time.Second {
			if reachErr = reachByName(ns, name); reachErr == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if reachErr != nil {
			b.Fatalf("%s from the first host: %v", name, reachErr)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.Report(b)
}

// reachByName resolves name through the container's resolver and
// connects to it: an answer of any kind, a refusal included, is reaching
// it.
func reachByName(ns *nettest.Namespace, name string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	var resp *dns.Msg
	err := ns.Do(func() (err error) {
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		resp, _, err = c.Exchange(m, "127.0.0.11:53")
		return err
	})
	if err != nil {
		return err
	}
	if len(resp.Answer) == 0 {
		return fmt.Errorf("%s does not resolve", name)
	}
	a, ok := resp.Answer[0].(*dns.A)
	if !ok {
		return fmt.Errorf("%s resolves to %v", name, resp.Answer[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	conn, err := ns.Dial(ctx, "tcp", net.JoinHostPort(a.A.String(), "7"))
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}

// throughputBytes is what each path carries per round.
const throughputBytes = 128 << 20

// BenchmarkOverlayThroughput: TCP from a namespace on one host to a
// namespace on another over an overlay network (VXLAN), next to the same
// between two namespaces on a bridge network of one host, and between the
// two hosts directly over the underlay. Each round carries 128 MiB on
// every path in turn, with iperf3 where it is installed and Go's own
// sender and receiver otherwise. Reports the median rate of each path and
// the overlay's ratio to the underlay (target ≥ 0.9) and to the bridge.
func BenchmarkOverlayThroughput(b *testing.B) {
	c := nettest.NewCluster(b, 2)
	ctx := context.Background()
	overlayNetwork(b, c, "ov", client.NetworkCreateOptions{})
	h1, h2 := c.Hosts[0], c.Hosts[1]
	br := client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.210.0.0/24")}}}}
	if _, err := h1.Daemon.Client.NetworkCreate(ctx, "br", br); err != nil {
		b.Fatal(err)
	}
	attach := func(h *nettest.ClusterHost, name, net string) (*nettest.Namespace, netip.Addr) {
		ns := h.NewNamespace(name)
		if _, err := h.Daemon.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: name, Key: ns.Path}); err != nil {
			b.Fatal(err)
		}
		ep, err := h.Daemon.API.ConnectSandbox(ctx, name, api.SandboxConnectRequest{Network: net})
		if err != nil {
			b.Fatalf("connect %s to %s: %v", name, net, err)
		}
		return ns, ep.IPAddress
	}
	ovFrom, _ := attach(h1, "ov-from", "ov")
	ovTo, ovAddr := attach(h2, "ov-to", "ov")
	brFrom, _ := attach(h1, "br-from", "br")
	brTo, brAddr := attach(h1, "br-to", "br")
	paths := []struct {
		metric   string
		from, to *nettest.Namespace
		addr     netip.Addr
	}{
		{"overlay", ovFrom, ovTo, ovAddr},
		{"bridge", brFrom, brTo, brAddr},
		{"underlay", h1.Namespace, h2.Namespace, h2.Addr},
	}
	var meters []meter
	for _, p := range paths {
		meters = append(meters, newMeter(b, p.from, p.to, netip.AddrPortFrom(p.addr, 5201)))
	}
	rates := make([][]float64, len(paths))
	b.SetBytes(throughputBytes * int64(len(paths)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, m := range meters {
			gbits, err := m.measure()
			if err != nil {
				b.Fatalf("%s: %v", paths[j].metric, err)
			}
			rates[j] = append(rates[j], gbits)
		}
	}
	b.StopTimer()
	medians := make([]float64, len(paths))
	for j, p := range paths {
		medians[j] = median(rates[j])
		b.ReportMetric(medians[j], p.metric+"-Gbit/s")
	}
	b.ReportMetric(medians[0]/medians[2], "overlay/underlay")
	b.ReportMetric(medians[0]/medians[1], "overlay/bridge")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// meter measures TCP throughput from one namespace to an address in
// another: measure carries throughputBytes once and returns the rate.
type meter interface {
	measure() (gbits float64, err error)
}

// newMeter starts a receiver at to in the namespace to: iperf3's server
// where iperf3 is installed, a Go receiver otherwise. A first round, not
// counted, waits for the receiver to serve.
func newMeter(b *testing.B, from, to *nettest.Namespace, at netip.AddrPort) meter {
	b.Helper()
	var m meter
	if bin, err := exec.LookPath("iperf3"); err == nil {
		m = startIperf(b, bin, from, to, at)
	} else {
		m = startGoMeter(b, from, to, at)
	}
	var err error
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		if _, err = m.measure(); err == nil {
			return m
		}
	}
	b.Fatalf("throughput to %s: %v", at, err)
	return nil
}

type iperfMeter struct {
	bin  string
	from *nettest.Namespace
	at   netip.AddrPort
}

func startIperf(b *testing.B, bin string, from, to *nettest.Namespace, at netip.AddrPort) meter {
	b.Helper()
	server := exec.Command(bin, "-s", "-B", at.Addr().String(), "-p", strconv.Itoa(int(at.Port())))
	server.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := to.Do(server.Start); err != nil {
		b.Fatalf("start iperf3's server at %s: %v", at, err)
	}
	b.Cleanup(func() { server.Process.Kill(); server.Wait() })
	return &iperfMeter{bin: bin, from: from, at: at}
}

func (m *iperfMeter) measure() (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.bin, "-J", "-c", m.at.Addr().String(), "-p", strconv.Itoa(int(m.at.Port())), "-n", strconv.Itoa(throughputBytes))
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := m.from.Do(cmd.Start); err != nil {
		return 0, err
	}
	err := cmd.Wait()
	var res struct {
		Error string
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		}
	}
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		return 0, errors.Join(err, jerr)
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	if err != nil {
		return 0, err
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// goMeter sends over one connection that it keeps; the receiver answers
// each round's last byte with one of its own, so a round ends when all of
// it has arrived.
type goMeter struct {
	from *nettest.Namespace
	at   netip.AddrPort
	conn net.Conn
	buf  []byte
}

func startGoMeter(b *testing.B, from, to *nettest.Namespace, at netip.AddrPort) meter {
	b.Helper()
	l, err := to.Listen("tcp", at.String())
	if err != nil {
		b.Fatalf("listen at %s: %v", at, err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					if _, err := io.CopyN(io.Discard, c, throughputBytes); err != nil {
						return
					}
					if _, err := c.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
		}
	}()
	m := &goMeter{from: from, at: at, buf: make([]byte, 1<<20)}
	b.Cleanup(func() {
		if m.conn != nil {
			m.conn.Close()
		}
	})
	return m
}

func (m *goMeter) measure() (float64, error) {
	if m.conn == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := m.from.Dial(ctx, "tcp", m.at.String())
		if err != nil {
			return 0, err
		}
		m.conn = c
	}
	m.conn.SetDeadline(time.Now().Add(time.Minute))
	start := time.Now()
	err := func() error {
		for sent := 0; sent < throughputBytes; sent += len(m.buf) {
			if _, err := m.conn.Write(m.buf); err != nil {
				return err
			}
		}
		_, err := io.ReadFull(m.conn, make([]byte, 1))
		return err
	}()
	if err != nil {
		m.conn.Close()
		m.conn = nil
		return 0, err
	}
	return throughputBytes * 8 / time.Since(start).Seconds() / 1e9, nil
}
