package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
)

// LogEntry is one line of a container's log, in the json-file format
// Docker uses, so existing tools read berth's logs.
type LogEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// logWriter appends entries to a log file; safe for the two streams to use
// at once.
type logWriter struct {
	mu  sync.Mutex
	f   *os.File
	enc *json.Encoder
}

func newLogWriter(path string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f, enc: json.NewEncoder(f)}, nil
}

// write logs p as one entry per line; a last line without a newline is
// logged as it is.
func (w *logWriter) write(stream string, p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now().UTC()
	for len(p) > 0 {
		n := bytes.IndexByte(p, '\n') + 1
		if n == 0 {
			n = len(p)
		}
		w.enc.Encode(LogEntry{Log: string(p[:n]), Stream: stream, Time: now})
		p = p[n:]
	}
}

func (w *logWriter) close() error { return w.f.Close() }

// LogOptions select what ReadLog returns.
type LogOptions struct {
	Stdout, Stderr bool
	Since, Until   time.Time
	// Tail keeps the last Tail lines; negative means all.
	Tail int
	// Follow keeps reading until done is closed.
	Follow bool
}

// readLog calls emit for every selected entry of the log at path. With
// Follow it goes on with new entries until done is closed or ctx ends.
func readLog(ctx context.Context, path string, opts LogOptions, done <-chan struct{}, emit func(LogEntry) error) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	want := func(e LogEntry) bool {
		if (e.Stream == "stdout" && !opts.Stdout) || (e.Stream == "stderr" && !opts.Stderr) {
			return false
		}
		return (opts.Since.IsZero() || !e.Time.Before(opts.Since)) && (opts.Until.IsZero() || e.Time.Before(opts.Until))
	}
	r := bufio.NewReader(f)
	var tail []LogEntry
	readAvailable := func(keep bool) error {
		for {
			line, err := r.ReadBytes('\n')
			if err == io.EOF {
				// A partly written line: read it again next time.
				if len(line) > 0 {
					if _, serr := f.Seek(-int64(len(line)), io.SeekCurrent); serr != nil {
						return serr
					}
					r.Reset(f)
				}
				return nil
			}
			if err != nil {
				return err
			}
			var e LogEntry
			if json.Unmarshal(line, &e) != nil || !want(e) {
				continue
			}
			if keep {
				tail = append(tail, e)
				if opts.Tail >= 0 && len(tail) > opts.Tail {
					tail = tail[1:]
				}
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	if err := readAvailable(true); err != nil {
		return err
	}
	for _, e := range tail {
		if err := emit(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			return readAvailable(false)
		case <-tick.C:
			if err := readAvailable(false); err != nil {
				return err
			}
		}
	}
}

// Logs emits a container's logged output.
func (m *Manager) Logs(ctx context.Context, term string, opts LogOptions, emit func(LogEntry) error) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	changed, running := e.changed, e.rec.State.Running()
	e.mu.Unlock()
	done := make(chan struct{})
	if !running {
		close(done)
	} else {
		go func() {
			select {
			case <-changed:
			case <-e.removed:
			case <-ctx.Done():
			}
			close(done)
		}()
	}
	return readLog(ctx, m.LogPath(e.rec.ID), opts, done, emit)
}
