// Command berth is the command-line client of berthd. It speaks the Docker
// Engine API (through github.com/moby/moby/client) for what Docker has —
// containers, images, networks, version, info — and berth's own routes for
// what Docker has not — sandboxes — and prints what the docker CLI prints
// for the same commands: the same flags, tables, templates, error texts and
// exit codes.
//
// It owns only the user's side of the API: it decides nothing about
// containers or networks itself beyond the checks the docker CLI makes
// before sending. Where berth differs from Docker it says so in its own
// words: containers have no terminal (-t is refused), and images come in
// by import only, as there is no registry to pull from.
package main
