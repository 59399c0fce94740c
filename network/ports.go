package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/netdev"
)

// PortSpec is a port the caller asks to publish: container Port on
// HostIP (unspecified: every address of the host) and a host port in
// [HostPortMin, HostPortMax] (both 0: any free one).
type PortSpec struct {
	Proto       string
	Port        uint16
	HostIP      netip.Addr
	HostPortMin uint16
	HostPortMax uint16
}

// PortBinding is a published port as it was made.
type PortBinding struct {
	Proto    string
	Port     uint16
	HostIP   netip.Addr `json:",omitzero"`
	HostPort uint16
}

// Ephemeral range for ports the caller leaves to berth, Linux's default.
const (
	ephemeralMin = 32768
	ephemeralMax = 60999
)

// portKey is one host port of one protocol on one address (zero: all).
type portKey struct {
	proto string
	ip    netip.Addr
	port  uint16
}

// ports are the host ports berth publishes, each held by a reservation.
type ports struct {
	reserve func(netdev.Reservation) (io.Closer, error)

	mu     sync.Mutex
	held   map[portKey][]io.Closer
	cursor map[string]uint16 // per protocol, where the next free search starts
}

func newPorts(k Kernel) *ports {
	return &ports{reserve: k.ReservePort, held: map[portKey][]io.Closer{}, cursor: map[string]uint16{}}
}

// hostPorts is how an endpoint's bindings take host ports: per family
// (IPv4, IPv6), whether they are reserved, and where the reservation
// forwards what reaches it.
type hostPorts [2]hostFamily

type hostFamily struct {
	hold bool
	// to is the endpoint's address the reservation forwards to (zero: it
	// only holds the port).
	to netip.Addr
	// optional: the endpoint lacks the family, which the host may lack
	// too; the ports are then published without it.
	optional bool
}

// hostPortsOf is how nw publishes ep's ports. IPv4 reservations only hold
// the port: the kernel translates every IPv4 address, 127.0.0.1 included.
// IPv6 ones forward what the kernel cannot translate, connections to ::1
// (the container's answer, sent back to ::1, arrives on the bridge, and
// the kernel drops a packet for the loopback address that arrives on
// another device: IPv6 has no route_localnet). A family the endpoint
// lacks is published by forwarding to its other address, as Docker's
// proxy does. A routed family has no host ports.
func hostPortsOf(nw *netState, ep *Endpoint) hostPorts {
	fw := nw.info.Firewall
	if fw == nil {
		// The driver publishes the ports itself, and gives the
		// endpoint's addresses only in Join (a CNI chain's portmap).
		return hostPorts{{hold: true}}
	}
	var hp hostPorts
	v4, v6 := ep.IPv4.Addr(), ep.IPv6.Addr()
	if ep.IPv4.IsValid() && !fw.Routed4 {
		hp[0] = hostFamily{hold: true}
		if !ep.IPv6.IsValid() {
			hp[1] = hostFamily{hold: true, to: v4, optional: true}
		}
	}
	if ep.IPv6.IsValid() && !fw.Routed6 {
		hp[1] = hostFamily{hold: true, to: v6}
		if !ep.IPv4.IsValid() {
			hp[0] = hostFamily{hold: true, to: v6, optional: true}
		}
	}
	return hp
}

// taken tells whether k clashes with a published port: the same port of
// the same protocol on the same address, or on all addresses.
func (p *ports) taken(k portKey) bool {
	if _, ok := p.held[k]; ok {
		return true
	}
	if !k.ip.IsValid() {
		for h := range p.held {
			if h.proto == k.proto && h.port == k.port {
				return true
			}
		}
		return false
	}
	_, all := p.held[portKey{proto: k.proto, port: k.port}]
	return all
}

// hold takes k for berth: a reservation in each family hp holds that k's
// address is of, forwarding (where hp says) to the container's port
// cport.
func (p *ports) hold(k portKey, hp hostPorts, cport uint16) error {
	var held []io.Closer
	for i, fam := range hp {
		six := i == 1
		if !fam.hold || (k.ip.IsValid() && k.ip.Is6() != six) {
			continue
		}
		r := netdev.Reservation{Proto: k.proto, Addr: k.ip, Port: k.port}
		if !r.Addr.IsValid() {
			r.Addr = netip.IPv4Unspecified()
			if six {
				r.Addr = netip.IPv6Unspecified()
			}
		}
		if fam.to.IsValid() {
			r.To = netip.AddrPortFrom(fam.to, cport)
		}
		c, err := p.reserve(r)
		if err != nil && fam.optional && !k.ip.IsValid() && netdev.FamilyUnavailable(err) {
			continue
		}
		if err != nil {
			for _, h := range held {
				h.Close()
			}
			return err
		}
		held = append(held, c)
	}
	p.held[k] = held
	return nil
}

func (p *ports) release(k portKey) {
	for _, c := range p.held[k] {
		c.Close()
	}
	delete(p.held, k)
}

// allocate makes the bindings of specs for an endpoint whose ports hp
// says how to hold. Nothing stays taken when it fails.
func (p *ports) allocate(specs []PortSpec, hp hostPorts, defaultIP netip.Addr, owner string) ([]PortBinding, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var made []PortBinding
	undo := func() {
		for _, b := range made {
			p.release(portKey{b.Proto, b.HostIP, b.HostPort})
		}
	}
	for _, s := range specs {
		ip := s.HostIP
		if !ip.IsValid() || ip.IsUnspecified() {
			ip = defaultIP
		}
		if ip.IsUnspecified() {
			ip = netip.Addr{}
		}
		min, max := s.HostPortMin, s.HostPortMax
		random := min == 0
		if random {
			min, max = ephemeralMin, ephemeralMax
		}
		if max < min {
			max = min
		}
		port, err := p.take(s.Proto, ip, min, max, random, hp, s.Port)
		if err != nil {
			undo()
			return nil, fmt.Errorf("driver failed programming external connectivity on endpoint %s: %w", owner, err)
		}
		made = append(made, PortBinding{Proto: s.Proto, Port: s.Port, HostIP: ip, HostPort: port})
	}
	return made, nil
}

// take finds a free port in [min, max] and reserves it; a random pick
// starts where the last one left off, as Docker's allocator does.
func (p *ports) take(proto string, ip netip.Addr, min, max uint16, random bool, hp hostPorts, cport uint16) (uint16, error) {
	n := int(max-min) + 1
	start := min
	if random {
		if c := p.cursor[proto]; c >= min && c <= max {
			start = c
		}
	}
	var lastErr error
	for i := range n {
		port := min + uint16((int(start-min)+i)%n)
		k := portKey{proto, ip, port}
		if p.taken(k) {
			if n == 1 {
				shown := ip
				if !shown.IsValid() {
					shown = netip.IPv4Unspecified()
				}
				return 0, errdefs.ErrConflict.WithMessage(fmt.Sprintf("Bind for %s failed: port is already allocated", netip.AddrPortFrom(shown, port)))
			}
			continue
		}
		if err := p.hold(k, hp, cport); err != nil {
			lastErr = err
			if !random && n == 1 {
				break
			}
			continue
		}
		if random {
			p.cursor[proto] = port + 1
		}
		return port, nil
	}
	if lastErr != nil {
		return 0, errdefs.ErrConflict.WithMessage("Error starting userland proxy: " + lastErr.Error())
	}
	return 0, errdefs.ErrConflict.WithMessage(fmt.Sprintf("no free %s port in %d-%d", proto, min, max))
}

// releaseBindings gives back an endpoint's host ports.
func (p *ports) releaseBindings(bs []PortBinding) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bs {
		p.release(portKey{b.Proto, b.HostIP, b.HostPort})
	}
}

// restore takes the ports of a stored endpoint again after a restart.
func (p *ports) restore(bs []PortBinding, hp hostPorts) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, b := range bs {
		k := portKey{b.Proto, b.HostIP, b.HostPort}
		if err := p.hold(k, hp, b.Port); err != nil {
			// The kernel translation still works; the port is just not
			// protected from other processes.
			errs = append(errs, err)
			p.held[k] = nil
		}
	}
	return errors.Join(errs...)
}

// firewallBindings are the translations of an endpoint's bindings: for
// each of its addresses of a binding's family, the host port translated
// to it, or in a routed family the port opened on it. A binding on ::1
// has none: its reservation forwards.
func firewallBindings(nw *netState, ep *Endpoint) []firewall.Binding {
	fw := nw.info.Firewall
	var out []firewall.Binding
	for _, b := range ep.Ports {
		for _, a := range []netip.Prefix{ep.IPv4, ep.IPv6} {
			if !a.IsValid() || (b.HostIP.IsValid() && b.HostIP.Is4() != a.Addr().Is4()) || b.HostIP == netip.IPv6Loopback() {
				continue
			}
			if fw != nil && (a.Addr().Is4() && fw.Routed4 || a.Addr().Is6() && fw.Routed6) {
				open := firewall.Binding{Proto: b.Proto, IP: a.Addr(), Port: b.Port, Routed: true}
				if !slices.Contains(out, open) {
					out = append(out, open)
				}
				continue
			}
			out = append(out, firewall.Binding{Proto: b.Proto, HostIP: b.HostIP, HostPort: b.HostPort, IP: a.Addr(), Port: b.Port})
		}
	}
	return out
}

// firewallNetwork is what the firewall needs of a network; ok is false for
// networks the firewall does not apply to.
func firewallNetwork(nw *netState) (firewall.Network, bool) {
	fw := nw.info.Firewall
	if fw == nil {
		return firewall.Network{}, false
	}
	return firewall.Network{Bridge: fw.Device, Internal: nw.rec.Internal, Masquerade: fw.Masquerade, Isolated: fw.Isolated,
		Routed4: fw.Routed4, Routed6: fw.Routed6, Unprotected4: fw.Unprotected4, Unprotected6: fw.Unprotected6}, true
}

// endpointChange is the firewall change an endpoint's arrival makes: its
// published ports, its host-side device in an isolated network, and the
// guard on that device against spoofing.
func endpointChange(nw *netState, ep *Endpoint) firewall.Change {
	var ch firewall.Change
	// A driver that publishes ports itself does it in Join.
	if nw.info.Firewall != nil {
		ch.Publish = firewallBindings(nw, ep)
	}
	if fn, ok := firewallNetwork(nw); ok && fn.Isolated && ep.HostIfName != "" {
		ch.Isolate = []string{ep.HostIfName}
	}
	if g, ok := guardOf(nw, ep); ok {
		ch.Guard = []firewall.Guard{g}
	}
	return ch
}

// guardOf is what an endpoint's host-side device may carry, on a network
// whose driver asks for anti-spoofing.
func guardOf(nw *netState, ep *Endpoint) (firewall.Guard, bool) {
	fw := nw.info.Firewall
	if fw == nil || !fw.AntiSpoof || ep.HostIfName == "" {
		return firewall.Guard{}, false
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return firewall.Guard{}, false
	}
	g := firewall.Guard{Port: ep.HostIfName, MAC: mac}
	if ep.IPv4.IsValid() {
		g.IPv4 = ep.IPv4.Addr()
	}
	if ep.IPv6.IsValid() {
		g.IPv6 = ep.IPv6.Addr()
	}
	return g, true
}

// reverse is the change that undoes ch.
func reverse(ch firewall.Change) firewall.Change {
	return firewall.Change{
		AddNetworks: ch.RemoveNetworks, RemoveNetworks: ch.AddNetworks,
		Publish: ch.Unpublish, Unpublish: ch.Publish,
		Isolate: ch.Unisolate, Unisolate: ch.Isolate,
		Guard: ch.Unguard, Unguard: ch.Guard,
	}
}

func empty(ch firewall.Change) bool {
	return len(ch.AddNetworks)+len(ch.RemoveNetworks)+len(ch.Publish)+len(ch.Unpublish)+
		len(ch.Isolate)+len(ch.Unisolate)+len(ch.Guard)+len(ch.Unguard) == 0
}

// applyFirewall makes a change, when there is one.
func (c *Controller) applyFirewall(ch firewall.Change) error {
	if empty(ch) {
		return nil
	}
	return c.fw.Apply(ch)
}

// rebuildFirewall writes the whole firewall from memory: at start.
func (c *Controller) rebuildFirewall() error {
	var nets []firewall.Network
	var binds []firewall.Binding
	var guards []firewall.Guard
	for _, nw := range c.networks {
		// Host ports are reserved whoever publishes them: berth's firewall
		// or the driver itself.
		for _, ep := range nw.endpoints {
			if err := c.ports.restore(ep.rec.Ports, hostPortsOf(nw, &ep.rec)); err != nil {
				c.log.Warn("reserve published ports", "endpoint", ep.rec.ID, "err", err)
			}
		}
		fn, ok := firewallNetwork(nw)
		if !ok {
			continue
		}
		for _, ep := range nw.endpoints {
			binds = append(binds, firewallBindings(nw, &ep.rec)...)
			if g, ok := guardOf(nw, &ep.rec); ok {
				guards = append(guards, g)
			}
			if fn.Isolated && ep.rec.HostIfName != "" {
				fn.Ports = append(fn.Ports, ep.rec.HostIfName)
			}
		}
		nets = append(nets, fn)
		if nw.rec.EnableIPv6 {
			if err := c.kernel.EnableForwarding(true); err != nil {
				c.log.Warn("enable IPv6 forwarding", "err", err)
			}
		}
		if err := c.kernel.AllowLocalnet(fn.Bridge); err != nil {
			c.log.Warn("allow 127.0.0.1 through the network's device", "device", fn.Bridge, "err", err)
		}
	}
	return c.fw.Rebuild(nets, binds, guards)
}
