// Package events records what happens to berth's objects — networks,
// containers, volumes, images — as Docker's event messages, keeps the last
// ones in a bounded ring for clients that ask for the past, and hands new
// ones to every subscriber without ever waiting for one: a subscriber that
// does not keep up loses events, counted, and never slows the daemon.
package events

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// Sizes: the past kept for `since` (Docker keeps 256), and the events a
// subscriber may be behind before it loses some.
const (
	RingSize       = 1024
	SubscriberSize = 1024
)

// Log records events and hands them to subscribers.
type Log struct {
	now func() time.Time

	mu   sync.Mutex
	ring []events.Message // the last RingSize events, oldest first
	subs map[*Subscription]struct{}
}

// New returns an empty log.
func New() *Log {
	return &Log{now: time.Now, subs: map[*Subscription]struct{}{}}
}

// Subscription is a client following the log.
type Subscription struct {
	// C carries the events after those the subscription started with; it
	// is closed by Close.
	C      chan events.Message
	filter Filter
	log    *Log

	mu      sync.Mutex
	dropped int
	closed  bool
}

// Dropped tells how many events the subscriber lost by falling behind.
func (s *Subscription) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.log.mu.Lock()
	delete(s.log.subs, s)
	s.log.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.C)
	}
}

// Emit records an event of typ about the object actor (its ID and
// attributes: name, and what the event is about).
func (l *Log) Emit(typ events.Type, action events.Action, id string, attrs map[string]string) {
	now := l.now()
	m := events.Message{
		Type: typ, Action: action, Scope: "local",
		Actor: events.Actor{ID: id, Attributes: maps.Clone(attrs)},
		Time:  now.Unix(), TimeNano: now.UnixNano(),
	}
	if m.Actor.Attributes == nil {
		m.Actor.Attributes = map[string]string{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) == RingSize {
		// Shift by copying down: the ring is small and events are rare
		// next to what this costs.
		copy(l.ring, l.ring[1:])
		l.ring = l.ring[:RingSize-1]
	}
	l.ring = append(l.ring, m)
	for s := range l.subs {
		if !s.filter.Include(m) {
			continue
		}
		select {
		case s.C <- m:
		default:
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}

// Subscribe returns the kept events from since on (none when since is
// zero) that f includes, and, unless until has passed, a subscription to
// the events that follow. The caller closes it.
func (l *Log) Subscribe(since, until time.Time, f Filter) ([]events.Message, *Subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var past []events.Message
	if !since.IsZero() {
		for _, m := range l.ring {
			t := time.Unix(0, m.TimeNano)
			if t.Before(since) || (!until.IsZero() && t.After(until)) {
				continue
			}
			if f.Include(m) {
				past = append(past, m)
			}
		}
	}
	if !until.IsZero() && !until.After(l.now()) {
		return past, nil
	}
	s := &Subscription{C: make(chan events.Message, SubscriberSize), filter: f, log: l}
	l.subs[s] = struct{}{}
	return past, s
}

// Filter is Docker's events filter: for each key the values asked for.
// Keys combine with AND, values of one key with OR.
type Filter map[string][]string

// FilterKeys are the keys a filter may have.
var FilterKeys = []string{"type", "event", "container", "network", "volume", "image", "label", "scope", "daemon"}

// Include tells whether the filter lets m through, as dockerd decides.
func (f Filter) Include(m events.Message) bool {
	return f.exact("type", string(m.Type)) && f.exact("event", string(m.Action)) && f.exact("scope", m.Scope) &&
		f.named(m, events.ContainerEventType) && f.named(m, events.NetworkEventType) &&
		f.named(m, events.VolumeEventType) && f.image(m) && f.labels(m.Actor.Attributes) &&
		(len(f["daemon"]) == 0 || m.Type == events.DaemonEventType && f.fuzzy("daemon", m.Actor.ID, m.Actor.Attributes["name"]))
}

func (f Filter) exact(key, v string) bool {
	vals := f[key]
	return len(vals) == 0 || slices.Contains(vals, v)
}

// fuzzy is dockerd's match: the value itself, or a prefix of it.
func (f Filter) fuzzy(key string, candidates ...string) bool {
	for _, want := range f[key] {
		for _, c := range candidates {
			if c != "" && want != "" && strings.HasPrefix(c, want) {
				return true
			}
		}
	}
	return false
}

// named: a container, network or volume filter lets through only events
// of that kind of object whose ID or name it names.
func (f Filter) named(m events.Message, typ events.Type) bool {
	key := string(typ)
	if len(f[key]) == 0 {
		return true
	}
	return m.Type == typ && f.fuzzy(key, m.Actor.ID, m.Actor.Attributes["name"])
}

// image: an image's events by ID or name, and containers' by their image.
func (f Filter) image(m events.Message) bool {
	if len(f["image"]) == 0 {
		return true
	}
	switch m.Type {
	case events.ImageEventType:
		return f.fuzzy("image", m.Actor.ID, m.Actor.Attributes["name"])
	case events.ContainerEventType:
		return f.fuzzy("image", m.Actor.Attributes["image"])
	}
	return false
}

// labels: every label asked for, key or key=value, among the attributes.
func (f Filter) labels(attrs map[string]string) bool {
	for _, l := range f["label"] {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := attrs[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}
