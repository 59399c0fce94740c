// Package network is berth's controller: networks, endpoints and sandboxes,
// the driver registry, and the one owner of an attach. Connecting a
// sandbox to a network happens here, whole and in this order: validation
// (once, with Docker's texts), addresses, the store write, the driver's
// join, the firewall, the resolver's records and the sandbox's resolver
// sockets, and the sandbox's /etc/hosts and resolv.conf content, which it
// returns to the caller. Detaching undoes the same in reverse.
//
// The controller knows drivers only through the driver contract: what a
// driver needs it describes as data (driver.Capabilities, NetworkInfo,
// JoinInfo), so no code here compares a driver's name and a plugin is
// handled exactly like a built-in driver. The kernel (Kernel) and the
// firewall (Firewall) are interfaces too, so the controller's rules are
// tested without root against fakes.
//
// Every operation writes its intent to the store in one transaction and
// applies kernel changes through a driver; a failure rolls back both. On
// start the controller reconciles the kernel with the store: what is missing
// is re-created, what berth owns but no longer wants is removed.
//
// Locking: the controller's mutex guards only its maps and is never held
// across a kernel call; a network's mutex guards its address pools and
// endpoint set; a sandbox's mutex serialises the kernel work inside its
// namespace. So work on one network or sandbox never waits for another's.
package network
