// Package cnitest gives tests the CNI reference plugins (bridge,
// host-local, portmap, macvlan, loopback, firewall, tuning), built from
// their Go module once per version and kept under the user's cache
// directory, so CNI tests need nothing installed on the machine. It
// builds and caches binaries and nothing else: it runs no plugin and
// touches no namespace.
package cnitest
