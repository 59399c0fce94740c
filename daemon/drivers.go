package daemon

import (
	"net/netip"
	"path/filepath"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/bridge"
	"github.com/berth-net/berth/driver/cni"
	"github.com/berth-net/berth/driver/host"
	"github.com/berth-net/berth/driver/macvlan"
	"github.com/berth-net/berth/driver/null"
	"github.com/berth-net/berth/driver/overlay"
)

// drivers are the network drivers berthd offers: the one place that names
// them. The controller knows each only through the driver contract.
func (d *Daemon) drivers() []driver.Driver {
	var advertise netip.Addr
	if d.cluster != nil {
		advertise = d.cluster.Advertise()
	}
	br := bridge.New(d.host, d.reaper, d.cfg.BridgeName)
	br.DefaultAddresses(d.cfg.IPv6, d.cfg.FixedCIDR, d.cfg.FixedCIDRv6)
	return []driver.Driver{
		br,
		host.New(),
		null.New(),
		macvlan.New(d.host, d.reaper),
		macvlan.NewIPVlan(d.host, d.reaper),
		// Refused without a cluster store, by the controller.
		overlay.New(d.host, d.reaper, advertise),
		// Each CNI configuration is a network; the results libcni keeps
		// for DEL and CHECK live with the state.
		cni.New(d.cfg.CNIConfDir, d.cfg.CNIBinDirs, filepath.Join(d.cfg.Root, "cni"), d.cfg.Log),
	}
}
