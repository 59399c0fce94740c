package api

import "github.com/moby/moby/api/types/network"

// SandboxCreateRequest is the body of POST /sandboxes/create.
//
// Key is the path of an existing network namespace (a bind mount such as
// /run/netns/x or /proc/<pid>/ns/net) that berth wires but never deletes.
// When Key is empty, berthd creates a namespace of its own under
// <exec-root>/netns/<id> and removes it with the sandbox.
type SandboxCreateRequest struct {
	Name string
	Key  string
}

// SandboxCreateResponse is the answer to POST /sandboxes/create.
type SandboxCreateResponse struct {
	ID string `json:"Id"`
}

// Sandbox is what GET /sandboxes and GET /sandboxes/{id} return.
type Sandbox struct {
	ID   string `json:"Id"`
	Name string
	// Key is the namespace path berth operates on.
	Key string
	// External is true when the namespace belongs to the caller.
	External bool
	// Networks maps network names to the endpoint in that network, in the
	// shape Docker uses for a container's NetworkSettings.Networks.
	Networks map[string]*network.EndpointSettings
	// Ports are the ports published for the namespace, with their host
	// bindings.
	Ports network.PortMap `json:",omitempty"`
}

// SandboxConnectRequest is the body of POST /sandboxes/{id}/connect.
type SandboxConnectRequest struct {
	Network        string
	EndpointConfig *network.EndpointSettings `json:",omitempty"`
	// PortBindings publishes ports of the namespace through this endpoint,
	// as a container's HostConfig.PortBindings does. Only a bridge network
	// that is not internal publishes.
	PortBindings network.PortMap `json:",omitempty"`
}

// SandboxDisconnectRequest is the body of POST /sandboxes/{id}/disconnect.
type SandboxDisconnectRequest struct {
	Network string
	Force   bool
}
