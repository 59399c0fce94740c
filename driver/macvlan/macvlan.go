// Package macvlan is the driver of macvlan and ipvlan networks: each
// endpoint is an interface of its own on a parent interface of the host (the
// physical NIC, an 802.1q sub-interface of it berth may create, or, without
// a parent, a dummy link berth creates for an internal network), so
// containers appear on the parent's segment as hosts of their own. The
// gateway is the segment's router, not the host; as with Docker, the host
// cannot reach its own macvlan containers through the parent.
package macvlan

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
)

// Option keys, as Docker's.
const (
	OptionParent      = "parent"
	OptionMacvlanMode = "macvlan_mode"
	OptionIPVlanMode  = "ipvlan_mode"
	OptionIPVlanFlag  = "ipvlan_flag"
)

// State is what the driver remembers of a network.
type State struct {
	Parent string
	// Created: berth made the parent (a VLAN sub-interface or a dummy) and
	// removes it with the network.
	Created bool `json:",omitempty"`
}

// Driver is the macvlan or the ipvlan driver.
type Driver struct {
	kind   string // "macvlan" or "ipvlan"
	host   *netdev.Host
	reaper *reap.Reaper
}

// New returns the macvlan driver.
func New(host *netdev.Host, reaper *reap.Reaper) *Driver {
	return &Driver{kind: "macvlan", host: host, reaper: reaper}
}

// NewIPVlan returns the ipvlan driver.
func NewIPVlan(host *netdev.Host, reaper *reap.Reaper) *Driver {
	return &Driver{kind: "ipvlan", host: host, reaper: reaper}
}

func (d *Driver) Name() string { return d.kind }

func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, Addresses: true, Sharing: driver.Shares}
}

// NoteHostReach is the note inspect shows on every network of these
// drivers: the kernel does not pass traffic between a parent and its own
// macvlan or ipvlan interfaces, which surprises users who test from the
// host.
const NoteHostReach = "com.berth.host_reach"

// Describe: no device of berth's lies on the containers' path, so the
// firewall has nothing to match and no ports are published.
func (d *Driver) Describe(*driver.Network) driver.NetworkInfo {
	return driver.NetworkInfo{Notes: map[string]string{
		NoteHostReach: "none: the host cannot reach this network's containers through its parent",
	}}
}

var macvlanModes = map[string]netlink.MacvlanMode{
	"": netlink.MACVLAN_MODE_BRIDGE, "bridge": netlink.MACVLAN_MODE_BRIDGE, "private": netlink.MACVLAN_MODE_PRIVATE,
	"vepa": netlink.MACVLAN_MODE_VEPA, "passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

var ipvlanModes = map[string]netlink.IPVlanMode{
	"": netlink.IPVLAN_MODE_L2, "l2": netlink.IPVLAN_MODE_L2, "l3": netlink.IPVLAN_MODE_L3, "l3s": netlink.IPVLAN_MODE_L3S,
}

var ipvlanFlags = map[string]netlink.IPVlanFlag{
	"": netlink.IPVLAN_FLAG_BRIDGE, "bridge": netlink.IPVLAN_FLAG_BRIDGE, "private": netlink.IPVLAN_FLAG_PRIVATE, "vepa": netlink.IPVLAN_FLAG_VEPA,
}

func (d *Driver) ValidateOptions(opts map[string]string) error {
	bad := func(format string, a ...any) error {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, a...))
	}
	if d.kind == "macvlan" {
		if m := opts[OptionMacvlanMode]; !validMode(m, macvlanModes) {
			return bad("requested macvlan mode '%s' is not valid, 'bridge' mode is the macvlan driver default", m)
		}
		return nil
	}
	if m := opts[OptionIPVlanMode]; !validMode(m, ipvlanModes) {
		return bad("requested ipvlan mode '%s' is not valid, 'l2' mode is the ipvlan driver default", m)
	}
	if f := opts[OptionIPVlanFlag]; !validMode(f, ipvlanFlags) {
		return bad("requested ipvlan flag '%s' is not valid, 'bridge' is the ipvlan driver default", f)
	}
	return nil
}

func validMode[T any](m string, modes map[string]T) bool {
	_, ok := modes[m]
	return ok
}

func stateOf(nw *driver.Network) (State, error) {
	var st State
	if err := json.Unmarshal(nw.State, &st); err != nil {
		return st, fmt.Errorf("network %s: bad %s state: %w", nw.Name, "macvlan", err)
	}
	return st, nil
}

// parentOf is the parent a network asks for: -o parent, or for a network
// without one (or an internal one), a dummy link of berth's. Docker names
// that dm-<12 hex> for macvlan and di-<12 hex> for ipvlan.
func (d *Driver) parentOf(nw *driver.Network) string {
	if p := nw.Options[OptionParent]; p != "" {
		return p
	}
	prefix := "dm-"
	if d.kind == "ipvlan" {
		prefix = "di-"
	}
	return prefix + nw.ID[:12]
}

func (d *Driver) Prepare(nw *driver.Network, existing []*driver.Network) (json.RawMessage, error) {
	parent := d.parentOf(nw)
	for _, other := range existing {
		st, err := stateOf(other)
		if err != nil {
			return nil, err
		}
		if st.Parent == parent {
			return nil, errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("network %s is already using parent interface %s", other.Name, parent))
		}
	}
	st := State{Parent: parent}
	if nw.Options[OptionParent] == "" {
		st.Created = true
		return json.Marshal(st)
	}
	l, ok, err := d.host.Link(parent)
	if err != nil {
		return nil, err
	}
	switch {
	case ok && l.Kind == "bridge" && d.host.Owns(l):
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("-o parent %s is a bridge of one of berth's networks; use the host's interface", parent))
	case ok:
	case isVLAN(parent):
		st.Created = true
	default:
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("-o parent interface was not found on the host: %s", parent))
	}
	return json.Marshal(st)
}

// isVLAN tells whether a parent names an 802.1q sub-interface: iface.ID.
func isVLAN(parent string) bool {
	_, id, ok := strings.Cut(parent, ".")
	n, err := strconv.Atoi(id)
	return ok && err == nil && n > 0 && n < 4095
}

func (d *Driver) CreateNetwork(nw *driver.Network) error {
	st, err := stateOf(nw)
	if err != nil {
		return err
	}
	if err := d.ensureParent(st); err != nil {
		return err
	}
	l, ok, err := d.host.Link(st.Parent)
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("-o parent interface was not found on the host: %s", st.Parent))
	}
	return d.checkKernel(l.Index)
}

// ensureParent makes the parent berth creates for the network when it is
// not there.
func (d *Driver) ensureParent(st State) error {
	if _, ok, err := d.host.Link(st.Parent); err != nil || ok {
		return err
	}
	if !st.Created {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("-o parent interface was not found on the host: %s", st.Parent))
	}
	if !isVLAN(st.Parent) {
		return d.host.AddDummy(st.Parent)
	}
	base, id, _ := strings.Cut(st.Parent, ".")
	l, ok, err := d.host.Link(base)
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("-o parent interface was not found on the host: %s", base))
	}
	vid, _ := strconv.Atoi(id)
	return d.host.AddVLAN(st.Parent, l.Index, vid)
}

func (d *Driver) DeleteNetwork(nw *driver.Network) error {
	st, err := stateOf(nw)
	if err != nil {
		return err
	}
	if st.Created {
		return d.reaper.Retire(st.Parent)
	}
	return nil
}

// Join makes the endpoint's interface on the parent inside the namespace.
// The sandbox routes through the segment's router, the subnet's gateway;
// ipvlan's l3 modes route out of the interface instead, as Docker sets
// them up.
func (d *Driver) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, error) {
	st, err := stateOf(nw)
	if err != nil {
		return driver.JoinInfo{}, err
	}
	parent, ok, err := d.host.Link(st.Parent)
	if err != nil {
		return driver.JoinInfo{}, err
	}
	if !ok {
		return driver.JoinInfo{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("parent interface %s of network %s is gone", st.Parent, nw.Name))
	}
	spec := netdev.LowerSpec{Parent: parent.Index, Name: ep.IfName, MAC: ep.MAC, NS: ns}
	if d.kind == "macvlan" {
		err = d.host.AddMacvlan(spec, macvlanModes[nw.Options[OptionMacvlanMode]])
	} else {
		// ipvlan interfaces share the parent's MAC.
		spec.MAC = nil
		err = d.host.AddIPVlan(spec, ipvlanModes[nw.Options[OptionIPVlanMode]], ipvlanFlags[nw.Options[OptionIPVlanFlag]])
	}
	if err != nil {
		return driver.JoinInfo{}, err
	}
	idx, err := ns.Configure(netdev.Interface{Name: ep.IfName, Addrs: ep.Addrs()})
	if err != nil {
		ns.Delete(ep.IfName)
		return driver.JoinInfo{}, err
	}
	info := d.joinInfo(nw, ep)
	info.Index = idx
	return info, nil
}

func (d *Driver) joinInfo(nw *driver.Network, ep *driver.Endpoint) driver.JoinInfo {
	info := driver.Gateways(nw, ep)
	m := nw.Options[OptionIPVlanMode]
	info.DefaultViaDevice = d.kind == "ipvlan" && (m == "l3" || m == "l3s")
	return info
}

// Leave takes the interface out of service at once; the kernel's slow
// deletion is left to berth's reaper.
func (d *Driver) Leave(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) error {
	if ns == nil {
		return nil
	}
	return d.reaper.RetireInside(ns, ep.IfName, ep.Addrs())
}

func (d *Driver) Restore(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, bool, error) {
	ok, err := ns.HasInterface(netdev.Interface{Name: ep.IfName, Addrs: ep.Addrs()})
	return d.joinInfo(nw, ep), ok, err
}

func (d *Driver) Devices(nw *driver.Network) []string {
	st, err := stateOf(nw)
	if err != nil || !st.Created {
		return nil
	}
	return []string{st.Parent}
}

// checkKernel tells whether the kernel has the driver's link kind, by
// making one on the parent and deleting it: a network of a kind the kernel
// lacks fails at create, not at its first container.
func (d *Driver) checkKernel(parent int) error {
	if d.kind == "macvlan" {
		return nil
	}
	return d.host.ProbeIPVlan(parent)
}
