// Package api holds the request and response types of berth's own API
// extensions — the parts of berthd's HTTP API that the Docker Engine API has
// no shape for (sandboxes that are not containers, berth doctor's report
// and traces) — and the client for them
// that berth's CLI and tests share. Docker-compatible routes use
// the types of github.com/moby/moby/api directly; this package must not
// redefine any of them.
package api
