package daemon

import (
	"net/http"

	"github.com/containerd/errdefs"
)

// berthd is a single engine, never part of a swarm: the swarm's routes
// answer as dockerd outside a swarm does, 503 with its words, which the
// SDKs and compose take for "no swarm here".
const (
	errNotSwarmManager = `This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`
	errNoSwarm         = "This node is not part of a swarm"
	errNoSwarmMode     = "berthd has no swarm mode: it cannot init or join a swarm"
)

func (d *Daemon) swarmRoutes(mux *http.ServeMux) {
	unavailable := func(msg string) apiFunc {
		return func(http.ResponseWriter, *http.Request) error { return errdefs.ErrUnavailable.WithMessage(msg) }
	}
	for _, p := range []string{
		"GET /swarm", "GET /swarm/unlockkey", "POST /swarm/update", "POST /swarm/unlock",
		"GET /nodes", "GET /nodes/{id}", "DELETE /nodes/{id}", "POST /nodes/{id}/update",
		"GET /services", "GET /services/{id}", "POST /services/create", "POST /services/{id}/update",
		"DELETE /services/{id}", "GET /services/{id}/logs",
		"GET /tasks", "GET /tasks/{id}", "GET /tasks/{id}/logs",
		"GET /secrets", "GET /secrets/{id}", "POST /secrets/create", "POST /secrets/{id}/update", "DELETE /secrets/{id}",
		"GET /configs", "GET /configs/{id}", "POST /configs/create", "POST /configs/{id}/update", "DELETE /configs/{id}",
	} {
		d.handle(mux, p, unavailable(errNotSwarmManager))
	}
	d.handle(mux, "POST /swarm/leave", unavailable(errNoSwarm))
	d.handle(mux, "POST /swarm/init", unavailable(errNoSwarmMode))
	d.handle(mux, "POST /swarm/join", unavailable(errNoSwarmMode))
}
