// Package cluster is berth's cluster store: the etcd that hosts share for
// global-scope state (overlay networks, their subnets, VNIs, endpoints and
// names). It owns the connection to etcd, or the etcd member that berthd
// runs inside itself (--cluster-store embedded); the host's lease and the
// records it keeps alive; claims made as etcd transactions, so that two
// hosts never take the same name, subnet, VNI or address; and caches fed by
// etcd watches, from which request paths read without a round trip.
//
// Every key lives under Prefix. The package knows nothing of networks: it
// stores strings under the keys its callers choose, and must not import
// network/, driver/ or store/.
package cluster
