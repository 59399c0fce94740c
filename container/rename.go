package container

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	mevents "github.com/moby/moby/api/types/events"

	"github.com/berth-net/berth/store"
)

// Rename gives a container a new name, as docker rename does; a running
// container's names on its user-defined networks follow at once.
func (m *Manager) Rename(term, name string) error {
	name = strings.TrimPrefix(name, "/")
	if term == "" || name == "" {
		return errdefs.ErrInvalidArgument.WithMessage("Neither old nor new names may be empty")
	}
	if !validName.MatchString(name) {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	}
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.rec.Name
	if name == old {
		return errdefs.ErrInvalidArgument.WithMessage("Renaming a container with the same name as its current name")
	}
	m.mu.Lock()
	if id, taken := m.byName[name]; taken {
		m.mu.Unlock()
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf(
			"Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, id))
	}
	m.byName[name] = e.rec.ID
	m.mu.Unlock()

	next := e.rec
	next.Name = name
	persist := func(tx store.Tx) error { return store.PutJSON(tx, bucketContainers, next.ID, &next) }
	if e.rec.State.Running() && ownsSandbox(e.rec.Host.NetworkMode) {
		err = m.cfg.Networks.RenameSandbox(e.rec.ID, name, persist)
	} else {
		err = m.cfg.Store.Update(persist)
	}
	m.mu.Lock()
	if err != nil {
		delete(m.byName, name)
	} else {
		delete(m.byName, old)
	}
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("rename container %s: %w", e.rec.ID, err)
	}
	e.rec.Name = name
	m.log.Info("container renamed", "id", e.rec.ID, "from", old, "to", name)
	m.emitContainer(&e.rec, mevents.ActionRename, map[string]string{"oldName": "/" + old})
	return nil
}
