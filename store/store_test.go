package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

type record struct {
	Name string
	N    int
}

func stores(t *testing.T) map[string]Store {
	t.Helper()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "berth.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dir := t.TempDir()
	sp, err := OpenSplit(filepath.Join(dir, "berth.db"), filepath.Join(dir, "run.db"), time.Second, "networks")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return map[string]Store{"bolt": b, "memory": NewMemory(), "split": sp}
}

func TestCommittedWritesAreVisibleAndFailedOnesAreNot(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.Update(func(tx Tx) error {
				return PutJSON(tx, "networks", "a", record{Name: "a", N: 1})
			}); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("boom")
			err := s.Update(func(tx Tx) error {
				if err := PutJSON(tx, "networks", "b", record{Name: "b"}); err != nil {
					return err
				}
				if err := tx.Delete("networks", "a"); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("Update error = %v, want boom", err)
			}
			var got []string
			err = s.View(func(tx Tx) error {
				return LoadAll(tx, "networks", func(key string, r *record) error {
					got = append(got, key+"="+r.Name)
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != "a=a" {
				t.Fatalf("after rolled-back update the bucket holds %v, want [a=a]", got)
			}
		})
	}
}

func TestReadingAMissingBucketYieldsNothing(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			err := s.View(func(tx Tx) error {
				var r record
				ok, err := GetJSON(tx, "nothing", "x", &r)
				if ok || err != nil {
					t.Errorf("GetJSON on missing bucket = %v, %v", ok, err)
				}
				return tx.ForEach("nothing", func(string, []byte) error {
					t.Error("ForEach visited a key of a missing bucket")
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSecondOpenOfOneDatabaseFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	first, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	second, err := OpenBolt(path, 200*time.Millisecond)
	if err == nil {
		second.Close()
		t.Fatal("second open of a locked database succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open error = %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("second open blocked for %v", waited)
	}
}
