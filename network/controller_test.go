package network

import (
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/store"
)

func TestMain(m *testing.M) { nettest.Main(m) }

// slowDriver is a driver without kernel state whose Join blocks, for the
// network named slow, until released.
type slowDriver struct {
	driver.Stateless
	entered chan struct{}
	release chan struct{}
}

func (slowDriver) NeedsAddresses() bool { return true }

func (d slowDriver) Join(nw *driver.Network, _ *driver.Endpoint, _ *netdev.Namespace) error {
	if nw.Name == "slow" {
		d.entered <- struct{}{}
		<-d.release
	}
	return nil
}

func TestASlowKernelCallOnOneNetworkDoesNotStallAnother(t *testing.T) {
	drv := slowDriver{Stateless: driver.Stateless{DriverName: "slow"}, entered: make(chan struct{}), release: make(chan struct{})}
	c, err := New(Config{
		Store: store.NewMemory(), Drivers: []driver.Driver{drv}, Pools: ipam.DefaultLocalPools(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"slow", "fast"} {
		if _, err := c.CreateNetwork(CreateOptions{Name: name, Driver: "slow"}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c"} {
		ns := nettest.NewNamespace(t, dir, name)
		if _, err := c.CreateSandbox(SandboxOptions{Name: name, Key: ns.Path}); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := c.Connect("a", "slow", EndpointOptions{}); err != nil {
			t.Errorf("connect to slow: %v", err)
		}
	}()
	<-drv.entered
	// While a's attach sits in the kernel, everything else goes on.
	done := make(chan error, 1)
	go func() {
		if _, err := c.Connect("b", "fast", EndpointOptions{}); err != nil {
			done <- err
			return
		}
		if _, err := c.CreateNetwork(CreateOptions{Name: "more", Driver: "slow"}); err != nil {
			done <- err
			return
		}
		if _, err := c.InspectNetwork("slow"); err != nil {
			done <- err
			return
		}
		_, err := c.Connect("c", "fast", EndpointOptions{IPv4: netip.Addr{}})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("work on other networks waited for the slow attach")
	}
	close(drv.release)
	wg.Wait()
	if d, err := c.InspectNetwork("slow"); err != nil || len(d.Endpoints) != 1 {
		t.Fatalf("slow network after the attach finished: %+v, %v", d.Endpoints, err)
	}
}
