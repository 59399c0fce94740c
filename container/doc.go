// Package container runs berth's containers through runc: OCI bundles, the
// overlay root filesystem, the per-container shim that owns a container's
// stdio and exit status so that containers outlive berthd, logs, exec, and
// the lifecycle (create, start, stop, kill, restart, wait, remove) with the
// container records in the store, and the restart policies that start a
// container again when its process ends and when berthd starts.
//
// It does not wire networks itself: the network controller does the whole
// attach (addresses, interfaces, firewall, names, resolver) and returns
// the namespace and the /etc/hosts and resolv.conf content, which this
// package writes into the container's bundle. It imports neither the
// firewall nor the resolver. It does not unpack images either: it asks an
// Images implementation for a root filesystem.
package container
