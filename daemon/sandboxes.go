package daemon

import (
	"net/http"
	"net/netip"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/container"
	bnet "github.com/berth-net/berth/network"
)

// endpointSettings is an endpoint in the shape of Docker's
// NetworkSettings.Networks entries.
func endpointSettings(ep bnet.EndpointDetail) *network.EndpointSettings {
	mac, _ := netParseMAC(ep.MAC)
	s := &network.EndpointSettings{
		Aliases:    ep.Aliases,
		NetworkID:  ep.NetworkID,
		EndpointID: ep.ID,
		MacAddress: mac,
		DNSNames:   append([]string{ep.Name, ep.SandboxID[:12]}, ep.Aliases...),
	}
	if ep.StaticIPv4.IsValid() || ep.StaticIPv6.IsValid() {
		s.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ep.StaticIPv4, IPv6Address: ep.StaticIPv6}
	}
	if ep.IPv4.IsValid() {
		s.IPAddress, s.IPPrefixLen, s.Gateway = ep.IPv4.Addr(), ep.IPv4.Bits(), ep.Gateway
	}
	if ep.IPv6.IsValid() {
		s.GlobalIPv6Address, s.GlobalIPv6PrefixLen, s.IPv6Gateway = ep.IPv6.Addr(), ep.IPv6.Bits(), ep.GatewayV6
	}
	return s
}

func toAPISandbox(sb bnet.SandboxDetail) api.Sandbox {
	out := api.Sandbox{ID: sb.ID, Name: sb.Name, Key: sb.Key, External: sb.External, Networks: map[string]*network.EndpointSettings{}}
	for _, ep := range sb.Endpoints {
		out.Networks[ep.NetworkName] = endpointSettings(ep)
		for _, b := range ep.Ports {
			p, ok := network.PortFrom(b.Port, network.IPProtocol(b.Proto))
			if !ok {
				continue
			}
			if out.Ports == nil {
				out.Ports = network.PortMap{}
			}
			hostIP := b.HostIP
			if !hostIP.IsValid() {
				hostIP = netip.IPv4Unspecified()
			}
			out.Ports[p] = append(out.Ports[p], network.PortBinding{HostIP: hostIP, HostPort: strconv.Itoa(int(b.HostPort))})
		}
	}
	return out
}

func (d *Daemon) listSandboxes(w http.ResponseWriter, r *http.Request) error {
	out := []api.Sandbox{}
	for _, sb := range d.ctrl.Sandboxes() {
		out = append(out, toAPISandbox(sb))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) createSandbox(w http.ResponseWriter, r *http.Request) error {
	var req api.SandboxCreateRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	sb, err := d.ctrl.CreateSandbox(bnet.SandboxOptions{Name: req.Name, Key: req.Key})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.SandboxCreateResponse{ID: sb.ID})
}

func (d *Daemon) inspectSandbox(w http.ResponseWriter, r *http.Request) error {
	sb, err := d.ctrl.InspectSandbox(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toAPISandbox(sb))
}

func (d *Daemon) deleteSandbox(w http.ResponseWriter, r *http.Request) error {
	if err := d.ctrl.DeleteSandbox(r.PathValue("id"), false); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) connectSandbox(w http.ResponseWriter, r *http.Request) error {
	var req api.SandboxConnectRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Network == "" {
		return errdefs.ErrInvalidArgument.WithMessage("no network given")
	}
	var opts bnet.EndpointOptions
	if c := req.EndpointConfig; c != nil {
		opts.Aliases = c.Aliases
		if len(c.MacAddress) > 0 {
			opts.MAC = c.MacAddress.String()
		}
		if c.IPAMConfig != nil {
			opts.IPv4, opts.IPv6 = c.IPAMConfig.IPv4Address, c.IPAMConfig.IPv6Address
			if err := checkFamily(opts.IPv4, false); err != nil {
				return err
			}
			if err := checkFamily(opts.IPv6, true); err != nil {
				return err
			}
		}
	}
	if len(req.PortBindings) > 0 {
		specs, err := container.PortSpecs(req.PortBindings)
		if err != nil {
			return err
		}
		opts.Ports = specs
	}
	ep, _, err := d.ctrl.Connect(r.PathValue("id"), req.Network, opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, endpointSettings(ep))
}

func checkFamily(a netip.Addr, v6 bool) error {
	if a.IsValid() && a.Is6() != v6 {
		return errdefs.ErrInvalidArgument.WithMessage("invalid address " + a.String() + " for its family")
	}
	return nil
}

func (d *Daemon) disconnectSandbox(w http.ResponseWriter, r *http.Request) error {
	var req api.SandboxDisconnectRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if _, err := d.ctrl.Disconnect(r.PathValue("id"), req.Network, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
