package netdev

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Devices on a parent interface: macvlan and ipvlan endpoints, 802.1q
// sub-interfaces and dummy parents.

// ErrUnsupported marks a link kind the running kernel does not have.
var ErrUnsupported = errors.New("not supported by this kernel")

// kernelSupport turns the kernel's refusal of an unknown link kind into an
// error that names the missing feature.
func kernelSupport(feature string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("%s is %w: %v", feature, ErrUnsupported, err)
	}
	return err
}

// LowerSpec describes an interface on a parent, made inside a namespace.
type LowerSpec struct {
	Parent int // parent's index in the host
	Name   string
	MAC    net.HardwareAddr
	MTU    int
	NS     *Namespace
}

// AddMacvlan creates a macvlan interface on the parent directly inside the
// namespace, down and unaddressed.
func (h *Host) AddMacvlan(spec LowerSpec, mode netlink.MacvlanMode) error {
	l := &netlink.Macvlan{LinkAttrs: lowerAttrs(spec), Mode: mode}
	if err := h.h.LinkAdd(l); err != nil {
		return kernelSupport("macvlan", fmt.Errorf("create macvlan %s: %w", spec.Name, err))
	}
	return nil
}

// AddIPVlan creates an ipvlan interface on the parent inside the namespace.
func (h *Host) AddIPVlan(spec LowerSpec, mode netlink.IPVlanMode, flag netlink.IPVlanFlag) error {
	l := &netlink.IPVlan{LinkAttrs: lowerAttrs(spec), Mode: mode, Flag: flag}
	if err := h.h.LinkAdd(l); err != nil {
		return kernelSupport("ipvlan", fmt.Errorf("create ipvlan %s: %w", spec.Name, err))
	}
	return nil
}

func lowerAttrs(spec LowerSpec) netlink.LinkAttrs {
	return netlink.LinkAttrs{Name: spec.Name, ParentIndex: spec.Parent, HardwareAddr: spec.MAC, MTU: spec.MTU,
		Namespace: netlink.NsFd(int(spec.NS.fd))}
}

// AddVLAN creates the 802.1q sub-interface name of parent with the given
// VLAN ID, up, owned by berth.
func (h *Host) AddVLAN(name string, parent, id int) error {
	l := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent, Group: h.Owned, Flags: net.FlagUp}, VlanId: id}
	if err := h.h.LinkAdd(l); err != nil {
		return kernelSupport("802.1q VLAN (sub-interface "+name+")", fmt.Errorf("create %s: %w", name, err))
	}
	return nil
}

// AddDummy creates a dummy link, up, owned by berth: the parent of a
// network that reaches nothing outside the host.
func (h *Host) AddDummy(name string) error {
	l := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name, Group: h.Owned, Flags: net.FlagUp}}
	if err := h.h.LinkAdd(l); err != nil {
		return kernelSupport("the dummy link kind", fmt.Errorf("create %s: %w", name, err))
	}
	return nil
}

// ProbeIPVlan tells whether the kernel has ipvlan, by creating one on the
// parent and deleting it again.
func (h *Host) ProbeIPVlan(parent int) error {
	name := "ipvp" + randomHex(4)
	l := &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent}, Mode: netlink.IPVLAN_MODE_L2}
	if err := h.h.LinkAdd(l); err != nil {
		return kernelSupport("ipvlan", err)
	}
	return h.Delete(name)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
