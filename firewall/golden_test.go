package firewall

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with what the firewall sends now")

// A state with one of each: a masqueraded network, one not masqueraded,
// an internal one (never masqueraded, though asked), one with
// enable_icc=false and two containers, one whose IPv6 is routed and one
// whose IPv4 containers are open from outside (nat-unprotected);
// bindings of every protocol, IPv4 and IPv6, on every host address and on
// one, and ports opened in a routed family.
var (
	stateNetworks = []Network{
		{Bridge: "berth0", Masquerade: true},
		{Bridge: "br-plain"},
		{Bridge: "br-internal", Internal: true, Masquerade: true},
		{Bridge: "br-noicc", Masquerade: true, Isolated: true, Ports: []string{"veth1a2b3c", "veth4d5e6f"}},
		{Bridge: "br-routed", Masquerade: true, Routed6: true},
		{Bridge: "br-open", Masquerade: true, Unprotected4: true},
	}
	stateBindings = []Binding{
		{Proto: "tcp", HostPort: 8080, IP: ip("172.18.0.2"), Port: 80},
		{Proto: "udp", HostIP: ip("127.0.0.1"), HostPort: 5353, IP: ip("172.18.0.3"), Port: 53},
		{Proto: "sctp", HostPort: 9999, IP: ip("172.18.0.4"), Port: 9999},
		{Proto: "tcp", HostIP: ip("192.0.2.10"), HostPort: 443, IP: ip("172.18.0.5"), Port: 8443},
		{Proto: "tcp", HostPort: 8080, IP: ip("fd00:b::2"), Port: 80},
		{Proto: "udp", HostIP: ip("::1"), HostPort: 5353, IP: ip("fd00:b::3"), Port: 53},
		{Proto: "sctp", HostIP: ip("2001:db8::1"), HostPort: 38412, IP: ip("fd00:b::4"), Port: 38412},
		{Proto: "tcp", IP: ip("2001:db8:d::2"), Port: 80, Routed: true},
		{Proto: "udp", IP: ip("2001:db8:d::2"), Port: 53, Routed: true},
		{Proto: "tcp", IP: ip("10.20.0.2"), Port: 80, Routed: true},
	}
	// Guarded ports: a dual-stack container and an IPv4-only one.
	stateGuards = []Guard{
		{Port: "veth1a2b3c", MAC: mac("02:42:ac:12:00:02"), IPv4: ip("172.18.0.2"), IPv6: ip("fd00:b::2")},
		{Port: "veth4d5e6f", MAC: mac("02:42:ac:12:00:03"), IPv4: ip("172.18.0.3")},
	}
	// Two networks created (one internal), a container publishing ports
	// on one, and one joining the isolated network.
	arrival = Change{
		AddNetworks: []Network{{Bridge: "br-new", Masquerade: true}, {Bridge: "br-new-int", Internal: true}},
		Publish: []Binding{
			{Proto: "tcp", HostPort: 8081, IP: ip("172.19.0.2"), Port: 80},
			{Proto: "udp", HostIP: ip("::1"), HostPort: 53, IP: ip("fd00:c::2"), Port: 53},
			{Proto: "tcp", IP: ip("2001:db8:d::3"), Port: 443, Routed: true},
		},
		Isolate: []string{"veth7a8b9c"},
		Guard:   []Guard{{Port: "veth7a8b9c", MAC: mac("02:42:ac:13:00:02"), IPv4: ip("172.19.0.2")}},
	}
	departure = Change{
		RemoveNetworks: arrival.AddNetworks,
		Unpublish:      arrival.Publish,
		Unisolate:      arrival.Isolate,
		Unguard:        arrival.Guard,
	}
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func rebuildState(f *Firewall) error { return f.Rebuild(stateNetworks, stateBindings, stateGuards) }

// goldenCase is one operation and the file that holds what it sends.
type goldenCase struct {
	golden string
	what   string
	// setup runs before the recording starts (the sets Apply updates are
	// the ones a Rebuild declared).
	setup func(*Firewall) error
	run   func(*Firewall) error
	// sortRules: the operation's rules come in map order.
	sortRules bool
}

var goldenCases = []goldenCase{
	{
		golden: "rebuild.golden",
		what:   "Rebuild of a state with a masqueraded, a plain, an internal, an isolated, a routed (IPv6) and an unprotected (IPv4) network and bindings of every protocol, IPv4 and IPv6, with and without a host address, and routed ones: both tables replaced, every set declared with its elements, every chain and rule, in one batch.",
		run:    rebuildState,
	},
	{
		golden: "rebuild-empty.golden",
		what:   "Rebuild with no networks: the same tables, sets, chains and rules, the sets empty.",
		run:    func(f *Firewall) error { return f.Rebuild(nil, nil, nil) },
	},
	{
		golden: "apply-arrival.golden",
		what:   "Apply after Rebuild: a network and an internal one added, three ports published (IPv4 on every address, IPv6 on ::1, one opened on a routed address), a port isolated: element additions only, one message per set, one batch.",
		setup:  rebuildState,
		run:    func(f *Firewall) error { return f.Apply(arrival) },
	},
	{
		golden: "apply-departure.golden",
		what:   "Apply after Rebuild: the arrival undone: element deletions only, one message per set, one batch.",
		setup:  rebuildState,
		run:    func(f *Firewall) error { return f.Apply(departure) },
	},
	{
		golden: "apply-both.golden",
		what:   "Apply after Rebuild of a change that removes and adds: every deletion comes before every addition.",
		setup:  rebuildState,
		run: func(f *Firewall) error {
			return f.Apply(Change{
				AddNetworks: arrival.AddNetworks, Publish: arrival.Publish,
				RemoveNetworks: stateNetworks[1:2], Unpublish: stateBindings[:1], Unisolate: stateNetworks[3].Ports[:1],
				Unguard: stateGuards[:1],
			})
		},
	},
	{
		golden:    "redirect-dns.golden",
		what:      "RedirectDNS(udp 40000, tcp 40001), on a connection of its own in the container's namespace: the berth_dns table replaced with one NAT output chain and a DNAT rule per protocol.",
		run:       func(f *Firewall) error { return f.RedirectDNS(3, 40000, 40001) },
		sortRules: true,
	},
	{
		golden: "forward-drops.golden",
		what:   "ForwardDrops: one dump of the chains of every family.",
		run: func(f *Firewall) error {
			_, err := f.ForwardDrops()
			return err
		},
	},
}

// TestGoldenMessagesOfEachOperation checks what each operation sends against
// testdata/*.golden; `go test ./firewall -run Golden -update` rewrites
// them. Each operation is recorded several times, each time on a fresh
// firewall, to show the rendering does not depend on map order or on
// set IDs.
func TestGoldenMessagesOfEachOperation(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the golden files hold host-order data of a little-endian host")
	}
	for _, tc := range goldenCases {
		t.Run(strings.TrimSuffix(tc.golden, ".golden"), func(t *testing.T) {
			got := record(t, tc)
			for range 4 {
				if again := record(t, tc); again != got {
					t.Fatalf("two recordings differ:\n%s", firstDifference(again, got))
				}
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./firewall -run Golden -update` to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s: the firewall sends something else now (if that is meant, run `go test ./firewall -run Golden -update` and review the diff):\n%s",
					path, firstDifference(got, string(want)))
			}
		})
	}
}

// record runs the case on a fresh firewall and renders what it sent.
func record(t *testing.T, tc goldenCase) string {
	t.Helper()
	k := newFakeKernel(t)
	f := k.newFirewall()
	p := newPrinter()
	if tc.setup != nil {
		if err := tc.setup(f); err != nil {
			t.Fatal(err)
		}
		// The printer learns the set IDs the setup declared.
		for _, r := range k.sent() {
			p.request(r)
		}
		p.b.Reset()
		k.forget()
	}
	if err := tc.run(f); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&p.b, "# %s\n", wrap(tc.what, 76, "# "))
	fmt.Fprintf(&p.b, "# Written by `go test ./firewall -run Golden -update`; in nft --debug=netlink notation (see render_test.go).\n")
	for i, r := range k.sent() {
		fmt.Fprintf(&p.b, "\n# request %d\n", i+1)
		p.request(canonical(r, tc.sortRules))
	}
	return p.String()
}

func wrap(s string, width int, prefix string) string {
	var lines []string
	var cur string
	for _, w := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(w) > width {
			lines, cur = append(lines, cur), ""
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	return strings.Join(append(lines, cur), "\n"+prefix)
}

// firstDifference shows where got and want part, with a little context.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "first difference at line %d\n", i+1)
	for j := max(0, i-3); j < i; j++ {
		fmt.Fprintf(&b, "   %s\n", g[j])
	}
	for j := i; j < min(len(w), i+3); j++ {
		fmt.Fprintf(&b, " - %s\n", w[j])
	}
	for j := i; j < min(len(g), i+3); j++ {
		fmt.Fprintf(&b, " + %s\n", g[j])
	}
	return b.String()
}
