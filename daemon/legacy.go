package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	ntypes "github.com/moby/moby/api/types/network"
)

// Fields that moby removed from the API but that clients of older versions
// still read or send, served by the version a request asks for.

// legacyNetworkVersion is the first API version without the top-level
// NetworkSettings fields and Config.MacAddress at create (moby's API
// changelog, v1.52).
const legacyNetworkVersion = "1.52"

func legacyNetworking(r *http.Request) bool {
	return compareVersions(versionOf(r), legacyNetworkVersion) < 0
}

// legacyNetworkSettings is NetworkSettings with the top-level fields that
// describe the default bridge's endpoint, as dockerd fills them for API
// versions before 1.52 (empty when the container is not on the default
// bridge; Bridge always, as dockerd leaves it).
type legacyNetworkSettings struct {
	*ctypes.NetworkSettings
	Bridge                 string
	HairpinMode            bool
	LinkLocalIPv6Address   string
	LinkLocalIPv6PrefixLen int
	SecondaryIPAddresses   []legacyAddress
	SecondaryIPv6Addresses []legacyAddress
	EndpointID             string
	Gateway                string
	GlobalIPv6Address      string
	GlobalIPv6PrefixLen    int
	IPAddress              string
	IPPrefixLen            int
	IPv6Gateway            string
	MacAddress             string
}

// legacyAddress is an entry of the secondary address lists, always null
// here as in dockerd.
type legacyAddress struct {
	Addr      string
	PrefixLen int
}

// legacyInspect is an inspect answer for API versions before 1.52: its
// NetworkSettings field shadows the embedded one.
type legacyInspect struct {
	ctypes.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

// withLegacyNetworkSettings adds the top-level fields of the endpoint on
// the default bridge network.
func withLegacyNetworkSettings(resp ctypes.InspectResponse) legacyInspect {
	ns := &legacyNetworkSettings{NetworkSettings: resp.NetworkSettings}
	if ep := resp.NetworkSettings.Networks["bridge"]; ep != nil && ep.EndpointID != "" {
		ns.EndpointID = ep.EndpointID
		ns.MacAddress = ep.MacAddress.String()
		ns.IPPrefixLen, ns.GlobalIPv6PrefixLen = ep.IPPrefixLen, ep.GlobalIPv6PrefixLen
		ns.IPAddress, ns.Gateway = addrString(ep.IPAddress), addrString(ep.Gateway)
		ns.GlobalIPv6Address, ns.IPv6Gateway = addrString(ep.GlobalIPv6Address), addrString(ep.IPv6Gateway)
	}
	return legacyInspect{InspectResponse: resp, NetworkSettings: ns}
}

// addrString is an address as the legacy fields show it: empty for none.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// legacyCreate reads what clients before API 1.52 may send at create
// beyond today's request: the container-wide MAC address, which dockerd
// applied to the container's first network.
func legacyCreate(body []byte, req *ctypes.CreateRequest) error {
	var old struct{ MacAddress string }
	if err := json.Unmarshal(body, &old); err != nil || old.MacAddress == "" {
		return nil
	}
	mac, err := netParseMAC(old.MacAddress)
	if err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid MAC address: %s", old.MacAddress))
	}
	mode := "bridge"
	if req.HostConfig != nil && req.HostConfig.NetworkMode != "" && req.HostConfig.NetworkMode != "default" {
		mode = string(req.HostConfig.NetworkMode)
	}
	if strings.HasPrefix(mode, "container:") || mode == "host" || mode == "none" {
		return nil
	}
	if req.NetworkingConfig == nil {
		req.NetworkingConfig = &ntypes.NetworkingConfig{}
	}
	if req.NetworkingConfig.EndpointsConfig == nil {
		req.NetworkingConfig.EndpointsConfig = map[string]*ntypes.EndpointSettings{}
	}
	ep := req.NetworkingConfig.EndpointsConfig[mode]
	if ep == nil {
		ep = &ntypes.EndpointSettings{}
		req.NetworkingConfig.EndpointsConfig[mode] = ep
	}
	if len(ep.MacAddress) == 0 {
		ep.MacAddress = mac
	}
	return nil
}
