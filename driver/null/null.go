// Package null is the driver of the "none" network: a sandbox on it keeps
// only its loopback interface.
package null

import (
	"encoding/json"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

type Driver struct{}

func (Driver) Name() string                                                        { return "null" }
func (Driver) ValidateOptions(map[string]string) error                             { return nil }
func (Driver) NeedsAddresses() bool                                                { return false }
func (Driver) Prepare(*driver.Network, []*driver.Network) (json.RawMessage, error) { return nil, nil }
func (Driver) CreateNetwork(*driver.Network) error                                 { return nil }
func (Driver) DeleteNetwork(*driver.Network) error                                 { return nil }
func (Driver) Join(*driver.Network, *driver.Endpoint, *netdev.Namespace) error     { return nil }
func (Driver) Leave(*driver.Network, *driver.Endpoint, *netdev.Namespace) error    { return nil }
func (Driver) Attached(*driver.Network, *driver.Endpoint, *netdev.Namespace) (bool, error) {
	return true, nil
}
func (Driver) Devices(*driver.Network) []string { return nil }
