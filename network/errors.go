package network

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Docker's texts and classes for the conditions of networks, endpoints and
// sandboxes, here and nowhere else; the daemon maps the classes to HTTP
// statuses.

func errNetworkNotFound(term string) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("network %s not found", term))
}

func errSandboxNotFound(term string) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("sandbox %s not found", term))
}

func errNetworkExists(name string) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("network with name %s already exists", name))
}

func errPredefinedCreate(name string) error {
	return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("operation is not permitted on predefined %s network ", name))
}

func errPredefinedRemove(name string) error {
	return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("%s is a pre-defined network and cannot be removed", name))
}

// activeEndpointsError is a 403, as Docker's.
type activeEndpointsError struct{ name, id string }

func (e *activeEndpointsError) Error() string {
	return fmt.Sprintf("error while removing network: network %s id %s has active endpoints", e.name, e.id)
}

func (e *activeEndpointsError) Forbidden() {}

func errActiveEndpoints(name, id string) error { return &activeEndpointsError{name, id} }

func errDriverNotFound(name string) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("plugin %q not found", name))
}

func errOnlyOneInstance(driver string) error {
	return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("only one instance of %q network is allowed", driver))
}

func errEndpointExists(name, network string) error {
	return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("endpoint with name %s already exists in network %s", name, network))
}

// ErrNotConnected is Docker's answer to disconnecting what is not connected.
func ErrNotConnected(sandbox, network string) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("container %s is not connected to network %s", sandbox, network))
}

func errAmbiguous(term string, n int) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("network %s is ambiguous (%d matches found based on ID prefix)", term, n))
}

var (
	// ErrHostNetwork: the host network's sandbox is the daemon's namespace.
	ErrHostNetwork = errdefs.ErrInvalidArgument.WithMessage(
		"container cannot be disconnected from host network or connected to host network")
	// ErrNoneNetwork: a sandbox on none is on nothing else.
	ErrNoneNetwork = errdefs.ErrInvalidArgument.WithMessage(
		"container cannot be connected to multiple networks with one of the networks in private (none) mode")
	// ErrSharedNamespace: a container in another's namespace has no
	// endpoints of its own.
	ErrSharedNamespace = errdefs.ErrInvalidArgument.WithMessage(
		"container sharing network namespace with another container or host cannot be connected to any other network")
	errAliasOnPredefined = errdefs.ErrInvalidArgument.WithMessage(
		"network-scoped aliases are only supported for user-defined networks")
	errStaticOnDefault = errdefs.ErrInvalidArgument.WithMessage(
		"user specified IP address is supported on user defined networks only")
	errStaticNoSubnet = errdefs.ErrInvalidArgument.WithMessage(
		"user specified IP address is supported only when connecting to networks with user configured subnets")
)

func invalid(format string, args ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, args...))
}
