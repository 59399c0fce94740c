// Package overlay is the driver of multi-host networks: on every host of
// the cluster, one bridge per network carrying the subnets' gateway
// addresses, and on it a VXLAN device that carries frames to the other
// hosts. Endpoints are veth pairs into the bridge, as on bridge networks.
//
// The gateway is one address on every host: each host routes its own
// containers' traffic out, masqueraded by berth's firewall as for bridge
// networks (where Docker has its docker_gwbridge). ARP and neighbour
// solicitations never cross the tunnel: the VXLAN device answers them from
// the neighbour entries of the endpoints other hosts have, which the
// controller announces with AddPeer, so each host keeps its gateway to
// itself. Broadcast and unknown frames go to every host that has an
// endpoint on the network. The kernel keeps those entries across a
// restart of berthd, so SetPeers removes those of endpoints that left
// meanwhile; it touches no entry of a kind the driver does not make.
//
// The package decides names, VXLAN IDs, MTUs and which entries the kernel
// holds; the netlink requests are netdev's. It knows nothing of the
// cluster store: what other hosts have comes from the controller.
package overlay
