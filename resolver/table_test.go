package resolver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

// resolve looks name up on nets as a query would.
func resolve(t *testing.T, table *Table, nets []string, name string) []netip.Addr {
	t.Helper()
	key, ok := encodeName(name, true)
	if !ok {
		t.Fatalf("bad name %q", name)
	}
	got, _ := table.lookup(nets, key, typeA, nil)
	slices.SortFunc(got, netip.Addr.Compare)
	return got
}

func TestAddReplacesWhatTheContainerPublishedBefore(t *testing.T) {
	table := NewTable()
	old := Record{Network: "n", NetworkID: "n", Container: "c1c1c1c1c1c1ffff", Names: []string{"old"}, IPv4: netip.MustParseAddr("10.0.0.2")}
	table.Add(old)
	table.Add(old) // idempotent
	if got := resolve(t, table, []string{"n"}, "old"); len(got) != 1 {
		t.Fatalf("after adding twice: %v, want one address", got)
	}
	table.Add(Record{Network: "n", NetworkID: "n", Container: "c1c1c1c1c1c1ffff", Names: []string{"new"}, IPv4: netip.MustParseAddr("10.0.0.3")})
	if got := resolve(t, table, []string{"n"}, "old"); got != nil {
		t.Fatalf("old name still resolves to %v", got)
	}
	if got := resolve(t, table, []string{"n"}, "new"); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.0.0.3")}) {
		t.Fatalf("new name resolves to %v", got)
	}
	if table.lookupPTR([]string{"n"}, netip.MustParseAddr("10.0.0.2")) != nil {
		t.Fatal("old address still has a PTR")
	}
}

func TestRemoveWithdrawsOnlyThatContainer(t *testing.T) {
	table := NewTable()
	a, b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	table.Add(Record{Network: "n", NetworkID: "n", Container: "aaaaaaaaaaaa", Names: []string{"a", "svc"}, IPv4: a})
	table.Add(Record{Network: "n", NetworkID: "n", Container: "bbbbbbbbbbbb", Names: []string{"b", "svc"}, IPv4: b})
	table.Add(Record{Network: "m", NetworkID: "m", Container: "aaaaaaaaaaaa", Names: []string{"a"}, IPv4: a})

	table.Remove("n", "aaaaaaaaaaaa")
	table.Remove("n", "nobody")
	table.Remove("nonet", "aaaaaaaaaaaa")
	for _, tc := range []struct {
		nets []string
		name string
		want []netip.Addr
	}{
		{[]string{"n"}, "svc", []netip.Addr{b}},
		{[]string{"n"}, "a", nil},
		{[]string{"n"}, "aaaaaaaaaaaa", nil},
		{[]string{"m"}, "a", []netip.Addr{a}},
	} {
		if got := resolve(t, table, tc.nets, tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("%v %s: got %v, want %v", tc.nets, tc.name, got, tc.want)
		}
	}
	table.Remove("n", "bbbbbbbbbbbb")
	table.Remove("m", "aaaaaaaaaaaa")
	if n := len(*table.nets.Load()); n != 0 {
		t.Fatalf("%d networks left in an empty table", n)
	}
}

func TestReverseNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // "" for no address
	}{
		{"6.10.29.172.in-addr.arpa", "172.29.10.6"},
		{"6.10.29.172.IN-ADDR.ARPA.", "172.29.10.6"},
		{"0.0.0.0.in-addr.arpa", "0.0.0.0"},
		{"256.10.29.172.in-addr.arpa", ""},
		{"06.10.29.172.in-addr.arpa", ""},
		{"10.29.172.in-addr.arpa", ""},
		{"x.10.29.172.in-addr.arpa", ""},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "fd00::1"},
		{"F.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "fd00::f"},
		{"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", ""},
		{"example.com", ""},
	} {
		key, _ := encodeName(tc.name, true)
		got, ok := reverseAddr(key)
		if tc.want == "" {
			if ok {
				t.Errorf("%s: got %v, want none", tc.name, got)
			}
		} else if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: got %v, want %s", tc.name, got, tc.want)
		}
	}
}

func TestNamesThatAreNoDNSNamesAreLeftOut(t *testing.T) {
	for _, name := range []string{"", ".", "a..b", strings.Repeat("a", 64), strings.Repeat(strings.Repeat("a", 63)+".", 4)} {
		if _, ok := encodeName(name, true); ok {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestTableIsSafeForConcurrentUse(t *testing.T) {
	table := NewTable()
	key, _ := encodeName("svc", true)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				id := fmt.Sprintf("%012d", w*1000+i%10)
				network := fmt.Sprint("net", i%3)
				table.Add(Record{Network: network, NetworkID: network, Container: id, Names: []string{"svc"},
					IPv4: netip.AddrFrom4([4]byte{10, byte(w), 0, byte(i % 10)})})
				table.lookup([]string{"net0", "net1", "net2"}, key, typeA, nil)
				table.lookupPTR([]string{"net1"}, netip.AddrFrom4([4]byte{10, byte(w), 0, 1}))
				table.Remove(network, id)
			}
		})
	}
	wg.Wait()
	if n := len(*table.nets.Load()); n != 0 {
		t.Fatalf("%d networks left after every endpoint was removed", n)
	}
}
