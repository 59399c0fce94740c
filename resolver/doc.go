// Package resolver is berth's embedded DNS server: the one that answers at
// 127.0.0.11:53 inside every container on a user-defined network.
//
// It owns three things: the Table of names that container endpoints publish
// (container name, aliases, 12-hex short ID, each also as name.network, and
// the reverse names of their addresses); the answering of queries on the
// sockets the daemon hands it, one UDP socket and one TCP listener per
// container, each with the Scope of the container asking; and the
// forwarding of every other name to the container's upstream servers,
// through a cache and with upstream health tracking.
//
// One Resolver serves all containers. It must not touch namespaces,
// nftables, files or the store: the daemon opens the sockets inside each
// container's namespace and keeps the Table and each Scope up to date.
// Upstreams are dialled with Options.Dial, by default from the namespace
// berthd runs in, which is what lets a container use the host's loopback
// resolver (127.0.0.53) as upstream.
package resolver
