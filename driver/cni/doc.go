// Package cni is the driver of networks described by CNI configuration
// files: each configuration in the driver's directory is a predefined
// network, and joining one runs the configuration's plugin chain through
// libcni, which addresses the endpoint and, with portmap, publishes its
// ports. Users cannot create networks of this driver; they add
// configuration files and restart berthd.
//
// The package owns the reading of configuration files and the calls to
// plugins, with the results libcni caches under the driver's cache
// directory. It does not make or change devices: what the plugins make in
// the host and the sandbox is theirs. The driver reads back the sandbox's
// interface to report it, and deletes it itself only when neither the
// configuration nor the cache is left to run the plugins' DEL with.
package cni
