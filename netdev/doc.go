// Package netdev is berth's thin edge to the kernel's network devices:
// bridges, veth pairs, macvlan and ipvlan links, addresses, routes and
// network namespaces, all through netlink (vishvananda/netlink), never
// through shell tools.
//
// One verb set, Links, works on any namespace's handle: Host is the
// daemon's own namespace with the verbs that create host devices, and
// Namespace is a sandbox's. Each verb takes already-decided data (names,
// addresses, indexes) and applies it idempotently. The package decides
// nothing about networks, addresses or when to delete what: that policy
// is the reaper's (netdev/reap). It knows nothing of the store. Devices
// berth creates carry a link group number derived from the daemon's
// instance, which is how berth recognises what it owns and never touches
// anyone else's devices.
package netdev
