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
	out, err := PortSpecs(c.Host.PortBindings)
	if err != nil {
		return nil, err
	}
	if c.Host.PublishAllPorts {
		for port := range c.Config.ExposedPorts {
			if _, bound := c.Host.PortBindings[port]; bound {
				continue
			}
			if err := checkPort(port); err != nil {
				return nil, err
			}
			out = append(out, network.PortSpec{Proto: string(port.Proto()), Port: port.Num()})
		}
	}
	sortPortSpecs(out)
	return out, nil
}

// checkPort refuses a container port the kernel cannot publish.
func checkPort(port ntypes.Port) error {
	switch port.Proto() {
	case "tcp", "udp", "sctp":
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid proto: %s", port.Proto()))
	}
	if port.Num() == 0 {
		return errdefs.ErrInvalidArgument.WithMessage("invalid containerPort: 0")
	}
	return nil
}

// PortSpecs turns Docker's port bindings into what the network
// controller publishes.
func PortSpecs(m ntypes.PortMap) ([]network.PortSpec, error) {
	var out []network.PortSpec
	for port, bindings := range m {
		if err := checkPort(port); err != nil {
			return nil, err
		}
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
	sortPortSpecs(out)
	return out, nil
}

// sortPortSpecs puts specs in a stable order, which gives stable random
// ports for the same request.
func sortPortSpecs(out []network.PortSpec) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Proto < out[j].Proto
	})
}

// hostPortRange reads a binding's host port: empty or 0 (any), one port,
// or a range to pick a free one from. A range from 0 is refused: 0 asks for
// any port, which would not be one of the range.
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
	if err != nil || min > max || min == 0 && max != 0 {
		return 0, 0, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid hostPort: %s", s))
	}
	return uint16(min), uint16(max), nil
}
