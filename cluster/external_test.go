package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// These tests run Debian's etcd-server (3.4) as child processes on
// loopback ports: the oldest etcd berth supports, with the client library
// berth is built with.

func TestClientLibraryWorksWithEtcd34(t *testing.T) {
	etcd := startEtcdCluster(t, 1)[0]
	a := open(t, testConfig(t, "host-a", etcd.endpoint()))
	status, err := a.cli.Status(ctxT(t), "http://"+etcd.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(status.Version, "3.4.") {
		t.Logf("etcd server %s; this test is meant for 3.4", status.Version)
	}
	ctx := ctxT(t)
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if taken, won, err := a.ClaimAll(ctx, []KV{{"networks/names/blue", "n1"}, {"vnis/4097", "n1"}}, true); err != nil || !won {
		t.Fatalf("ClaimAll: %v %v %v", taken, won, err)
	}
	if holder, won, err := a.Claim(ctx, "vnis/4097", "n2", true); err != nil || won || holder != "n1" {
		t.Fatalf("Claim of a held key: %q %v %v", holder, won, err)
	}
	if _, won, err := a.Claim(ctx, "vnis/4097", "n1", true); err != nil || !won {
		t.Fatalf("Claim back of its own (a nested transaction): %v %v", won, err)
	}
	c := a.Watch(ctx, "")
	waitReady(t, c)
	waitFor(t, 2*time.Second, "the cache synced", c.Synced)
	if err := a.Put(ctx, "endpoints/e1", "a", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a put seen through the watch", func() bool { _, ok := c.Get("endpoints/e1"); return ok })
	t.Logf("etcd server %s", status.Version)
}

func TestCacheServesItsLastStateWhileEtcdIsDownAndConverges(t *testing.T) {
	etcd := startEtcdCluster(t, 1)[0]
	cfg := testConfig(t, "host-a", etcd.endpoint())
	cfg.OpTimeout = 500 * time.Millisecond
	a := open(t, cfg)
	ctx := ctxT(t)
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "networks/n1", "before", false); err != nil {
		t.Fatal(err)
	}
	c := a.Watch(ctx, "")
	waitReady(t, c)
	waitFor(t, 2*time.Second, "the cache synced", c.Synced)

	etcd.kill()
	waitFor(t, 3*time.Second, "the cache saying it is behind", func() bool { return !c.Synced() })
	if err := c.Health(); !strings.Contains(err.Error(), etcd.endpoint()) {
		t.Errorf("Health while etcd is down: %v; want it to name %s", err, etcd.endpoint())
	}
	if v, ok := c.Get("networks/n1"); v != "before" {
		t.Errorf("while etcd is down the cache has networks/n1 = %q, %v; want its last state", v, ok)
	}
	if _, ok := c.Get(HostsPrefix + "host-a"); !ok {
		t.Errorf("while etcd is down the cache lost the host's record")
	}
	start := time.Now()
	_, _, err := a.Claim(context.Background(), "networks/names/blue", "n2", true)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "cluster store unavailable") || !strings.Contains(err.Error(), etcd.endpoint()) {
		t.Errorf("a claim while etcd is down: %v; want an error that wraps ErrUnavailable, says the cluster store is unavailable and names %s", err, etcd.endpoint())
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the claim took %s to fail with an operation timeout of %s", took, cfg.OpTimeout)
	}

	// The same member comes back on its data, and another host writes.
	etcd.start()
	b := open(t, testConfig(t, "host-b", etcd.endpoint()))
	if err := b.Put(ctx, "networks/n1", "after", false); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 10*time.Second, "the cache converged", func() bool {
		v, _ := c.Get("networks/n1")
		return v == "after" && c.Synced()
	})
	t.Logf("converged %s after etcd answered again", took.Round(time.Millisecond))
	waitFor(t, testTTL+3*time.Second, "the host's record present", func() bool { _, ok := c.Get(HostsPrefix + "host-a"); return ok })
	if err := a.Put(ctx, "endpoints/e1", "a", true); err != nil {
		t.Errorf("a leased put after etcd came back: %v", err)
	}
}

func TestThreeMemberClusterWithOneMemberDownAcceptsClaims(t *testing.T) {
	members := startEtcdCluster(t, 3)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.endpoint())
	}
	cfg := testConfig(t, "host-a", endpoints...)
	cfg.OpTimeout = 3 * time.Second
	a := open(t, cfg)
	ctx := ctxT(t)
	c := a.Watch(ctx, "")
	waitReady(t, c)
	claim := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			key := fmt.Sprintf("addresses/10.0.1.%d", i)
			if _, won, err := a.Claim(ctx, key, "a", true); err != nil || !won {
				t.Fatalf("claim %s: %v %v", key, won, err)
			}
		}
	}
	claim(0, 10)

	// Take down the leader: the two left elect another.
	var leader *etcdProc
	for _, m := range members {
		st, err := a.cli.Status(ctx, "http://"+m.endpoint())
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader == st.Header.MemberId {
			leader = m
		}
	}
	if leader == nil {
		t.Fatal("no member says it leads")
	}
	leader.kill()
	waitFor(t, 10*time.Second, "a new leader", func() bool {
		for _, m := range members {
			if m == leader {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			st, err := a.cli.Status(sctx, "http://"+m.endpoint())
			cancel()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return true
			}
		}
		return false
	})
	claim(10, 30)
	if _, won, err := a.Claim(ctx, "addresses/10.0.1.3", "b", true); err != nil || won {
		t.Fatalf("a second claim of a key, with one member down: won %v, %v", won, err)
	}
	waitFor(t, 5*time.Second, "the cache has every claim", func() bool { return len(c.List("addresses/")) == 30 })
	waitFor(t, 5*time.Second, "the cache synced", c.Synced)
}
