// Package plugins finds and talks to Docker's legacy (v1) plugins: the
// processes that serve Docker's plugin protocol, JSON over HTTP, on a unix
// socket or a TCP address named by a file in a plugin directory. It finds a
// plugin by name the first time it is used (NAME.sock, NAME.spec,
// NAME.json, or the same inside a NAME directory), activates it, retries
// one that does not answer for a bounded time, and activates it again when
// it comes back after a restart. Network and IPAM plugins are handed out
// through the adapters of driver/remote and ipam/remote; this package owns
// only discovery and the wire, never the kernel or the store.
package plugins
