package driver

import (
	"encoding/json"

	"github.com/berth-net/berth/netdev"
)

// Stateless is a driver whose networks have no kernel state and whose
// endpoints have no interfaces: the host and none networks.
type Stateless struct {
	DriverName string
}

func (d Stateless) Name() string                                                { return d.DriverName }
func (Stateless) NeedsAddresses() bool                                          { return false }
func (Stateless) ValidateOptions(map[string]string) error                       { return nil }
func (Stateless) Prepare(*Network, []*Network) (json.RawMessage, error)         { return nil, nil }
func (Stateless) CreateNetwork(*Network) error                                  { return nil }
func (Stateless) DeleteNetwork(*Network) error                                  { return nil }
func (Stateless) Join(*Network, *Endpoint, *netdev.Namespace) error             { return nil }
func (Stateless) Leave(*Network, *Endpoint, *netdev.Namespace) error            { return nil }
func (Stateless) Attached(*Network, *Endpoint, *netdev.Namespace) (bool, error) { return true, nil }
func (Stateless) Devices(*Network) []string                                     { return nil }
