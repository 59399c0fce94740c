// Package daemon is berthd: it opens the store, builds the controller and
// serves the HTTP API — the Docker Engine API berth implements, with
// Docker's JSON (the types of github.com/moby/moby/api), plus berth's own
// routes: sandboxes, and berth doctor's checks of the host against what
// berth needs and against berth's state (doctor.go) and traces through
// the firewall's model (trace.go). It translates between HTTP and the controller and maps
// typed errors to HTTP statuses in one place; it decides nothing about
// networks itself. It is also the one place that wires berth together:
// which drivers exist (drivers.go), the kernel edge the controller works
// through (kernel.go), the firewall, the resolver and the stores.
package daemon
