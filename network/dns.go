package network

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/resolver"
)

// Sandboxes with a DNS configuration (containers) publish their names on
// their user-defined networks. Those that use berth's resolver get a UDP
// and a TCP socket of the resolver's inside their namespace, on
// 127.0.0.11 and ports the kernel picks, and a redirect there sending
// 127.0.0.11:53 to them, so the container can still bind port 53 itself.

// publishNames registers a joined endpoint's names: the sandbox's name,
// its hostname, as Docker answers for it too, and the endpoint's aliases,
// on a user-defined network. Called with sb.mu held.
func (c *Controller) publishNames(sb *sbState, ep *epState) {
	if c.dns == nil || sb.rec.DNS == nil || IsPredefined(ep.nw.rec.Name) {
		return
	}
	names := []string{sb.rec.Name}
	if h := sb.rec.DNS.Hostname; h != "" && h != sb.rec.Name {
		names = append(names, h)
	}
	rec := resolver.Record{
		Network: ep.nw.rec.Name, NetworkID: ep.nw.rec.ID, Container: sb.rec.ID,
		Names: append(names, ep.rec.Aliases...),
	}
	if ep.rec.IPv4.IsValid() {
		rec.IPv4 = ep.rec.IPv4.Addr()
	}
	if ep.rec.IPv6.IsValid() {
		rec.IPv6 = ep.rec.IPv6.Addr()
	}
	c.dns.Table.Add(rec)
	c.rescope(sb)
}

// withdrawNames takes a leaving endpoint's names back. Called with sb.mu
// held.
func (c *Controller) withdrawNames(sb *sbState, ep *epState) {
	if c.dns == nil || sb.rec.DNS == nil {
		return
	}
	c.dns.Table.Remove(ep.nw.rec.ID, sb.rec.ID)
	c.rescope(sb)
}

// rescope tells a sandbox's resolver what the sandbox sees now.
func (c *Controller) rescope(sb *sbState) {
	if sb.resolver != nil {
		sb.resolver.SetScope(c.scope(sb))
	}
}

// scope is what a sandbox sees: its user-defined networks in join order,
// its links there, and its upstream servers. A sandbox only on internal
// networks forwards nothing. Called with sb.mu held.
func (c *Controller) scope(sb *sbState) resolver.Scope {
	s := resolver.Scope{NoForward: true}
	for _, ep := range sb.endpoints {
		if IsPredefined(ep.nw.rec.Name) {
			continue
		}
		s.Networks = append(s.Networks, ep.nw.rec.ID)
		s.NoForward = s.NoForward && ep.nw.rec.Internal
	}
	cfg := sb.rec.DNS
	if len(cfg.Links) > 0 {
		s.Links = cfg.Links
	}
	for _, a := range cfg.Servers {
		s.Upstreams = append(s.Upstreams, netip.AddrPortFrom(a, 53))
	}
	if len(s.Upstreams) == 0 {
		s.Upstreams = c.dns.Upstreams()
	}
	return s
}

// startResolver serves a sandbox that uses berth's resolver: sockets in
// its namespace, the redirect to them, and the resolver answering with
// the sandbox's scope. Called with sb.mu held.
func (c *Controller) startResolver(sb *sbState) error {
	if c.dns == nil || sb.rec.DNS == nil || !sb.rec.DNS.Resolver || sb.resolver != nil {
		return nil
	}
	udp, tcp, err := c.kernel.Listen(sb.ns, firewall.ResolverAddr)
	if err != nil {
		return fmt.Errorf("open the resolver's sockets in %s: %w", sb.rec.Name, err)
	}
	udpPort := uint16(udp.LocalAddr().(*net.UDPAddr).Port)
	tcpPort := uint16(tcp.Addr().(*net.TCPAddr).Port)
	if err := c.fw.RedirectDNS(sb.ns.Fd(), udpPort, tcpPort); err != nil {
		udp.Close()
		tcp.Close()
		return err
	}
	// Queries tracked before, by a resolver of an earlier berthd, are
	// translated to its closed ports: a query from the same source port
	// would be refused until the entry timed out.
	if err := c.kernel.ForgetConnectionsIn(sb.ns, firewall.ResolverAddr); err != nil {
		c.log.Warn("forget the earlier resolver's connections", "sandbox", sb.rec.Name, "err", err)
	}
	sb.resolver = c.dns.Resolver.Attach(udp, tcp, c.scope(sb))
	return nil
}

// stopResolver closes a sandbox's resolver sockets. Called with sb.mu
// held.
func (c *Controller) stopResolver(sb *sbState) {
	if sb.resolver != nil {
		sb.resolver.Close()
		sb.resolver = nil
	}
}
