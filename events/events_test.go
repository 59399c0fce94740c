package events

import (
	"fmt"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

// clock is a log's time, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestLog() (*Log, *clock) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New()
	l.now = c.now
	return l, c
}

func TestPastEventsReplayFromSinceUntilUntil(t *testing.T) {
	l, c := newTestLog()
	for i := range 5 {
		c.t = time.Unix(1000+int64(i), 0)
		l.Emit(events.NetworkEventType, events.ActionCreate, fmt.Sprintf("n%d", i), map[string]string{"name": fmt.Sprintf("net%d", i)})
	}
	past, sub := l.Subscribe(time.Unix(1001, 0), time.Unix(1003, 0), nil)
	if sub != nil {
		t.Error("a subscription whose until has passed follows the log")
	}
	if len(past) != 3 || past[0].Actor.ID != "n1" || past[2].Actor.ID != "n3" {
		t.Fatalf("past %+v, want n1..n3", past)
	}
	m := past[0]
	if m.Type != events.NetworkEventType || m.Action != events.ActionCreate || m.Scope != "local" ||
		m.Time != 1001 || m.TimeNano != 1001e9 || m.Actor.Attributes["name"] != "net1" {
		t.Errorf("message %+v", m)
	}
	// Without since there is no past; without until the subscription
	// follows.
	past, sub = l.Subscribe(time.Time{}, time.Time{}, nil)
	if len(past) != 0 || sub == nil {
		t.Fatalf("past %v, subscription %v", past, sub)
	}
	defer sub.Close()
	l.Emit(events.ContainerEventType, events.ActionStart, "c1", nil)
	select {
	case m := <-sub.C:
		if m.Actor.ID != "c1" || m.Actor.Attributes == nil {
			t.Errorf("live event %+v", m)
		}
	case <-time.After(time.Second):
		t.Fatal("no live event")
	}
}

func TestTheRingKeepsTheLastEvents(t *testing.T) {
	l, _ := newTestLog()
	for i := range RingSize + 10 {
		l.Emit(events.ImageEventType, events.ActionImport, fmt.Sprint(i), nil)
	}
	past, sub := l.Subscribe(time.Unix(1, 0), time.Unix(2000, 0), nil)
	if sub != nil {
		sub.Close()
	}
	if len(past) != RingSize || past[0].Actor.ID != "10" || past[RingSize-1].Actor.ID != fmt.Sprint(RingSize+9) {
		t.Fatalf("%d kept, first %s", len(past), past[0].Actor.ID)
	}
}

func TestASlowSubscriberLosesEventsAndNeverBlocks(t *testing.T) {
	l, _ := newTestLog()
	_, slow := l.Subscribe(time.Time{}, time.Time{}, nil)
	_, quick := l.Subscribe(time.Time{}, time.Time{}, Filter{"type": {"volume"}})
	defer quick.Close()
	done := make(chan struct{})
	go func() {
		for range SubscriberSize + 100 {
			l.Emit(events.ContainerEventType, events.ActionDie, "c", nil)
		}
		l.Emit(events.VolumeEventType, events.ActionCreate, "v", nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a subscriber that reads nothing blocked the log")
	}
	if got := slow.Dropped(); got != 101 {
		t.Errorf("the slow subscriber lost %d events, want 101", got)
	}
	if m := <-quick.C; m.Actor.ID != "v" || quick.Dropped() != 0 {
		t.Errorf("the filtered subscriber got %+v, lost %d", m, quick.Dropped())
	}
	slow.Close()
	slow.Close()
	n := 0
	for range slow.C {
		n++
	}
	if n != SubscriberSize {
		t.Errorf("a closed subscription delivered %d events it held, want %d and then its end", n, SubscriberSize)
	}
	// Emitting after a subscriber left reaches nobody and panics not.
	l.Emit(events.ContainerEventType, events.ActionDie, "c", nil)
}

func TestFiltersFollowDocker(t *testing.T) {
	container := events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Scope: "local",
		Actor: events.Actor{ID: "abcdef123456", Attributes: map[string]string{"name": "web", "image": "busybox", "team": "x"}}}
	network := events.Message{Type: events.NetworkEventType, Action: events.ActionConnect, Scope: "local",
		Actor: events.Actor{ID: "0123abc", Attributes: map[string]string{"name": "app", "container": "abcdef123456", "type": "bridge"}}}
	image := events.Message{Type: events.ImageEventType, Action: events.ActionImport, Scope: "local",
		Actor: events.Actor{ID: "sha256:ff", Attributes: map[string]string{"name": "busybox"}}}
	cases := []struct {
		f                Filter
		cont, net, image bool
	}{
		{nil, true, true, true},
		{Filter{"type": {"container"}}, true, false, false},
		{Filter{"type": {"container", "network"}}, true, true, false},
		{Filter{"event": {"start", "import"}}, true, false, true},
		{Filter{"container": {"web"}}, true, false, false},
		{Filter{"container": {"abcdef"}}, true, false, false},
		{Filter{"container": {"nope"}}, false, false, false},
		{Filter{"network": {"app"}}, false, true, false},
		{Filter{"network": {"0123"}}, false, true, false},
		{Filter{"image": {"busybox"}}, true, false, true},
		{Filter{"label": {"team"}}, true, false, false},
		{Filter{"label": {"team=x"}}, true, false, false},
		{Filter{"label": {"team=y"}}, false, false, false},
		{Filter{"label": {"team", "tier"}}, false, false, false},
		{Filter{"scope": {"swarm"}}, false, false, false},
		{Filter{"daemon": {"x"}}, false, false, false},
		{Filter{"type": {"container"}, "event": {"die"}}, false, false, false},
	}
	for _, c := range cases {
		if got := c.f.Include(container); got != c.cont {
			t.Errorf("%v on a container event: %v", c.f, got)
		}
		if got := c.f.Include(network); got != c.net {
			t.Errorf("%v on a network event: %v", c.f, got)
		}
		if got := c.f.Include(image); got != c.image {
			t.Errorf("%v on an image event: %v", c.f, got)
		}
	}
}
