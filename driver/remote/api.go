package remote

// The JSON of libnetwork's remote driver protocol (docs/remote.md).

type capabilitiesAnswer struct {
	Scope             string
	ConnectivityScope string
}

type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string `json:",omitempty"`
	AuxAddresses map[string]string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type networkRequest struct {
	NetworkID string
}

type endpointInterface struct {
	Address     string
	AddressIPv6 string
	MacAddress  string
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]any
}

type createEndpointAnswer struct {
	Interface *endpointInterface
}

type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

// Route types of a static route.
const (
	routeNextHop   = 0
	routeConnected = 1
)

type staticRoute struct {
	Destination string
	RouteType   int
	NextHop     string
}

type joinAnswer struct {
	InterfaceName         *interfaceName
	Gateway               string
	GatewayIPv6           string
	StaticRoutes          []staticRoute
	DisableGatewayService bool
}

type connectivityRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
}

// transportPort and portBinding are libnetwork's types.TransportPort and
// types.PortBinding as JSON: Proto is the IP protocol number.
type transportPort struct {
	Proto uint8
	Port  uint16
}

type portBinding struct {
	Proto       uint8
	IP          string
	Port        uint16
	HostIP      string
	HostPort    uint16
	HostPortEnd uint16
}

// Option keys Docker sends.
const (
	optionGeneric      = "com.docker.network.generic"
	optionEnableIPv6   = "com.docker.network.enable_ipv6"
	optionPortMap      = "com.docker.network.portmap"
	optionExposedPorts = "com.docker.network.endpoint.exposedports"
)

// Docker's default address spaces, named in the IPAM data of networks.
const (
	localAddressSpace  = "LocalDefault"
	globalAddressSpace = "GlobalDefault"
)

// discoveryNotification is DiscoverNew's and DiscoverDelete's request;
// berth sends node discovery (type 1) alone, as libnetwork's
// NodeDiscoveryData.
type discoveryNotification struct {
	DiscoveryType int
	DiscoveryData nodeDiscoveryData
}

type nodeDiscoveryData struct {
	Address string
	Self    bool
}

const nodeDiscovery = 1
