package network

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/berth-net/berth/driver"
)

func TestASlowKernelCallOnOneNetworkDoesNotStallAnother(t *testing.T) {
	slow := newFakeDriver("slow", driver.Capabilities{Scope: driver.ScopeLocal, Addresses: true})
	slow.blockJoin, slow.entered, slow.release = "slow", make(chan struct{}), make(chan struct{})
	tb := newTestbed(t, slow)
	for _, name := range []string{"slow", "fast"} {
		tb.network(name, CreateOptions{Driver: "slow"})
	}
	for _, name := range []string{"a", "b", "c"} {
		tb.sandbox(name)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, _, err := tb.c.Connect("a", "slow", EndpointOptions{}); err != nil {
			t.Errorf("connect to slow: %v", err)
		}
	}()
	<-slow.entered
	// While a's attach sits in the kernel, everything else goes on.
	done := make(chan error, 1)
	go func() {
		if _, _, err := tb.c.Connect("b", "fast", EndpointOptions{}); err != nil {
			done <- err
			return
		}
		if _, err := tb.c.CreateNetwork(CreateOptions{Name: "more", Driver: "slow"}); err != nil {
			done <- err
			return
		}
		if _, err := tb.c.InspectNetwork("slow"); err != nil {
			done <- err
			return
		}
		_, _, err := tb.c.Connect("c", "fast", EndpointOptions{IPv4: netip.Addr{}})
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
	close(slow.release)
	wg.Wait()
	if d, err := tb.c.InspectNetwork("slow"); err != nil || len(d.Endpoints) != 1 {
		t.Fatalf("slow network after the attach finished: %+v, %v", d.Endpoints, err)
	}
}
