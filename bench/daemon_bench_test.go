package bench

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
)

func TestMain(m *testing.M) { nettest.Main(m) }

// BenchmarkNetworkCreateRemove: one network created from the default pools
// and removed again, through the API. Target: p50 under 10 ms.
func BenchmarkNetworkCreateRemove(b *testing.B) {
	h := nettest.NewHost(b)
	d := h.StartDaemon()
	ctx := context.Background()
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := d.Client.NetworkCreate(ctx, fmt.Sprintf("n%d", i), client.NetworkCreateOptions{})
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

// BenchmarkAttachDetach: a namespace connected to a bridge network and
// disconnected again, through the API, with 1, 100 and 500 other endpoints
// on the network. Targets: p50 under 5 ms; at 500 within 1.2x of at 1.
func BenchmarkAttachDetach(b *testing.B) {
	for _, existing := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("endpoints=%d", existing), func(b *testing.B) {
			h := nettest.NewHost(b)
			attachDetach(b, h, existing, client.NetworkCreateOptions{
				IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.100.0.0/16")}}},
			})
		})
	}
}

// BenchmarkMacvlanAttachDetach: the same on a macvlan network whose parent
// is the host's link to a LAN, to set next to the bridge figure.
func BenchmarkMacvlanAttachDetach(b *testing.B) {
	for _, existing := range []int{1, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", existing), func(b *testing.B) {
			h := nettest.NewHost(b)
			lan := h.AddLAN()
			attachDetach(b, h, existing, client.NetworkCreateOptions{
				Driver:  "macvlan",
				Options: map[string]string{"parent": lan.Parent},
				IPAM:    &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.77.0.0/16")}}},
			})
		})
	}
}

// attachDetach measures connect+disconnect of one namespace to network
// "app", created with opts, after existing other sandboxes joined it.
func attachDetach(b *testing.B, h *nettest.Host, existing int, opts client.NetworkCreateOptions) {
	d := h.StartDaemon()
	ctx := context.Background()
	if _, err := d.Client.NetworkCreate(ctx, "app", opts); err != nil {
		b.Fatal(err)
	}
	for i := range existing {
		name := fmt.Sprintf("filler%d", i)
		if _, err := d.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: name}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.API.ConnectSandbox(ctx, name, api.SandboxConnectRequest{Network: "app"}); err != nil {
			b.Fatal(err)
		}
	}
	ns := h.NewNamespace("measured")
	if _, err := d.API.CreateSandbox(ctx, api.SandboxCreateRequest{Name: "measured", Key: ns.Path}); err != nil {
		b.Fatal(err)
	}
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := d.API.ConnectSandbox(ctx, "measured", api.SandboxConnectRequest{Network: "app"}); err != nil {
			b.Fatal(err)
		}
		if err := d.API.DisconnectSandbox(ctx, "measured", api.SandboxDisconnectRequest{Network: "app"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	lat.Report(b)
}
