package container

import (
	"testing"
	"time"
)

func TestEndedExecsAreForgottenAfterAWhileAndWithTheirContainer(t *testing.T) {
	now := time.Now()
	m := &Manager{byID: map[string]*entry{"c1": {}}, execs: map[string]*execEntry{
		"running":   {ContainerID: "c1", started: true, running: true},
		"unstarted": {ContainerID: "c1"},
		"recent":    {ContainerID: "c1", started: true, ended: now.Add(-time.Minute)},
		"old":       {ContainerID: "c1", started: true, ended: now.Add(-execKeep - time.Second)},
		"orphan":    {ContainerID: "gone", started: true, running: true},
	}}
	m.forgetExecs(now)
	for _, id := range []string{"running", "unstarted", "recent"} {
		if _, ok := m.execs[id]; !ok {
			t.Errorf("exec %s was forgotten", id)
		}
	}
	for _, id := range []string{"old", "orphan"} {
		if _, ok := m.execs[id]; ok {
			t.Errorf("exec %s is still kept", id)
		}
	}
}
