package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// connector is an engine with containers whose connect rounds count
// themselves.
type connector struct {
	rounds  int
	cleaned bool
}

func (c *connector) Name() string     { return "berth" }
func (c *connector) Version() string  { return "test" }
func (c *connector) Start(*Env) error { return nil }
func (c *connector) Stop() error      { return nil }

func (c *connector) PrepareContainerConnect() (Round, Cleanup, error) {
	round := func() (time.Duration, error) {
		c.rounds++
		return time.Duration(c.rounds) * time.Millisecond, nil
	}
	return round, func() error { c.cleaned = true; return nil }, nil
}

// runtimeOnly is an engine without containers, as the CNI plugins are.
type runtimeOnly struct{}

func (runtimeOnly) Name() string     { return "cni" }
func (runtimeOnly) Version() string  { return "test" }
func (runtimeOnly) Start(*Env) error { return nil }
func (runtimeOnly) Stop() error      { return nil }

func TestContainerConnectKeepsTheSamplesAfterTheWarmup(t *testing.T) {
	r := &Runner{Samples: 4, Warmup: 2, Filter: regexp.MustCompile("^container connect")}
	c := &connector{}
	r.Run(c)
	if len(r.Results) != 1 {
		t.Fatalf("results: %+v, want the one workload -run names", r.Results)
	}
	res := r.Results[0]
	if res.Workload != "container connect+disconnect" || res.Unit != "ms" || res.Skipped != "" {
		t.Errorf("result: %+v", res)
	}
	if c.rounds != 6 || len(res.Samples) != 4 || res.Samples[0] != 3 || res.Samples[3] != 6 {
		t.Errorf("%d rounds, samples %v: want 2 warm-up rounds left out of 6", c.rounds, res.Samples)
	}
	if !c.cleaned {
		t.Errorf("the workload's cleanup did not run")
	}
}

func TestContainerConnectIsNotApplicableWithoutContainers(t *testing.T) {
	r := &Runner{Samples: 1, Filter: regexp.MustCompile("^container connect")}
	r.Run(runtimeOnly{})
	if len(r.Results) != 1 {
		t.Fatalf("results: %+v", r.Results)
	}
	if got := r.Results[0].Skipped; !strings.HasPrefix(got, "n/a: cni has no containers") {
		t.Errorf("skipped: %q, want why cni has no such workload", got)
	}
}

func TestContainerConnectReportsAFailedRound(t *testing.T) {
	r := &Runner{Samples: 3, Filter: regexp.MustCompile("^container connect")}
	r.Run(failingConnector{})
	if got := r.Results[0].Skipped; got != "failed: round 0: connect to other: no such network" {
		t.Errorf("skipped: %q", got)
	}
}

type failingConnector struct{ runtimeOnly }

func (failingConnector) Name() string { return "docker" }

func (failingConnector) PrepareContainerConnect() (Round, Cleanup, error) {
	round := func() (time.Duration, error) { return 0, errors.New("connect to other: no such network") }
	return round, func() error { return nil }, nil
}
