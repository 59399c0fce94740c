// Package driver defines what a network driver is to the controller. Drivers
// (bridge, host, null, and later macvlan, ipvlan, overlay, remote) live in the
// sub-packages; each turns a decided network or endpoint into kernel state.
// Drivers never touch the store or each other: the controller hands them
// everything they need and persists whatever they return.
package driver
