package network

import (
	"net/netip"
	"testing"
	"time"

	"github.com/berth-net/berth/ipam"
)

func TestUsageCountsAddressesAndExhaustionAndObserveSeesEveryOperation(t *testing.T) {
	type op struct {
		name, driver string
		failed       bool
	}
	var seen []op
	tb := newTestbed(t)
	tb.c.observer = func(name, driver string, took time.Duration, failed bool) {
		if took < 0 {
			t.Errorf("%s took %v", name, took)
		}
		seen = append(seen, op{name, driver, failed})
	}
	// A /30: the gateway and one container.
	tb.network("tiny", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.9.0.0/30")}}})
	tb.sandbox("a")
	tb.sandbox("b")
	if _, _, err := tb.c.Connect("a", "tiny", EndpointOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tb.c.Connect("b", "tiny", EndpointOptions{}); err == nil {
		t.Fatal("a third address from a /30")
	}
	if _, err := tb.c.Disconnect("a", "tiny", nil); err != nil {
		t.Fatal(err)
	}

	pools, exhausted := tb.c.Usage()
	var tiny *PoolUsage
	for i := range pools {
		if pools[i].Network == "tiny" {
			tiny = &pools[i]
		}
	}
	if tiny == nil || tiny.Used != 1 || tiny.Capacity != 2 || tiny.Subnet != netip.MustParsePrefix("10.9.0.0/30") {
		t.Errorf("tiny's pool: %+v, want 1 of 2 used (the gateway)", tiny)
	}
	if exhausted["tiny"] != 1 || len(exhausted) != 1 {
		t.Errorf("exhausted: %v, want tiny once", exhausted)
	}
	// The driver's join and leave are told within the attach and detach
	// they belong to; the attach that failed on the pool never reached it.
	want := []op{{"create", "bridge", false}, {"join", "bridge", false}, {"attach", "bridge", false}, {"attach", "bridge", true}, {"leave", "bridge", false}, {"detach", "bridge", false}}
	if len(seen) != len(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("operation %d: %v, want %v", i, seen[i], want[i])
		}
	}
}
