package network

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/netdev"
)

// What the controller knows, for a check of the host against it (berth
// doctor) and for traces through the firewall's model. Each sandbox is
// read under its lock, so what is reported of it is whole; a sandbox
// that changes meanwhile may be reported before or after the change.

// Drivers returns the registered drivers, by name.
func (c *Controller) Drivers() []driver.Driver {
	c.drvMu.RLock()
	defer c.drvMu.RUnlock()
	out := make([]driver.Driver, 0, len(c.drivers))
	for _, d := range c.drivers {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// DriverNetwork is a network as its driver sees it, for asking the driver
// about it.
func DriverNetwork(rec *Network) *driver.Network { return driverNetwork(rec) }

// FirewallDevices are the devices of the networks under berth's
// firewall, by network ID.
func (c *Controller) FirewallDevices() map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string]string{}
	for id, nw := range c.networks {
		if fn, ok := firewallNetwork(nw); ok {
			out[id] = fn.Bridge
		}
	}
	return out
}

// snapshot is every network and every sandbox, the sandboxes' endpoints
// read under their locks.
type snapshot struct {
	networks  []*netState
	sandboxes []sandboxView
}

type sandboxView struct {
	rec       Sandbox
	ns        *netdev.Namespace
	endpoints []*epState
	records   []Endpoint
	gateway4  *epState
	gateway6  *epState
}

func (c *Controller) snapshot() snapshot {
	c.mu.RLock()
	var s snapshot
	for _, nw := range c.networks {
		s.networks = append(s.networks, nw)
	}
	sbs := make([]*sbState, 0, len(c.sandboxes))
	for _, sb := range c.sandboxes {
		sbs = append(sbs, sb)
	}
	c.mu.RUnlock()
	// A network being removed has left the firewall and its device
	// before it leaves the map.
	s.networks = slices.DeleteFunc(s.networks, func(nw *netState) bool {
		nw.mu.Lock()
		defer nw.mu.Unlock()
		return nw.removing
	})
	sort.Slice(s.networks, func(i, j int) bool { return s.networks[i].rec.Name < s.networks[j].rec.Name })
	for _, sb := range sbs {
		sb.mu.Lock()
		if !sb.removed {
			v := sandboxView{rec: sb.rec, ns: sb.ns, endpoints: append([]*epState(nil), sb.endpoints...), gateway4: sb.gateway4, gateway6: sb.gateway6}
			for _, ep := range sb.endpoints {
				v.records = append(v.records, ep.rec)
			}
			s.sandboxes = append(s.sandboxes, v)
		}
		sb.mu.Unlock()
	}
	sort.Slice(s.sandboxes, func(i, j int) bool { return s.sandboxes[i].rec.Name < s.sandboxes[j].rec.Name })
	return s
}

// FirewallModel is the firewall's state as the controller would write it
// now, in the tables named table, with who has each address of a network
// under the firewall.
func (c *Controller) FirewallModel(table string) firewall.Model {
	s := c.snapshot()
	m := firewall.Model{Table: table, Owners: map[netip.Addr]firewall.Owner{}}
	ports := map[string][]string{} // bridge → isolated ports
	for _, sb := range s.sandboxes {
		for i, ep := range sb.endpoints {
			rec := &sb.records[i]
			fn, ok := firewallNetwork(ep.nw)
			if !ok {
				continue
			}
			m.Bindings = append(m.Bindings, firewallBindings(ep.nw, rec)...)
			if g, ok := guardOf(ep.nw, rec); ok {
				m.Guards = append(m.Guards, g)
			}
			if fn.Isolated && rec.HostIfName != "" {
				ports[fn.Bridge] = append(ports[fn.Bridge], rec.HostIfName)
			}
			for _, a := range []netip.Prefix{rec.IPv4, rec.IPv6} {
				if a.IsValid() {
					m.Owners[a.Addr()] = firewall.Owner{Peer: sb.rec.Name, Network: ep.nw.rec.Name, Bridge: fn.Bridge}
				}
			}
		}
	}
	for _, nw := range s.networks {
		if fn, ok := firewallNetwork(nw); ok {
			fn.Ports = ports[fn.Bridge]
			m.Networks = append(m.Networks, fn)
		}
	}
	return m
}

// TracePeer is a sandbox (a container's has the container's ID and name)
// as a trace through the firewall's model sees it.
func (c *Controller) TracePeer(term string) (firewall.Peer, error) {
	sb, err := c.sandbox(term)
	if err != nil {
		return firewall.Peer{}, err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	p := firewall.Peer{Name: sb.rec.Name}
	for _, ep := range sb.endpoints {
		e := firewall.Endpoint{
			Network: ep.nw.rec.Name, IPv4: ep.rec.IPv4, IPv6: ep.rec.IPv6,
			Gateway4: ep.join.Gateway4, Gateway6: ep.join.Gateway6,
			Default4: sb.gateway4 == ep, Default6: sb.gateway6 == ep,
		}
		if fn, ok := firewallNetwork(ep.nw); ok {
			e.Bridge, e.Port = fn.Bridge, ep.rec.HostIfName
		}
		p.Endpoints = append(p.Endpoints, e)
	}
	return p, nil
}

// SandboxWithAddress finds the sandbox that has an address on one of its
// networks, by ID.
func (c *Controller) SandboxWithAddress(a netip.Addr) (string, bool) {
	for _, sb := range c.snapshot().sandboxes {
		for _, rec := range sb.records {
			if rec.IPv4.Addr() == a || rec.IPv6.Addr() == a {
				return sb.rec.ID, true
			}
		}
	}
	return "", false
}

// WantedDevice is a host device the controller's state asks for.
type WantedDevice struct {
	// Who wants it, for a report: "network app", "web's endpoint on app".
	Who string
	// Master is the device it must be a port of: an endpoint's network
	// device. Empty for a network's own device.
	Master string
}

// Owned is what the controller's state accounts for on the host.
type Owned struct {
	// Devices are the host devices networks and endpoints want: the
	// networks' own (bridges, VXLAN devices, parents berth made, and the
	// firewall's device, external bridges too) and the host ends of
	// endpoints on networks under the firewall.
	Devices map[string]WantedDevice
	// NamespaceDir is where berth mounts the namespaces it makes, and
	// Namespaces those of its sandboxes there, by sandbox ID.
	NamespaceDir string
	Namespaces   map[string]bool
}

// Owned reports what the controller's state accounts for on the host.
func (c *Controller) Owned() Owned {
	s := c.snapshot()
	o := Owned{Devices: map[string]WantedDevice{}, NamespaceDir: c.nsDir, Namespaces: map[string]bool{}}
	for _, nw := range s.networks {
		for _, d := range nw.drv.Devices(nw.dn) {
			o.Devices[d] = WantedDevice{Who: "network " + nw.rec.Name}
		}
		if fn, ok := firewallNetwork(nw); ok {
			o.Devices[fn.Bridge] = WantedDevice{Who: "network " + nw.rec.Name}
		}
	}
	for _, sb := range s.sandboxes {
		if !sb.rec.External {
			o.Namespaces[sb.rec.ID] = true
		}
		for i, ep := range sb.endpoints {
			rec := &sb.records[i]
			if fn, ok := firewallNetwork(ep.nw); ok && rec.HostIfName != "" {
				o.Devices[rec.HostIfName] = WantedDevice{Who: fmt.Sprintf("%s's endpoint on %s", sb.rec.Name, ep.nw.rec.Name), Master: fn.Bridge}
			}
		}
	}
	return o
}

// SandboxProblem is a sandbox whose kernel state is not what the store
// says.
type SandboxProblem struct {
	Sandbox string
	Problem string
}

// CheckSandboxes looks inside every sandbox's namespace: the namespace is
// still where it was recorded, and each endpoint's interface is there, up,
// with its addresses.
func (c *Controller) CheckSandboxes() []SandboxProblem {
	var out []SandboxProblem
	for _, sb := range c.snapshot().sandboxes {
		if _, err := os.Stat(sb.rec.Key); err != nil {
			out = append(out, SandboxProblem{sb.rec.Name, fmt.Sprintf("its namespace %s is gone (%v); berth keeps it open while the sandbox exists", sb.rec.Key, err)})
		}
		for i, ep := range sb.endpoints {
			rec := &sb.records[i]
			if !ep.nw.caps.Addresses && !ep.nw.caps.OwnAddresses {
				continue
			}
			ok, err := sb.ns.HasInterface(netdev.Interface{Name: rec.IfName, Addrs: driverEndpoint(rec).Addrs()})
			switch {
			case err != nil:
				out = append(out, SandboxProblem{sb.rec.Name, fmt.Sprintf("its interface %s on %s cannot be read: %v", rec.IfName, ep.nw.rec.Name, err)})
			case !ok:
				out = append(out, SandboxProblem{sb.rec.Name, fmt.Sprintf("its interface %s on %s is missing, down or without its addresses %s", rec.IfName, ep.nw.rec.Name, addrList(rec))})
			}
		}
	}
	return out
}

func addrList(rec *Endpoint) string {
	var out []string
	for _, a := range []netip.Prefix{rec.IPv4, rec.IPv6} {
		if a.IsValid() {
			out = append(out, a.String())
		}
	}
	return fmt.Sprint(out)
}
