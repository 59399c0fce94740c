package overlay

import (
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

var _ driver.KernelNeeds = (*Driver)(nil)

func (d *Driver) KernelFeatures() []driver.KernelFeature {
	return []driver.KernelFeature{
		{Kind: netdev.KindVxlan},
		{Kind: netdev.KindBridge},
		{Kind: netdev.KindVeth},
	}
}

func (d *Driver) NetworkKernelFeatures(*driver.Network) []string {
	return []string{netdev.KindVxlan, netdev.KindBridge, netdev.KindVeth}
}
