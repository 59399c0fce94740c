package firewall

import (
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Counts are what berth's tables hold, and what they caught.
type Counts struct {
	// Elements is the number of elements of each of berth's sets and
	// maps, by name.
	Elements map[string]int
	// SpoofDropped counts the frames the anti-spoofing rules dropped.
	SpoofDropped uint64
}

// Counts reads the sets' elements and the anti-spoofing rules' counters
// from the kernel: what is there, not what berth believes it wrote.
func (f *Firewall) Counts() (Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Counts{Elements: map[string]int{}}
	for _, name := range slices.Sorted(maps.Keys(f.sets)) {
		els, err := f.conn.GetSetElements(f.sets[name])
		if err != nil {
			return Counts{}, fmt.Errorf("list the elements of set %s: %w", name, err)
		}
		c.Elements[name] = len(els)
	}
	rules, err := f.conn.GetRules(f.bridge, &nftables.Chain{Name: "prerouting", Table: f.bridge})
	if err != nil {
		return Counts{}, fmt.Errorf("list the anti-spoofing rules: %w", err)
	}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if n, ok := e.(*expr.Counter); ok {
				c.SpoofDropped += n.Packets
			}
		}
	}
	return c, nil
}
