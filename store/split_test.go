package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openSplit(t *testing.T, dir string) *Split {
	t.Helper()
	s, err := OpenSplit(filepath.Join(dir, "berth.db"), filepath.Join(dir, "run.db"), time.Second, "endpoints", "sandboxes")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// txID is the ID of a file's last committed transaction.
func txID(t *testing.T, db *bolt.DB) int {
	t.Helper()
	var id int
	if err := db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func keys(t *testing.T, s Store, bucket string) []string {
	t.Helper()
	var out []string
	if err := s.View(func(tx Tx) error {
		return tx.ForEach(bucket, func(k string, _ []byte) error { out = append(out, k); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Each bucket lives in its file; a transaction on runtime buckets alone
// commits nothing to the durable file, and one that fails commits
// nothing to either.
func TestSplitKeepsEachBucketInItsFileAndCommitsOnlyWhatChanged(t *testing.T) {
	s := openSplit(t, t.TempDir())
	defer s.Close()
	if err := s.Update(func(tx Tx) error {
		if err := tx.Put("networks", "n", []byte("1")); err != nil {
			return err
		}
		return tx.Put("endpoints", "e", []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		db       *bolt.DB
		bucket   string
		has, not string
	}{{s.durable, "networks", "n", "endpoints"}, {s.runtime, "endpoints", "e", "networks"}} {
		if err := c.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte(c.bucket)); b == nil || b.Get([]byte(c.has)) == nil {
				return errors.New(c.bucket + " is not in its file")
			}
			if tx.Bucket([]byte(c.not)) != nil {
				return errors.New(c.not + " is in the wrong file")
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}

	durable, runtime := txID(t, s.durable), txID(t, s.runtime)
	if err := s.Update(func(tx Tx) error {
		if tx.Get("networks", "n") == nil {
			return errors.New("networks/n unread")
		}
		return tx.Put("endpoints", "f", []byte("2"))
	}); err != nil {
		t.Fatal(err)
	}
	if got := txID(t, s.durable); got != durable {
		t.Errorf("an update that only read the durable file committed to it (tx %d → %d)", durable, got)
	}
	if got := txID(t, s.runtime); got != runtime+1 {
		t.Errorf("runtime file at tx %d, want %d", got, runtime+1)
	}

	boom := errors.New("boom")
	if err := s.Update(func(tx Tx) error {
		tx.Put("networks", "m", nil)
		tx.Delete("endpoints", "e")
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed update returned %v", err)
	}
	if got := keys(t, s, "networks"); !slices.Equal(got, []string{"n"}) {
		t.Errorf("networks after a failed update: %v", got)
	}
	if got := keys(t, s, "endpoints"); !slices.Equal(got, []string{"e", "f"}) {
		t.Errorf("endpoints after a failed update: %v", got)
	}
}

// A berthd that kept everything in one file: its sandboxes and endpoints
// move to the runtime file at the next start, and stay there.
func TestSplitMovesRuntimeBucketsOutOfTheDurableFile(t *testing.T) {
	dir := t.TempDir()
	old, err := OpenBolt(filepath.Join(dir, "berth.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Update(func(tx Tx) error {
		for _, kv := range [][2]string{{"networks", "n"}, {"endpoints", "e1"}, {"endpoints", "e2"}, {"sandboxes", "s"}} {
			if err := tx.Put(kv[0], kv[1], []byte(kv[1])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openSplit(t, dir)
	for bucket, want := range map[string][]string{"networks": {"n"}, "endpoints": {"e1", "e2"}, "sandboxes": {"s"}} {
		if got := keys(t, s, bucket); !slices.Equal(got, want) {
			t.Errorf("%s after the move: %v, want %v", bucket, got, want)
		}
	}
	if err := s.durable.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("endpoints")) != nil || tx.Bucket([]byte("sandboxes")) != nil {
			return errors.New("the durable file still has runtime buckets")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	s.Close()
	s = openSplit(t, dir)
	defer s.Close()
	if got := keys(t, s, "endpoints"); !slices.Equal(got, []string{"e1", "e2"}) {
		t.Errorf("endpoints after a second start: %v", got)
	}
}

// The runtime file gone (a reboot emptied the tmpfs) means no runtime
// state; one that cannot be read is started afresh; the durable state
// stays either way.
func TestSplitRuntimeFileLostOrBroken(t *testing.T) {
	dir := t.TempDir()
	s := openSplit(t, dir)
	if err := s.Update(func(tx Tx) error {
		tx.Put("networks", "n", []byte("1"))
		return tx.Put("sandboxes", "s", []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, damage := range []func(string) error{
		os.Remove,
		func(p string) error { return os.WriteFile(p, []byte("not a bbolt file, and too short for one"), 0o600) },
	} {
		if err := damage(filepath.Join(dir, "run.db")); err != nil {
			t.Fatal(err)
		}
		s = openSplit(t, dir)
		if got := keys(t, s, "sandboxes"); len(got) != 0 {
			t.Errorf("sandboxes from a lost runtime file: %v", got)
		}
		if got := keys(t, s, "networks"); !slices.Equal(got, []string{"n"}) {
			t.Errorf("networks: %v", got)
		}
		if err := s.Update(func(tx Tx) error { return tx.Put("sandboxes", "s2", nil) }); err != nil {
			t.Errorf("write after the runtime file was replaced: %v", err)
		}
		s.Close()
	}
}
