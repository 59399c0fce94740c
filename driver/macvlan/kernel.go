package macvlan

import (
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

var _ driver.KernelNeeds = (*Driver)(nil)

func (d *Driver) KernelFeatures() []driver.KernelFeature {
	return []driver.KernelFeature{
		{Kind: d.kind},
		{Kind: netdev.KindDummy, For: "networks without -o parent, or internal"},
		{Kind: netdev.KindVLAN, For: "-o parent=eth0.10 and the like"},
	}
}

func (d *Driver) NetworkKernelFeatures(nw *driver.Network) []string {
	kinds := []string{d.kind}
	st, err := stateOf(nw)
	switch {
	case err != nil || !st.Created:
	case isVLAN(st.Parent):
		kinds = append(kinds, netdev.KindVLAN)
	default:
		kinds = append(kinds, netdev.KindDummy)
	}
	return kinds
}
