package cluster

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheDropsASlowSubscriberWithoutHoldingUpTheWatch(t *testing.T) {
	a, _ := openEmbedded(t, "host-a")
	ctx := ctxT(t)
	c := a.Watch(ctx, "endpoints/")
	waitReady(t, c)
	_, slow := c.Subscribe(2)
	snapshot, fast := c.Subscribe(64)
	if len(snapshot) != 0 {
		t.Fatalf("snapshot of an empty prefix: %v", snapshot)
	}
	got := make(chan []Change, 1)
	go func() {
		var changes []Change
		for ch := range fast.Changes() {
			changes = append(changes, ch)
		}
		got <- changes
	}()
	const n = 10
	for i := range n {
		if err := a.Put(ctx, fmt.Sprintf("endpoints/e%02d", i), "v", false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "every put in the cache", func() bool { return len(c.List("endpoints/")) == n })

	var slowGot int
	for range slow.Changes() {
		slowGot++
	}
	if slowGot > 2 || slow.Err() != ErrLagged {
		t.Errorf("the slow subscriber got %d changes and then %v; want at most its buffer of 2, then ErrLagged", slowGot, slow.Err())
	}
	fast.Close()
	changes := <-got
	if len(changes) != n {
		t.Fatalf("the reading subscriber got %d changes, want %d: %v", len(changes), n, changes)
	}
	for i, ch := range changes {
		if want := fmt.Sprintf("endpoints/e%02d", i); ch.Key != want || ch.Deleted || ch.Value != "v" {
			t.Errorf("change %d = %+v, want a put of %s", i, ch, want)
		}
		if i > 0 && ch.Revision <= changes[i-1].Revision {
			t.Errorf("change %d's revision %d after %d", i, ch.Revision, changes[i-1].Revision)
		}
	}
	if fast.Err() != nil {
		t.Errorf("a subscription closed by its subscriber: Err %v", fast.Err())
	}
}

func TestCacheLoadsAgainWhenItsRevisionIsCompacted(t *testing.T) {
	a, endpoint := openEmbedded(t, "host-a")
	ctx := ctxT(t)
	for _, k := range []string{"networks/gone", "networks/kept"} {
		if err := a.Put(ctx, k, "1", false); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawClient(t, endpoint)
	var loads atomic.Int32
	subscribed := make(chan struct{})
	// Between the first load and the watch: changes, then a compaction
	// past them, so that the watch cannot start where the load ended.
	c := a.watch(ctx, "networks/", func() {
		if loads.Add(1) != 1 {
			return
		}
		<-subscribed
		if err := a.Delete(ctx, "networks/gone"); err != nil {
			t.Error(err)
		}
		if err := a.Put(ctx, "networks/new", "2", false); err != nil {
			t.Error(err)
		}
		resp, err := raw.Get(ctx, "x")
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := raw.Compact(ctx, resp.Header.Revision); err != nil {
			t.Error(err)
		}
	})
	waitReady(t, c)
	snapshot, sub := c.Subscribe(10)
	close(subscribed)
	if !slices.Equal(snapshot, []KV{{"networks/gone", "1"}, {"networks/kept", "1"}}) {
		t.Fatalf("first snapshot %v", snapshot)
	}
	var changes []Change
	timeout := time.After(10 * time.Second)
	for len(changes) < 2 {
		select {
		case ch := <-sub.Changes():
			changes = append(changes, ch)
		case <-timeout:
			t.Fatalf("changes after the compaction: %v, want 2", changes)
		}
	}
	if changes[0].Key != "networks/gone" || !changes[0].Deleted || changes[1].Key != "networks/new" || changes[1].Value != "2" {
		t.Errorf("changes told after the reload: %+v", changes)
	}
	// A reload tells its changes at the revision it loaded; a watch would
	// have told them at theirs.
	if changes[0].Revision != changes[1].Revision {
		t.Errorf("changes at revisions %d and %d: not from a reload", changes[0].Revision, changes[1].Revision)
	}
	waitFor(t, 5*time.Second, "the hook run after the second load", func() bool { return loads.Load() >= 2 })
	if got := c.List(""); !slices.Equal(got, []KV{{"networks/kept", "1"}, {"networks/new", "2"}}) {
		t.Errorf("cache after the reload: %v", got)
	}
	waitFor(t, 5*time.Second, "cache synced after the reload", c.Synced)
	if err := a.Put(ctx, "networks/later", "3", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a later put in the cache", func() bool { _, ok := c.Get("networks/later"); return ok })
}
