package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// TestHundredParallelRunsAndConnects runs 100 containers at once on one
// network, then connects all 100 at once to a network with room for 61:
// every address is handed out once, each request succeeds or fails with
// Docker's error and leaves nothing of itself, and removing everything
// leaves the host as it was.
func TestHundredParallelRunsAndConnects(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	baseline := kernelView(t, h)
	const n = 100
	subnet := func(s string) client.NetworkCreateOptions {
		return client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix(s)}}}}
	}
	create(t, d, "crowd", subnet("10.77.0.0/24"))
	// 62 hosts in a /26, one of them the gateway.
	create(t, d, "small", subnet("10.78.0.0/26"))
	const room = 61

	// Each goroutine is bounded by its context; the test waits for all.
	parallel := func(fn func(ctx context.Context, i int) error) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				errs[i] = fn(ctx, i)
			})
		}
		wg.Wait()
		return errs
	}
	name := func(i int) string { return fmt.Sprintf("p%d", i) }

	for i, err := range parallel(func(ctx context.Context, i int) error {
		res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name(i),
			Config:     &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "1000"}},
			HostConfig: &ctypes.HostConfig{NetworkMode: "crowd"}})
		if err != nil {
			return err
		}
		_, err = d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
		return err
	}) {
		if err != nil {
			t.Errorf("run %s: %v", name(i), err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	addrsOn := func(net string) map[string]string {
		out := map[string]string{}
		for _, c := range inspect(t, d, net).Containers {
			if other, dup := out[c.IPv4Address.String()]; dup {
				t.Errorf("%s and %s share %s on %s", c.Name, other, c.IPv4Address, net)
			}
			out[c.IPv4Address.String()] = c.Name
		}
		return out
	}
	crowd := addrsOn("crowd")
	if len(crowd) != n {
		t.Errorf("crowd has %d distinct addresses for %d containers", len(crowd), n)
	}
	// The lowest free first, nothing skipped: .2 to .101.
	for i := 2; i < 2+n; i++ {
		if _, ok := crowd[fmt.Sprintf("10.77.0.%d/24", i)]; !ok {
			t.Errorf("10.77.0.%d was not handed out", i)
			break
		}
	}

	errs := parallel(func(ctx context.Context, i int) error {
		_, err := d.Client.NetworkConnect(ctx, "small", client.NetworkConnectOptions{Container: name(i)})
		return err
	})
	var failed []int
	for i, err := range errs {
		switch {
		case err == nil:
		case errdefs.IsUnavailable(err) && strings.Contains(err.Error(), "no available IPv4 addresses on this network's address pools: small"):
			failed = append(failed, i)
		default:
			t.Errorf("connect %s: %v", name(i), err)
		}
	}
	if len(failed) != n-room {
		t.Errorf("%d connects failed, want %d", len(failed), n-room)
	}
	if got := addrsOn("small"); len(got) != room {
		t.Errorf("small has %d distinct addresses, want %d", len(got), room)
	}
	// A failed connect leaves the container as it was: on crowd alone,
	// one interface, running.
	for _, i := range failed {
		c := inspectContainer(t, d, name(i))
		if len(c.NetworkSettings.Networks) != 1 || c.NetworkSettings.Networks["crowd"] == nil || !c.State.Running {
			t.Errorf("%s after a failed connect: running %v on %v", name(i), c.State.Running, c.NetworkSettings.Networks)
		}
		if out, _, _ := execIn(t, d, c.ID, "ip", "-o", "link"); strings.Contains(out, "eth1") {
			t.Errorf("%s has a second interface after a failed connect:\n%s", name(i), out)
		}
	}
	checkStoreMatchesKernel(t, d, "after the connects")

	for i, err := range parallel(func(ctx context.Context, i int) error {
		_, err := d.Client.ContainerRemove(ctx, name(i), client.ContainerRemoveOptions{Force: true})
		return err
	}) {
		if err != nil {
			t.Errorf("rm -f %s: %v", name(i), err)
		}
	}
	for _, nw := range []string{"crowd", "small"} {
		if _, err := d.Client.NetworkRemove(ctxT(t), nw, client.NetworkRemoveOptions{}); err != nil {
			t.Errorf("network rm %s: %v", nw, err)
		}
	}
	// Retired bridges are kept as spares until no bridge has come or gone
	// for 10 s, then deleted.
	waitFor(t, 30*time.Second, func() error {
		if got := kernelView(t, h); got != baseline {
			return fmt.Errorf("after removing everything the host has\n%s\nwant\n%s", got, baseline)
		}
		return nil
	})
}
