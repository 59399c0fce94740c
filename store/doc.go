// Package store keeps berth's desired state: networks, endpoints, sandboxes
// and everything IPAM must remember, as JSON values in named buckets.
//
// The local implementation is bbolt; a global-scope implementation (etcd)
// satisfies the same small interface. The store knows nothing of networks or
// the kernel: the controller in package network decides what is written and
// in which order, one transaction per operation.
package store
