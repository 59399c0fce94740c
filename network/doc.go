// Package network is berth's controller: networks, endpoints and sandboxes,
// the driver registry, and the only place that orders store writes and
// kernel changes.
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
