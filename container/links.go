package container

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	ntypes "github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/store"
)

// link is one legacy --link: the linked container and the name the
// linking one knows it by.
type link struct {
	target *entry
	alias  string
}

// parseLink reads "name[:alias]" (or the stored "/name:/linker/alias").
func parseLink(s string) (name, alias string) {
	name, alias, ok := strings.Cut(s, ":")
	name = strings.TrimPrefix(name, "/")
	if !ok {
		return name, name
	}
	return name, alias[strings.LastIndex(alias, "/")+1:]
}

// resolverLinks are the names, alias → container name, the container's
// resolver answers on its user-defined networks: its --link targets and
// the links given per network (EndpointsConfig.Links), which Docker also
// resolves through its embedded DNS. Nil for none.
func resolverLinks(c *Container) map[string]string {
	var out map[string]string
	add := func(links []string) {
		for _, l := range links {
			name, alias := parseLink(l)
			if out == nil {
				out = map[string]string{}
			}
			out[alias] = name
		}
	}
	add(c.Host.Links)
	for _, a := range c.Networks {
		if a.Config != nil {
			add(a.Config.Links)
		}
	}
	return out
}

// RemoveLink takes back the link a container knows by alias, as
// DELETE /containers/{name}/{alias}?link=1 does; a running container's
// resolver stops answering for it at once.
func (m *Manager) RemoveLink(term, alias string) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := &e.rec
	drop := func(links []string) ([]string, bool) {
		kept := slices.DeleteFunc(slices.Clone(links), func(l string) bool { _, a := parseLink(l); return a == alias })
		return kept, len(kept) != len(links)
	}
	next := *c
	host := *c.Host
	next.Host = &host
	found := false
	var ok bool
	if next.Host.Links, ok = drop(c.Host.Links); ok {
		found = true
	}
	next.Networks = slices.Clone(c.Networks)
	for i, a := range next.Networks {
		if a.Config == nil {
			continue
		}
		cfg := a.Config.Copy()
		if cfg.Links, ok = drop(a.Config.Links); ok {
			found = true
			next.Networks[i].Config = cfg
		}
	}
	if !found {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("Could not find entity for %s", "/"+c.Name+"/"+alias))
	}
	persist := func(tx store.Tx) error { return store.PutJSON(tx, bucketContainers, next.ID, &next) }
	if c.State.Running() && ownsSandbox(c.Host.NetworkMode) {
		err = m.cfg.Networks.SetLinks(c.ID, resolverLinks(&next), persist)
	} else {
		err = m.cfg.Store.Update(persist)
	}
	if err != nil {
		return err
	}
	*c = next
	return nil
}

// links resolves a container's --link targets; on the default bridge they
// must run, as Docker requires.
func (m *Manager) links(c *Container, needRunning bool) ([]link, error) {
	var out []link
	for _, l := range c.Host.Links {
		name, alias := parseLink(l)
		t, err := m.find(name)
		if err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("could not get container for %s", name))
		}
		if needRunning && !t.rec.State.Running() {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("Cannot link to a non running container: /%s AS /%s/%s", t.rec.Name, c.Name, alias))
		}
		out = append(out, link{target: t, alias: alias})
	}
	return out, nil
}

// envName is how Docker turns a link alias into an environment prefix.
func envName(alias string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, alias)
}

// linkEnv is Docker's environment for a legacy link on the default bridge:
// ALIAS_NAME, ALIAS_PORT (the lowest exposed port), ALIAS_PORT_<port>_<PROTO>
// with its _ADDR, _PORT and _PROTO, and ALIAS_ENV_<var> for the linked
// container's own environment.
func linkEnv(linker string, alias string, target Container, ip netip.Addr) []string {
	p := envName(alias)
	env := []string{fmt.Sprintf("%s_NAME=/%s/%s", p, linker, alias)}
	ports := make([]ntypes.Port, 0, len(target.Config.ExposedPorts))
	for port := range target.Config.ExposedPorts {
		ports = append(ports, port)
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Num() != ports[j].Num() {
			return ports[i].Num() < ports[j].Num()
		}
		return ports[i].Proto() < ports[j].Proto()
	})
	for i, port := range ports {
		proto := string(port.Proto())
		url := fmt.Sprintf("%s://%s:%d", proto, ip, port.Num())
		if i == 0 {
			env = append(env, fmt.Sprintf("%s_PORT=%s", p, url))
		}
		q := fmt.Sprintf("%s_PORT_%d_%s", p, port.Num(), strings.ToUpper(proto))
		env = append(env, q+"="+url, fmt.Sprintf("%s_ADDR=%s", q, ip), fmt.Sprintf("%s_PORT=%d", q, port.Num()), fmt.Sprintf("%s_PROTO=%s", q, proto))
	}
	for _, kv := range target.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if slices.Contains([]string{"HOME", "HOSTNAME", "PATH"}, k) {
			continue
		}
		env = append(env, fmt.Sprintf("%s_ENV_%s=%s", p, k, v))
	}
	return env
}
