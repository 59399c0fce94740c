package daemon_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// chaosOps is the length of the chaos campaign: 200 in make test,
// BERTH_CHAOS_OPS=5000 in make soak. BERTH_CHAOS_SEED replays a run.
func chaosOps(t *testing.T) (int, uint64) {
	ops, seed := 200, uint64(time.Now().UnixNano())
	if v := os.Getenv("BERTH_CHAOS_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("BERTH_CHAOS_OPS=%q: want a positive count", v)
		}
		ops = n
	}
	if v := os.Getenv("BERTH_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("BERTH_CHAOS_SEED=%q: %v", v, err)
		}
		seed = n
	}
	return ops, seed
}

// chaos is one campaign: a daemon and the random source that drives it.
type chaos struct {
	t    *testing.T
	d    *nettest.Daemon
	rng  *rand.Rand
	seed uint64
	next int // names of containers made so far
}

// opCtx bounds one operation, so that a request to a daemon killed under
// it never hangs the campaign.
func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 20*time.Second)
}

// pick chooses one of the names, or "" when there are none.
func (c *chaos) pick(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[c.rng.IntN(len(names))]
}

// state is what the daemon says exists: user networks and containers by
// state.
func (c *chaos) state() (nets, running, stopped []string) {
	ctx, cancel := opCtx()
	defer cancel()
	nl, err := c.d.Client.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		c.t.Fatalf("seed %d: network list: %v", c.seed, err)
	}
	for _, n := range nl.Items {
		if strings.HasPrefix(n.Name, "cn") {
			nets = append(nets, n.Name)
		}
	}
	cl, err := c.d.Client.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		c.t.Fatalf("seed %d: container list: %v", c.seed, err)
	}
	for _, ct := range cl.Items {
		name := strings.TrimPrefix(ct.Names[0], "/")
		if ct.State == ctypes.StateRunning {
			running = append(running, name)
		} else {
			stopped = append(stopped, name)
		}
	}
	slices.Sort(nets)
	slices.Sort(running)
	slices.Sort(stopped)
	return nets, running, stopped
}

// chaosMaxContainers bounds the containers a campaign keeps at once.
const chaosMaxContainers = 24

// op runs one random operation and says what it was. Errors are part of
// the game (a network in use, a name gone); a panic answered as 500 is not.
// The state it chooses from is read before, so that a daemon killed under
// the operation fails only the operation.
func (c *chaos) op(nets, running, stopped []string) string {
	all := append(slices.Clone(running), stopped...)
	ctx, cancel := opCtx()
	defer cancel()
	var what string
	var err error
	r := c.rng.IntN(100)
	if len(all) >= chaosMaxContainers && r >= 20 && r < 45 {
		// A long run keeps its population, and so the cost of its
		// checks, bounded: a run becomes a removal.
		r = 99
	}
	switch {
	case r < 12:
		name := fmt.Sprintf("cn%d", c.rng.IntN(4))
		what = "network create " + name
		_, err = c.d.Client.NetworkCreate(ctx, name, client.NetworkCreateOptions{})
	case r < 20:
		name := c.pick(nets)
		what = "network rm " + name
		_, err = c.d.Client.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
	case r < 45:
		c.next++
		name, mode := fmt.Sprintf("cc%d", c.next), c.pick(append(nets, "bridge"))
		what = "run " + name + " on " + mode
		var res client.ContainerCreateResult
		res, err = c.d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
			Config:     &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}},
			HostConfig: &ctypes.HostConfig{NetworkMode: ctypes.NetworkMode(mode)}})
		if err == nil {
			_, err = c.d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
		}
	case r < 57:
		ct, n := c.pick(all), c.pick(nets)
		what = "connect " + ct + " to " + n
		_, err = c.d.Client.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: ct})
	case r < 67:
		ct, n := c.pick(all), c.pick(nets)
		what = "disconnect " + ct + " from " + n
		_, err = c.d.Client.NetworkDisconnect(ctx, n, client.NetworkDisconnectOptions{Container: ct})
	case r < 77:
		ct := c.pick(running)
		what = "stop " + ct
		zero := 0
		_, err = c.d.Client.ContainerStop(ctx, ct, client.ContainerStopOptions{Timeout: &zero})
	case r < 85:
		ct := c.pick(stopped)
		what = "start " + ct
		_, err = c.d.Client.ContainerStart(ctx, ct, client.ContainerStartOptions{})
	default:
		ct := c.pick(all)
		what = "rm -f " + ct
		_, err = c.d.Client.ContainerRemove(ctx, ct, client.ContainerRemoveOptions{Force: true})
	}
	if err != nil && strings.Contains(err.Error(), "this is a bug in berthd") {
		c.t.Errorf("seed %d: %s: %v", c.seed, what, err)
	}
	return what
}

// check verifies, after a restart and at the end, that store and kernel
// agree, that no address is held twice, and that every running container
// reaches its gateway and resolves its peers.
func (c *chaos) check(when string) {
	t := c.t
	t.Helper()
	when = fmt.Sprintf("%s (seed %d)", when, c.seed)
	checkStoreMatchesKernel(t, c.d, when)
	_, running, _ := c.state()
	// Peers: the running containers on each user network, by name.
	peers := map[string]map[string]string{}
	for _, name := range running {
		in := inspectContainer(t, c.d, name)
		if in.State.Pid == 0 {
			t.Errorf("%s: %s runs with no process", when, name)
			continue
		}
		for net, ep := range in.NetworkSettings.Networks {
			if peers[net] == nil {
				peers[net] = map[string]string{}
			}
			peers[net][name] = ep.IPAddress.String()
		}
	}
	for _, name := range running {
		in := inspectContainer(t, c.d, name)
		ns := netnsOf(t, c.d, in.ID)
		// A peer on several of the asker's networks answers with its
		// address on the first of them: any address it has on a network
		// they share will do.
		shared := map[string][]string{}
		for net, ep := range in.NetworkSettings.Networks {
			if out, _, code := execIn(t, c.d, in.ID, "ping", "-c1", "-W2", ep.Gateway.String()); code != 0 {
				t.Errorf("%s: %s cannot reach its gateway %s on %s: %s", when, name, ep.Gateway, net, out)
			}
			if net == "bridge" {
				continue
			}
			for peer, ip := range peers[net] {
				shared[peer] = append(shared[peer], ip)
			}
		}
		for peer, ips := range shared {
			resp, err := chaosAsk(ns, peer)
			if err != nil {
				nets := slices.Sorted(maps.Keys(in.NetworkSettings.Networks))
				t.Errorf("%s: %s (on %v) asks for %s: %v", when, name, nets, peer, err)
				continue
			}
			got := answers(resp)
			if len(got) == 0 || !slices.ContainsFunc(got, func(a string) bool { return slices.Contains(ips, a) }) {
				t.Errorf("%s: %s resolves its peer %s to %v, want one of %v", when, name, peer, got, ips)
			}
		}
		ns.Close()
	}
}

// chaosAsk queries the resolver from inside ns.
func chaosAsk(ns *nettest.Namespace, name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	var resp *dns.Msg
	err := ns.Do(func() (err error) {
		c := &dns.Client{Timeout: 2 * time.Second}
		resp, _, err = c.Exchange(m, "127.0.0.11:53")
		return err
	})
	return resp, err
}

// TestChaosOfOperationsAndCrashes runs a seeded random sequence of network
// and container operations, with berthd stopped or killed with SIGKILL at
// random points, some in the middle of a request. After every restart and
// at the end store and kernel must agree; once everything is removed the
// host must be as it was.
func TestChaosOfOperationsAndCrashes(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	ops, seed := chaosOps(t)
	t.Logf("chaos: %d operations, seed %d (BERTH_CHAOS_SEED=%d replays it)", ops, seed, seed)
	c := &chaos{t: t, d: d, rng: rand.New(rand.NewPCG(seed, 0xc4a05)), seed: seed}
	baseline := kernelView(t, h)
	var log []string
	for i := 0; i < ops && !t.Failed(); i++ {
		switch r := c.rng.IntN(100); {
		case r < 3:
			log = append(log, "restart berthd")
			d.Stop()
			d.Start()
			c.check(fmt.Sprintf("after the restart at operation %d", i))
		case r < 7:
			// SIGKILL in the middle of a request.
			// The delay is drawn before the operation draws its own: the
			// source is not shared while both run.
			nets, running, stopped := c.state()
			delay := time.Duration(c.rng.IntN(300)) * time.Millisecond
			var wg sync.WaitGroup
			wg.Go(func() { log = append(log, c.op(nets, running, stopped)+" (killed under it)") })
			time.Sleep(delay)
			d.Kill()
			wg.Wait()
			d.Start()
			c.check(fmt.Sprintf("after the kill at operation %d", i))
		default:
			log = append(log, c.op(c.state()))
		}
	}
	c.check("at the end")
	if t.Failed() {
		t.Logf("operations (seed %d):\n%s", seed, strings.Join(log, "\n"))
	}
	// Everything removed: nothing left in the host.
	_, running, stopped := c.state()
	for _, name := range append(running, stopped...) {
		ctx, cancel := opCtx()
		if _, err := d.Client.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("rm -f %s: %v", name, err)
		}
		cancel()
	}
	nets, _, _ := c.state()
	for _, n := range nets {
		ctx, cancel := opCtx()
		if _, err := d.Client.NetworkRemove(ctx, n, client.NetworkRemoveOptions{}); err != nil {
			t.Errorf("network rm %s: %v", n, err)
		}
		cancel()
	}
	// Retired bridges are kept as spares until no bridge has come or gone
	// for 10 s, then deleted.
	waitFor(t, 30*time.Second, func() error {
		if got := kernelView(t, h); got != baseline {
			return fmt.Errorf("seed %d: after removing everything the host has\n%s\nwant\n%s", seed, got, baseline)
		}
		return nil
	})
}
