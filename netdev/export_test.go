package netdev

import (
	"io"
	"time"
)

// SetUDPIdle sets how long UDP flows of forwarders made from now on live
// without traffic, and returns what puts it back.
func SetUDPIdle(d time.Duration) (undo func()) {
	old := udpIdle
	udpIdle = d
	return func() { udpIdle = old }
}

// Flows is how many UDP flows a reservation's forwarder carries.
func Flows(c io.Closer) int {
	fw := c.(*udpForwarder)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return len(fw.flows)
}
