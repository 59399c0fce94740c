package bridge

import (
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

var _ driver.KernelNeeds = (*Driver)(nil)

func (d *Driver) KernelFeatures() []driver.KernelFeature {
	return []driver.KernelFeature{
		{Kind: netdev.KindBridge},
		{Kind: netdev.KindVeth},
	}
}

func (d *Driver) NetworkKernelFeatures(*driver.Network) []string {
	return []string{netdev.KindBridge, netdev.KindVeth}
}
