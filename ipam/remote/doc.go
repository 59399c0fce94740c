// Package remote is the address manager of a Docker IPAM plugin: it turns
// ipam.Plugin into the calls of libnetwork's remote IPAM protocol
// (IpamDriver.*, docs/ipam.md). The plugin keeps its own pools and leases;
// this package keeps only its default address spaces and capabilities,
// asked for once.
package remote
