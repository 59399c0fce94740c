// Package container runs berth's containers through runc: OCI bundles, the
// overlay root filesystem, the per-container shim that owns a container's
// stdio and exit status so that containers outlive berthd, logs, exec, and
// the lifecycle (create, start, stop, kill, restart, wait, remove) with the
// container records in the store.
//
// It does not wire networks itself: it asks a Networks implementation (the
// network controller) for a sandbox and its endpoints, and it does not
// unpack images: it asks an Images implementation for a root filesystem.
package container
