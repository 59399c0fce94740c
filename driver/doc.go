// Package driver is the contract between the network controller and the
// network drivers. Drivers (bridge, host, null, macvlan/ipvlan, overlay,
// and later Docker's remote plugins and CNI plugins) live in the
// sub-packages, or come from outside through an adapter; the controller
// handles every one of them the same way, because everything it needs to
// know of a driver is data the driver returns:
//
//   - Capabilities: scope (local or global), whether networks get address
//     pools and endpoints interfaces, how a network combines with others in
//     one sandbox (any, alone as none, or the host's namespace as host),
//     whether only the predefined network may exist, and the predefined
//     networks the driver brings with their options.
//   - ValidateOptions and Prepare: a new network's options and its
//     driver state, checked before anything is recorded.
//   - Describe: per network, whether berth's firewall applies (isolation,
//     masquerade, published ports) and on which device, the default host
//     address of published ports, and notes users see in inspect.
//   - Describe, for a global network, also its Claims: what it holds
//     alone in the cluster besides its name and subnets (overlay: a VNI).
//   - Peers (optional, global drivers): the endpoints other hosts have on
//     a network, which the controller follows in the cluster store.
//   - Join: per endpoint, the interface inside the sandbox with its
//     addresses, and the JoinInfo: gateways for the default routes, whether
//     the default route goes out of the device, static routes.
//
// Drivers never touch the store, the firewall, the resolver or each
// other: the controller hands them what they need, persists what they
// return, and does the rest of an attach itself.
package driver
