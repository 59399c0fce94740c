package container

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	ntypes "github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/network"
)

// portSpecs are the ports a container publishes: its port bindings, and
// with -P every exposed port without one, on a free host port.
func portSpecs(c *Container) ([]network.PortSpec, error) {
	var out []network.PortSpec
	bound := map[ntypes.Port]bool{}
	for port, bindings := range c.Host.PortBindings {
		switch port.Proto() {
		case "tcp", "udp", "sctp":
		default:
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid proto: %s", port.Proto()))
		}
		if port.Num() == 0 {
			return nil, errdefs.ErrInvalidArgument.WithMessage("invalid containerPort: 0")
		}
		bound[port] = true
		if len(bindings) == 0 {
			bindings = []ntypes.PortBinding{{}}
		}
		for _, b := range bindings {
			min, max, err := hostPortRange(b.HostPort)
			if err != nil {
				return nil, err
			}
			out = append(out, network.PortSpec{Proto: string(port.Proto()), Port: port.Num(), HostIP: b.HostIP, HostPortMin: min, HostPortMax: max})
		}
	}
	if c.Host.PublishAllPorts {
		for port := range c.Config.ExposedPorts {
			if !bound[port] {
				out = append(out, network.PortSpec{Proto: string(port.Proto()), Port: port.Num()})
			}
		}
	}
	// A stable order gives stable random ports for the same request.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

// hostPortRange reads a binding's host port: empty (any), one port, or a
// range to pick a free one from.
func hostPortRange(s string) (uint16, uint16, error) {
	if s == "" {
		return 0, 0, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	min, err := strconv.ParseUint(lo, 10, 16)
	max := min
	if err == nil && isRange {
		max, err = strconv.ParseUint(hi, 10, 16)
	}
	if err != nil || min > max {
		return 0, 0, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid hostPort: %s", s))
	}
	return uint16(min), uint16(max), nil
}

// publishingNetwork is the network whose endpoint publishes the ports: the
// first bridge network the container is on that is not internal, as
// Docker publishes through the network of its default gateway.
func (m *Manager) publishingNetwork(c *Container, specs []network.PortSpec) string {
	if len(specs) == 0 {
		return ""
	}
	for _, att := range c.Networks {
		n, err := m.cfg.Networks.InspectNetwork(att.Network)
		if err == nil && n.Driver == "bridge" && !n.Internal {
			return att.Network
		}
	}
	return ""
}
