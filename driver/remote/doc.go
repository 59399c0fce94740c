// Package remote is the network driver of a Docker network plugin: it
// turns the driver contract into the calls of libnetwork's remote driver
// protocol (NetworkDriver.*) and does the sandbox side of a join itself,
// as Docker does: it moves the interface the plugin made on the host into
// the sandbox, names and addresses it, and gives it back to the host when
// the endpoint leaves. It talks to the plugin through a Caller (package
// plugins) and never touches the store, the firewall or other drivers.
package remote
