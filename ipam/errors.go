package ipam

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Errors callers test with errors.Is. The errdefs class of each one sets the
// HTTP status the daemon answers with; where Docker has a status for the same
// condition (libnetwork's ipamapi), the class matches it.
var (
	// ErrNotInSubnet: the address lies outside the allocator's subnet.
	ErrNotInSubnet = errdefs.ErrInvalidArgument.WithMessage("address does not belong to the subnet")
	// ErrReservedAddress: the network, broadcast or IPv6 subnet-router
	// anycast address, which is never given to an endpoint.
	ErrReservedAddress = errdefs.ErrInvalidArgument.WithMessage("address is reserved")
	// ErrAddressInUse is Docker's ipamapi.ErrIPAlreadyAllocated, a 403.
	ErrAddressInUse = errdefs.ErrPermissionDenied.WithMessage("Address already in use")
	// ErrNotAllocated: Release of an address that is free.
	ErrNotAllocated = errdefs.ErrNotFound.WithMessage("address is not allocated")
	// ErrNoAvailableAddress is Docker's ipamapi.ErrNoAvailableIPs, a 503.
	ErrNoAvailableAddress = errdefs.ErrUnavailable.WithMessage("no available addresses on this pool")
	// ErrPoolsExhausted is returned by Space.NextSubnet; Docker answers 404.
	ErrPoolsExhausted = errdefs.ErrNotFound.WithMessage("could not find an available, non-overlapping address pool among the defaults to assign to the network")
	// ErrPoolOverlap is Docker's ipamapi.ErrPoolOverlap, a 403 Forbidden
	// since Docker 20.10 (not a 409 Conflict).
	ErrPoolOverlap = errdefs.ErrPermissionDenied.WithMessage("Pool overlaps with other one on this address space")
)

// reworded gives a sentinel the text users must see (naming the address at
// hand, in Docker's words) while errors.Is still finds the sentinel and its
// errdefs class.
type reworded struct {
	sentinel error
	text     string
}

func (e *reworded) Error() string { return e.text }
func (e *reworded) Unwrap() error { return e.sentinel }

func reword(sentinel error, format string, args ...any) error {
	return &reworded{sentinel: sentinel, text: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, args...))
}
