package cluster

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// keepLease keeps the host's lease alive until the Store closes, and
// replaces it when it is lost.
func (s *Store) keepLease() {
	defer s.wg.Done()
	s.mu.RLock()
	id := s.leaseID
	s.mu.RUnlock()
	for {
		kctx, stop := context.WithCancel(s.ctx)
		ch, err := s.cli.KeepAlive(kctx, id)
		if err == nil {
			s.drain(ch)
		}
		stop()
		if err != nil && !sleep(s.ctx, time.Second) {
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		// The keepalive ended: etcd said the lease is gone, or did not
		// answer before the lease's deadline, or an operation found it
		// gone. Which of these, etcd says once it answers.
		if id = s.recoverLease(id); id == 0 {
			return
		}
	}
}

// drain reads keepalive answers until the keepalive ends or an operation
// kicks.
func (s *Store) drain(ch <-chan *clientv3.LeaseKeepAliveResponse) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-s.kick:
			return
		}
	}
}

// recoverLease returns the lease to keep alive: id if etcd still has it,
// otherwise a new one under which every record has been put again. It
// retries until etcd answers; 0 when the Store closes first.
func (s *Store) recoverLease(id clientv3.LeaseID) clientv3.LeaseID {
	reput := false
	warned := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !sleep(s.ctx, backoff(attempt)) {
			return 0
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OpTimeout)
		ttl, err := s.cli.TimeToLive(ctx, id)
		cancel()
		if err != nil {
			if !warned {
				s.cfg.Log.Warn("cluster store: cannot reach etcd to keep this host's lease; retrying", "store", s.where, "err", err)
				warned = true
			}
			continue
		}
		if ttl.TTL <= 0 {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OpTimeout)
			lease, err := s.cli.Grant(ctx, ttlSeconds(s.cfg.LeaseTTL))
			cancel()
			if err != nil {
				continue
			}
			s.cfg.Log.Warn("cluster store: this host's lease expired; granted a new one", "old", fmt.Sprintf("%x", id), "new", fmt.Sprintf("%x", lease.ID))
			id, reput = lease.ID, true
		}
		if reput {
			n, lost, err := s.reput(id)
			for _, k := range lost {
				s.cfg.Log.Warn("cluster store: a claim of this host was taken by another while its lease was lost", "key", k)
				if s.cfg.Lost != nil {
					s.cfg.Lost(k)
				}
			}
			if err != nil {
				s.cfg.Log.Warn("cluster store: putting this host's records under its new lease", "err", err)
				continue
			}
			s.cfg.Log.Warn("cluster store: put this host's records again under its new lease", "records", n, "lost", len(lost))
		} else if warned {
			s.cfg.Log.Info("cluster store: etcd answers again; this host's lease held", "store", s.where)
		}
		return id
	}
}

// reput makes id the host's lease and puts every record under it, holding
// off other writes meanwhile. A claim that another holder took is dropped
// and returned in lost. On error it stops; the caller tries again.
func (s *Store) reput(id clientv3.LeaseID) (n int, lost []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaseID = id
	s.recMu.Lock()
	records := make(map[string]record, len(s.records))
	for k, r := range s.records {
		records[k] = r
	}
	s.recMu.Unlock()
	for key, r := range records {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OpTimeout)
		if r.claim {
			var won bool
			won, _, err = s.claim(ctx, key, r.value, true)
			if err == nil && !won {
				lost = append(lost, key)
				s.forget(key)
			}
		} else {
			_, err = s.kv.Put(ctx, key, r.value, clientv3.WithLease(id))
		}
		cancel()
		if err != nil {
			return n, lost, fmt.Errorf("put %s again: %w", key, err)
		}
		n++
	}
	return n, lost, nil
}

// backoff is the wait before the attempt-th retry: from 100 ms doubling
// to 2 s.
func backoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt-1, 5), 2*time.Second)
}

// sleep waits d; false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
