package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Split is a Store kept in two bbolt files: the durable one under the
// daemon's root, and one for the state whose life is the boot's (the
// sandboxes and their endpoints: after a reboot no namespace is left to
// hold them), under the exec-root, which is a tmpfs (/run) on any modern
// distribution. The runtime file is never synced: a process crash keeps
// what the page cache holds, and a power loss loses nothing that would
// still mean anything. So connecting and disconnecting a container, which
// touch the runtime buckets alone, cost no fdatasync; a transaction that
// touches durable buckets too commits the durable file first.
//
// Transactions span both files: a bucket is in one of them, by name.
type Split struct {
	durable, runtime *bolt.DB
	runtimeBuckets   map[string]bool
	// mu lets one Update at a time hold both files' writer locks.
	mu sync.Mutex
}

// OpenSplit opens the durable file at durablePath as OpenBolt does, and
// the runtime file at runtimePath for the buckets named. Runtime buckets
// still found in the durable file (written by an older berthd) move to
// the runtime file. A runtime file that cannot be read (left on a disk
// by a power loss) is started afresh.
func OpenSplit(durablePath, runtimePath string, lockTimeout time.Duration, runtimeBuckets ...string) (*Split, error) {
	d, err := OpenBolt(durablePath, lockTimeout)
	if err != nil {
		return nil, err
	}
	opts := &bolt.Options{Timeout: lockTimeout, NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
	r, err := bolt.Open(runtimePath, 0o600, opts)
	if err != nil && !errors.Is(err, os.ErrPermission) && !errors.Is(err, berrors.ErrTimeout) {
		// The file holds nothing that outlives a boot: a broken one is
		// replaced rather than keeping the daemon from starting.
		if rmErr := os.Remove(runtimePath); rmErr == nil {
			r, err = bolt.Open(runtimePath, 0o600, opts)
		}
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", runtimePath, err)
	}
	s := &Split{durable: d.db, runtime: r, runtimeBuckets: map[string]bool{}}
	for _, b := range runtimeBuckets {
		s.runtimeBuckets[b] = true
	}
	if err := s.migrate(); err != nil {
		s.Close()
		return nil, fmt.Errorf("move run-time state out of %s: %w", durablePath, err)
	}
	return s, nil
}

// migrate moves the runtime buckets from the durable file, where berthd
// kept them before, unless the runtime file has them already (then the
// durable copies are older and dropped).
func (s *Split) migrate() error {
	var found []string
	if err := s.durable.View(func(dtx *bolt.Tx) error {
		for name := range s.runtimeBuckets {
			if dtx.Bucket([]byte(name)) != nil {
				found = append(found, name)
			}
		}
		return nil
	}); err != nil || len(found) == 0 {
		return err
	}
	return s.durable.Update(func(dtx *bolt.Tx) error {
		if err := s.runtime.Update(func(rtx *bolt.Tx) error {
			for _, name := range found {
				if rtx.Bucket([]byte(name)) != nil {
					continue
				}
				to, err := rtx.CreateBucket([]byte(name))
				if err != nil {
					return err
				}
				if err := dtx.Bucket([]byte(name)).ForEach(func(k, v []byte) error { return to.Put(k, v) }); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		for _, name := range found {
			if err := dtx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Split) View(fn func(Tx) error) error {
	t := &splitTx{s: s}
	defer t.rollback()
	if err := fn(t); err != nil {
		return err
	}
	return t.err
}

func (s *Split) Update(fn func(Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &splitTx{s: s, writable: true}
	defer t.rollback()
	if err := fn(t); err != nil {
		return err
	}
	if t.err != nil {
		return t.err
	}
	// The durable file first: it is the one a full disk or an I/O error
	// can refuse, and then nothing at all is committed.
	for _, side := range []*side{&t.durable, &t.runtime} {
		if side.tx != nil && side.dirty {
			err := side.tx.Commit()
			side.tx = nil
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Split) Close() error {
	return errors.Join(s.runtime.Close(), s.durable.Close())
}

// side is a transaction on one of the files, begun when a bucket of that
// file is first used.
type side struct {
	tx    *bolt.Tx
	dirty bool
}

type splitTx struct {
	s                *Split
	writable         bool
	durable, runtime side
	// err is a failure to begin a transaction where the Tx interface
	// cannot return it (Get); the whole transaction fails with it.
	err error
}

// on returns the transaction of the file bucket is in, beginning it.
func (t *splitTx) on(bucket string) (*side, error) {
	sd, db := &t.durable, t.s.durable
	if t.s.runtimeBuckets[bucket] {
		sd, db = &t.runtime, t.s.runtime
	}
	if sd.tx == nil {
		tx, err := db.Begin(t.writable)
		if err != nil {
			t.err = err
			return nil, err
		}
		sd.tx = tx
	}
	return sd, nil
}

func (t *splitTx) rollback() {
	for _, sd := range []*side{&t.durable, &t.runtime} {
		if sd.tx != nil {
			sd.tx.Rollback()
			sd.tx = nil
		}
	}
}

func (t *splitTx) Get(bucket, key string) []byte {
	sd, err := t.on(bucket)
	if err != nil {
		return nil
	}
	return boltTx{sd.tx}.Get(bucket, key)
}

func (t *splitTx) Put(bucket, key string, value []byte) error {
	sd, err := t.on(bucket)
	if err != nil {
		return err
	}
	sd.dirty = true
	return boltTx{sd.tx}.Put(bucket, key, value)
}

func (t *splitTx) Delete(bucket, key string) error {
	sd, err := t.on(bucket)
	if err != nil {
		return err
	}
	sd.dirty = true
	return boltTx{sd.tx}.Delete(bucket, key)
}

func (t *splitTx) ForEach(bucket string, fn func(key string, value []byte) error) error {
	sd, err := t.on(bucket)
	if err != nil {
		return err
	}
	return boltTx{sd.tx}.ForEach(bucket, fn)
}
