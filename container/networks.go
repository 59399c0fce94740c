package container

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	ntypes "github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/store"
)

// Connect attaches a container to one more network: at once when it runs,
// at its next start otherwise.
func (m *Manager) Connect(term, netTerm string, cfg *ntypes.EndpointSettings) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	n, err := m.cfg.Networks.InspectNetwork(netTerm)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := &e.rec
	mode := string(c.Host.NetworkMode)
	switch {
	case mode == modeHost || n.Driver == "host":
		return errdefs.ErrInvalidArgument.WithMessage("container cannot be disconnected from host network or connected to host network")
	case strings.HasPrefix(mode, modeContainer):
		return errdefs.ErrInvalidArgument.WithMessage("container sharing network namespace with another container or host cannot be connected to any other network")
	}
	for _, att := range c.Networks {
		if att.Network == n.Name {
			return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("endpoint with name %s already exists in network %s", c.Name, n.Name))
		}
		if att.Network == network.NameNone || n.Name == network.NameNone {
			return errdefs.ErrInvalidArgument.WithMessage("container cannot be connected to multiple networks with one of the networks in private (none) mode")
		}
	}
	if cfg == nil {
		cfg = &ntypes.EndpointSettings{}
	}
	before := c.Networks
	c.Networks = append(slices.Clip(c.Networks), NetworkAttachment{Network: n.Name, Config: cfg.Copy()})
	if !c.State.Running() {
		if err := m.save(e); err != nil {
			c.Networks = before
			return err
		}
		return nil
	}
	opts := endpointOptions(cfg)
	opts.Persist = m.persist(c)
	ep, err := m.cfg.Networks.Connect(c.ID, n.Name, opts)
	if err != nil {
		// The record may have been written with the endpoint that then
		// failed to wire: put it back as it was.
		c.Networks = before
		m.save(e)
		return err
	}
	m.refreshResolver(c, n.Name, &ep)
	return m.refreshHosts(c)
}

// persist writes a container's record inside another store transaction.
func (m *Manager) persist(c *Container) func(store.Tx) error {
	return func(tx store.Tx) error { return store.PutJSON(tx, bucketContainers, c.ID, c) }
}

// Disconnect detaches a container from a network.
func (m *Manager) Disconnect(term, netTerm string) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := &e.rec
	if string(c.Host.NetworkMode) == modeHost {
		return errdefs.ErrInvalidArgument.WithMessage("container cannot be disconnected from host network or connected to host network")
	}
	name := netTerm
	if n, err := m.cfg.Networks.InspectNetwork(netTerm); err == nil {
		name = n.Name
	}
	i := slices.IndexFunc(c.Networks, func(a NetworkAttachment) bool { return a.Network == name })
	if i < 0 {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("container %s is not connected to network %s", c.ID, netTerm))
	}
	before := c.Networks
	c.Networks = slices.Delete(slices.Clone(c.Networks), i, i+1)
	if c.State.Running() {
		err = m.cfg.Networks.Disconnect(c.ID, name, m.persist(c))
	} else {
		err = m.save(e)
	}
	if err != nil {
		c.Networks = before
		return err
	}
	if c.State.Running() {
		m.refreshResolver(c, name, nil)
	}
	return m.refreshHosts(c)
}

// refreshHosts rewrites a running container's /etc/hosts after its
// addresses changed.
func (m *Manager) refreshHosts(c *Container) error {
	if !c.State.Running() || !ownsSandbox(c.Host.NetworkMode) {
		return nil
	}
	sb, err := m.cfg.Networks.InspectSandbox(c.ID)
	if err != nil {
		return err
	}
	return writeFile(m.hostsPath(c.ID), hostsFile(c.Config.Hostname, c.Config.Domainname, c.Host.ExtraHosts, c.LinkHosts, sb.Endpoints))
}
