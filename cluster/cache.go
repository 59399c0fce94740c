package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cache is a copy in memory of the keys under one prefix, kept current by
// an etcd watch. Get and List never go to etcd: request paths read here.
//
// It loads with one Get at a revision and watches from the next one. When
// the watch cannot resume (etcd compacted the revisions it needs, or
// cancelled it, or lost its leader) the Cache loads again and tells its
// subscribers what differs. While etcd is unreachable it keeps serving the
// last state it had; Health says so, and the Cache converges once etcd
// answers again.
type Cache struct {
	s        *Store
	prefix   string
	cancel   context.CancelFunc
	done     chan struct{}
	ready    chan struct{}
	interval time.Duration
	// afterLoad, when set, runs after each load and before the watch
	// starts; tests change etcd there.
	afterLoad func()

	mu     sync.RWMutex
	kvs    map[string]string
	rev    int64
	loaded bool
	live   bool // the watch is established
	ended  bool // run has returned: no new subscribers
	heard  time.Time
	subs   map[*Subscription]struct{}
}

// Change is one key's change, as a Cache saw it.
type Change struct {
	Key, Value string
	Deleted    bool
	// Revision is etcd's revision of the change; after a reload, the
	// revision of the load.
	Revision int64
}

// Watch starts a Cache of the keys under prefix ("" for all of berth's).
// It runs until ctx ends, Close, or the Store closes; Ready tells when it
// has loaded.
func (s *Store) Watch(ctx context.Context, prefix string) *Cache {
	return s.watch(ctx, prefix, nil)
}

func (s *Store) watch(ctx context.Context, prefix string, afterLoad func()) *Cache {
	cctx, cancel := context.WithCancel(s.ctx)
	stop := context.AfterFunc(ctx, cancel)
	c := &Cache{s: s, prefix: prefix, cancel: cancel, done: make(chan struct{}), ready: make(chan struct{}),
		interval: s.cfg.progressInterval, afterLoad: afterLoad,
		kvs: map[string]string{}, subs: map[*Subscription]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		c.run(cctx)
	}()
	return c
}

// Close stops the Cache and closes its subscriptions.
func (c *Cache) Close() {
	c.cancel()
	<-c.done
}

// Ready is closed once the Cache has loaded for the first time (never, if
// it ends before).
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// Get returns key's value.
func (c *Cache) Get(key string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.kvs[key]
	return v, ok
}

// List returns the keys under prefix and their values, sorted by key.
func (c *Cache) List(prefix string) []KV {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.list(prefix)
}

func (c *Cache) list(prefix string) []KV {
	var out []KV
	for k, v := range c.kvs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, KV{Key: k, Value: v})
		}
	}
	slices.SortFunc(out, func(a, b KV) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Revision is the etcd revision the Cache reflects.
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Health is nil while the Cache is loaded and its watch is live (etcd
// answered it within the last three progress intervals); otherwise it says
// why the Cache may be behind. It keeps serving all the same.
func (c *Cache) Health() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch {
	case !c.loaded:
		return fmt.Errorf("cluster cache of %q: not loaded from %s yet", c.prefix, c.s.where)
	case !c.live:
		return fmt.Errorf("cluster cache of %q: not watching %s; serving revision %d", c.prefix, c.s.where, c.rev)
	case time.Since(c.heard) > 3*c.interval:
		return fmt.Errorf("cluster cache of %q: no word from %s for %s; serving revision %d",
			c.prefix, c.s.where, time.Since(c.heard).Round(time.Millisecond), c.rev)
	}
	return nil
}

// Synced says whether Health is nil.
func (c *Cache) Synced() bool { return c.Health() == nil }

func (c *Cache) run(ctx context.Context) {
	defer func() {
		c.mu.Lock()
		c.live, c.ended = false, true
		for sub := range c.subs {
			sub.end(nil)
		}
		c.mu.Unlock()
		close(c.done)
	}()
	log := c.s.cfg.Log.With("prefix", c.prefix)
	warned := false
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 && !sleep(ctx, backoff(attempt)) {
			return
		}
		rev, err := c.load(ctx)
		if err != nil {
			if !warned && ctx.Err() == nil {
				log.Warn("cluster cache: cannot load; serving the last state", "store", c.s.where, "err", err)
				warned = true
			}
			continue
		}
		if warned {
			log.Info("cluster cache: loaded again", "revision", rev)
			warned = false
		}
		if c.afterLoad != nil {
			c.afterLoad()
		}
		err = c.follow(ctx, rev+1)
		if ctx.Err() != nil {
			return
		}
		log.Info("cluster cache: watch ended; loading again", "err", err)
		attempt = 0
	}
}

// load replaces the Cache's contents with etcd's, telling subscribers what
// differs, and returns the revision loaded.
func (c *Cache) load(ctx context.Context) (int64, error) {
	octx, cancel := context.WithTimeout(ctx, c.s.cfg.OpTimeout)
	resp, err := c.s.kv.Get(octx, c.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return 0, err
	}
	fresh := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		fresh[string(kv.Key)] = string(kv.Value)
	}
	rev := resp.Header.Revision
	c.mu.Lock()
	defer c.mu.Unlock()
	var changes []Change
	for _, k := range slices.Sorted(maps.Keys(c.kvs)) {
		if _, ok := fresh[k]; !ok {
			changes = append(changes, Change{Key: k, Deleted: true, Revision: rev})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fresh)) {
		if old, ok := c.kvs[k]; !ok || old != fresh[k] {
			changes = append(changes, Change{Key: k, Value: fresh[k], Revision: rev})
		}
	}
	c.kvs, c.rev, c.heard = fresh, rev, time.Now()
	if !c.loaded {
		c.loaded = true
		close(c.ready)
	}
	c.publish(changes)
	return rev, nil
}

// errWatchClosed is a watch channel that closed with no reason given.
var errWatchClosed = errors.New("watch closed")

// follow applies the watch's events from rev on, until the watch ends.
func (c *Cache) follow(ctx context.Context, rev int64) error {
	// Without a leader a member's watch would go quiet, not fail; with
	// this it is cancelled and the Cache says it is behind.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.s.watcher.Watch(wctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithCreatedNotify())
	defer func() {
		c.mu.Lock()
		c.live = false
		c.mu.Unlock()
	}()
	go c.askProgress(wctx)
	for {
		resp, ok := <-wch
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return errWatchClosed
		}
		if resp.CompactRevision != 0 {
			return fmt.Errorf("etcd compacted revision %d", resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Canceled {
			return fmt.Errorf("etcd cancelled the watch: %s", resp.CancelReason)
		}
		c.apply(resp)
	}
}

// askProgress asks etcd every interval to answer the watch even when
// nothing changes: its answers, or their absence, make Health.
func (c *Cache) askProgress(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.interval)
		// An error is a stream being re-established: silence shows it.
		_ = c.s.watcher.RequestProgress(pctx)
		cancel()
	}
}

func (c *Cache) apply(resp clientv3.WatchResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heard = time.Now()
	if resp.Created {
		c.live = true
	}
	if resp.IsProgressNotify() {
		c.rev = max(c.rev, resp.Header.Revision)
		return
	}
	changes := make([]Change, 0, len(resp.Events))
	for _, ev := range resp.Events {
		k, rev := string(ev.Kv.Key), ev.Kv.ModRevision
		if ev.Type == clientv3.EventTypeDelete {
			delete(c.kvs, k)
			changes = append(changes, Change{Key: k, Deleted: true, Revision: rev})
		} else {
			c.kvs[k] = string(ev.Kv.Value)
			changes = append(changes, Change{Key: k, Value: string(ev.Kv.Value), Revision: rev})
		}
		c.rev = rev
	}
	c.publish(changes)
}

// Subscription delivers a Cache's changes, in order.
//
// Its channel is bounded, and a slow subscriber never holds up the watch
// nor the other subscribers: one that lets its buffer fill is dropped. Its
// channel closes and Err returns ErrLagged; it resubscribes and starts
// again from the snapshot that Subscribe returns. No change is ever lost
// without the subscriber being told.
type Subscription struct {
	c   *Cache
	ch  chan Change
	err error
}

// ErrLagged is why a Subscription's channel closed when its subscriber fell
// a whole buffer behind.
var ErrLagged = errors.New("cluster cache subscriber fell behind and was dropped; subscribe again")

// Subscribe returns the Cache's contents and a Subscription to every
// change after them. buffer bounds the changes waiting to be read; make it
// hold a burst, since one etcd transaction, or a reload, hands over many at
// once.
func (c *Cache) Subscribe(buffer int) ([]KV, *Subscription) {
	sub := &Subscription{c: c, ch: make(chan Change, max(buffer, 1))}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		close(sub.ch)
	} else {
		c.subs[sub] = struct{}{}
	}
	return c.list(""), sub
}

// Changes is the channel of changes; it closes when the subscription ends.
func (sub *Subscription) Changes() <-chan Change { return sub.ch }

// Err says why Changes closed: ErrLagged, or nil after Close or the Cache's
// end.
func (sub *Subscription) Err() error {
	sub.c.mu.RLock()
	defer sub.c.mu.RUnlock()
	return sub.err
}

// Close ends the subscription.
func (sub *Subscription) Close() {
	sub.c.mu.Lock()
	defer sub.c.mu.Unlock()
	sub.end(nil)
}

// end closes the subscription; c.mu is held.
func (sub *Subscription) end(err error) {
	if _, ok := sub.c.subs[sub]; !ok {
		return
	}
	delete(sub.c.subs, sub)
	sub.err = err
	close(sub.ch)
}

// publish hands changes to the subscribers without waiting; c.mu is held.
func (c *Cache) publish(changes []Change) {
	for sub := range c.subs {
		for _, ch := range changes {
			select {
			case sub.ch <- ch:
				continue
			default:
			}
			sub.end(ErrLagged)
			break
		}
	}
}
