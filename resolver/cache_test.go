package resolver

import (
	"fmt"
	"testing"
	"time"
)

func TestCacheStaysWithinItsSize(t *testing.T) {
	c := newCache(128)
	now := time.Now()
	for i := range 10000 {
		c.put(fmt.Appendf(nil, "key%d", i), &entry{expires: now.Add(time.Hour)})
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	if n > 128 {
		t.Fatalf("%d entries in a cache of 128", n)
	}
	if c.get([]byte("key9999"), now) == nil {
		t.Fatal("the newest entry was evicted")
	}
	if c.get([]byte("key9999"), now.Add(time.Hour)) != nil {
		t.Fatal("an expired entry was returned")
	}
}
