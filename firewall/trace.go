package firewall

import (
	"fmt"
	"net/netip"
	"slices"
)

// A trace answers, from berth's model of its tables alone (no packet is
// sent), whether a container's traffic gets through berth's rules to
// another container or to a port published on the host, which rule
// decides, and the way the traffic takes. It follows the rules as
// addChains writes them: the forward chains see only the first packet of
// a connection that matters, the answers pass as established.

// rule is one of berth's rules as `nft list ruleset` shows it.
type rule struct{ family, chain, text string }

// The rules a trace names. TestTraceNamesRulesOfTheRuleset holds them to
// testdata/nft/rebuild.nft, which TestRulesAndElementsAreWhatNftSends
// holds to what berth sends.
var (
	ruleIntra        = rule{"inet", "forward", "iifname . oifname @intra accept"}
	ruleFromInternal = rule{"inet", "forward", "iifname @internal drop"}
	ruleToInternal   = rule{"inet", "forward", "oifname @internal drop"}
	ruleDNAT         = rule{"inet", "forward", "ct status dnat accept"}
	ruleBetween      = rule{"inet", "forward", "iifname @bridges oifname @bridges drop"}
	ruleIsolated     = rule{"bridge", "forward", "iifname @isolated oifname @isolated drop"}
	ruleHostPorts4   = rule{"inet", "prerouting", "fib daddr type local meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @hostports4"}
	rulePorts4       = rule{"inet", "prerouting", "fib daddr type local meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports4"}
	ruleHostPorts6   = rule{"inet", "prerouting", "fib daddr type local meta nfproto ipv6 ip6 daddr != ::1 dnat ip6 to ip6 daddr . meta l4proto . th dport map @hostports6"}
	rulePorts6       = rule{"inet", "prerouting", "fib daddr type local meta nfproto ipv6 ip6 daddr != ::1 dnat ip6 to meta l4proto . th dport map @ports6"}
	ruleHairpinMasq  = rule{"inet", "postrouting", "ct status dnat iifname @bridges oifname @bridges masquerade"}
)

// Endpoint is a container's attachment to a network, as a trace sees it.
type Endpoint struct {
	// Network is the network's name, for explanations.
	Network string
	// Bridge is the network's device under berth's firewall; empty for a
	// network the firewall does not apply to (macvlan, ipvlan, CNI, a
	// plugin's).
	Bridge string
	// Port is the host end of the endpoint's veth pair on Bridge.
	Port       string
	IPv4, IPv6 netip.Prefix
	// Gateway4 and Gateway6 are the host's addresses on the network.
	Gateway4, Gateway6 netip.Addr
	// Default4 and Default6: the sandbox's default route of that family
	// goes through this endpoint.
	Default4, Default6 bool
}

// Peer is a container (or a sandbox) with its endpoints in join order.
type Peer struct {
	Name      string
	Endpoints []Endpoint
}

// Owner is who has an address on a network under berth's firewall: where
// a published port leads.
type Owner struct {
	Peer    string
	Network string
	Bridge  string
}

// Model is berth's ruleset as data, what Rebuild writes for a state: the
// networks, published ports and guards in the tables named Table, and who
// has each address.
type Model struct {
	Table    string
	Networks []Network
	Bindings []Binding
	Guards   []Guard
	Owners   map[netip.Addr]Owner
}

// Target is where a trace goes: a container (Peer), or the host (Peer
// nil) at Addr on Port, a published port. Addr zero means the address
// Peer's shared network gives, or, for the host, its address on the
// source's way out (the gateway).
type Target struct {
	Peer  *Peer
	Addr  netip.Addr
	Proto string // tcp (the default), udp or sctp
	Port  uint16 // 0: any
}

// Verdict is what berth's rules do with the traffic.
type Verdict string

const (
	Allowed Verdict = "allowed"
	Denied  Verdict = "denied"
	// Undecided: the traffic does not pass berth's firewall on this host
	// (a macvlan network), or the model does not know a part of the way.
	Undecided Verdict = "undecided"
)

// Trace is a trace's answer.
type Trace struct {
	Verdict Verdict
	// Addr is the address the traffic goes to, the one asked for or the
	// one the trace picked.
	Addr netip.Addr
	// Rule is the rule that decides, "family table chain: rule" as nft
	// lists it; empty when none of berth's does (no chain of berth's on
	// the way, or a chain's accept policy).
	Rule string
	// Path is the way the traffic takes, step by step.
	Path []string
	// Reason says why, in words.
	Reason string
	// Notes are what else bears on the answer.
	Notes []string
}

func (m Model) name(r rule) string {
	return fmt.Sprintf("%s %s %s: %s", r.family, m.Table, r.chain, r.text)
}

func (m Model) network(bridge string) (Network, bool) {
	i := slices.IndexFunc(m.Networks, func(n Network) bool { return n.Bridge == bridge })
	if i < 0 {
		return Network{}, false
	}
	return m.Networks[i], true
}

// Trace follows traffic from a container to a target through the model.
func (m Model) Trace(from Peer, to Target) Trace {
	if to.Proto == "" {
		to.Proto = "tcp"
	}
	t := tracer{m: m, from: from, to: to, out: Trace{Addr: to.Addr}}
	if to.Peer == nil {
		return t.toHost()
	}
	return t.toPeer()
}

type tracer struct {
	m    Model
	from Peer
	to   Target
	out  Trace
}

func (t *tracer) step(format string, args ...any) {
	t.out.Path = append(t.out.Path, fmt.Sprintf(format, args...))
}
func (t *tracer) note(format string, args ...any) {
	t.out.Notes = append(t.out.Notes, fmt.Sprintf(format, args...))
}

// sourceNetwork is the network under berth's firewall the traffic leaves
// src by; without one (ok false) the trace ends undecided.
func (t *tracer) sourceNetwork(src Endpoint) (_ Network, undecided Trace, ok bool) {
	if src.Bridge == "" {
		t.step("out of %s through network %s, which berth's firewall does not apply to", t.from.Name, src.Network)
		return Network{}, t.decide(Undecided, nil, "the traffic does not pass berth's firewall on this host"), false
	}
	sn, ok := t.m.network(src.Bridge)
	if !ok {
		return Network{}, t.decide(Undecided, nil, "bridge %s of network %s is not in berth's firewall", src.Bridge, src.Network), false
	}
	return sn, Trace{}, true
}

func (t *tracer) decide(v Verdict, r *rule, format string, args ...any) Trace {
	t.out.Verdict = v
	if r != nil {
		t.out.Rule = t.m.name(*r)
	}
	t.out.Reason = fmt.Sprintf(format, args...)
	return t.out
}

func addrOf(ep Endpoint, v6 bool) netip.Addr {
	if v6 {
		return ep.IPv6.Addr()
	}
	return ep.IPv4.Addr()
}

func prefixOf(ep Endpoint, v6 bool) netip.Prefix {
	if v6 {
		return ep.IPv6
	}
	return ep.IPv4
}

func gatewayOf(ep Endpoint, v6 bool) netip.Addr {
	if v6 {
		return ep.Gateway6
	}
	return ep.Gateway4
}

func hasFamily(p Peer, v6 bool) bool {
	return slices.ContainsFunc(p.Endpoints, func(ep Endpoint) bool { return prefixOf(ep, v6).IsValid() })
}

// destination picks the target's endpoint and address: the one asked
// for, else one on a network the source shares (IPv4 first), else the
// target's first address of a family the source has.
func (t *tracer) destination() (Endpoint, netip.Addr, bool) {
	dst := t.to.Peer
	if t.to.Addr.IsValid() {
		for _, ep := range dst.Endpoints {
			if addrOf(ep, t.to.Addr.Is6()) == t.to.Addr {
				return ep, t.to.Addr, true
			}
		}
		return Endpoint{}, netip.Addr{}, false
	}
	for _, v6 := range []bool{false, true} {
		for _, s := range t.from.Endpoints {
			for _, d := range dst.Endpoints {
				if d.Network == s.Network && prefixOf(s, v6).IsValid() && prefixOf(d, v6).IsValid() {
					return d, addrOf(d, v6), true
				}
			}
		}
	}
	for _, v6 := range []bool{false, true} {
		if !hasFamily(t.from, v6) {
			continue
		}
		for _, d := range dst.Endpoints {
			if prefixOf(d, v6).IsValid() {
				return d, addrOf(d, v6), true
			}
		}
	}
	return Endpoint{}, netip.Addr{}, false
}

// route is the source's endpoint traffic to addr leaves by: the one whose
// subnet holds it (on a network named like want first), else the one of
// the default route.
func (t *tracer) route(addr netip.Addr, want string) (Endpoint, bool) {
	v6 := addr.Is6()
	var onLink []Endpoint
	for _, ep := range t.from.Endpoints {
		if p := prefixOf(ep, v6); p.IsValid() && (p.Masked().Contains(addr) || gatewayOf(ep, v6) == addr) {
			onLink = append(onLink, ep)
		}
	}
	if i := slices.IndexFunc(onLink, func(ep Endpoint) bool { return ep.Network == want }); i >= 0 {
		return onLink[i], true
	}
	if len(onLink) > 0 {
		return onLink[0], true
	}
	for _, ep := range t.from.Endpoints {
		if (v6 && ep.Default6) || (!v6 && ep.Default4) {
			return ep, true
		}
	}
	return Endpoint{}, false
}

func (t *tracer) noRoute(addr netip.Addr) Trace {
	return t.decide(Denied, nil, "%s has no route to %s: it is on no network of that subnet and has no default route of that family", t.from.Name, addr)
}

func (t *tracer) toPeer() Trace {
	dst := t.to.Peer
	dep, addr, ok := t.destination()
	if !ok {
		if t.to.Addr.IsValid() {
			return t.decide(Undecided, nil, "%s has no address %s", dst.Name, t.to.Addr)
		}
		return t.decide(Denied, nil, "%s and %s have no address family in common", t.from.Name, dst.Name)
	}
	t.out.Addr = addr
	src, ok := t.route(addr, dep.Network)
	if !ok {
		return t.noRoute(addr)
	}
	t.step("%s (%s on %s) to %s (%s on %s)%s", t.from.Name, addrOf(src, addr.Is6()), src.Network, dst.Name, addr, dep.Network, t.port())

	if src.Network == dep.Network {
		return t.sameNetwork(src, dep)
	}
	sn, undecided, ok := t.sourceNetwork(src)
	if !ok {
		return undecided
	}
	to := dep.Bridge
	if to == "" {
		to = "the host's route"
	}
	t.step("routed by the host from %s (network %s) to %s (network %s)", src.Bridge, src.Network, to, dep.Network)
	t.publishedHint(addr)
	switch {
	case sn.Internal:
		return t.decide(Denied, &ruleFromInternal, "network %s is internal: nothing is forwarded out of it", src.Network)
	case dep.Bridge == "":
		return t.decide(Undecided, nil, "network %s is not under berth's firewall: berth has no rule for traffic into it, and its driver decides whether it arrives (the host does not reach macvlan and ipvlan containers through their parent)", dep.Network)
	}
	dn, ok := t.m.network(dep.Bridge)
	switch {
	case !ok:
		return t.decide(Undecided, nil, "bridge %s of network %s is not in berth's firewall", dep.Bridge, dep.Network)
	case dn.Internal:
		return t.decide(Denied, &ruleToInternal, "network %s is internal: nothing is forwarded into it", dep.Network)
	}
	return t.decide(Denied, &ruleBetween, "berth's networks are isolated from each other: nothing is routed between two of them but through a published port")
}

func (t *tracer) port() string {
	if t.to.Port == 0 {
		return ""
	}
	return fmt.Sprintf(", port %d/%s", t.to.Port, t.to.Proto)
}

func (t *tracer) sameNetwork(src, dst Endpoint) Trace {
	if src.Bridge == "" {
		t.step("on network %s, which berth's firewall does not apply to", src.Network)
		return t.decide(Allowed, nil, "the containers share network %s, and no rule of berth's stands between them", src.Network)
	}
	n, ok := t.m.network(src.Bridge)
	if !ok {
		return t.decide(Undecided, nil, "bridge %s of network %s is not in berth's firewall", src.Bridge, src.Network)
	}
	t.step("bridged on %s (network %s) from port %s to port %s", src.Bridge, src.Network, src.Port, dst.Port)
	if t.to.Port != 0 {
		t.note("berth filters no ports between containers: whether anything listens on %d/%s is up to %s", t.to.Port, t.to.Proto, t.to.Peer.Name)
	}
	if n.Isolated {
		t.note("its containers still reach the ports each other publishes, through the host")
		return t.decide(Denied, &ruleIsolated, "network %s has enable_icc=false: its containers do not talk to each other", src.Network)
	}
	t.note("with br_netfilter on, frames bridged between two containers pass the inet forward chains of every table, where this rule accepts them in berth's; without it they pass the bridge table alone, which lets them through")
	return t.decide(Allowed, &ruleIntra, "containers of one network talk to each other")
}

// publishedHint notes the ports the target publishes that would take the
// traffic where the direct way does not.
func (t *tracer) publishedHint(addr netip.Addr) {
	for _, b := range t.m.Bindings {
		if b.IP != addr || (t.to.Port != 0 && (b.Port != t.to.Port || b.Proto != t.to.Proto)) {
			continue
		}
		on := "the host's addresses"
		if b.HostIP.IsValid() {
			on = b.HostIP.String()
		}
		t.note("%s publishes %d/%s on port %d of %s: trace %s to host:%d/%s goes that way", t.to.Peer.Name, b.Port, b.Proto, b.HostPort, on, t.from.Name, b.HostPort, b.Proto)
	}
}

func (t *tracer) toHost() Trace {
	addr := t.to.Addr
	if addr.IsLoopback() {
		return t.decide(Denied, nil, "%s is %s's own loopback, inside its namespace, not the host's: ports published on a loopback address are reached from the host alone", addr, t.from.Name)
	}
	var src Endpoint
	var ok bool
	if addr.IsValid() {
		src, ok = t.route(addr, "")
	} else {
		v6 := !slices.ContainsFunc(t.from.Endpoints, func(ep Endpoint) bool { return ep.Default4 })
		i := slices.IndexFunc(t.from.Endpoints, func(ep Endpoint) bool { return (v6 && ep.Default6) || (!v6 && ep.Default4) })
		if i < 0 {
			return t.decide(Denied, nil, "%s has no default route: it reaches the host only on its networks' gateways", t.from.Name)
		}
		src, ok = t.from.Endpoints[i], true
		addr = gatewayOf(src, v6)
	}
	if !ok {
		return t.noRoute(addr)
	}
	if !addr.IsValid() {
		return t.decide(Undecided, nil, "network %s has no gateway of berth's on the host", src.Network)
	}
	t.out.Addr = addr
	t.step("%s (%s on %s) to the host at %s%s", t.from.Name, addrOf(src, addr.Is6()), src.Network, addr, t.port())
	sn, undecided, ok := t.sourceNetwork(src)
	if !ok {
		return undecided
	}
	b, r, ok := t.published(addr)
	if !ok {
		t.otherBindings(addr)
		t.step("no port %s published on %s: the traffic is for the host itself", t.portName(), addr)
		return t.decide(Allowed, nil, "berth does not filter what the host itself receives: whether a service of the host answers is the host's")
	}
	t.step("%s: to %s", t.m.name(r), netip.AddrPortFrom(b.IP, b.Port))
	owner, ok := t.m.Owners[b.IP]
	if !ok {
		return t.decide(Undecided, nil, "no endpoint of berth's has %s", b.IP)
	}
	if owner.Bridge == src.Bridge {
		t.step("back out of %s (network %s) to %s", src.Bridge, src.Network, owner.Peer)
	} else {
		t.step("routed by the host from %s (network %s) to %s (network %s), to %s", src.Bridge, src.Network, owner.Bridge, owner.Network, owner.Peer)
	}
	dn, dok := t.m.network(owner.Bridge)
	switch {
	case owner.Bridge == src.Bridge && !sn.Isolated:
		t.note("%s: %s sees the connection come from its gateway", t.m.name(ruleHairpinMasq), owner.Peer)
		return t.decide(Allowed, &ruleIntra, "a published port of the container's own network comes back out of its bridge")
	case sn.Internal:
		return t.decide(Denied, &ruleFromInternal, "network %s is internal: nothing is forwarded out of it, translated or not", src.Network)
	case !dok:
		return t.decide(Undecided, nil, "bridge %s of network %s is not in berth's firewall", owner.Bridge, owner.Network)
	case dn.Internal:
		return t.decide(Denied, &ruleToInternal, "network %s is internal: nothing is forwarded into it", owner.Network)
	}
	t.note("%s: %s sees the connection come from its gateway", t.m.name(ruleHairpinMasq), owner.Peer)
	return t.decide(Allowed, &ruleDNAT, "a published port is reached from every network but internal ones")
}

func (t *tracer) portName() string {
	if t.to.Port == 0 {
		return "(none asked)"
	}
	return fmt.Sprintf("%d/%s", t.to.Port, t.to.Proto)
}

// published finds the binding the prerouting chain translates addr's port
// by, and the rule that does: one on that address first, then one on
// every address.
func (t *tracer) published(addr netip.Addr) (Binding, rule, bool) {
	if t.to.Port == 0 {
		return Binding{}, rule{}, false
	}
	match := func(b Binding, hostIP netip.Addr) bool {
		return b.Proto == t.to.Proto && b.HostPort == t.to.Port && b.IP.Is6() == addr.Is6() && b.HostIP == hostIP
	}
	host, all := ruleHostPorts4, rulePorts4
	if addr.Is6() {
		host, all = ruleHostPorts6, rulePorts6
	}
	for _, b := range t.m.Bindings {
		if match(b, addr) {
			return b, host, true
		}
	}
	for _, b := range t.m.Bindings {
		if match(b, netip.Addr{}) {
			return b, all, true
		}
	}
	return Binding{}, rule{}, false
}

// otherBindings notes the port published on other addresses of the host.
func (t *tracer) otherBindings(addr netip.Addr) {
	for _, b := range t.m.Bindings {
		if b.Proto == t.to.Proto && b.HostPort == t.to.Port && b.HostIP.IsValid() && b.HostIP != addr {
			t.note("%d/%s is published on %s only", b.HostPort, b.Proto, b.HostIP)
		}
	}
}
