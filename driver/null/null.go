// Package null is the driver of the "none" network: a sandbox on it keeps
// only its loopback interface.
package null

import "github.com/berth-net/berth/driver"

// New returns the null driver.
func New() driver.Driver {
	return driver.Stateless{DriverName: "null", Network: "none", Sharing: driver.Alone}
}
