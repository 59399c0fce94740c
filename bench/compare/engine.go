package main

import (
	"errors"
	"io"
	"net/netip"
	"time"
)

// An Engine is one container networking stack under test. The harness
// starts it in the test host namespace, asks it for the workloads it can
// do, and stops it before the next engine starts. Stop removes everything
// the engine made, including what a failed workload left.
//
// A workload an engine cannot do returns a NotApplicable error saying why;
// the table shows the reason instead of numbers.
type Engine interface {
	Name() string
	// Version says which release was measured, for the table's header.
	Version() string
	Start(env *Env) error
	Stop() error
}

// Round is one measured operation; it reports the time of the part that
// counts. Rounds run one after another.
type Round func() (time.Duration, error)

// Cleanup undoes what a Prepare made.
type Cleanup func() error

// Attacher: workload 1. PrepareAttach makes a bridge network with existing
// namespaces already attached and a fresh namespace; each Round attaches
// that namespace to the network and detaches it again, as the engine's
// user (or the runtime driving it) would, and times both.
type Attacher interface {
	PrepareAttach(existing int) (Round, Cleanup, error)
}

// ContainerConnector: workload 1b, `docker network connect` and
// `disconnect` as the issue states it. PrepareContainerConnect runs a
// container on a network of its own and makes a second network; each
// Round connects the running container to the second network and
// disconnects it again through the Docker Engine API (POST
// /networks/{id}/connect and /disconnect), and times both. Engines
// without containers and an API to ask do not have it.
type ContainerConnector interface {
	PrepareContainerConnect() (Round, Cleanup, error)
}

// Creator: workload 2. Each Round creates a bridge network and removes it.
type Creator interface {
	PrepareCreate() (Round, Cleanup, error)
}

// PortRound publishes one more TCP port to a namespace's port 80 and
// reports the time that took, with a function that unpublishes it again
// (not timed).
type PortRound func() (time.Duration, func() error, error)

// Publisher: workload 3. PreparePorts publishes existing ports (each host
// port to a container port) on a bridge network and returns the round for
// the next one. Restart, when the engine has a daemon whose restart
// rebuilds its rules, restarts it with those ports published and reports
// the time until they work again (Env.WaitReachable helps).
type Publisher interface {
	PreparePorts(existing int) (PortRound, Cleanup, error)
	// RestartRound is called with the ports of PreparePorts(existing)
	// still published.
	RestartRound() (Round, error)
}

// ThroughputTarget is a namespace with a published port: the harness runs
// iperf3's server in NS on ContainerPort and measures the published path
// (HostPort on the host's addresses) against the direct one (Addr).
type ThroughputTarget struct {
	NS            string // path of the container's network namespace
	Addr          netip.Addr
	ContainerPort uint16
	HostPort      uint16
}

// Throughputer: workload 4.
type Throughputer interface {
	PrepareThroughput(containerPort uint16) (ThroughputTarget, Cleanup, error)
}

// DNSTarget is a container namespace whose resolver the harness loads with
// dnsperf: Server is what the container's resolv.conf names; LocalName is
// the name of another container on the same network; the engine's
// resolver forwards other names to Env.Upstream.
type DNSTarget struct {
	ClientNS  string
	Server    netip.AddrPort
	LocalName string
	LocalAddr netip.Addr // what LocalName must resolve to
	// Resolver are the processes that answer Server's queries, whose CPU
	// time over a dnsperf run is the resolver's cost.
	Resolver []int
}

// Resolver: workload 5.
type Resolver interface {
	PrepareDNS() (DNSTarget, Cleanup, error)
}

// Memory: workload 6. PIDs are the engine's long-running processes whose
// resident memory counts (a daemon, a resolver); AddContainers runs n
// containers (or, for engines without containers, n namespaces set up as
// a runtime would) on one network with name resolution.
type Memory interface {
	PIDs() ([]int, error)
	AddContainers(n int) (Cleanup, error)
}

// Noter: an engine whose way of doing a workload differs from the others'
// in a way the reader must know says so for the table.
type Noter interface {
	Note(workload string) string
}

// Profiler: an engine that can profile its own CPU use for the given
// seconds (berthd serves Go's profiles) writes the profile to w.
type Profiler interface {
	CPUProfile(seconds int, w io.Writer) error
}

// NotApplicable is the error of a workload an engine does not have.
type NotApplicable struct{ Why string }

func (n NotApplicable) Error() string { return "n/a: " + n.Why }

func notApplicable(err error) (string, bool) {
	var na NotApplicable
	if errors.As(err, &na) {
		return na.Why, true
	}
	return "", false
}
