package network

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-net/berth/ipam"
)

func TestARestartRestoresEverythingFromTheStore(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.5.0.0/24")}}})
	tb.sandbox("a")
	tb.sandbox("b")
	a := tb.connect("a", "app", EndpointOptions{Aliases: []string{"x"}})
	tb.connect("b", "app", EndpointOptions{})
	tb.connect("b", NameBridge, EndpointOptions{})

	tb.restart()
	d, err := tb.c.InspectNetwork("app")
	if err != nil || len(d.Endpoints) != 2 {
		t.Fatalf("app after a restart: %+v, %v", d.Endpoints, err)
	}
	sb, _ := tb.c.InspectSandbox("a")
	if len(sb.Endpoints) != 1 || sb.Endpoints[0].ID != a.ID || sb.Endpoints[0].Gateway != netip.MustParseAddr("10.5.0.1") {
		t.Errorf("a after a restart: %+v", sb.Endpoints)
	}
	// Addresses in use stay taken; interface numbering goes on.
	tb.sandbox("c")
	if ep := tb.connect("c", "app", EndpointOptions{}); ep.IPv4.String() != "10.5.0.4/24" {
		t.Errorf("new endpoint after a restart got %s", ep.IPv4)
	}
	if ep := tb.connect("a", NameBridge, EndpointOptions{}); ep.IfName != "eth1" {
		t.Errorf("a's next interface %s", ep.IfName)
	}
	// Devices the networks and endpoints use are wanted; nothing else.
	last := tb.kernel.wanted[len(tb.kernel.wanted)-1]
	if !last["br-app"] || !last[a.HostIfName] || len(last) != 5 {
		t.Errorf("wanted devices %v: br-bridge, br-app and the three host ends", last)
	}
}

func TestARestartRewiresWhatTheKernelLost(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{})
	tb.sandbox("a")
	tb.sandbox("b")
	a := tb.connect("a", "app", EndpointOptions{})
	b := tb.connect("b", "app", EndpointOptions{})
	tb.c.Close()
	tb.bridge.broken[a.ID] = true
	// b's interface is gone altogether.
	tb.bridge.mu.Lock()
	delete(tb.bridge.joined, b.ID)
	tb.bridge.mu.Unlock()
	tb.start()
	if tb.kernel.reaped == 0 {
		t.Error("nothing was reaped before re-wiring")
	}
	if d, _ := tb.c.InspectNetwork("app"); len(d.Endpoints) != 2 {
		t.Errorf("endpoints after rewiring %+v", d.Endpoints)
	}

	if !tb.bridge.joined[a.ID] || !tb.bridge.joined[b.ID] {
		t.Error("the lost endpoints were not joined again")
	}

	tb.c.Close()
	tb.bridge.mu.Lock()
	delete(tb.bridge.broken, a.ID)
	delete(tb.bridge.joined, b.ID)
	tb.bridge.mu.Unlock()
	tb.bridge.setFailure("Join", errInjected)
	tb.start()
	tb.bridge.setFailure("Join", nil)
	d, _ := tb.c.InspectNetwork("app")
	if len(d.Endpoints) != 1 || d.Endpoints[0].ID != a.ID {
		t.Errorf("an endpoint that could not be rewired stays: %+v", d.Endpoints)
	}
	if n := tb.records(bucketEndpoints); n != 1 {
		t.Errorf("%d endpoint records", n)
	}
}

func TestARestartForgetsWhatIsGone(t *testing.T) {
	tb := newTestbed(t)
	dir := t.TempDir()
	tb.cfg.NamespaceDir = dir
	tb.restart()
	tb.network("app", CreateOptions{})
	tb.sandbox("mine")
	tb.connect("mine", "app", EndpointOptions{})
	sb, err := tb.c.CreateSandbox(SandboxOptions{Name: "berths", Networks: []Attachment{{Network: "app"}}})
	if err != nil {
		t.Fatal(err)
	}
	tb.c.Close()
	// The caller's namespace went away while berthd was down, and a
	// mount point of no sandbox was left by a crash.
	tb.kernel.DeleteNamespace("/run/test/own/mine")
	stray := filepath.Join(dir, "0000stray")
	if err := os.WriteFile(stray, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tb.start()
	if names := sandboxNames(tb.c.Sandboxes()); names != "berths" {
		t.Errorf("sandboxes after a restart: %s", names)
	}
	if n := tb.records(bucketEndpoints); n != 1 {
		t.Errorf("%d endpoint records; the gone sandbox's endpoint must go", n)
	}
	if d, _ := tb.c.InspectNetwork("app"); len(d.Endpoints) != 1 || d.Endpoints[0].SandboxID != sb.ID {
		t.Errorf("app's endpoints %+v", d.Endpoints)
	}
	if tb.kernel.exists(stray) {
		t.Error("the stray namespace was not removed")
	}

	// A network whose driver is gone is left alone, not dropped.
	tb.c.Close()
	tb.cfg.Drivers = stateless()
	tb.start()
	if _, err := tb.c.LookupNetwork("app"); err == nil {
		t.Error("a network of a missing driver is served")
	}
	if n := tb.records(bucketNetworks); n != 4 {
		t.Errorf("%d network records; networks of a missing driver are kept", n)
	}
}

func TestTwoDriversOfOneNameAreRefused(t *testing.T) {
	tb := newTestbed(t)
	tb.cfg.Drivers = append(tb.cfg.Drivers, bridgeLike("bridge"))
	if _, err := New(tb.cfg); err == nil {
		t.Fatal("a controller with two bridge drivers")
	}
}
