package plugins

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// Plugin is an activated plugin. Its Call is what the drivers of
// driver/remote and ipam/remote talk through.
type Plugin struct {
	reg  *Registry
	name string

	mu  sync.Mutex
	act *activation
	// again serializes activations after a restart, without holding mu
	// (which guards act) while a plugin is waited for.
	again sync.Mutex
}

// activation is what one activation of a plugin found: where it was and
// what it said it implements.
type activation struct {
	spec       spec
	client     *client
	implements []string
}

// manifest is the answer to Plugin.Activate.
type manifest struct {
	Implements []string
}

// Name is the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Addr is where the plugin was last reached.
func (p *Plugin) Addr() string { return p.activation().spec.Addr }

// Implements tells whether the plugin said it implements kind
// (NetworkDriver, IpamDriver, …).
func (p *Plugin) Implements(kind string) bool {
	return slices.Contains(p.activation().implements, kind)
}

func (p *Plugin) activation() *activation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.act
}

// Call posts args as JSON to /method of the plugin and decodes its answer
// into ret. A call that cannot reach the plugin (it restarted, or is
// restarting) finds and activates the plugin again, trying for the
// registry's Retry, and is then sent once more.
func (p *Plugin) Call(method string, args, ret any) error {
	a := p.activation()
	err := a.client.call(method, args, ret)
	if err == nil || !unreachable(err) {
		return err
	}
	p.reg.log.Warn("plugin not answering; activating it again", "plugin", p.name, "method", method, "err", err)
	if a, err = p.reactivate(a); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if err := a.client.call(method, args, ret); err != nil {
		if unreachable(err) {
			return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("%s: plugin %s at %s: %v", method, p.name, a.spec.Addr, err))
		}
		return err
	}
	return nil
}

// reactivate activates the plugin again, unless another call did since
// stale failed.
func (p *Plugin) reactivate(stale *activation) (*activation, error) {
	p.again.Lock()
	defer p.again.Unlock()
	if a := p.activation(); a != stale {
		return a, nil
	}
	a, err := p.reg.activate(p.name, false)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.act = a
	p.mu.Unlock()
	p.reg.log.Info("plugin activated again", "plugin", p.name, "addr", a.spec.Addr, "implements", a.implements)
	return a, nil
}

// Back-off between attempts to reach a plugin: doubling from the first
// wait up to the last, within the registry's Retry in all.
const (
	firstWait = 50 * time.Millisecond
	maxWait   = 2 * time.Second
)

// activate finds the plugin and sends it Plugin.Activate. A plugin found
// but not answering, or (unless first) not found while it restarts, is
// tried again with back-off for r.Retry in all. On first use a name found
// nowhere fails at once: Docker does not wait for a plugin that was never
// there.
func (r *Registry) activate(name string, first bool) (*activation, error) {
	deadline := time.Now().Add(r.Retry)
	wait := firstWait
	for attempt := 1; ; attempt++ {
		s, err := lookup(r.dirs, name)
		switch {
		case err == nil:
			var c *client
			if c, err = newClient(s, r.CallTimeout); err != nil {
				return nil, err
			}
			var m manifest
			err = c.call("Plugin.Activate", nil, &m)
			if err == nil {
				return &activation{spec: s, client: c, implements: m.Implements}, nil
			}
			if !unreachable(err) {
				return nil, fmt.Errorf("activate plugin %s at %s: %w", name, s.Addr, err)
			}
		case first || !errdefs.IsNotFound(err):
			return nil, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("plugin %s is not answering after %d attempts in %s: %v", name, attempt, r.Retry, err))
		}
		pause := min(wait, left)
		r.log.Warn("plugin not answering; trying again", "plugin", name, "in", pause, "err", err)
		time.Sleep(pause)
		wait = min(2*wait, maxWait)
	}
}
