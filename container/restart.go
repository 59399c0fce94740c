package container

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/sys/signal"
)

// The restart policy's backoff, as dockerd's: the first restart comes
// after firstRestartDelay, each consecutive one after twice the delay
// before it, never later than maxRestartDelay; a run of at least
// steadyRun starts the sequence over.
const (
	firstRestartDelay = 100 * time.Millisecond
	maxRestartDelay   = time.Minute
	steadyRun         = 10 * time.Second
)

// restartDelay is how long to wait before the next restart, given the
// delay before the last one (zero for none since a start by hand) and how
// long the container ran since.
func restartDelay(last, ran time.Duration) time.Duration {
	if last <= 0 || ran >= steadyRun {
		return firstRestartDelay
	}
	return min(2*last, maxRestartDelay)
}

// shouldRestart tells whether a container whose process ended with
// exitCode is started again under its policy: always; unless-stopped when
// it was not stopped through the API; on-failure after a non-zero exit, at
// most MaximumRetryCount times (0: no limit) counted by restarts.
func shouldRestart(p ctypes.RestartPolicy, exitCode int, manuallyStopped bool, restarts int) bool {
	switch {
	case p.IsAlways():
		return true
	case p.IsUnlessStopped():
		return !manuallyStopped
	case p.IsOnFailure():
		return exitCode != 0 && (p.MaximumRetryCount == 0 || restarts < p.MaximumRetryCount)
	}
	return false
}

// validateRestartPolicy checks a container's restart policy as dockerd
// does at create and start, with its messages.
func validateRestartPolicy(host *ctypes.HostConfig) error {
	if host.AutoRemove && !host.RestartPolicy.IsNone() {
		return errdefs.ErrInvalidArgument.WithMessage("can't create 'AutoRemove' container with restart policy")
	}
	// The API types' own check carries dockerd's texts and is an invalid
	// parameter (400).
	return ctypes.ValidateRestartPolicy(host.RestartPolicy)
}

// stopsRestarts tells whether a kill with signal s calls off the restart
// policy for the process's next end. As in dockerd it does unless the
// container has a stop signal of its own and s is neither that nor
// SIGKILL: such a signal may be one the process handles and lives on.
func stopsRestarts(stopSignal string, s syscall.Signal) bool {
	if stopSignal == "" || s == syscall.SIGKILL {
		return true
	}
	own, err := signal.ParseSignal(stopSignal)
	return err == nil && own == s
}

// restartWait is a restart scheduled by the policy.
type restartWait struct{ timer *time.Timer }

// scheduleRestart starts the container again after its backoff. Called
// with e.mu held, the container restarting.
func (m *Manager) scheduleRestart(e *entry) {
	w := &restartWait{}
	// The timer's function takes e.mu before it looks at e.wait, so it
	// sees w there unless the restart was called off.
	w.timer = time.AfterFunc(e.backoff, func() { m.restartAfterBackoff(e, w) })
	e.wait = w
}

// restartAfterBackoff starts a restarting container when its delay is
// over, unless the restart was called off meanwhile. A start that fails
// leaves the container exited with the error, as in dockerd: the policy
// does not try again.
func (m *Manager) restartAfterBackoff(e *entry, w *restartWait) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wait != w || m.closed.Load() {
		return
	}
	e.wait = nil
	if !e.rec.State.Restarting() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
	defer cancel()
	if err := m.start(ctx, e); err != nil {
		m.log.Error("the restart policy could not start the container", "id", e.rec.ID, "name", e.rec.Name, "err", err)
		st := e.rec.State
		st.Status, st.Error = ctypes.StateExited, err.Error()
		if err := m.setState(e, st); err != nil {
			m.log.Error("record the failed restart", "id", e.rec.ID, "err", err)
		}
	}
}

// cancelRestart calls off a scheduled restart; a restarting container is
// then exited, with the status of its last run. It tells whether the
// container was restarting. Called with e.mu held.
func (m *Manager) cancelRestart(e *entry) bool {
	if e.wait != nil {
		e.wait.timer.Stop()
		e.wait = nil
	}
	if !e.rec.State.Restarting() {
		return false
	}
	st := e.rec.State
	st.Status = ctypes.StateExited
	if err := m.setState(e, st); err != nil {
		m.log.Error("record the called off restart", "id", e.rec.ID, "err", err)
	}
	return true
}

// startAfresh starts the container as a start by hand does: the restart
// policy begins over, with no restarts counted, the shortest delay, and
// the container no longer stopped by hand. A failed start is recorded in
// the state. Called with e.mu held.
func (m *Manager) startAfresh(ctx context.Context, e *entry) error {
	e.exitOnNext, e.backoff = false, 0
	e.rec.RestartCount, e.rec.ManuallyStopped = 0, false
	if err := m.start(ctx, e); err != nil {
		st := e.rec.State
		st.Error = err.Error()
		m.setState(e, st)
		return err
	}
	return nil
}

// Close calls off the restarts the policies have scheduled and lets no
// other begin; berthd calls it as it shuts down. Containers go on running,
// and the next berthd restarts those that were waiting (startOnBoot).
func (m *Manager) Close() {
	m.closed.Store(true)
	m.mu.RLock()
	entries := make([]*entry, 0, len(m.byID))
	for _, e := range m.byID {
		entries = append(entries, e)
	}
	m.mu.RUnlock()
	for _, e := range entries {
		// A restart under way holds e.mu: Close returns after it.
		e.mu.Lock()
		if e.wait != nil {
			e.wait.timer.Stop()
			e.wait = nil
		}
		e.mu.Unlock()
	}
}

// startOnBoot starts, when berthd starts, the stopped containers their
// policy wants running, as dockerd does at its start: always, unless-stopped
// unless stopped by hand, on-failure after a failure with retries left.
// Containers never started stay as they are. One that was waiting for its
// restart when the last berthd ended is taken as exited with its last
// status, and so judged. As in dockerd, the start is one by hand: the
// count of restarts begins over.
func (m *Manager) startOnBoot() {
	var todo []*entry
	for _, e := range m.byID {
		e.mu.Lock()
		c := &e.rec
		if c.State.Restarting() {
			m.cancelRestart(e)
		}
		if c.State.Status == ctypes.StateExited && !c.State.StartedAt.IsZero() &&
			shouldRestart(c.Host.RestartPolicy, c.State.ExitCode, c.ManuallyStopped, c.RestartCount) {
			todo = append(todo, e)
		}
		e.mu.Unlock()
	}
	// Oldest first, as they were made, where dependencies leave a choice.
	slices.SortFunc(todo, func(a, b *entry) int { return a.rec.Created.Compare(b.rec.Created) })
	for _, e := range bootOrder(todo, m.dependencies) {
		e.mu.Lock()
		if e.rec.State.Status == ctypes.StateExited {
			ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
			if err := m.startAfresh(ctx, e); err != nil {
				m.log.Error("start a container by its restart policy", "id", e.rec.ID, "name", e.rec.Name, "err", err)
			} else {
				m.log.Info("started by its restart policy as berthd started", "id", e.rec.ID, "name", e.rec.Name, "policy", e.rec.Host.RestartPolicy.Name)
			}
			cancel()
		}
		e.mu.Unlock()
	}
}

// dependencies are the containers a container needs running to start: the
// one whose network it shares and the targets of its legacy links.
func (m *Manager) dependencies(e *entry) []*entry {
	e.mu.Lock()
	mode, links := string(e.rec.Host.NetworkMode), e.rec.Host.Links
	e.mu.Unlock()
	var names []string
	if target, ok := strings.CutPrefix(mode, modeContainer); ok {
		names = append(names, target)
	}
	for _, l := range links {
		name, _ := parseLink(l)
		names = append(names, name)
	}
	var out []*entry
	for _, name := range names {
		if t, err := m.find(name); err == nil && t != e {
			out = append(out, t)
		}
	}
	return out
}

// bootOrder orders the containers to start so that each comes after those
// of them it depends on; containers in a cycle come last, as they were.
func bootOrder[T comparable](todo []T, deps func(T) []T) []T {
	left := map[T]bool{}
	for _, e := range todo {
		left[e] = true
	}
	var out []T
	for len(out) < len(todo) {
		progress := false
		for _, e := range todo {
			if !left[e] {
				continue
			}
			ready := true
			for _, d := range deps(e) {
				if left[d] && d != e {
					ready = false
				}
			}
			if ready {
				out = append(out, e)
				delete(left, e)
				progress = true
			}
		}
		if !progress {
			for _, e := range todo {
				if left[e] {
					out = append(out, e)
				}
			}
			break
		}
	}
	return out
}

// errRestarting is dockerd's answer to an exec in a container that waits
// to be restarted.
func errRestarting(id string) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("Container %s is restarting, wait until the container is running", id))
}
