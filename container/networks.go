package container

import (
	"os"
	"slices"
	"strings"

	ntypes "github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/store"
)

// Connect attaches a container to one more network: at once when it runs,
// at its next start otherwise. The controller validates either way, with
// the same rules.
func (m *Manager) Connect(term, netTerm string, cfg *ntypes.EndpointSettings) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := &e.rec
	mode := string(c.Host.NetworkMode)
	switch {
	case mode == modeHost:
		return network.ErrHostNetwork
	case strings.HasPrefix(mode, modeContainer):
		return network.ErrSharedNamespace
	}
	if cfg == nil {
		cfg = &ntypes.EndpointSettings{}
	}
	opts := endpointOptions(cfg)
	before := c.Networks
	if !c.State.Running() {
		n, err := m.cfg.Networks.CheckConnect(c.Name, attachedNames(c), netTerm, opts)
		if err != nil {
			return err
		}
		c.Networks = append(slices.Clip(c.Networks), NetworkAttachment{Network: n.Name, Config: cfg.Copy()})
		if err := m.save(e); err != nil {
			c.Networks = before
			return err
		}
		return nil
	}
	// The record is written with the endpoint, in its transaction, naming
	// the network as the controller found it.
	opts.Persist = func(tx store.Tx, n network.NetworkRef) error {
		c.Networks = append(slices.Clip(before), NetworkAttachment{Network: n.Name, Config: cfg.Copy()})
		return store.PutJSON(tx, bucketContainers, c.ID, c)
	}
	_, files, err := m.cfg.Networks.Connect(c.ID, netTerm, opts)
	if err != nil {
		// The record may have been written with the endpoint that then
		// failed to wire: put it back as it was.
		c.Networks = before
		m.save(e)
		return err
	}
	if len(cfg.Links) > 0 {
		if err := m.cfg.Networks.SetLinks(c.ID, resolverLinks(c), nil); err != nil {
			m.log.Warn("resolve the connect's links", "id", c.ID, "err", err)
		}
	}
	return m.writeNetworkFiles(c, files)
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
		return network.ErrHostNetwork
	}
	before := c.Networks
	if !c.State.Running() {
		name := netTerm
		if n, err := m.cfg.Networks.LookupNetwork(netTerm); err == nil {
			name = n.Name
		}
		i := slices.IndexFunc(c.Networks, func(a NetworkAttachment) bool { return a.Network == name })
		if i < 0 {
			return network.ErrNotConnected(c.ID, netTerm)
		}
		c.Networks = slices.Delete(slices.Clone(c.Networks), i, i+1)
		if err := m.save(e); err != nil {
			c.Networks = before
			return err
		}
		return nil
	}
	// The record is written with the endpoint's removal, in its
	// transaction, without the network as the controller found it.
	files, err := m.cfg.Networks.Disconnect(c.ID, netTerm, func(tx store.Tx, n network.NetworkRef) error {
		c.Networks = slices.DeleteFunc(slices.Clone(before), func(a NetworkAttachment) bool { return a.Network == n.Name })
		return store.PutJSON(tx, bucketContainers, c.ID, c)
	})
	if err != nil {
		c.Networks = before
		return err
	}
	return m.writeNetworkFiles(c, files)
}

// attachedNames are the networks a container is to be on, by name.
func attachedNames(c *Container) []string {
	out := make([]string, len(c.Networks))
	for i, a := range c.Networks {
		out[i] = a.Network
	}
	return out
}

// writeNetworkFiles rewrites a running container's /etc/hosts after its
// addresses changed, and its resolv.conf when that changed too: the first
// user-defined network a container joins points it at the resolver.
func (m *Manager) writeNetworkFiles(c *Container, files *network.Files) error {
	if files == nil {
		return nil
	}
	if err := writeFile(m.hostsPath(c.ID), files.Hosts); err != nil {
		return err
	}
	if b, err := os.ReadFile(m.resolvPath(c.ID)); err == nil && string(b) == files.ResolvConf {
		return nil
	}
	return writeFile(m.resolvPath(c.ID), files.ResolvConf)
}
