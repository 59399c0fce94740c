package firewall

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// traceModel is a host with a network of each kind: app and data (plain
// bridges), quiet (enable_icc=false), int (internal) and lan (macvlan,
// outside berth's firewall).
func traceModel() (Model, map[string]Peer) {
	ep := func(network, bridge, port, addr, gw string, dflt bool) Endpoint {
		e := Endpoint{Network: network, Bridge: bridge, Port: port, IPv4: netip.MustParsePrefix(addr), Default4: dflt}
		if gw != "" {
			e.Gateway4 = netip.MustParseAddr(gw)
		}
		return e
	}
	peers := map[string]Peer{
		"web":   {Name: "web", Endpoints: []Endpoint{ep("app", "br-app", "vethweb", "172.18.0.2/16", "172.18.0.1", true)}},
		"api":   {Name: "api", Endpoints: []Endpoint{ep("app", "br-app", "vethapi", "172.18.0.3/16", "172.18.0.1", true)}},
		"db":    {Name: "db", Endpoints: []Endpoint{ep("data", "br-data", "vethdb", "172.19.0.2/16", "172.19.0.1", true)}},
		"q1":    {Name: "q1", Endpoints: []Endpoint{ep("quiet", "br-quiet", "vethq1", "172.20.0.2/16", "172.20.0.1", true)}},
		"q2":    {Name: "q2", Endpoints: []Endpoint{ep("quiet", "br-quiet", "vethq2", "172.20.0.3/16", "172.20.0.1", true)}},
		"vault": {Name: "vault", Endpoints: []Endpoint{ep("int", "br-int", "vethv", "172.21.0.2/16", "172.21.0.1", true)}},
		"safe":  {Name: "safe", Endpoints: []Endpoint{ep("int", "br-int", "veths", "172.21.0.3/16", "172.21.0.1", true)}},
		"mac":   {Name: "mac", Endpoints: []Endpoint{ep("lan", "", "", "10.77.0.2/24", "10.77.0.1", true)}},
		"mac2":  {Name: "mac2", Endpoints: []Endpoint{ep("lan", "", "", "10.77.0.3/24", "10.77.0.1", true)}},
		// On app and data, the default route through app.
		"both": {Name: "both", Endpoints: []Endpoint{
			ep("app", "br-app", "vethb1", "172.18.0.9/16", "172.18.0.1", true),
			ep("data", "br-data", "vethb2", "172.19.0.9/16", "172.19.0.1", false)}},
		// Only on an internal network and a macvlan one without a gateway.
		"lonely": {Name: "lonely", Endpoints: []Endpoint{ep("lan", "", "", "10.77.0.9/24", "", false)}},
	}
	a := netip.MustParseAddr
	m := Model{
		Table: "berth",
		Networks: []Network{
			{Bridge: "br-app", Masquerade: true},
			{Bridge: "br-data", Masquerade: true},
			{Bridge: "br-quiet", Masquerade: true, Isolated: true, Ports: []string{"vethq1", "vethq2"}},
			{Bridge: "br-int", Internal: true},
		},
		Bindings: []Binding{
			{Proto: "tcp", HostPort: 8080, IP: a("172.19.0.2"), Port: 5432},
			{Proto: "tcp", HostPort: 8081, IP: a("172.18.0.3"), Port: 80},
			{Proto: "tcp", HostPort: 8082, IP: a("172.20.0.3"), Port: 80},
			{Proto: "udp", HostIP: a("127.0.0.1"), HostPort: 5353, IP: a("172.18.0.3"), Port: 53},
			{Proto: "tcp", HostIP: a("192.0.2.1"), HostPort: 9443, IP: a("172.19.0.2"), Port: 443},
		},
		Owners: map[netip.Addr]Owner{
			a("172.19.0.2"): {Peer: "db", Network: "data", Bridge: "br-data"},
			a("172.18.0.3"): {Peer: "api", Network: "app", Bridge: "br-app"},
			a("172.20.0.3"): {Peer: "q2", Network: "quiet", Bridge: "br-quiet"},
		},
	}
	return m, peers
}

func TestTraceDecidesByBerthsRules(t *testing.T) {
	m, peers := traceModel()
	peer := func(name string) *Peer { p := peers[name]; return &p }
	host := func(addr string, port uint16, proto string) Target {
		tg := Target{Port: port, Proto: proto}
		if addr != "" {
			tg.Addr = netip.MustParseAddr(addr)
		}
		return tg
	}
	cases := []struct {
		name     string
		from     string
		to       Target
		verdict  Verdict
		rule     string // "" for none
		path     string // a step the path must have
		noteHas  string
		reasonIs string
	}{
		{name: "same network", from: "web", to: Target{Peer: peer("api"), Port: 80, Addr: netip.MustParseAddr("172.18.0.3")},
			verdict: Allowed, rule: "inet berth forward: iifname . oifname @intra accept",
			path: "bridged on br-app (network app) from port vethweb to port vethapi", noteHas: "filters no ports"},
		{name: "two networks", from: "web", to: Target{Peer: peer("db")},
			verdict: Denied, rule: "inet berth forward: iifname @bridges oifname @bridges drop",
			path: "routed by the host from br-app (network app) to br-data (network data)"},
		{name: "two networks, a port the target publishes", from: "web", to: Target{Peer: peer("db"), Port: 5432},
			verdict: Denied, rule: "inet berth forward: iifname @bridges oifname @bridges drop",
			noteHas: "db publishes 5432/tcp on port 8080 of the host's addresses"},
		{name: "enable_icc=false", from: "q1", to: Target{Peer: peer("q2")},
			verdict: Denied, rule: "bridge berth forward: iifname @isolated oifname @isolated drop",
			path: "bridged on br-quiet"},
		{name: "internal network, within", from: "vault", to: Target{Peer: peer("safe")},
			verdict: Allowed, rule: "inet berth forward: iifname . oifname @intra accept"},
		{name: "out of an internal network", from: "vault", to: Target{Peer: peer("web")},
			verdict: Denied, rule: "inet berth forward: iifname @internal drop"},
		{name: "into an internal network", from: "web", to: Target{Peer: peer("vault")},
			verdict: Denied, rule: "inet berth forward: oifname @internal drop"},
		{name: "a shared network is taken", from: "both", to: Target{Peer: peer("db")},
			verdict: Allowed, rule: "inet berth forward: iifname . oifname @intra accept", path: "bridged on br-data"},
		{name: "another address of the target, off the shared network", from: "db", to: Target{Peer: peer("both"), Addr: netip.MustParseAddr("172.18.0.9")},
			verdict: Denied, rule: "inet berth forward: iifname @bridges oifname @bridges drop"},
		{name: "an address the target does not have", from: "web", to: Target{Peer: peer("api"), Addr: netip.MustParseAddr("172.18.0.77")},
			verdict: Undecided},
		{name: "macvlan, one network", from: "mac", to: Target{Peer: peer("mac2")}, verdict: Allowed, path: "which berth's firewall does not apply to"},
		{name: "macvlan to a bridge", from: "mac", to: Target{Peer: peer("web")}, verdict: Undecided},
		{name: "a bridge to macvlan", from: "web", to: Target{Peer: peer("mac")}, verdict: Undecided},
		{name: "no route", from: "lonely", to: Target{Peer: peer("web")}, verdict: Denied, reasonIs: "lonely has no route to 172.18.0.2: it is on no network of that subnet and has no default route of that family"},

		{name: "published port from another network", from: "web", to: host("", 8080, ""),
			verdict: Allowed, rule: "inet berth forward: ct status dnat accept",
			path:    "inet berth prerouting: fib daddr type local meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports4: to 172.19.0.2:5432",
			noteHas: "masquerade"},
		{name: "published port of the own network", from: "web", to: host("172.18.0.1", 8081, "tcp"),
			verdict: Allowed, rule: "inet berth forward: iifname . oifname @intra accept", path: "back out of br-app (network app) to api"},
		{name: "published port of an enable_icc=false network, from it", from: "q1", to: host("", 8082, ""),
			verdict: Allowed, rule: "inet berth forward: ct status dnat accept"},
		{name: "published port on a given address", from: "web", to: host("192.0.2.1", 9443, ""),
			verdict: Allowed, rule: "inet berth forward: ct status dnat accept", path: "map @hostports4: to 172.19.0.2:443"},
		{name: "published port from an internal network", from: "vault", to: host("", 8080, ""),
			verdict: Denied, rule: "inet berth forward: iifname @internal drop"},
		{name: "a port nobody publishes", from: "web", to: host("", 9000, ""),
			verdict: Allowed, path: "no port 9000/tcp published on 172.18.0.1: the traffic is for the host itself"},
		{name: "a port published elsewhere", from: "web", to: host("", 5353, "udp"),
			verdict: Allowed, noteHas: "5353/udp is published on 127.0.0.1 only"},
		{name: "loopback", from: "web", to: host("127.0.0.1", 5353, "udp"), verdict: Denied},
		{name: "the host from macvlan", from: "mac", to: host("", 8080, ""), verdict: Undecided},
		{name: "the host without a way out", from: "lonely", to: host("", 8080, ""), verdict: Denied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := m.Trace(peers[c.from], c.to)
			if got.Verdict != c.verdict || got.Rule != c.rule {
				t.Errorf("verdict %s by %q, want %s by %q\n%+v", got.Verdict, got.Rule, c.verdict, c.rule, got)
			}
			if c.to.Addr.IsValid() && got.Addr != c.to.Addr && got.Verdict != Undecided {
				t.Errorf("went to %s, asked for %s", got.Addr, c.to.Addr)
			}
			if got.Reason == "" {
				t.Errorf("no reason: %+v", got)
			}
			if c.reasonIs != "" && got.Reason != c.reasonIs {
				t.Errorf("reason %q, want %q", got.Reason, c.reasonIs)
			}
			if c.path != "" && !anyContains(got.Path, c.path) {
				t.Errorf("path %q has no step with %q", got.Path, c.path)
			}
			if c.noteHas != "" && !anyContains(got.Notes, c.noteHas) {
				t.Errorf("notes %q have nothing of %q", got.Notes, c.noteHas)
			}
		})
	}
}

func anyContains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestTraceNamesRulesOfTheRuleset holds the rules traces name to the
// ruleset as nft shows it (testdata/nft/rebuild.nft, which
// TestRulesAndElementsAreWhatNftSends holds to what berth sends): a rule
// changed in one place and not the other fails here.
func TestTraceNamesRulesOfTheRuleset(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "nft", "rebuild.nft"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[rule]bool{}
	var family, chain string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		fields := strings.Fields(line)
		switch {
		case len(fields) == 4 && fields[0] == "table":
			family, chain = fields[1], ""
		case len(fields) == 3 && fields[0] == "chain":
			chain = fields[1]
		case line == "}":
			chain = ""
		case chain != "" && !strings.HasPrefix(line, "type "):
			listed[rule{family, chain, line}] = true
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []rule{ruleIntra, ruleFromInternal, ruleToInternal, ruleDNAT, ruleBetween, ruleIsolated,
		ruleHostPorts4, rulePorts4, ruleHostPorts6, rulePorts6, ruleHairpinMasq} {
		if !listed[r] {
			t.Errorf("%s %s: %q is not a rule of the ruleset", r.family, r.chain, r.text)
		}
	}
}
