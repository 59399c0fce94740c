package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/ipam"
)

// fakeOverlay is a fake of a global driver: a VNI per network, claimed in
// the cluster, and the peers the controller tells it of.
type fakeOverlay struct {
	*fakeDriver
	pmu   sync.Mutex
	peers map[string]map[string]driver.Peer // network ID → endpoint ID
}

func newFakeOverlay() *fakeOverlay {
	d := newFakeDriver("overlay", driver.Capabilities{Scope: driver.ScopeGlobal, Addresses: true, Sharing: driver.Shares})
	d.describe = func(nw *driver.Network) driver.NetworkInfo {
		return driver.NetworkInfo{
			Firewall: &driver.Firewall{Device: "ov-" + nw.Name, Masquerade: !nw.Internal},
			Claims:   []string{fmt.Sprintf("vni/%d", vniOf(nw))},
		}
	}
	return &fakeOverlay{fakeDriver: d, peers: map[string]map[string]driver.Peer{}}
}

func vniOf(nw *driver.Network) int {
	var st struct{ VNI int }
	json.Unmarshal(nw.State, &st)
	return st.VNI
}

func (o *fakeOverlay) Prepare(nw *driver.Network, existing []*driver.Network) (json.RawMessage, error) {
	used := map[int]bool{}
	for _, e := range existing {
		used[vniOf(e)] = true
	}
	vni := 4096
	for used[vni] {
		vni++
	}
	return json.Marshal(map[string]int{"VNI": vni})
}

func (o *fakeOverlay) AddPeer(nw *driver.Network, p driver.Peer) error {
	o.pmu.Lock()
	defer o.pmu.Unlock()
	if o.peers[nw.ID] == nil {
		o.peers[nw.ID] = map[string]driver.Peer{}
	}
	o.peers[nw.ID][p.EndpointID] = p
	return nil
}

func (o *fakeOverlay) RemovePeer(nw *driver.Network, p driver.Peer) error {
	o.pmu.Lock()
	defer o.pmu.Unlock()
	delete(o.peers[nw.ID], p.EndpointID)
	return nil
}

func (o *fakeOverlay) SetPeers(nw *driver.Network, peers []driver.Peer) error {
	o.pmu.Lock()
	defer o.pmu.Unlock()
	o.peers[nw.ID] = map[string]driver.Peer{}
	for _, p := range peers {
		o.peers[nw.ID][p.EndpointID] = p
	}
	return nil
}

// peer finds a peer the driver was told of, on any network.
func (o *fakeOverlay) peer(id string) (driver.Peer, bool) {
	o.pmu.Lock()
	defer o.pmu.Unlock()
	for _, peers := range o.peers {
		if p, ok := peers[id]; ok {
			return p, true
		}
	}
	return driver.Peer{}, false
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// twoHosts are two controllers on fakes sharing an etcd: the first runs
// it embedded, the second reaches it as a client.
func twoHosts(t *testing.T) (a, b *testbed, oa, ob *fakeOverlay) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := freePort(t)
	sa, err := cluster.Open(ctx, cluster.Config{
		Embedded: true, DataDir: t.TempDir(), ClientPort: client, PeerPort: freePort(t),
		Advertise: netip.MustParseAddr("127.0.0.1"), HostID: "host-a", Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sa.Close)
	sb, err := cluster.Open(ctx, cluster.Config{
		Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", client)},
		Advertise: netip.MustParseAddr("127.0.0.2"), HostID: "host-b", Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	oa, ob = newFakeOverlay(), newFakeOverlay()
	return newTestbedIn(t, sa, oa), newTestbedIn(t, sb, ob), oa, ob
}

// eventually waits at most 2 s, the bound for hosts to agree.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 2 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGlobalNetworksNeedAClusterStore(t *testing.T) {
	tb := newTestbed(t, newFakeOverlay())
	_, err := tb.c.CreateNetwork(CreateOptions{Name: "ov", Driver: "overlay"})
	if err == nil || !strings.Contains(err.Error(), "--cluster-store") || !errdefs.IsUnavailable(err) {
		t.Fatalf("create without a cluster store: %v", err)
	}
	if len(tb.c.Networks()) != 3 {
		t.Errorf("networks after the refusal: %v", tb.c.Networks())
	}
}

func TestGlobalNetworksSpanHosts(t *testing.T) {
	a, b, oa, ob := twoHosts(t)
	ov := a.network("ov", CreateOptions{Driver: "overlay"})
	if ov.Scope != "swarm" || ov.IPAM.Pools[0].Subnet.String() != "10.0.0.0/24" {
		t.Fatalf("created %+v", ov)
	}
	eventually(t, "host b lists ov", func() bool {
		ref, err := b.c.LookupNetwork("ov")
		return err == nil && ref.ID == ov.ID
	})
	ob.mu.Lock()
	madeOnB := ob.networks[ov.ID]
	ob.mu.Unlock()
	if !madeOnB {
		t.Error("host b did not create ov's kernel state")
	}
	// The second network, from the other host, gets the next subnet and
	// VNI; the name is taken everywhere.
	ov2 := b.network("ov2", CreateOptions{Driver: "overlay"})
	if got := ov2.IPAM.Pools[0].Subnet.String(); got != "10.0.1.0/24" {
		t.Errorf("ov2's subnet %s", got)
	}
	if _, err := b.c.CreateNetwork(CreateOptions{Name: "ov", Driver: "overlay"}); !errdefs.IsConflict(err) {
		t.Errorf("ov again on b: %v", err)
	}
	eventually(t, "host a lists ov2", func() bool { _, err := a.c.LookupNetwork("ov2"); return err == nil })
	d2, _ := a.c.InspectNetwork("ov2")
	if vniOf(driverNetwork(&d2.Network)) != 4097 {
		t.Errorf("ov2's VNI as host a sees it: %d", vniOf(driverNetwork(&d2.Network)))
	}

	// Endpoints on both hosts: distinct addresses, each host's driver
	// told of the other's, names across hosts.
	if _, err := a.c.CreateSandbox(container("web", "ov")); err != nil {
		t.Fatal(err)
	}
	web, _ := a.c.InspectSandbox("web")
	eventually(t, "host b told of web", func() bool { _, ok := ob.peer(web.Endpoints[0].ID); return ok })
	if p, _ := ob.peer(web.Endpoints[0].ID); p.Host.String() != "127.0.0.1" || p.IPv4.String() != "10.0.0.2/24" || p.MAC.String() != web.Endpoints[0].MAC {
		t.Errorf("web as host b's peer: %+v", p)
	}
	if _, err := b.c.CreateSandbox(container("client", "ov")); err != nil {
		t.Fatal(err)
	}
	cl, _ := b.c.InspectSandbox("client")
	if got := cl.Endpoints[0].IPv4.String(); got != "10.0.0.3/24" {
		t.Errorf("client's address %s", got)
	}
	eventually(t, "host a told of client", func() bool { _, ok := oa.peer(cl.Endpoints[0].ID); return ok })
	if got := ask(t, b, "client", "web"); strings.Join(got, ",") != "10.0.0.2" {
		t.Errorf("web from client on the other host: %v", got)
	}
	if got := ask(t, a, "web", "client.ov"); strings.Join(got, ",") != "10.0.0.3" {
		t.Errorf("client.ov from web on the other host: %v", got)
	}

	// Removal is refused on any host while one has an endpoint.
	var active *activeEndpointsError
	if err := b.c.DeleteNetwork("ov"); !errors.As(err, &active) {
		t.Errorf("remove ov on b while a has web: %v", err)
	}
	if err := a.c.DeleteSandbox("web", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "host b forgets web", func() bool { _, ok := ob.peer(web.Endpoints[0].ID); return !ok })
	if got := ask(t, b, "client", "web"); len(got) != 0 {
		t.Errorf("web from client after web left: %v", got)
	}
	if err := a.c.DeleteNetwork("ov"); !errors.As(err, &active) {
		t.Errorf("remove ov on a while b has client: %v", err)
	}
	if err := b.c.DeleteSandbox("client", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "host a forgets client", func() bool { _, ok := oa.peer(cl.Endpoints[0].ID); return !ok })
	if err := a.c.DeleteNetwork("ov"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "host b drops ov", func() bool { _, err := b.c.LookupNetwork("ov"); return err != nil })
	ob.mu.Lock()
	stillOnB := ob.networks[ov.ID]
	ob.mu.Unlock()
	if stillOnB {
		t.Error("host b kept ov's kernel state")
	}
	// Its name and subnet are free again.
	again := b.network("ov", CreateOptions{Driver: "overlay"})
	if got := again.IPAM.Pools[0].Subnet.String(); got != "10.0.0.0/24" {
		t.Errorf("ov again: %s", got)
	}
}

func TestGlobalCreatesAndJoinsRaceAcrossHosts(t *testing.T) {
	a, b, _, _ := twoHosts(t)
	// Two hosts create networks at once: one name wins once, and
	// automatic subnets never collide.
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		for h, tb := range []*testbed{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[2*i+h] = tb.c.CreateNetwork(CreateOptions{Name: fmt.Sprintf("net%d", i), Driver: "overlay"})
			}()
		}
	}
	wg.Wait()
	for i := range n {
		ok := 0
		for _, err := range errs[2*i : 2*i+2] {
			if err == nil {
				ok++
			} else if !errdefs.IsConflict(err) {
				t.Errorf("net%d: %v", i, err)
			}
		}
		if ok != 1 {
			t.Errorf("net%d created %d times", i, ok)
		}
	}
	eventually(t, "both hosts list every network", func() bool {
		return len(a.c.Networks()) == 3+n && len(b.c.Networks()) == 3+n
	})
	subnets := map[string]string{}
	for _, nw := range a.c.Networks() {
		if nw.Scope != "swarm" {
			continue
		}
		s := nw.IPAM.Pools[0].Subnet.String()
		if other, dup := subnets[s]; dup {
			t.Errorf("%s and %s both have %s", other, nw.Name, s)
		}
		subnets[s] = nw.Name
	}

	// Sandboxes join one network on both hosts at once: every address
	// once.
	const per = 8
	addrs := make(chan string, 2*per)
	for h, tb := range []*testbed{a, b} {
		for i := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("s%d-%d", h, i)
				tb.kernel.addNamespace("/run/test/own/" + name)
				sb, err := tb.c.CreateSandbox(SandboxOptions{Name: name, Key: "/run/test/own/" + name,
					Networks: []Attachment{{Network: "net0"}}})
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				addrs <- sb.Endpoints[0].IPv4.String()
			}()
		}
	}
	wg.Wait()
	close(addrs)
	seen := map[string]bool{}
	for a := range addrs {
		if seen[a] {
			t.Errorf("%s given twice", a)
		}
		seen[a] = true
	}
	if len(seen) != 2*per {
		t.Errorf("%d addresses for %d sandboxes", len(seen), 2*per)
	}
}

func TestAHostRestartTakesItsEndpointsBack(t *testing.T) {
	a, b, oa, ob := twoHosts(t)
	a.network("ov", CreateOptions{Driver: "overlay", IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.9.0.0/24")}}})
	if _, err := a.c.CreateSandbox(container("web", "ov")); err != nil {
		t.Fatal(err)
	}
	web, _ := a.c.InspectSandbox("web")
	eventually(t, "host b told of web", func() bool { _, ok := ob.peer(web.Endpoints[0].ID); return ok })
	a.restart()
	if _, ok := ob.peer(web.Endpoints[0].ID); !ok {
		t.Error("host b lost web over host a's restart")
	}
	// The address stays web's: b's next sandbox gets another.
	eventually(t, "host b lists ov", func() bool { _, err := b.c.LookupNetwork("ov"); return err == nil })
	if _, err := b.c.CreateSandbox(container("client", "ov")); err != nil {
		t.Fatal(err)
	}
	cl, _ := b.c.InspectSandbox("client")
	if cl.Endpoints[0].IPv4 == web.Endpoints[0].IPv4 {
		t.Errorf("client got web's address %s", cl.Endpoints[0].IPv4)
	}
	if got := ask(t, b, "client", "web"); strings.Join(got, ",") != web.Endpoints[0].IPv4.Addr().String() {
		t.Errorf("web from client after host a's restart: %v", got)
	}
	// A peer that leaves while host a is down is gone from its driver
	// after its start, though its kernel (the fake) kept it.
	eventually(t, "host a told of client", func() bool { _, ok := oa.peer(cl.Endpoints[0].ID); return ok })
	a.c.Close()
	if err := b.c.DeleteSandbox("client", false); err != nil {
		t.Fatal(err)
	}
	if _, ok := oa.peer(cl.Endpoints[0].ID); !ok {
		t.Fatal("the stopped host a heard of client's leaving")
	}
	a.start()
	if _, ok := oa.peer(cl.Endpoints[0].ID); ok {
		t.Error("host a still has client as a peer after its start")
	}
}
