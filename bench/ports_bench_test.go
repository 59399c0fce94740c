package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
)

// ports publishes container ports first..first+n-1 on the same host ports.
func ports(first, n int) network.PortMap {
	m := network.PortMap{}
	for p := first; p < first+n; p++ {
		m[network.MustParsePort(fmt.Sprintf("%d/tcp", p))] = []network.PortBinding{{HostPort: fmt.Sprint(p)}}
	}
	return m
}

func runPublishing(ctx context.Context, d *nettest.Daemon, name string, pm network.PortMap) (string, error) {
	res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}},
		HostConfig: &ctypes.HostConfig{NetworkMode: "app", PortBindings: pm},
	})
	if err != nil {
		return "", err
	}
	_, err = d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
	return res.ID, err
}

// BenchmarkStartWithPublishedPorts: container start with no port, with 32
// ports, and with one port while 1,000 are already published. Target: the
// latter two within 1.5x of the first.
func BenchmarkStartWithPublishedPorts(b *testing.B) {
	for _, c := range []struct {
		name     string
		existing int
		ports    int
	}{{"ports=0", 0, 0}, {"ports=32", 0, 32}, {"ports=1,published=1000", 1000, 1}} {
		b.Run(c.name, func(b *testing.B) {
			d := containerDaemon(b)
			ctx := context.Background()
			for i := 0; i < c.existing/100; i++ {
				if _, err := runPublishing(ctx, d, fmt.Sprintf("filler%d", i), ports(10000+100*i, 100)); err != nil {
					b.Fatal(err)
				}
			}
			var lat Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pm := network.PortMap{}
				if c.ports > 0 {
					pm = ports(20000+i*c.ports, c.ports)
				}
				start := time.Now()
				if _, err := runPublishing(ctx, d, fmt.Sprintf("c%d", i), pm); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkRestartWith1000PublishedPorts: berthd killed and started again
// with 1,000 published ports, to answering with a correct table. Target:
// under 1 s.
func BenchmarkRestartWith1000PublishedPorts(b *testing.B) {
	d := containerDaemon(b)
	ctx := context.Background()
	for i := range 10 {
		if _, err := runPublishing(ctx, d, fmt.Sprintf("filler%d", i), ports(10000+100*i, 100)); err != nil {
			b.Fatal(err)
		}
	}
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d.Kill()
		b.StartTimer()
		start := time.Now()
		d.Start()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.Report(b)
}

// BenchmarkPublishedPortThroughput: TCP throughput from the host to a
// container through 127.0.0.1 and a published port, against straight to the
// container's address, in one run. Target: ratio at least 0.95 (Docker's
// userland proxy: 0.71 here).
func BenchmarkPublishedPortThroughput(b *testing.B) {
	d := containerDaemon(b)
	ctx := context.Background()
	id, err := runPublishing(ctx, d, "sink", ports(5201, 1))
	if err != nil {
		b.Fatal(err)
	}
	in, err := d.Client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	discardServer(b, nettest.OpenNamespace(b, in.Container.NetworkSettings.SandboxKey), ":5201")
	ip := in.Container.NetworkSettings.Networks["app"].IPAddress.String()
	rate := func(addr string) float64 { return throughput(b, d.Host.Namespace, addr, 2<<30) }
	var direct, published float64
	for i := 0; i < b.N; i++ {
		direct += rate(ip + ":5201")
		published += rate("127.0.0.1:5201")
	}
	b.ReportMetric(direct/float64(b.N), "direct-Gbit/s")
	b.ReportMetric(published/float64(b.N), "published-Gbit/s")
	b.ReportMetric(published/direct, "ratio")
}

// BenchmarkPublishedPortThroughputIPv6: TCP throughput from the host to a
// dual-stack container's published port through [::1] (berthd's
// forwarder: the kernel cannot carry ::1 to another namespace) and
// through the host's own IPv6 address (the kernel's translation), each
// against straight to the container's IPv6 address, the three taking
// turns. No target: the figures show what the forwarder costs next to the
// kernel's path.
func BenchmarkPublishedPortThroughputIPv6(b *testing.B) {
	h := nettest.NewHost(b)
	d := h.StartDaemon()
	remote := h.AddRemote()
	remote.AddIPv6()
	ctx := context.Background()
	v6 := true
	if _, err := d.Client.NetworkCreate(ctx, "dual", client.NetworkCreateOptions{EnableIPv6: &v6, IPAM: &network.IPAM{Config: []network.IPAMConfig{
		{Subnet: netip.MustParsePrefix("10.70.0.0/24")}, {Subnet: netip.MustParsePrefix("fd00:70::/64")},
	}}}); err != nil {
		b.Fatal(err)
	}
	sink := h.NewNamespace("sink")
	discardServer(b, sink, ":5201")
	if _, err := d.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: "sink", Key: sink.Path}); err != nil {
		b.Fatal(err)
	}
	ep, err := d.API.ConnectSandbox(ctx, "sink", api.SandboxConnectRequest{Network: "dual", PortBindings: ports(5201, 1)})
	if err != nil {
		b.Fatal(err)
	}
	rate := func(addr string) float64 { return throughput(b, h.Namespace, addr, 1<<30) }
	direct := netip.AddrPortFrom(ep.GlobalIPv6Address, 5201).String()
	hostAddr := netip.AddrPortFrom(remote.HostAddr6, 5201).String()
	var toDirect, toLoopback, toHost float64
	for i := 0; i < b.N; i++ {
		toDirect += rate(direct)
		toLoopback += rate("[::1]:5201")
		toHost += rate(hostAddr)
	}
	n := float64(b.N)
	b.ReportMetric(toDirect/n, "direct-Gbit/s")
	b.ReportMetric(toLoopback/n, "loopback6-Gbit/s")
	b.ReportMetric(toHost/n, "hostaddr6-Gbit/s")
	b.ReportMetric(toLoopback/toDirect, "loopback6-ratio")
	b.ReportMetric(toHost/toDirect, "hostaddr6-ratio")
}

// discardServer reads and drops whatever connections to addr, in ns,
// bring, until the benchmark ends.
func discardServer(b *testing.B, ns *nettest.Namespace, addr string) {
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
}

// throughput sends size bytes on one TCP connection from ns to addr and
// returns the rate in Gbit/s.
func throughput(b *testing.B, ns *nettest.Namespace, addr string, size int) float64 {
	var conn net.Conn
	if err := ns.Do(func() (err error) { conn, err = net.Dial("tcp", addr); return err }); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	return float64(size) * 8 / time.Since(start).Seconds() / 1e9
}
