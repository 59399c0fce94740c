package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/miekg/dns"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// Multi-host overlay networks (issue 15): hosts joined by an underlay
// (nettest.NewCluster), the first running the embedded etcd member and the
// others joining it, unless the test asks for an external etcd.

// clusterPool is where overlay networks take their subnets by default, in
// /24s, as Docker's swarm.
var clusterPool = netip.MustParsePrefix("10.0.0.0/8")

// overlayCluster is a cluster of n hosts with the busybox image on each.
func overlayCluster(t *testing.T, n int, opts ...nettest.ClusterOption) *nettest.Cluster {
	t.Helper()
	nettest.BusyboxImage(t)
	c := nettest.NewCluster(t, n, opts...)
	c.ImportBusybox()
	return c
}

// berth runs the berth CLI against d.
func berth(t *testing.T, d *nettest.Daemon, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, code, err := d.Run(ctxT(t), "", berthCLIPath(t), args...)
	if err != nil {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return stdout, stderr, code
}

// berthOK runs the berth CLI and fails the test unless it succeeds; it
// returns the first line of the output (an ID, for run and create).
func berthOK(t *testing.T, d *nettest.Daemon, args ...string) string {
	t.Helper()
	stdout, stderr, code := berth(t, d, args...)
	if code != 0 {
		t.Fatalf("berth %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	first, _, _ := strings.Cut(stdout, "\n")
	return first
}

// onEveryHost polls until check holds on every host, within limit.
func onEveryHost(t *testing.T, c *nettest.Cluster, limit time.Duration, check func(i int, d *nettest.Daemon) error) {
	t.Helper()
	waitFor(t, limit, func() error {
		for i, h := range c.Hosts {
			if err := check(i, h.Daemon); err != nil {
				return fmt.Errorf("host %d: %w", i+1, err)
			}
		}
		return nil
	})
}

// listedAs checks that d lists the network name with the ID id (any ID
// when id is "").
func listedAs(d *nettest.Daemon, name, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := d.Client.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return err
	}
	if id != "" && res.Network.ID != id {
		return fmt.Errorf("%s has the ID %s, want %s", name, res.Network.ID, id)
	}
	return nil
}

// gone checks that d no longer knows the network name.
func gone(d *nettest.Daemon, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := d.Client.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err == nil {
		return fmt.Errorf("%s is still listed", name)
	}
	if !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// overlayAddr is a container's address on a network.
func overlayAddr(t *testing.T, d *nettest.Daemon, id, net string) netip.Addr {
	t.Helper()
	ep := inspectContainer(t, d, id).NetworkSettings.Networks[net]
	if ep == nil || !ep.IPAddress.IsValid() {
		t.Fatalf("container %s has no address on %s", id, net)
	}
	return ep.IPAddress
}

// resolve asks the resolver of the container whose namespace is ns for
// name's IPv4 addresses.
func resolve(ns *nettest.Namespace, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	var resp *dns.Msg
	err := ns.Do(func() (err error) {
		c := &dns.Client{Timeout: 2 * time.Second}
		resp, _, err = c.Exchange(m, "127.0.0.11:53")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", name, err)
	}
	// A name that is no container's goes to the hosts' upstream, where
	// nothing answers (see nettest.NewCluster): SERVFAIL, and no answer.
	return answers(resp), nil
}

// resolvesTo checks that name resolves to want, and only to want.
func resolvesTo(ns *nettest.Namespace, name string, want netip.Addr) error {
	got, err := resolve(ns, name)
	if err != nil {
		return err
	}
	if strings.Join(got, ",") != want.String() {
		return fmt.Errorf("%s resolves to %v, want %s", name, got, want)
	}
	return nil
}

// httpServer serves body on every path at addr inside ns.
func httpServer(t *testing.T, ns *nettest.Namespace, addr, body string) {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }), ReadHeaderTimeout: 5 * time.Second}
	t.Cleanup(func() { srv.Close() })
	go srv.Serve(l)
}

// wgetFrom fetches url with busybox wget inside the container id.
func wgetFrom(t *testing.T, d *nettest.Daemon, id, url string) (string, error) {
	t.Helper()
	// Not with -T: Debian 12's busybox wget crashes with it.
	out, stderr, code := execIn(t, d, id, "wget", "-qO-", url)
	if code != 0 {
		return "", fmt.Errorf("wget %s: exit %d: %s", url, code, stderr)
	}
	return out, nil
}

// bulkRoundTrip sends size bytes from ns to an echo server at addr and
// checks they all come back: full-sized segments cross the path, which a
// path with a wrong MTU does not let through.
func bulkRoundTrip(ns *nettest.Namespace, addr string, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sent := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	n, err := io.Copy(io.Discard, c)
	if werr := <-sent; werr != nil {
		return fmt.Errorf("send %d bytes to %s: %w", size, addr, werr)
	}
	if err != nil || n != int64(size) {
		return fmt.Errorf("%d of %d bytes came back from %s: %v", n, size, addr, err)
	}
	return nil
}

func TestThreeHostsFormOneClusterOverTheUnderlay(t *testing.T) {
	t.Parallel()
	c := nettest.NewCluster(t, 3)
	checkClusterFormed(t, c, "embedded etcd member at 192.168.100.10:2379", "etcd at 192.168.100.10:2379")

	// The underlay carries the hosts' traffic, and a host unplugged from it
	// is cut off until it is plugged in again.
	h1, h3 := c.Hosts[0], c.Hosts[2]
	echoServer(t, h1.Namespace, h1.Addr.String()+":7000")
	if err := roundTrip(h3.Namespace, h1.Addr.String()+":7000"); err != nil {
		t.Fatalf("host 3 to host 1 over the underlay: %v", err)
	}
	peerServer(t, c.Underlay.Namespace, c.Outside.String()+":7000")
	if got, err := askPeer(h3.Namespace, c.Outside.String()+":7000"); err != nil || got != h3.Addr.String() {
		t.Errorf("host 3 to the outside through its default route: %q, %v", got, err)
	}
	h3.Unplug()
	if err := roundTrip(h3.Namespace, h1.Addr.String()+":7000"); err == nil {
		t.Errorf("host 3 reaches host 1 while unplugged")
	}
	h3.Plug()
	waitFor(t, 5*time.Second, func() error { return roundTrip(h3.Namespace, h1.Addr.String()+":7000") })
}

func TestHostsFormOneClusterOnAnExternalEtcd(t *testing.T) {
	t.Parallel()
	c := nettest.NewCluster(t, 2, nettest.ExternalEtcd())
	checkClusterFormed(t, c, "etcd at 192.168.100.2:2379", "etcd at 192.168.100.2:2379")
}

// checkClusterFormed checks that every host's berthd answers, opened the
// store it was given (the first host's described as first, the others' as
// others) and is registered in it under its /info ID and its address.
func checkClusterFormed(t *testing.T, c *nettest.Cluster, first, others string) {
	t.Helper()
	want := map[string]netip.Addr{}
	for i, h := range c.Hosts {
		info, err := h.Daemon.Client.Info(ctxT(t), client.InfoOptions{})
		if err != nil {
			t.Fatalf("host %d's /info: %v", i+1, err)
		}
		want[info.Info.ID] = h.Addr
		store := others
		if i == 0 {
			store = first
		}
		if log := h.Daemon.Log(); !strings.Contains(log, `msg="cluster store open" store="`+store+`"`) {
			t.Errorf("host %d's log does not say it opened the cluster store %s", i+1, store)
		}
	}
	if len(want) != len(c.Hosts) {
		t.Fatalf("%d hosts have %d distinct IDs", len(c.Hosts), len(want))
	}
	waitFor(t, 5*time.Second, func() error { return membersAre(c, want) })
}

// membersAre checks that the hosts registered in the store are exactly
// want, by ID and advertised address.
func membersAre(c *nettest.Cluster, want map[string]netip.Addr) error {
	members, err := c.Members()
	if err != nil {
		return err
	}
	got := map[string]netip.Addr{}
	for _, m := range members {
		got[m.ID] = m.Advertise
	}
	if len(got) != len(want) {
		return fmt.Errorf("the store lists hosts %v, want %v", got, want)
	}
	for id, addr := range want {
		if got[id] != addr {
			return fmt.Errorf("the store lists hosts %v, want %v", got, want)
		}
	}
	return nil
}

func TestOverlayWithoutAClusterStoreNamesTheFlag(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	_, stderr, code := berth(t, d, "network", "create", "-d", "overlay", "ov")
	if code == 0 || !strings.Contains(stderr, "--cluster-store") {
		t.Errorf("network create -d overlay without a cluster store: exit %d, %q; want a failure naming --cluster-store", code, stderr)
	}
	_, err := d.Client.NetworkCreate(ctxT(t), "ov", client.NetworkCreateOptions{Driver: "overlay"})
	if err == nil || !strings.Contains(err.Error(), "--cluster-store") || errdefs.IsInternal(err) {
		t.Errorf("create of an overlay network through the API without a cluster store: %v; want a client error naming --cluster-store", err)
	}
	if got := names(t, d, client.Filters{}); strings.Join(got, ",") != "bridge,host,none" {
		t.Errorf("networks after the failed creates: %v", got)
	}
}

func TestOverlayNetworkIsListedOnEveryHostWithinTwoSeconds(t *testing.T) {
	t.Parallel()
	c := nettest.NewCluster(t, 3)
	h1, h2 := c.Hosts[0].Daemon, c.Hosts[1].Daemon

	id := berthOK(t, h1, "network", "create", "-d", "overlay", "ov")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", id) })
	var subnet netip.Prefix
	for i, h := range c.Hosts {
		nw := inspect(t, h.Daemon, "ov")
		if nw.Scope != "swarm" || nw.Driver != "overlay" {
			t.Errorf("host %d shows ov with scope %q, driver %q; want swarm, overlay", i+1, nw.Scope, nw.Driver)
		}
		if len(nw.IPAM.Config) != 1 {
			t.Fatalf("host %d shows ov's IPAM as %+v; want one subnet", i+1, nw.IPAM.Config)
		}
		s := nw.IPAM.Config[0].Subnet
		if s.Bits() != 24 || !clusterPool.Contains(s.Addr()) {
			t.Errorf("host %d shows ov's subnet %s; want a /24 from %s", i+1, s, clusterPool)
		}
		if i > 0 && s != subnet {
			t.Errorf("host %d shows ov's subnet %s, host 1 %s", i+1, s, subnet)
		}
		subnet = s
	}
	if out := berthOK(t, c.Hosts[2].Daemon, "network", "ls", "--filter", "driver=overlay", "--format", "{{.Name}} {{.Scope}}"); out != "ov swarm" {
		t.Errorf("network ls on host 3: %q, want \"ov swarm\"", out)
	}

	id = berthOK(t, h2, "network", "create", "-d", "overlay", "--subnet", "10.200.7.0/24", "--gateway", "10.200.7.254", "fixed")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "fixed", id) })
	for i, h := range c.Hosts {
		cfg := inspect(t, h.Daemon, "fixed").IPAM.Config
		if len(cfg) != 1 || cfg[0].Subnet != netip.MustParsePrefix("10.200.7.0/24") || cfg[0].Gateway != netip.MustParseAddr("10.200.7.254") {
			t.Errorf("host %d shows fixed's IPAM as %+v; want 10.200.7.0/24 with gateway 10.200.7.254", i+1, cfg)
		}
	}
}

func TestConcurrentOverlayCreatesOnSeveralHosts(t *testing.T) {
	t.Parallel()
	c := nettest.NewCluster(t, 3)

	// One name on two hosts at once, a few rounds: one create wins, the
	// other is refused as Docker refuses a taken name, and every host
	// lists the winner.
	for round := range 5 {
		name := fmt.Sprintf("race%d", round)
		var wg sync.WaitGroup
		var ids [2]string
		var errs [2]error
		for i := range 2 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				res, err := c.Hosts[i].Daemon.Client.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "overlay"})
				ids[i], errs[i] = res.ID, err
			})
		}
		wg.Wait()
		var won string
		for i, err := range errs {
			switch {
			case err == nil:
				if won != "" {
					t.Fatalf("%s: both hosts created it (%s and %s)", name, won, ids[i])
				}
				won = ids[i]
			case errdefs.IsConflict(err) && strings.Contains(err.Error(), "network with name "+name+" already exists"):
			default:
				t.Fatalf("%s on host %d: %v", name, i+1, err)
			}
		}
		if won == "" {
			t.Fatalf("%s: neither host created it: %v", name, errs)
		}
		onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error {
			n := 0
			for _, got := range names(t, d, nil) {
				if got == name {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%d networks named %s", n, name)
			}
			return listedAs(d, name, won)
		})
	}

	// Subnets from the pool, on every host at once: never one twice.
	const perHost = 4
	type created struct {
		name string
		err  error
	}
	results := make([]created, len(c.Hosts)*perHost)
	var wg sync.WaitGroup
	for i, h := range c.Hosts {
		for j := range perHost {
			k := i*perHost + j
			results[k].name = fmt.Sprintf("auto%d-%d", i+1, j)
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, results[k].err = h.Daemon.Client.NetworkCreate(ctx, results[k].name, client.NetworkCreateOptions{Driver: "overlay"})
			})
		}
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("create %s: %v", r.name, r.err)
		}
	}
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error {
		owner := map[netip.Prefix]string{}
		for _, r := range results {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			res, err := d.Client.NetworkInspect(ctx, r.name, client.NetworkInspectOptions{})
			cancel()
			if err != nil {
				return err
			}
			cfg := res.Network.IPAM.Config
			if len(cfg) != 1 || cfg[0].Subnet.Bits() != 24 || !clusterPool.Contains(cfg[0].Subnet.Addr()) {
				return fmt.Errorf("%s's IPAM is %+v; want one /24 from %s", r.name, cfg, clusterPool)
			}
			if other, dup := owner[cfg[0].Subnet]; dup {
				return fmt.Errorf("%s and %s both have %s", r.name, other, cfg[0].Subnet)
			}
			owner[cfg[0].Subnet] = r.name
		}
		return nil
	})
}

func TestContainersOnDifferentHostsReachEachOtherByAddressAndName(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 3)
	h1, h2, h3 := c.Hosts[0].Daemon, c.Hosts[1].Daemon, c.Hosts[2].Daemon
	id := berthOK(t, h1, "network", "create", "-d", "overlay", "ov")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", id) })
	subnet := inspect(t, h1, "ov").IPAM.Config[0].Subnet

	a := berthOK(t, h1, "run", "-d", "--network", "ov", "--network-alias", "web", "--name", "alpha", "busybox", "sleep", "1000")
	b := berthOK(t, h2, "run", "-d", "--network", "ov", "--name", "bravo", "busybox", "sleep", "1000")
	aAddr, bAddr := overlayAddr(t, h1, a, "ov"), overlayAddr(t, h2, b, "ov")
	if aAddr == bAddr || !subnet.Contains(aAddr) || !subnet.Contains(bAddr) {
		t.Fatalf("a has %s and b %s on ov (%s); want distinct addresses of its subnet", aAddr, bAddr, subnet)
	}
	aNS, bNS := netnsOf(t, h1, a), netnsOf(t, h2, b)
	httpServer(t, aNS, ":80", "hello from alpha")
	echoServer(t, aNS, ":7000")

	// By address: b's host learns a's endpoint through its watch, well
	// within a second.
	waitFor(t, time.Second, func() error { return roundTrip(bNS, netip.AddrPortFrom(aAddr, 7000).String()) })
	if out, _, code := execIn(t, h2, b, "ping", "-c1", "-W2", aAddr.String()); code != 0 {
		t.Errorf("b pings a at %s: exit %d\n%s", aAddr, code, out)
	}
	// By name, alias and name.network, through the resolver and through
	// busybox's resolver library.
	for _, name := range []string{"alpha", "web", "alpha.ov", "ALPHA"} {
		if err := resolvesTo(bNS, name, aAddr); err != nil {
			t.Errorf("from b: %v", err)
		}
		if got, err := wgetFrom(t, h2, b, "http://"+name+"/"); err != nil || got != "hello from alpha" {
			t.Errorf("b fetches http://%s/: %q, %v", name, got, err)
		}
	}
	if err := resolvesTo(aNS, "bravo", bAddr); err != nil {
		t.Errorf("from a: %v", err)
	}
	if out, _, code := execIn(t, h1, a, "ping", "-c1", "-W2", "bravo"); code != 0 || !strings.Contains(out, bAddr.String()) {
		t.Errorf("a pings b by name: exit %d\n%s", code, out)
	}

	// A container that joins later, from the default bridge, on host 3.
	cID := berthOK(t, h3, "run", "-d", "--name", "charlie", "busybox", "sleep", "1000")
	berthOK(t, h3, "network", "connect", "ov", "charlie")
	cAddr := overlayAddr(t, h3, cID, "ov")
	if cAddr == aAddr || cAddr == bAddr || !subnet.Contains(cAddr) {
		t.Errorf("c has %s on ov; a has %s, b %s, the subnet is %s", cAddr, aAddr, bAddr, subnet)
	}
	if got, err := wgetFrom(t, h3, cID, "http://alpha.ov/"); err != nil || got != "hello from alpha" {
		t.Errorf("c fetches http://alpha.ov/: %q, %v", got, err)
	}
	if out, _, code := execIn(t, h3, cID, "ping", "-c1", "-W2", "bravo"); code != 0 || !strings.Contains(out, bAddr.String()) {
		t.Errorf("c pings b by name: exit %d\n%s", code, out)
	}
	if err := resolvesTo(aNS, "charlie", cAddr); err != nil {
		t.Errorf("from a: %v", err)
	}

	// The MTU leaves room for VXLAN's 50 bytes on the underlay, and
	// full-sized segments cross.
	for name, ns := range map[string]*nettest.Namespace{"alpha": aNS, "bravo": bNS} {
		l, err := ns.Netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Attrs().MTU; got != c.MTU-50 {
			t.Errorf("%s's eth0 has the MTU %d, want %d", name, got, c.MTU-50)
		}
	}
	if err := bulkRoundTrip(bNS, netip.AddrPortFrom(aAddr, 7000).String(), 1<<20); err != nil {
		t.Errorf("1 MiB from b to a and back: %v", err)
	}
}

func TestParallelRunsOnEveryHostGetDistinctAddresses(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 3)
	id := berthOK(t, c.Hosts[0].Daemon, "network", "create", "-d", "overlay", "ov")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", id) })
	subnet := inspect(t, c.Hosts[0].Daemon, "ov").IPAM.Config[0].Subnet

	const perHost = 8
	type run struct {
		host int
		name string
		err  error
	}
	runs := make([]run, len(c.Hosts)*perHost)
	var wg sync.WaitGroup
	for i, h := range c.Hosts {
		for j := range perHost {
			k := i*perHost + j
			runs[k] = run{host: i, name: fmt.Sprintf("p%d-%d", i+1, j)}
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				res, err := h.Daemon.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: runs[k].name,
					Config:     &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "1000"}},
					HostConfig: &ctypes.HostConfig{NetworkMode: "ov"}})
				if err == nil {
					_, err = h.Daemon.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
				}
				runs[k].err = err
			})
		}
	}
	wg.Wait()
	owner := map[netip.Addr]string{}
	for _, r := range runs {
		if r.err != nil {
			t.Fatalf("run %s on host %d: %v", r.name, r.host+1, r.err)
		}
		addr := overlayAddr(t, c.Hosts[r.host].Daemon, r.name, "ov")
		if other, dup := owner[addr]; dup {
			t.Errorf("%s and %s both have %s", r.name, other, addr)
		}
		if !subnet.Contains(addr) || addr == subnet.Addr() {
			t.Errorf("%s has %s, outside ov's subnet %s", r.name, addr, subnet)
		}
		owner[addr] = r.name
	}
	// The first container of host 1 reaches the last of host 3.
	last := runs[len(runs)-1]
	echoServer(t, netnsOf(t, c.Hosts[last.host].Daemon, last.name), ":7000")
	first := netnsOf(t, c.Hosts[0].Daemon, runs[0].name)
	if err := roundTrip(first, netip.AddrPortFrom(overlayAddr(t, c.Hosts[last.host].Daemon, last.name, "ov"), 7000).String()); err != nil {
		t.Errorf("%s to %s: %v", runs[0].name, last.name, err)
	}
}

func TestOverlayContainersReachTheOutsideThroughTheirOwnHost(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 2)
	berthOK(t, c.Hosts[0].Daemon, "network", "create", "-d", "overlay", "ov")
	outside := netip.AddrPortFrom(c.Outside, 7000).String()
	peerServer(t, c.Underlay.Namespace, outside)
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", "") })
	for i, h := range c.Hosts {
		id := berthOK(t, h.Daemon, "run", "-d", "--network", "ov", "--name", fmt.Sprintf("out%d", i+1), "busybox", "sleep", "1000")
		// The outside sees the container's host: its traffic left there,
		// masqueraded, not through another host.
		if got, err := askPeer(netnsOf(t, h.Daemon, id), outside); err != nil || got != h.Addr.String() {
			t.Errorf("a container on host %d reaches %s as %q, %v; want as %s", i+1, outside, got, err, h.Addr)
		}
	}
}

func TestOverlayNetworkIsRemovedOnlyOnceNoHostHasAnEndpoint(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 3)
	id := berthOK(t, c.Hosts[0].Daemon, "network", "create", "-d", "overlay", "ov")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", id) })
	berthOK(t, c.Hosts[1].Daemon, "run", "-d", "--network", "ov", "--name", "xray", "busybox", "sleep", "1000")

	for i, h := range c.Hosts {
		_, err := h.Daemon.Client.NetworkRemove(ctxT(t), "ov", client.NetworkRemoveOptions{})
		if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "network ov id "+id+" has active endpoints") {
			t.Errorf("rm on host %d while host 2 has an endpoint: %v; want Docker's 403 with \"has active endpoints\"", i+1, err)
		}
	}
	for i, h := range c.Hosts {
		if err := listedAs(h.Daemon, "ov", id); err != nil {
			t.Errorf("host %d after the refused removals: %v", i+1, err)
		}
	}

	berthOK(t, c.Hosts[1].Daemon, "rm", "-f", "xray")
	// Host 3 may hear of the endpoint's removal a moment after rm returns
	// on host 2; nothing else may stand in the way.
	waitFor(t, 2*time.Second, func() error {
		_, err := c.Hosts[2].Daemon.Client.NetworkRemove(ctxT(t), "ov", client.NetworkRemoveOptions{})
		if err != nil && !strings.Contains(err.Error(), "has active endpoints") {
			t.Fatalf("rm on host 3 after the last container went: %v", err)
		}
		return err
	})
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return gone(d, "ov") })
	// Nor does any host keep the network's VXLAN device.
	onEveryHost(t, c, 10*time.Second, func(i int, _ *nettest.Daemon) error {
		links, err := c.Hosts[i].Netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Type() == "vxlan" {
				return fmt.Errorf("VXLAN device %s is still there", l.Attrs().Name)
			}
		}
		return nil
	})
}

func TestContainersKeepReachingEachOtherAcrossABerthdCrash(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 3)
	h1, h2, h3 := c.Hosts[0].Daemon, c.Hosts[1].Daemon, c.Hosts[2].Daemon
	berthOK(t, h1, "network", "create", "-d", "overlay", "ov")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", "") })
	a := berthOK(t, h1, "run", "-d", "--network", "ov", "--name", "alpha", "busybox", "sleep", "1000")
	b := berthOK(t, h2, "run", "-d", "--network", "ov", "--name", "bravo", "busybox", "sleep", "1000")
	cc := berthOK(t, h3, "run", "-d", "--network", "ov", "--name", "charlie", "busybox", "sleep", "1000")
	aAddr, bAddr, cAddr := overlayAddr(t, h1, a, "ov"), overlayAddr(t, h2, b, "ov"), overlayAddr(t, h3, cc, "ov")
	aNS, bNS, cNS := netnsOf(t, h1, a), netnsOf(t, h2, b), netnsOf(t, h3, cc)
	for _, ns := range []*nettest.Namespace{aNS, bNS, cNS} {
		echoServer(t, ns, ":7000")
	}
	at := func(addr netip.Addr) string { return netip.AddrPortFrom(addr, 7000).String() }
	waitFor(t, 5*time.Second, func() error { return roundTrip(bNS, at(aAddr)) })

	h2.Kill()
	// The kernel keeps carrying what berthd set up, and the other hosts
	// go on undisturbed.
	for _, p := range []struct {
		from *nettest.Namespace
		to   netip.Addr
		what string
	}{{bNS, aAddr, "b to a"}, {aNS, bAddr, "a to b"}, {aNS, cAddr, "a to c"}, {cNS, bAddr, "c to b"}} {
		if err := roundTrip(p.from, at(p.to)); err != nil {
			t.Errorf("%s while host 2's berthd is down: %v", p.what, err)
		}
	}
	h2.Start()
	if got := overlayAddr(t, h2, b, "ov"); got != bAddr {
		t.Errorf("b's address after the restart: %s, want %s", got, bAddr)
	}
	waitFor(t, 10*time.Second, func() error {
		if err := resolvesTo(bNS, "alpha", aAddr); err != nil {
			return err
		}
		return resolvesTo(aNS, "bravo", bAddr)
	})
	for _, p := range []struct {
		from *nettest.Namespace
		to   netip.Addr
		what string
	}{{bNS, aAddr, "b to a"}, {aNS, bAddr, "a to b"}, {cNS, bAddr, "c to b"}} {
		if err := roundTrip(p.from, at(p.to)); err != nil {
			t.Errorf("%s after host 2's berthd restarted: %v", p.what, err)
		}
	}
	// What happens elsewhere after the restart reaches the restarted host.
	dID := berthOK(t, h1, "run", "-d", "--network", "ov", "--name", "delta", "busybox", "sleep", "1000")
	dAddr := overlayAddr(t, h1, dID, "ov")
	echoServer(t, netnsOf(t, h1, dID), ":7000")
	waitFor(t, 2*time.Second, func() error {
		if err := resolvesTo(bNS, "delta", dAddr); err != nil {
			return err
		}
		return roundTrip(bNS, at(dAddr))
	})
}

func TestAHostCutOffTheUnderlayIsWithdrawnAndConvergesWhenBack(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 3)
	h1, h3 := c.Hosts[0].Daemon, c.Hosts[2].Daemon
	berthOK(t, h1, "network", "create", "-d", "overlay", "ov")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", "") })
	a := berthOK(t, h1, "run", "-d", "--network", "ov", "--name", "alpha", "busybox", "sleep", "1000")
	cc := berthOK(t, h3, "run", "-d", "--network", "ov", "--name", "charlie", "busybox", "sleep", "1000")
	aAddr, cAddr := overlayAddr(t, h1, a, "ov"), overlayAddr(t, h3, cc, "ov")
	aNS, cNS := netnsOf(t, h1, a), netnsOf(t, h3, cc)
	echoServer(t, aNS, ":7000")
	echoServer(t, cNS, ":7000")
	at := func(addr netip.Addr) string { return netip.AddrPortFrom(addr, 7000).String() }
	waitFor(t, 5*time.Second, func() error { return roundTrip(aNS, at(cAddr)) })
	want := map[string]netip.Addr{}
	for _, h := range c.Hosts {
		info, err := h.Daemon.Client.Info(ctxT(t), client.InfoOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want[info.Info.ID] = h.Addr
	}
	h3ID := ""
	for id, addr := range want {
		if addr == c.Hosts[2].Addr {
			h3ID = id
		}
	}

	c.Hosts[2].Unplug()
	// Host 3 cannot reach the store: changes there fail, clearly and
	// within the store's operation timeout.
	start := time.Now()
	_, err := h3.Client.NetworkCreate(ctxT(t), "lonely", client.NetworkCreateOptions{Driver: "overlay"})
	if err == nil || !strings.Contains(err.Error(), "cluster store") {
		t.Errorf("create on the cut-off host: %v; want an error saying the cluster store is unavailable", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("create on the cut-off host took %v to fail", took)
	}
	// Its lease runs out: the others withdraw it, and its container's
	// name, within the documented bound.
	withoutH3 := map[string]netip.Addr{}
	for id, addr := range want {
		if id != h3ID {
			withoutH3[id] = addr
		}
	}
	waitFor(t, 30*time.Second, func() error {
		if err := membersAre(c, withoutH3); err != nil {
			return err
		}
		got, err := resolve(aNS, "charlie")
		if err != nil {
			return err
		}
		if len(got) != 0 {
			return fmt.Errorf("charlie still resolves from alpha to %v", got)
		}
		return nil
	})
	during := berthOK(t, h1, "network", "create", "-d", "overlay", "during")

	c.Hosts[2].Plug()
	waitFor(t, 30*time.Second, func() error {
		if err := membersAre(c, want); err != nil {
			return err
		}
		if err := listedAs(h3, "during", during); err != nil {
			return err
		}
		if err := resolvesTo(aNS, "charlie", cAddr); err != nil {
			return err
		}
		if err := resolvesTo(cNS, "alpha", aAddr); err != nil {
			return err
		}
		if err := roundTrip(aNS, at(cAddr)); err != nil {
			return err
		}
		return roundTrip(cNS, at(aAddr))
	})
	if err := gone(h1, "lonely"); err != nil {
		t.Errorf("the create that failed on the cut-off host: %v", err)
	}
}

func TestOverlayMTUIsTheUnderlaysLessFifty(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 2, nettest.UnderlayMTU(4000))
	h1, h2 := c.Hosts[0].Daemon, c.Hosts[1].Daemon
	berthOK(t, h1, "network", "create", "-d", "overlay", "ov")
	waitFor(t, 2*time.Second, func() error { return listedAs(h2, "ov", "") })
	x := berthOK(t, h1, "run", "-d", "--network", "ov", "--name", "xray", "busybox", "sleep", "1000")
	y := berthOK(t, h2, "run", "-d", "--network", "ov", "--name", "yankee", "busybox", "sleep", "1000")
	xNS, yNS := netnsOf(t, h1, x), netnsOf(t, h2, y)
	for name, ns := range map[string]*nettest.Namespace{"xray": xNS, "yankee": yNS} {
		l, err := ns.Netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Attrs().MTU; got != 3950 {
			t.Errorf("%s's eth0 has the MTU %d on an underlay of 4000, want 3950", name, got)
		}
	}
	echoServer(t, xNS, ":7000")
	if err := bulkRoundTrip(yNS, netip.AddrPortFrom(overlayAddr(t, h1, x, "ov"), 7000).String(), 1<<20); err != nil {
		t.Errorf("1 MiB from y to x and back: %v", err)
	}
}

func TestOverlayOnAnExternalEtcdSurvivesAnEtcdOutage(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 2, nettest.ExternalEtcd())
	h1, h2 := c.Hosts[0].Daemon, c.Hosts[1].Daemon
	id := berthOK(t, h1, "network", "create", "-d", "overlay", "ov")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", id) })
	a := berthOK(t, h1, "run", "-d", "--network", "ov", "--name", "alpha", "busybox", "sleep", "1000")
	b := berthOK(t, h2, "run", "-d", "--network", "ov", "--name", "bravo", "busybox", "sleep", "1000")
	aAddr := overlayAddr(t, h1, a, "ov")
	aNS, bNS := netnsOf(t, h1, a), netnsOf(t, h2, b)
	echoServer(t, aNS, ":7000")
	toA := netip.AddrPortFrom(aAddr, 7000).String()
	waitFor(t, 5*time.Second, func() error { return roundTrip(bNS, toA) })

	c.Etcd.Kill()
	if err := roundTrip(bNS, toA); err != nil {
		t.Errorf("b to a while etcd is down: %v", err)
	}
	if err := resolvesTo(bNS, "alpha", aAddr); err != nil {
		t.Errorf("names while etcd is down, from the hosts' caches: %v", err)
	}
	_, err := h2.Client.NetworkCreate(ctxT(t), "while-down", client.NetworkCreateOptions{Driver: "overlay"})
	if err == nil || !strings.Contains(err.Error(), "cluster store") {
		t.Errorf("create while etcd is down: %v; want an error saying the cluster store is unavailable", err)
	}

	c.Etcd.Start()
	var after string
	waitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := h2.Client.NetworkCreate(ctx, "after", client.NetworkCreateOptions{Driver: "overlay"})
		after = res.ID
		return err
	})
	// Host 1's watch comes back on its own connection's reconnect
	// schedule, which need not be host 2's: converging is bounded by that,
	// not by the 2 s of a cluster whose store is up.
	waitFor(t, 30*time.Second, func() error { return listedAs(h1, "after", after) })
	berthOK(t, h2, "network", "connect", "after", "bravo")
	berthOK(t, h1, "network", "connect", "after", "alpha")
	aAfter := overlayAddr(t, h1, a, "after")
	waitFor(t, 2*time.Second, func() error { return roundTrip(bNS, netip.AddrPortFrom(aAfter, 7000).String()) })
	if err := gone(h1, "while-down"); err != nil {
		t.Errorf("the create refused while etcd was down: %v", err)
	}
}

// The stock docker CLI on two hosts: create on one, list, run and reach by
// name across hosts, a published port on the container's host, inspect's
// peers, removal refused while in use and taken on the other host.
func TestStockDockerCLIDrivesOverlayNetworksAcrossHosts(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	c := overlayCluster(t, 2)
	h1, h2 := c.Hosts[0], c.Hosts[1]
	dockerOK(t, h1.Daemon, "network", "create", "-d", "overlay", "--subnet", "10.50.0.0/24", "app")
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "app", "") })
	if got := strings.TrimSpace(dockerOK(t, h2.Daemon, "network", "ls", "--filter", "name=app", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")); got != "app overlay swarm" {
		t.Errorf("docker network ls on host 2: %q", got)
	}
	dockerOK(t, h1.Daemon, "run", "-d", "--network", "app", "--name", "web", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	hostname := strings.TrimSpace(dockerOK(t, h1.Daemon, "inspect", "-f", "{{.Config.Hostname}}", "web"))
	if got := strings.TrimSpace(dockerOK(t, h2.Daemon, "run", "--rm", "--network", "app", "busybox", "wget", "-qO-", "http://web/hostname")); got != hostname {
		t.Errorf("web's /hostname from a container on host 2: %q, want %q", got, hostname)
	}
	// The published port answers on web's host, from outside the cluster.
	outside := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.Underlay.Namespace.Dial(ctx, network, addr)
		},
	}}
	resp, err := outside.Get("http://" + netip.AddrPortFrom(h1.Addr, 8080).String() + "/hostname")
	if err != nil {
		t.Fatalf("published port of web on host 1: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != hostname {
		t.Errorf("published port of web answered %q", body)
	}
	if got := dockerOK(t, h2.Daemon, "network", "inspect", "-f", "{{range .Peers}}{{.IP}} {{end}}", "app"); !strings.Contains(got, h1.Addr.String()) {
		t.Errorf("peers of app on host 2: %q, want host 1 (%s) among them", got, h1.Addr)
	}
	if _, stderr, code := docker(t, h2.Daemon, "network", "rm", "app"); code == 0 || !strings.Contains(stderr, "active endpoints") {
		t.Errorf("network rm on host 2 while web runs on host 1: exit %d: %s", code, stderr)
	}
	dockerOK(t, h1.Daemon, "rm", "-f", "web")
	waitFor(t, 2*time.Second, func() error {
		if _, stderr, code := docker(t, h2.Daemon, "network", "rm", "app"); code != 0 {
			return fmt.Errorf("network rm on host 2: %s", stderr)
		}
		return nil
	})
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return gone(d, "app") })
}

// A three-member etcd with one member down keeps a quorum: overlay
// networks are created, joined and used across hosts as with all three.
func TestOverlayOnAThreeMemberEtcdWithOneMemberDown(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 2, nettest.ExternalEtcdMembers(3))
	h1, h2 := c.Hosts[0].Daemon, c.Hosts[1].Daemon
	// The member the hosts name first goes: their clients move on.
	c.EtcdMembers[0].Kill()
	var id string
	waitFor(t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := h1.Client.NetworkCreate(ctx, "ov", client.NetworkCreateOptions{Driver: "overlay"})
		id = res.ID
		return err
	})
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", id) })
	a := berthOK(t, h1, "run", "-d", "--network", "ov", "--name", "alpha", "busybox", "sleep", "1000")
	b := berthOK(t, h2, "run", "-d", "--network", "ov", "--name", "bravo", "busybox", "sleep", "1000")
	aAddr := overlayAddr(t, h1, a, "ov")
	if bAddr := overlayAddr(t, h2, b, "ov"); bAddr == aAddr {
		t.Fatalf("alpha and bravo both have %s", aAddr)
	}
	aNS, bNS := netnsOf(t, h1, a), netnsOf(t, h2, b)
	echoServer(t, aNS, ":7000")
	waitFor(t, 5*time.Second, func() error { return roundTrip(bNS, netip.AddrPortFrom(aAddr, 7000).String()) })
	if err := resolvesTo(bNS, "alpha", aAddr); err != nil {
		t.Errorf("alpha from bravo with a member down: %v", err)
	}
	// The member comes back and catches up; removal works everywhere.
	c.EtcdMembers[0].Start()
	berthOK(t, h1, "rm", "-f", "alpha")
	berthOK(t, h2, "rm", "-f", "bravo")
	waitFor(t, 5*time.Second, func() error {
		_, stderr, code := berth(t, h2, "network", "rm", "ov")
		if code != 0 {
			return fmt.Errorf("network rm: %s", stderr)
		}
		return nil
	})
	onEveryHost(t, c, 2*time.Second, func(_ int, d *nettest.Daemon) error { return gone(d, "ov") })
}
