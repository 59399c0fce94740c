// Package daemon is berthd: it opens the store, builds the controller and
// serves the HTTP API — the network part of the Docker Engine API, with
// Docker's JSON (the types of github.com/moby/moby/api), plus berth's own
// sandbox routes. It translates between HTTP and the controller and maps
// typed errors to HTTP statuses in one place; it decides nothing about
// networks itself.
package daemon
