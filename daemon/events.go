package daemon

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/events"
)

// streamEvents is GET /events: the kept events from since on, then those
// that follow, as a stream of JSON messages, until the client leaves or
// until has passed.
func (d *Daemon) streamEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"), events.FilterKeys...)
	if err != nil {
		return err
	}
	now := time.Now()
	var since, until time.Time
	if v := q.Get("since"); v != "" {
		if since, err = parseEventTime(v, now); err != nil {
			return err
		}
	}
	if v := q.Get("until"); v != "" {
		if until, err = parseEventTime(v, now); err != nil {
			return err
		}
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return errdefs.ErrInvalidArgument.WithMessage("`since` time must be before `until`")
	}
	past, sub := d.events.Subscribe(since, until, events.Filter(f.values))
	if sub != nil {
		defer sub.Close()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	enc := json.NewEncoder(w)
	for _, m := range past {
		if err := enc.Encode(m); err != nil {
			return nil
		}
	}
	rc.Flush()
	if sub == nil {
		return nil
	}
	var end <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		end = t.C
	}
	for {
		select {
		case m, ok := <-sub.C:
			if !ok {
				return nil
			}
			if !until.IsZero() && time.Unix(0, m.TimeNano).After(until) {
				return nil
			}
			if err := enc.Encode(m); err != nil {
				return nil
			}
			rc.Flush()
		case <-end:
			return nil
		case <-r.Context().Done():
			return nil
		case <-d.done:
			return nil
		}
	}
}

// parseEventTime reads since and until as docker events sends them: a Unix
// time with optional fraction, an RFC 3339 time, or a duration before now.
func parseEventTime(v string, now time.Time) (time.Time, error) {
	t, err := parseUntil(v, now)
	if err != nil {
		return time.Time{}, errdefs.ErrInvalidArgument.WithMessage("invalid value for time: " + v)
	}
	return t, nil
}
