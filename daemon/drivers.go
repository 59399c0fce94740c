package daemon

import (
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/bridge"
	"github.com/berth-net/berth/driver/host"
	"github.com/berth-net/berth/driver/macvlan"
	"github.com/berth-net/berth/driver/null"
)

// drivers are the network drivers berthd offers: the one place that names
// them. The controller knows each only through the driver contract.
func (d *Daemon) drivers() []driver.Driver {
	return []driver.Driver{
		bridge.New(d.host, d.reaper, d.cfg.BridgeName),
		host.New(),
		null.New(),
		macvlan.New(d.host, d.reaper),
		macvlan.NewIPVlan(d.host, d.reaper),
	}
}
