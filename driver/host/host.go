// Package host is the driver of the "host" network: a sandbox on it is the
// daemon's own network namespace, so there is nothing to create or wire.
package host

import "github.com/berth-net/berth/driver"

// New returns the host driver.
func New() driver.Driver {
	return driver.Stateless{DriverName: "host", Network: "host", Sharing: driver.HostNamespace}
}
