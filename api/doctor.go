package api

import (
	"context"
	"net/http"
	"net/url"
)

// Statuses of a Finding.
const (
	StatusOK   = "ok"
	StatusWarn = "warn"
	StatusFail = "fail"
)

// Finding is one thing berth doctor checked on the host, and what it
// found.
type Finding struct {
	// Check names what was checked: kernel, forwarding, br_netfilter,
	// firewall, routes, devices, namespaces, sandboxes, tables.
	Check string
	// Status is ok, warn (berth works, with a limit) or fail (something
	// berth set up does not work as it should).
	Status  string
	Message string
	// Fix is what to do about it: commands for the host's administrator,
	// or what berthd does at its next start.
	Fix string `json:",omitempty"`
}

// DoctorReport is the answer to GET /berth/doctor.
type DoctorReport struct {
	Findings []Finding
}

// TraceReport is the answer to GET /berth/trace?src=SRC&dst=DST: whether
// traffic from a container (or sandbox) gets through berth's rules to
// another one, or to a port published on the host, read from berth's
// model of its tables (no packet is sent).
type TraceReport struct {
	Source      string
	Destination string
	// Reachable is true when the verdict is allowed.
	Reachable bool
	// Verdict is allowed, denied or undecided (the traffic does not pass
	// berth's firewall on this host).
	Verdict string
	// Rule is the rule of berth's that decides, as nft lists it, with its
	// family, table and chain; empty when none does.
	Rule   string `json:",omitempty"`
	Path   []string
	Reason string
	Notes  []string `json:",omitempty"`
}

// Doctor is GET /berth/doctor.
func (c *Client) Doctor(ctx context.Context) (DoctorReport, error) {
	var out DoctorReport
	_, err := c.Call(ctx, http.MethodGet, "/berth/doctor", nil, nil, &out)
	return out, err
}

// Trace is GET /berth/trace: src is a container or sandbox, dst one too,
// an address, or host, each with an optional :PORT[/PROTO].
func (c *Client) Trace(ctx context.Context, src, dst string) (TraceReport, error) {
	var out TraceReport
	_, err := c.Call(ctx, http.MethodGet, "/berth/trace", url.Values{"src": {src}, "dst": {dst}}, nil, &out)
	return out, err
}
