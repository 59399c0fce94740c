// Package topology is the picture of a daemon's networking: the hosts, the
// networks with their subnets and isolation, the containers and sandboxes
// attached to them with their addresses and aliases, and the ports they
// publish on the host. Build makes the model from what the Docker Engine
// API reports (network inspect with its containers, the container list),
// so the same picture can be drawn from berthd or any Docker-compatible
// daemon; Render draws it as SVG (laid out here, no external program), as
// Graphviz DOT, or as JSON.
//
// The package is pure: it reads no daemon, store or kernel, and what it
// draws depends on the model alone, so the same model always gives the
// same bytes (golden files in testdata hold a fixed topology).
package topology
