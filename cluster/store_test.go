package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestEmbeddedMemberServesOtherHostsAndKeepsItsData(t *testing.T) {
	ports := freePorts(t, 2)
	cfg := testConfig(t, "host-a")
	cfg.Embedded, cfg.DataDir, cfg.ClientPort, cfg.PeerPort = true, t.TempDir()+"/etcd", ports[0], ports[1]
	a, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	endpoint := fmt.Sprintf("127.0.0.1:%d", ports[0])
	b := open(t, testConfig(t, "host-b", endpoint))
	for _, s := range []*Store{a, b} {
		if err := s.Register(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	hosts := b.Watch(ctxT(t), HostsPrefix)
	waitReady(t, hosts)
	waitFor(t, 5*time.Second, "both hosts listed", func() bool { return len(hosts.List(HostsPrefix)) == 2 })
	for _, kv := range hosts.List(HostsPrefix) {
		var h Host
		if err := json.Unmarshal([]byte(kv.Value), &h); err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		if kv.Key != HostsPrefix+h.ID || h.Advertise != loopback || h.Version != "test" || time.Since(h.Started) > time.Minute {
			t.Errorf("%s = %+v", kv.Key, h)
		}
	}
	if err := a.Put(ctxT(t), "networks/n1", "kept", false); err != nil {
		t.Fatal(err)
	}

	// A daemon's restart: the member starts again on its data.
	a.Close()
	if _, err := os.Stat(cfg.DataDir + "/member/wal"); err != nil {
		t.Fatalf("the member's data is not under its data directory: %v", err)
	}
	a = open(t, cfg)
	c := a.Watch(ctxT(t), "")
	waitReady(t, c)
	if v, ok := c.Get("networks/n1"); v != "kept" {
		t.Fatalf("after the member's restart networks/n1 = %q, %v; want kept", v, ok)
	}
}

func TestClaimsRacingFromTwoHostsWinEachKeyOnce(t *testing.T) {
	a, endpoint := openEmbedded(t, "host-a")
	b := open(t, testConfig(t, "host-b", endpoint))
	const claims, keys = 100, 20
	type result struct {
		key, value, holder string
		won                bool
		err                error
	}
	results := make([]result, claims)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range claims {
		wg.Go(func() {
			s := []*Store{a, b}[i%2]
			r := result{key: fmt.Sprintf("subnets/10.0.%d.0-24", i%keys), value: fmt.Sprintf("network-%d", i)}
			<-start
			r.holder, r.won, r.err = s.Claim(ctxT(t), r.key, r.value, i%4 < 2)
			results[i] = r
		})
	}
	close(start)
	wg.Wait()
	winners := map[string]string{}
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("claim %s: %v", r.key, r.err)
		}
		if r.won {
			if w, ok := winners[r.key]; ok {
				t.Fatalf("%s won twice: by %s and %s", r.key, w, r.value)
			}
			winners[r.key] = r.value
		}
	}
	if len(winners) != keys {
		t.Fatalf("%d keys won, want %d: %v", len(winners), keys, winners)
	}
	raw := rawClient(t, endpoint)
	for _, r := range results {
		if r.holder != winners[r.key] {
			t.Errorf("claim of %s by %s was told %s holds it; %s won", r.key, r.value, r.holder, winners[r.key])
		}
	}
	for key, value := range winners {
		resp, err := raw.Get(ctxT(t), Prefix+key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != value {
			t.Errorf("etcd has %s = %v, want %s", key, resp.Kvs, value)
		}
	}
}

func TestClaimTakesBackItsOwnValueAndReleaseOnlyWhatItHolds(t *testing.T) {
	a, _ := openEmbedded(t, "host-a")
	ctx := ctxT(t)
	if holder, won, err := a.Claim(ctx, "vnis/4097", "net-1", true); err != nil || !won || holder != "net-1" {
		t.Fatalf("first claim: %q %v %v", holder, won, err)
	}
	if holder, won, err := a.Claim(ctx, "vnis/4097", "net-1", true); err != nil || !won || holder != "net-1" {
		t.Fatalf("claim of the value it holds: %q %v %v, want won", holder, won, err)
	}
	if holder, won, err := a.Claim(ctx, "vnis/4097", "net-2", true); err != nil || won || holder != "net-1" {
		t.Fatalf("claim of a held key: %q %v %v, want lost to net-1", holder, won, err)
	}
	if released, err := a.Release(ctx, "vnis/4097", "net-2"); err != nil || released {
		t.Fatalf("release by a non-holder: %v %v", released, err)
	}
	if released, err := a.Release(ctx, "vnis/4097", "net-1"); err != nil || !released {
		t.Fatalf("release by the holder: %v %v", released, err)
	}
	if holder, won, err := a.Claim(ctx, "vnis/4097", "net-2", false); err != nil || !won || holder != "net-2" {
		t.Fatalf("claim after release: %q %v %v", holder, won, err)
	}
	if r := a.recorded(); len(r) != 0 {
		t.Fatalf("released and unleased keys are kept for the lease: %v", r)
	}
}

func TestClaimAllTakesEveryKeyOrNone(t *testing.T) {
	a, endpoint := openEmbedded(t, "host-a")
	b := open(t, testConfig(t, "host-b", endpoint))
	ctx := ctxT(t)
	first := []KV{{"networks/names/blue", "n1"}, {"subnets/10.0.1.0-24", "n1"}, {"vnis/4097", "n1"}}
	if taken, won, err := a.ClaimAll(ctx, first, false); err != nil || !won || taken != nil {
		t.Fatalf("first ClaimAll: %v %v %v", taken, won, err)
	}
	second := []KV{{"networks/names/green", "n2"}, {"subnets/10.0.1.0-24", "n2"}, {"vnis/4098", "n2"}}
	taken, won, err := b.ClaimAll(ctx, second, true)
	if err != nil || won {
		t.Fatalf("ClaimAll over a taken subnet: won %v, %v", won, err)
	}
	if len(taken) != 1 || taken[0] != (KV{"subnets/10.0.1.0-24", "n1"}) {
		t.Fatalf("taken = %v, want the subnet held by n1", taken)
	}
	c := b.Watch(ctx, "")
	waitReady(t, c)
	for _, key := range []string{"networks/names/green", "vnis/4098"} {
		if v, ok := c.Get(key); ok {
			t.Errorf("%s = %q after a ClaimAll that failed", key, v)
		}
	}
	if r := b.recorded(); len(r) != 0 {
		t.Errorf("a failed ClaimAll left records to keep: %v", r)
	}

	many := make([]KV, maxTxnOps+1)
	for i := range many {
		many[i] = KV{fmt.Sprintf("addresses/%d", i), "x"}
	}
	if _, _, err := a.ClaimAll(ctx, many, false); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ClaimAll of %d keys: %v, want invalid argument", len(many), err)
	}
	if _, _, err := a.ClaimAll(ctx, []KV{{"k", "1"}, {"k", "2"}}, false); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `key "k" twice`) {
		t.Errorf("ClaimAll with a key twice: %v", err)
	}
}

func TestLeasedRecordsVanishWhenTheirHostDies(t *testing.T) {
	m, endpoint := openEmbedded(t, "host-m")
	a, err := Open(context.Background(), testConfig(t, "host-a", endpoint))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ctx := ctxT(t)
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "endpoints/e1", "a", true); err != nil {
		t.Fatal(err)
	}
	if _, won, err := a.Claim(ctx, "addresses/10.0.1.2", "e1", true); err != nil || !won {
		t.Fatal(won, err)
	}
	if err := a.Put(ctx, "networks/n1", "a", false); err != nil {
		t.Fatal(err)
	}
	c := m.Watch(ctx, "")
	waitReady(t, c)
	leased := []string{HostsPrefix + "host-a", "endpoints/e1", "addresses/10.0.1.2"}
	waitFor(t, 2*time.Second, "host a's records in m's cache", func() bool { return len(c.List("")) == 4 })

	// The host dies: no more keepalives, and no revoke.
	a.Close()
	died := time.Now()
	raw := rawClient(t, endpoint)
	if resp, err := raw.Get(ctx, Prefix+"endpoints/e1"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("closing the store revoked its lease at once: %v %v", resp, err)
	}
	waitFor(t, testTTL+3*time.Second, "host a's leased records gone from m's cache", func() bool {
		for _, k := range leased {
			if _, ok := c.Get(k); ok {
				return false
			}
		}
		return true
	})
	t.Logf("leased records gone %s after their host died (TTL %s)", time.Since(died).Round(time.Millisecond), testTTL)
	if v, ok := c.Get("networks/n1"); !ok || v != "a" {
		t.Errorf("an unleased record went with its host's lease")
	}
}

func TestLeaseLossPutsTheRecordsAgain(t *testing.T) {
	_, endpoint := openEmbedded(t, "host-m")
	cfg := testConfig(t, "host-a", endpoint)
	lost := make(chan string, 4)
	cfg.Lost = func(key string) { lost <- key }
	a := open(t, cfg)
	ctx := ctxT(t)
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "endpoints/e1", "a", true); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"addresses/10.0.1.2", "addresses/10.0.1.3"} {
		if _, won, err := a.Claim(ctx, key, "a", true); err != nil || !won {
			t.Fatal(won, err)
		}
	}
	// Deleted ones stay deleted.
	if err := a.Put(ctx, "endpoints/e2", "a", true); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "endpoints/e2"); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, endpoint)
	// While the lease is being lost, another holder takes one claim.
	if _, err := raw.Put(ctx, Prefix+"addresses/10.0.1.3", "b"); err != nil {
		t.Fatal(err)
	}
	old := a.lease()
	if _, err := raw.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}

	c := a.Watch(ctx, "")
	waitReady(t, c)
	want := map[string]string{HostsPrefix + "host-a": "", "endpoints/e1": "a", "addresses/10.0.1.2": "a", "addresses/10.0.1.3": "b"}
	took := waitFor(t, testTTL+3*time.Second, "the records back under a new lease", func() bool {
		kvs := c.List("")
		if len(kvs) != len(want) {
			return false
		}
		for _, kv := range kvs {
			if v, ok := want[kv.Key]; !ok || v != "" && v != kv.Value {
				return false
			}
		}
		return true
	})
	t.Logf("records back %s after the lease was revoked", took.Round(time.Millisecond))
	select {
	case key := <-lost:
		if key != "addresses/10.0.1.3" {
			t.Errorf("Lost(%q), want addresses/10.0.1.3", key)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lost was not called for the claim another holder took")
	}
	now := a.lease()
	if now == old {
		t.Fatal("the lease was not replaced")
	}
	ttl, err := raw.TimeToLive(ctx, now, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	attached := map[string]bool{}
	for _, k := range ttl.Keys {
		attached[strings.TrimPrefix(string(k), Prefix)] = true
	}
	for _, k := range []string{HostsPrefix + "host-a", "endpoints/e1", "addresses/10.0.1.2"} {
		if !attached[k] {
			t.Errorf("%s is not under the new lease (it has %v)", k, attached)
		}
	}
	if attached["addresses/10.0.1.3"] {
		t.Errorf("the lost claim was put under the new lease")
	}
	if err := a.Put(ctx, "endpoints/e3", "a", true); err != nil {
		t.Errorf("a leased put after the new lease: %v", err)
	}
}

func TestOpenFailsClearlyWhenEtcdDoesNotAnswer(t *testing.T) {
	port := freePorts(t, 1)[0]
	endpoint := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := testConfig(t, "host-a", endpoint)
	cfg.ReadyTimeout = time.Second
	start := time.Now()
	s, err := Open(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with nothing listening")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Open took %s to fail with a ready timeout of 1s", took)
	}
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "cluster store unavailable") || !strings.Contains(err.Error(), endpoint) ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error %q: want one that wraps ErrUnavailable, says the cluster store is unavailable, names %s and says it refused the connection", err, endpoint)
	}
}

func TestReleaseAllDeletesEveryKeyOrNone(t *testing.T) {
	a, endpoint := openEmbedded(t, "host-a")
	b := open(t, testConfig(t, "host-b", endpoint))
	ctx := ctxT(t)
	held := []KV{{"names/networks/blue", "n1"}, {"subnets/10.0.1.0/24", "n1"}, {"networks/n1", "{}"}}
	if _, won, err := a.ClaimAll(ctx, held, false); err != nil || !won {
		t.Fatalf("claim: %v %v", won, err)
	}
	if _, won, err := b.ClaimAll(ctx, []KV{{"endpoints/n1/e1", "x"}}, true); err != nil || !won {
		t.Fatalf("claim the endpoint: %v %v", won, err)
	}
	c := a.Watch(ctx, "")
	waitReady(t, c)
	// Refused while a key lies under the prefix, and when a value differs.
	if ok, err := a.ReleaseAll(ctx, held, "endpoints/n1/"); err != nil || ok {
		t.Fatalf("release with an endpoint under the prefix: %v %v", ok, err)
	}
	if ok, err := a.ReleaseAll(ctx, []KV{held[0], {"subnets/10.0.1.0/24", "n2"}}, ""); err != nil || ok {
		t.Fatalf("release with a value not held: %v %v", ok, err)
	}
	for _, kv := range held {
		if _, ok := c.Get(kv.Key); !ok {
			t.Errorf("%s gone after a refused release", kv.Key)
		}
	}
	// A prefix that only starts like another's is no obstacle.
	if ok, err := b.ReleaseAll(ctx, []KV{{"endpoints/n1/e1", "x"}}, "endpoints/n1/e1/"); err != nil || !ok {
		t.Fatalf("release the endpoint: %v %v", ok, err)
	}
	if ok, err := a.ReleaseAll(ctx, held, "endpoints/n1/"); err != nil || !ok {
		t.Fatalf("release once the endpoint went: %v %v", ok, err)
	}
	waitFor(t, 5*time.Second, "the keys gone from the cache", func() bool {
		return len(c.List("names/"))+len(c.List("subnets/"))+len(c.List("networks/"))+len(c.List("endpoints/")) == 0
	})
	if r := b.recorded(); len(r) != 0 {
		t.Errorf("records kept to put again after the release: %v", r)
	}
}
