package container

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/resolver"
)

// Containers on user-defined networks find each other by name through
// berth's resolver: one resolver in berthd, with a UDP and a TCP socket of
// its own inside each such container's namespace, reached at 127.0.0.11:53
// through a redirect in that namespace.

// attachResolver publishes a running container's names and serves its
// queries. It returns before the start does, so the container's name
// resolves the moment its start returns. Called with the entry's lock.
func (m *Manager) attachResolver(c *Container) error {
	if m.cfg.DNS == nil || !usesResolver(c) || !ownsSandbox(c.Host.NetworkMode) {
		return nil
	}
	sb, err := m.cfg.Networks.InspectSandbox(c.ID)
	if err != nil {
		return err
	}
	m.publishNames(c, sb.Endpoints)
	var udp *net.UDPConn
	var tcp net.Listener
	err = m.cfg.Networks.InNamespace(c.ID, func(ns *netdev.Namespace) error {
		if err := ns.Do(func() (err error) {
			if udp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(firewall.ResolverAddr, 0))); err != nil {
				return err
			}
			tcp, err = net.Listen("tcp4", netip.AddrPortFrom(firewall.ResolverAddr, 0).String())
			return err
		}); err != nil {
			return fmt.Errorf("open the resolver's sockets: %w", err)
		}
		return firewall.RedirectDNS(ns.Fd(), uint16(udp.LocalAddr().(*net.UDPAddr).Port), uint16(tcp.Addr().(*net.TCPAddr).Port))
	})
	if err != nil {
		if udp != nil {
			udp.Close()
		}
		if tcp != nil {
			tcp.Close()
		}
		m.unpublishNames(c)
		return err
	}
	att := m.cfg.DNS.Resolver.Attach(udp, tcp, m.scope(c))
	m.mu.Lock()
	m.resolvers[c.ID] = att
	m.mu.Unlock()
	return nil
}

// detachResolver stops serving a container that ended and withdraws its
// names.
func (m *Manager) detachResolver(c *Container) {
	if m.cfg.DNS == nil {
		return
	}
	m.unpublishNames(c)
	m.mu.Lock()
	att := m.resolvers[c.ID]
	delete(m.resolvers, c.ID)
	m.mu.Unlock()
	if att != nil {
		att.Close()
	}
}

// publishNames registers the container's endpoints on user-defined
// networks: its name and that network's aliases.
func (m *Manager) publishNames(c *Container, eps []network.EndpointDetail) {
	if m.cfg.DNS == nil {
		return
	}
	for _, ep := range eps {
		if network.IsPredefined(ep.NetworkName) {
			continue
		}
		rec := resolver.Record{Network: ep.NetworkName, NetworkID: ep.NetworkID, Container: c.ID, Names: append([]string{c.Name}, ep.Aliases...)}
		if ep.IPv4.IsValid() {
			rec.IPv4 = ep.IPv4.Addr()
		}
		if ep.IPv6.IsValid() {
			rec.IPv6 = ep.IPv6.Addr()
		}
		m.cfg.DNS.Table.Add(rec)
	}
}

func (m *Manager) unpublishNames(c *Container) {
	for _, att := range c.Networks {
		if n, err := m.cfg.Networks.InspectNetwork(att.Network); err == nil {
			m.cfg.DNS.Table.Remove(n.ID, c.ID)
		}
	}
}

// refreshResolver follows a running container's connect or disconnect:
// its names on the network come or go, and so does what it sees.
func (m *Manager) refreshResolver(c *Container, netName string, ep *network.EndpointDetail) {
	if m.cfg.DNS == nil || network.IsPredefined(netName) {
		return
	}
	if ep != nil {
		m.publishNames(c, []network.EndpointDetail{*ep})
	} else if n, err := m.cfg.Networks.InspectNetwork(netName); err == nil {
		m.cfg.DNS.Table.Remove(n.ID, c.ID)
	}
	m.mu.Lock()
	att := m.resolvers[c.ID]
	m.mu.Unlock()
	if att != nil {
		att.SetScope(m.scope(c))
	}
}

// scope is what a container sees: its user-defined networks, its links
// there, and its upstream servers.
func (m *Manager) scope(c *Container) resolver.Scope {
	s := resolver.Scope{NoForward: true}
	for _, att := range c.Networks {
		if network.IsPredefined(att.Network) {
			continue
		}
		n, err := m.cfg.Networks.InspectNetwork(att.Network)
		if err != nil {
			continue
		}
		s.Networks = append(s.Networks, n.ID)
		s.NoForward = s.NoForward && n.Internal
	}
	for _, l := range c.Host.Links {
		name, alias := parseLink(l)
		if s.Links == nil {
			s.Links = map[string]string{}
		}
		s.Links[alias] = name
	}
	for _, a := range c.Host.DNS {
		s.Upstreams = append(s.Upstreams, netip.AddrPortFrom(a, 53))
	}
	if len(s.Upstreams) == 0 {
		s.Upstreams = m.cfg.DNS.Upstreams()
	}
	return s
}

// HostUpstreams reads the nameservers of a resolv.conf as upstreams:
// loopback ones included, since berthd asks them from the host's own
// namespace.
func HostUpstreams(path string) []netip.AddrPort {
	servers, _, _ := hostResolvers(path)
	var out []netip.AddrPort
	for _, s := range servers {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53))
		}
	}
	return out
}
