// Package netdev is berth's thin edge to the kernel's network devices:
// bridges, veth pairs, addresses, routes and network namespaces, all through
// netlink (vishvananda/netlink), never through shell tools.
//
// It takes already-decided data (names, addresses, namespaces) and applies it
// idempotently. It decides nothing about networks or addresses, and it knows
// nothing of the store. Devices berth creates carry a link group number
// derived from the daemon's instance, which is how berth recognises what it
// owns and never touches anyone else's devices.
package netdev
