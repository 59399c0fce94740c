package daemon

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/ipam"
	bnet "github.com/berth-net/berth/network"
)

// toSummary is a network in Docker's JSON.
func toSummary(n bnet.Network) network.Network {
	out := network.Network{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: n.Scope, Driver: n.Driver,
		EnableIPv4: n.EnableIPv4, EnableIPv6: n.EnableIPv6, Internal: n.Internal, Attachable: n.Attachable,
		Options: n.Options, Labels: n.Labels,
		IPAM: network.IPAM{Driver: n.IPAM.Driver, Options: n.IPAM.Options, Config: []network.IPAMConfig{}},
	}
	if len(n.Notes) > 0 {
		// What the driver tells users, where they look.
		out.Options = maps.Clone(n.Options)
		maps.Copy(out.Options, n.Notes)
	}
	for _, p := range n.IPAM.Pools {
		c := network.IPAMConfig{Subnet: p.Subnet, IPRange: p.IPRange, AuxAddress: p.AuxAddresses}
		if p.ShowGateway() {
			c.Gateway = p.Gateway
		}
		out.IPAM.Config = append(out.IPAM.Config, c)
	}
	return out
}

func (d *Daemon) toInspect(n bnet.NetworkDetail) network.Inspect {
	out := network.Inspect{Network: toSummary(n.Network), Containers: map[string]network.EndpointResource{}}
	for _, ep := range n.Endpoints {
		mac, _ := netParseMAC(ep.MAC)
		out.Containers[ep.SandboxID] = network.EndpointResource{
			Name: ep.Name, EndpointID: ep.ID, MacAddress: mac, IPv4Address: ep.IPv4, IPv6Address: ep.IPv6,
		}
	}
	for _, p := range n.Peers {
		out.Peers = append(out.Peers, network.PeerInfo{Name: p.Name, IP: p.IP})
	}
	return out
}

var networkFilters = []string{"driver", "id", "label", "name", "scope", "type", "dangling"}

func (d *Daemon) listNetworks(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), networkFilters...)
	if err != nil {
		return err
	}
	for _, t := range f.get("type") {
		if t != "custom" && t != "builtin" {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter: 'type'='%s'", t))
		}
	}
	var dangling *bool
	for _, v := range f.get("dangling") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter 'dangling=%s'", v))
		}
		dangling = &b
	}
	out := []network.Summary{}
	for _, n := range d.ctrl.Networks() {
		builtin := bnet.IsPredefined(n.Name)
		typ := "custom"
		if builtin {
			typ = "builtin"
		}
		if !f.exact("driver", n.Driver) || !f.match("id", n.ID) || !f.match("name", n.Name) ||
			!f.exact("scope", n.Scope) || !f.exact("type", typ) || !f.labels("label", n.Labels) {
			continue
		}
		if dangling != nil {
			unused := !builtin && d.ctrl.EndpointCount(n.ID) == 0
			if unused != *dangling {
				continue
			}
		}
		out = append(out, network.Summary{Network: toSummary(n)})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) inspectNetwork(w http.ResponseWriter, r *http.Request) error {
	n, err := d.ctrl.InspectNetwork(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d.toInspect(n))
}

// createNetworkRequest is network.CreateRequest with the IPAM addresses as
// strings, so that a bad one gets Docker's message rather than a JSON
// decoding error.
type createNetworkRequest struct {
	Name       string
	Driver     string
	Scope      string
	EnableIPv4 *bool
	EnableIPv6 *bool
	IPAM       *struct {
		Driver  string
		Options map[string]string
		Config  []struct {
			Subnet             string
			IPRange            string
			Gateway            string
			AuxiliaryAddresses map[string]string
		}
	}
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigOnly bool
	ConfigFrom *network.ConfigReference
	Options    map[string]string
	Labels     map[string]string
	// CheckDuplicate is sent by old clients; names are always unique here.
	CheckDuplicate bool
}

func (d *Daemon) createNetwork(w http.ResponseWriter, r *http.Request) error {
	var req createNetworkRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Ingress:
		return errdefs.ErrInvalidArgument.WithMessage("ingress networks need swarm mode, which berth does not provide")
	case req.ConfigOnly || req.ConfigFrom != nil && req.ConfigFrom.Network != "":
		return errdefs.ErrInvalidArgument.WithMessage("config-only networks (--config-only, --config-from) are not supported by berth")
	}
	opts := bnet.CreateOptions{
		Name: req.Name, Driver: req.Driver, Scope: req.Scope,
		EnableIPv4: req.EnableIPv4, EnableIPv6: req.EnableIPv6,
		Internal: req.Internal, Attachable: req.Attachable,
		Options: req.Options, Labels: req.Labels,
	}
	if req.IPAM != nil {
		opts.IPAMDriver = req.IPAM.Driver
		opts.IPAMOptions = req.IPAM.Options
		for _, c := range req.IPAM.Config {
			cfg, err := ipam.ParseConfig(c.Subnet, c.IPRange, c.Gateway, c.AuxiliaryAddresses)
			if err != nil {
				return err
			}
			opts.IPAM = append(opts.IPAM, cfg)
		}
	}
	n, err := d.ctrl.CreateNetwork(opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID})
}

func (d *Daemon) deleteNetwork(w http.ResponseWriter, r *http.Request) error {
	if err := d.ctrl.DeleteNetwork(r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) pruneNetworks(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), "until", "label", "label!")
	if err != nil {
		return err
	}
	var until time.Time
	for _, v := range f.get("until") {
		t, err := parseUntil(v, time.Now())
		if err != nil {
			return err
		}
		until = t
	}
	keep := func(n bnet.Network) bool {
		if !until.IsZero() && !n.Created.Before(until) {
			return false
		}
		if !f.labels("label", n.Labels) {
			return false
		}
		if f.has("label!") && f.labels("label!", n.Labels) {
			return false
		}
		return true
	}
	removed, err := d.ctrl.PruneNetworks(keep)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: removed})
}

// parseUntil reads the `until` filter: a Unix timestamp, an RFC 3339 time
// or a Go duration before now.
func parseUntil(v string, now time.Time) (time.Time, error) {
	if dur, err := time.ParseDuration(v); err == nil {
		return now.Add(-dur), nil
	}
	if secs, frac, ok := strings.Cut(v, "."); ok || secs != "" {
		if s, err := strconv.ParseInt(secs, 10, 64); err == nil {
			ns, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
			return time.Unix(s, ns), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter 'until=%s': not a timestamp or duration", v))
}

func netParseMAC(s string) (network.HardwareAddr, error) {
	var m network.HardwareAddr
	err := m.UnmarshalText([]byte(s))
	return m, err
}
