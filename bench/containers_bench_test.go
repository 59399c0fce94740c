package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// containerDaemon is a test host with berthd, the busybox image and a
// user-defined network "app".
func containerDaemon(b *testing.B) *nettest.Daemon {
	b.Helper()
	tar := nettest.BusyboxImage(b)
	h := nettest.NewHost(b)
	d := h.StartDaemon()
	ctx := context.Background()
	f, err := os.Open(tar)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	res, err := d.Client.ImageImport(ctx, client.ImageImportSource{Source: f, SourceName: "-"}, "busybox", client.ImageImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var sink bytes.Buffer
	sink.ReadFrom(res)
	res.Close()
	if _, err := d.Client.NetworkCreate(ctx, "app", client.NetworkCreateOptions{}); err != nil {
		b.Fatal(err)
	}
	return d
}

// runDetached is `berth run -d`: create and start, returning when the
// container runs.
func runDetached(ctx context.Context, d *nettest.Daemon, name, network string) (string, error) {
	res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}},
		HostConfig: &ctypes.HostConfig{NetworkMode: ctypes.NetworkMode(network)},
	})
	if err != nil {
		return "", err
	}
	_, err = d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
	return res.ID, err
}

// BenchmarkRunDetached: create + start to running, with no network and on a
// bridge network; the difference of the two is the network's share of
// `run`. Target: network share under 5 ms.
func BenchmarkRunDetached(b *testing.B) {
	for _, network := range []string{"none", "app"} {
		b.Run("network="+network, func(b *testing.B) {
			d := containerDaemon(b)
			ctx := context.Background()
			var lat Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := runDetached(ctx, d, fmt.Sprintf("c%d", i), network); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkContainerConnectDisconnect: network connect + disconnect of a
// running container through the API. Target: p50 under 5 ms.
func BenchmarkContainerConnectDisconnect(b *testing.B) {
	d := containerDaemon(b)
	ctx := context.Background()
	if _, err := d.Client.NetworkCreate(ctx, "other", client.NetworkCreateOptions{}); err != nil {
		b.Fatal(err)
	}
	id, err := runDetached(ctx, d, "web", "app")
	if err != nil {
		b.Fatal(err)
	}
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := d.Client.NetworkConnect(ctx, "other", client.NetworkConnectOptions{Container: id}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Client.NetworkDisconnect(ctx, "other", client.NetworkDisconnectOptions{Container: id}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.Report(b)
}

// BenchmarkStart200Containers: 200 containers on a bridge network started
// one after another. Target: under 15 s in all.
func BenchmarkStart200Containers(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := containerDaemon(b)
		ctx := context.Background()
		b.StartTimer()
		start := time.Now()
		for j := range 200 {
			if _, err := runDetached(ctx, d, fmt.Sprintf("c%d", j), "app"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/200")
	}
}
