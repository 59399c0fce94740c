package driver

import (
	"encoding/json"

	"github.com/berth-net/berth/netdev"
)

// Stateless is a driver whose networks have no kernel state and whose
// endpoints have no interfaces: the host and none networks. Each has only
// its predefined network.
type Stateless struct {
	DriverName string
	Network    string
	Sharing    Sharing
}

func (d Stateless) Name() string { return d.DriverName }

func (d Stateless) Capabilities() Capabilities {
	return Capabilities{Scope: ScopeLocal, Sharing: d.Sharing, Singleton: true, Predefined: []Predefined{{Name: d.Network}}}
}

func (Stateless) ValidateOptions(map[string]string) error               { return nil }
func (Stateless) Prepare(*Network, []*Network) (json.RawMessage, error) { return nil, nil }
func (Stateless) Describe(*Network) NetworkInfo                         { return NetworkInfo{} }
func (Stateless) CreateNetwork(*Network) error                          { return nil }
func (Stateless) DeleteNetwork(*Network) error                          { return nil }
func (Stateless) Leave(*Network, *Endpoint, *netdev.Namespace) error    { return nil }
func (Stateless) Devices(*Network) []string                             { return nil }

func (Stateless) Join(*Network, *Endpoint, *netdev.Namespace) (JoinInfo, error) {
	return JoinInfo{}, nil
}

func (Stateless) Restore(*Network, *Endpoint, *netdev.Namespace) (JoinInfo, bool, error) {
	return JoinInfo{}, true, nil
}
