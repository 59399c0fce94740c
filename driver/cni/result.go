package cni

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/berth-net/berth/driver"
)

// fromResult is what a chain's result tells of the sandbox interface
// ifName: its first address of each family, its MAC, the gateways and
// the routes.
//
// A gateway is reported only for a family the result routes by default
// (isDefaultGateway, or a 0.0.0.0/0 route in the IPAM configuration): the
// plugins have set that route already and the controller's default route
// replaces it with the same, whereas a gateway reported without one would
// make berth route where the configuration does not. Routes are those the
// controller can set exactly as the plugins did (no table, metric, scope,
// MTU or MSS of their own); the others stay as the plugins made them.
func fromResult(res types.Result, ifName string) (driver.JoinInfo, error) {
	var info driver.JoinInfo
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return info, fmt.Errorf("read the CNI result: %w", err)
	}
	iface := -1
	for i, ifc := range r.Interfaces {
		if ifc.Name == ifName && ifc.Sandbox != "" {
			iface = i
			if info.MAC, err = net.ParseMAC(ifc.Mac); err != nil {
				info.MAC = nil
			}
			break
		}
	}
	var gw4, gw6 netip.Addr
	for _, ipc := range r.IPs {
		// An address names its interface, except in results of plugins
		// that make none (IPAM alone).
		if ipc.Interface != nil && *ipc.Interface != iface {
			continue
		}
		p, ok := prefixOf(ipc.Address)
		if !ok {
			continue
		}
		gw, _ := netip.AddrFromSlice(ipc.Gateway)
		gw = gw.Unmap()
		if p.Addr().Is4() && !info.IPv4.IsValid() {
			info.IPv4, gw4 = p, gw
		}
		if p.Addr().Is6() && !info.IPv6.IsValid() {
			info.IPv6, gw6 = p, gw
		}
	}
	for _, rt := range r.Routes {
		dst, ok := prefixOf(rt.Dst)
		if !ok {
			continue
		}
		via, _ := netip.AddrFromSlice(rt.GW)
		via = via.Unmap()
		if !via.IsValid() {
			// A route without a gateway goes through its family's, as
			// the plugins set it.
			via = gw4
			if dst.Addr().Is6() {
				via = gw6
			}
		}
		if dst.Bits() == 0 {
			if dst.Addr().Is4() {
				info.Gateway4 = via
			} else {
				info.Gateway6 = via
			}
			continue
		}
		if rt.Table != nil || rt.Priority != 0 || rt.Scope != nil || rt.MTU != 0 || rt.AdvMSS != 0 {
			continue
		}
		info.Routes = append(info.Routes, driver.Route{Dst: dst.Masked(), Via: via})
	}
	return info, nil
}

func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if bits != a.BitLen() {
		// A 16-byte mask on an IPv4 address.
		ones -= bits - a.BitLen()
	}
	return netip.PrefixFrom(a, ones), true
}
