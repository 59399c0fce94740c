package store

import (
	"encoding/json"
	"errors"
)

// Store is a transactional key-value store of buckets.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed when fn returns
	// nil and rolled back otherwise.
	Update(fn func(Tx) error) error
	Close() error
}

// Tx is one transaction. Buckets exist implicitly: reading a bucket that was
// never written yields nothing.
type Tx interface {
	Get(bucket, key string) []byte
	Put(bucket, key string, value []byte) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
}

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store is locked by another process")

// GetJSON decodes the value at bucket/key into v and reports whether it
// existed.
func GetJSON(tx Tx, bucket, key string, v any) (bool, error) {
	b := tx.Get(bucket, key)
	if b == nil {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

// PutJSON encodes v and stores it at bucket/key.
func PutJSON(tx Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(bucket, key, b)
}

// LoadAll decodes every value of bucket with newT and passes it to fn.
func LoadAll[T any](tx Tx, bucket string, fn func(key string, v *T) error) error {
	return tx.ForEach(bucket, func(key string, value []byte) error {
		v := new(T)
		if err := json.Unmarshal(value, v); err != nil {
			return err
		}
		return fn(key, v)
	})
}
