// Package ipam owns berth's address management: the default address pools
// and the choice of a free subnet among them (Space), the addresses of one
// subnet (Allocator), and the validation of the IPAM configuration a user
// gives a network (Config).
//
// It is pure computation over net/netip values. It must not touch the kernel
// (host routes and addresses reach it as prefixes from the caller) nor the
// store: the controller persists allocations and, on restart, rebuilds an
// Allocator by reserving the stored addresses again. Nothing here locks; the
// controller serialises access per network.
package ipam
