package store

import (
	"sort"
	"sync"
)

// Memory is a Store held in memory, for tests of the layers above that must
// not depend on a file system. Transactions are serialised; a failed Update
// leaves nothing behind.
type Memory struct {
	mu      sync.RWMutex
	buckets map[string]map[string][]byte
}

func NewMemory() *Memory { return &Memory{buckets: map[string]map[string][]byte{}} }

func (m *Memory) View(fn func(Tx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(&memTx{m: m})
}

func (m *Memory) Update(fn func(Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := &memTx{m: m, writes: map[string]map[string][]byte{}}
	if err := fn(tx); err != nil {
		return err
	}
	for b, kv := range tx.writes {
		if m.buckets[b] == nil {
			m.buckets[b] = map[string][]byte{}
		}
		for k, v := range kv {
			if v == nil {
				delete(m.buckets[b], k)
			} else {
				m.buckets[b][k] = v
			}
		}
	}
	return nil
}

func (m *Memory) Close() error { return nil }

// memTx overlays its own writes (nil value = deleted) on the committed data.
type memTx struct {
	m      *Memory
	writes map[string]map[string][]byte
}

func (t *memTx) Get(bucket, key string) []byte {
	if v, ok := t.writes[bucket][key]; ok {
		return v
	}
	return t.m.buckets[bucket][key]
}

func (t *memTx) set(bucket, key string, value []byte) {
	if t.writes[bucket] == nil {
		t.writes[bucket] = map[string][]byte{}
	}
	t.writes[bucket][key] = value
}

func (t *memTx) Put(bucket, key string, value []byte) error {
	t.set(bucket, key, append([]byte(nil), value...))
	return nil
}

func (t *memTx) Delete(bucket, key string) error {
	t.set(bucket, key, nil)
	return nil
}

func (t *memTx) ForEach(bucket string, fn func(key string, value []byte) error) error {
	keys := map[string]bool{}
	for k := range t.m.buckets[bucket] {
		keys[k] = true
	}
	for k := range t.writes[bucket] {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if v := t.Get(bucket, k); v != nil {
			if err := fn(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}
