// Command berth is the command-line client of berthd. It speaks the Docker
// Engine API (through github.com/moby/moby/client) for what Docker has —
// networks, version, info — and berth's own routes for what Docker has not —
// sandboxes — and prints what the docker CLI prints for the same commands:
// the same flags, tables, templates, error texts and exit codes.
//
// It owns only the user's side of the API: it decides nothing about
// networks itself beyond the checks the docker CLI makes before sending.
package main
