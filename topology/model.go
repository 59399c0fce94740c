package topology

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Model is what the picture shows. Its slices are sorted, so that a model
// built twice from the same daemon state encodes to the same bytes.
type Model struct {
	Hosts      []Host
	Networks   []Network
	Containers []Container
}

// Host is a machine: the one the daemon runs on, or another host of the
// cluster that shares a global (overlay) network with it.
type Host struct {
	Name  string
	IP    string `json:",omitempty"`
	Local bool
	// Networks are the IDs of the global networks a host of the cluster
	// shares with this one; empty for the local host.
	Networks []string `json:",omitempty"`
}

// Network is one network: an isolation boundary. Containers on different
// networks reach each other only through ports published on the host.
type Network struct {
	ID      string
	Name    string
	Driver  string
	Scope   string
	Subnets []Subnet `json:",omitempty"`
	IPv6    bool
	// Internal networks have no way in or out: nothing is forwarded
	// between them and anything beyond their own containers.
	Internal bool
	// ICC tells whether the network's containers reach each other
	// (com.docker.network.bridge.enable_icc, true unless set to false).
	ICC     bool
	Options map[string]string `json:",omitempty"`
	Labels  map[string]string `json:",omitempty"`
}

// Subnet is one of a network's address pools.
type Subnet struct {
	Subnet  string
	Gateway string `json:",omitempty"`
}

// Container is a container, or a berth sandbox (a namespace attached to
// networks that is no container), with its endpoints.
type Container struct {
	ID   string
	Name string
	// Kind is "container" or "sandbox".
	Kind  string
	Image string `json:",omitempty"`
	// State is Docker's ("running", "exited", …); sandboxes are "running".
	State       string
	NetworkMode string `json:",omitempty"`
	// SharesWith is the ID of the container whose network namespace this
	// one uses (network mode container:<name>).
	SharesWith string     `json:",omitempty"`
	Endpoints  []Endpoint `json:",omitempty"`
	Ports      []Port     `json:",omitempty"`
}

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	Network string // the network's ID
	ID      string `json:",omitempty"`
	MAC     string `json:",omitempty"`
	// IPv4 and IPv6 are addresses with the subnet's prefix length.
	IPv4    string   `json:",omitempty"`
	IPv6    string   `json:",omitempty"`
	Aliases []string `json:",omitempty"`
	// Live tells whether the endpoint exists now; a stopped container's
	// endpoints are only what it asked for.
	Live bool
}

// Port is a port published on the host.
type Port struct {
	HostIP   string
	HostPort uint16
	Port     uint16
	Proto    string
}

// String is how a published port is read: "0.0.0.0:8080→80/tcp".
func (p Port) String() string {
	host := p.HostIP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(p.HostPort)) + "→" + strconv.Itoa(int(p.Port)) + "/" + p.Proto
}

// Input is what a daemon reports, in the Docker Engine API's types.
type Input struct {
	// Host is the daemon's host name (Info.Name).
	Host string
	// HostID is the daemon's ID (Info.ID), the name a cluster's peers may
	// know the host by.
	HostID string
	// Networks are network inspects, with their Containers.
	Networks []network.Inspect
	// Containers are the container list with all=true.
	Containers []container.Summary
}

// Kinds of Container.
const (
	KindContainer = "container"
	KindSandbox   = "sandbox"
)

const optionICC = "com.docker.network.bridge.enable_icc"

// Build makes the model of what a daemon reports.
func Build(in Input) Model {
	m := Model{Networks: []Network{}, Containers: []Container{}}
	byName := map[string]string{} // network name → ID
	for _, n := range in.Networks {
		byName[n.Name] = n.ID
	}
	gateways := gatewaysSeen(in, byName)
	for _, n := range in.Networks {
		m.Networks = append(m.Networks, networkOf(n, gateways[n.ID]))
	}
	slices.SortFunc(m.Networks, func(a, b Network) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })

	containerIDs := map[string]bool{}
	for _, c := range in.Containers {
		containerIDs[c.ID] = true
	}
	sandboxes := map[string]*Container{}
	for _, n := range in.Networks {
		for id, ep := range n.Containers {
			if containerIDs[id] {
				continue
			}
			sb := sandboxes[id]
			if sb == nil {
				sb = &Container{ID: id, Name: ep.Name, Kind: KindSandbox, State: string(container.StateRunning)}
				sandboxes[id] = sb
			}
			e := Endpoint{Network: n.ID, Live: true}
			fillLive(&e, ep)
			sb.Endpoints = append(sb.Endpoints, e)
		}
	}

	for _, c := range in.Containers {
		m.Containers = append(m.Containers, containerOf(c, in, byName))
	}
	for _, sb := range sandboxes {
		m.Containers = append(m.Containers, *sb)
	}
	order := map[string]int{}
	for j, n := range m.Networks {
		order[n.ID] = j
	}
	for i := range m.Containers {
		c := &m.Containers[i]
		if target, ok := strings.CutPrefix(c.NetworkMode, "container:"); ok {
			c.SharesWith = resolveContainer(in.Containers, target)
		}
		slices.SortFunc(c.Endpoints, func(a, b Endpoint) int { return cmp.Compare(order[a.Network], order[b.Network]) })
	}
	slices.SortFunc(m.Containers, func(a, b Container) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })
	m.Hosts = hostsOf(in)
	return m
}

// gatewaysSeen are the gateways containers' endpoints report, by network:
// a network's inspect shows no gateway berth chose itself, as dockerd's
// does not, and the picture wants it.
func gatewaysSeen(in Input, byName map[string]string) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, c := range in.Containers {
		if c.NetworkSettings == nil {
			continue
		}
		for name, es := range c.NetworkSettings.Networks {
			if es == nil {
				continue
			}
			id := cmp.Or(byName[name], es.NetworkID)
			for _, gw := range []netip.Addr{es.Gateway, es.IPv6Gateway} {
				if gw.IsValid() && !slices.Contains(out[id], gw) {
					out[id] = append(out[id], gw)
				}
			}
		}
	}
	return out
}

func networkOf(n network.Inspect, gateways []netip.Addr) Network {
	out := Network{
		ID: n.ID, Name: n.Name, Driver: n.Driver, Scope: n.Scope,
		IPv6: n.EnableIPv6, Internal: n.Internal, ICC: n.Options[optionICC] != "false",
		Options: n.Options, Labels: n.Labels,
	}
	if len(out.Options) == 0 {
		out.Options = nil
	}
	if len(out.Labels) == 0 {
		out.Labels = nil
	}
	for _, c := range n.IPAM.Config {
		if !c.Subnet.IsValid() {
			continue
		}
		s := Subnet{Subnet: c.Subnet.String()}
		gw := c.Gateway
		if !gw.IsValid() {
			if i := slices.IndexFunc(gateways, c.Subnet.Contains); i >= 0 {
				gw = gateways[i]
			}
		}
		if gw.IsValid() {
			s.Gateway = gw.String()
		}
		out.Subnets = append(out.Subnets, s)
	}
	return out
}

func containerOf(c container.Summary, in Input, byName map[string]string) Container {
	out := Container{
		ID: c.ID, Kind: KindContainer, Image: c.Image, State: string(c.State),
		NetworkMode: c.HostConfig.NetworkMode,
	}
	if len(c.Names) > 0 {
		out.Name = strings.TrimPrefix(c.Names[0], "/")
	}
	live := c.State == container.StateRunning || c.State == container.StateRestarting
	if c.NetworkSettings != nil {
		for name, es := range c.NetworkSettings.Networks {
			id := byName[name]
			if id == "" && es != nil {
				id = es.NetworkID
			}
			if !slices.ContainsFunc(in.Networks, func(n network.Inspect) bool { return n.ID == id }) {
				// A network removed while the lists were read.
				continue
			}
			e := Endpoint{Network: id, Live: live}
			if es != nil {
				e.Aliases = slices.Clone(es.Aliases)
				if es.IPAMConfig != nil {
					e.IPv4 = addrString(es.IPAMConfig.IPv4Address)
					e.IPv6 = addrString(es.IPAMConfig.IPv6Address)
				}
			}
			for _, n := range in.Networks {
				if ep, ok := n.Containers[c.ID]; ok && n.ID == id {
					fillLive(&e, ep)
				}
			}
			out.Endpoints = append(out.Endpoints, e)
		}
	}
	for _, p := range c.Ports {
		if p.PublicPort == 0 {
			continue
		}
		ip := "0.0.0.0"
		if p.IP.IsValid() {
			ip = p.IP.String()
		}
		out.Ports = append(out.Ports, Port{HostIP: ip, HostPort: p.PublicPort, Port: p.PrivatePort, Proto: p.Type})
	}
	slices.SortFunc(out.Ports, func(a, b Port) int {
		return cmp.Or(cmp.Compare(a.HostPort, b.HostPort), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.HostIP, b.HostIP))
	})
	out.Ports = slices.Compact(out.Ports)
	return out
}

// fillLive takes what a network's inspect says of an endpoint that exists.
func fillLive(e *Endpoint, ep network.EndpointResource) {
	e.ID = ep.EndpointID
	if len(ep.MacAddress) > 0 {
		e.MAC = ep.MacAddress.String()
	}
	if ep.IPv4Address.IsValid() {
		e.IPv4 = ep.IPv4Address.String()
	}
	if ep.IPv6Address.IsValid() {
		e.IPv6 = ep.IPv6Address.String()
	}
}

func addrString(a interface {
	IsValid() bool
	String() string
}) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// resolveContainer finds a container by ID, name or ID prefix, as the
// network mode container:<x> names it.
func resolveContainer(cs []container.Summary, term string) string {
	for _, c := range cs {
		if c.ID == term || slices.Contains(c.Names, "/"+term) {
			return c.ID
		}
	}
	for _, c := range cs {
		if strings.HasPrefix(c.ID, term) {
			return c.ID
		}
	}
	return ""
}

// hostsOf is the local host, then the hosts of the cluster that share
// global networks with it, as those networks' peers name them.
func hostsOf(in Input) []Host {
	local := Host{Name: in.Host, Local: true}
	peers := map[string]*Host{}
	for _, n := range in.Networks {
		for _, p := range n.Peers {
			ip := addrString(p.IP)
			if p.Name == in.Host || in.HostID != "" && p.Name == in.HostID {
				local.IP = ip
				continue
			}
			key := p.Name + " " + ip
			h := peers[key]
			if h == nil {
				h = &Host{Name: p.Name, IP: ip}
				peers[key] = h
			}
			h.Networks = append(h.Networks, n.ID)
		}
	}
	out := []Host{local}
	for _, h := range peers {
		slices.Sort(h.Networks)
		out = append(out, *h)
	}
	slices.SortFunc(out[1:], func(a, b Host) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.IP, b.IP)) })
	return out
}

// Only keeps the networks whose IDs are given, the containers attached to
// them (with only those endpoints), the containers that share a kept
// one's namespace, and the hosts that share a kept network.
func (m Model) Only(networkIDs ...string) Model {
	keep := map[string]bool{}
	for _, id := range networkIDs {
		keep[id] = true
	}
	out := Model{Networks: []Network{}, Containers: []Container{}}
	for _, n := range m.Networks {
		if keep[n.ID] {
			out.Networks = append(out.Networks, n)
		}
	}
	kept := map[string]bool{}
	for _, c := range m.Containers {
		var eps []Endpoint
		for _, e := range c.Endpoints {
			if keep[e.Network] {
				eps = append(eps, e)
			}
		}
		if len(eps) > 0 {
			c.Endpoints = eps
			out.Containers = append(out.Containers, c)
			kept[c.ID] = true
		}
	}
	for _, c := range m.Containers {
		if c.SharesWith != "" && kept[c.SharesWith] && !kept[c.ID] {
			c.Endpoints = nil
			out.Containers = append(out.Containers, c)
		}
	}
	slices.SortFunc(out.Containers, func(a, b Container) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })
	for _, h := range m.Hosts {
		if h.Local {
			out.Hosts = append(out.Hosts, h)
			continue
		}
		var shared []string
		for _, id := range h.Networks {
			if keep[id] {
				shared = append(shared, id)
			}
		}
		if len(shared) > 0 {
			h.Networks = shared
			out.Hosts = append(out.Hosts, h)
		}
	}
	return out
}

// Network finds a network of the model by ID.
func (m Model) Network(id string) (Network, bool) {
	i := slices.IndexFunc(m.Networks, func(n Network) bool { return n.ID == id })
	if i < 0 {
		return Network{}, false
	}
	return m.Networks[i], true
}
