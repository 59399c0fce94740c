package container

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	ntypes "github.com/moby/moby/api/types/network"
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
