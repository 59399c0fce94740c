package netdev

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Route is a route of the host's main table.
type Route struct {
	Dst netip.Prefix
	// Device is the device the route goes out of (a multipath route's
	// first); empty for a route out of none (unreachable, blackhole).
	Device string
	// Owned tells whether the device is one of this daemon's.
	Owned bool
}

// Routes lists the host's IPv4 and IPv6 routes but default ones, with
// the devices they go out of.
func (h *Host) Routes() ([]Route, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) { return h.h.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	// Links after routes: a route's device is then listed, unless it
	// went meanwhile, and the route with it.
	links, err := retryDump(h.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	var out []Route
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok || p.Bits() == 0 {
			continue
		}
		index := r.LinkIndex
		if index == 0 && len(r.MultiPath) > 0 {
			index = r.MultiPath[0].LinkIndex
		}
		route := Route{Dst: p.Masked()}
		if index != 0 {
			l, ok := byIndex[index]
			if !ok {
				continue
			}
			route.Device, route.Owned = l.Attrs().Name, h.ownsGroup(l.Attrs().Group)
		}
		out = append(out, route)
	}
	return out, nil
}
