package container

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	mevents "github.com/moby/moby/api/types/events"
	ntypes "github.com/moby/moby/api/types/network"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/events"
	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/store"
	"github.com/berth-net/berth/volume"
)

const bucketContainers = "containers"

// Container is a container as stored.
type Container struct {
	ID      string
	Name    string // without Docker's leading slash
	Created time.Time
	// Image is the reference the user gave; ImageID what it resolved to.
	Image   string
	ImageID string
	Path    string
	Args    []string
	Config  *ctypes.Config
	Host    *ctypes.HostConfig
	// Networks are the networks the container is to be on, in the order it
	// joins them, with what was asked of each endpoint.
	Networks []NetworkAttachment
	State    State
	// RestartCount counts the restarts by the restart policy since the
	// container was last started by hand.
	RestartCount int
	// ManuallyStopped is set by a stop or kill through the API and cleared
	// by the next start: an unless-stopped container so stopped stays so,
	// across berthd restarts too.
	ManuallyStopped bool `json:",omitempty"`
	// LinkEnv and LinkHosts are what legacy links on the default bridge
	// gave the container when it last started.
	LinkEnv   []string `json:",omitempty"`
	LinkHosts []string `json:",omitempty"`
	// Mounts are its volumes, bind and tmpfs mounts, settled at create.
	Mounts []Mount `json:",omitempty"`
}

// NetworkAttachment is one network a container is (to be) connected to.
type NetworkAttachment struct {
	Network string // name as given
	Config  *ntypes.EndpointSettings
}

// State is a container's run state.
type State struct {
	Status     ctypes.ContainerState
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Running tells whether the container's process is alive.
func (s State) Running() bool { return s.Status == ctypes.StateRunning }

// Restarting tells whether the container's process ended and its restart
// policy will start it again after a delay. Docker counts such a container
// as running for most purposes, though nothing of it runs.
func (s State) Restarting() bool { return s.Status == ctypes.StateRestarting }

// Images is where root filesystems come from.
type Images interface {
	// Resolve finds an image by reference and returns its ID and default
	// configuration.
	Resolve(ref string) (id string, cfg *ctypes.Config, err error)
	// RootFS is the unpacked root filesystem of an image, read-only.
	RootFS(id string) string
}

// Config is what a Manager is built from.
type Config struct {
	Store    store.Store
	Networks *network.Controller
	Images   Images
	Volumes  *volume.Store
	// Events, when set, is told what happens to containers and volumes.
	Events *events.Log
	// Root keeps per-container state that survives reboots (the writable
	// layer, logs); ExecRoot keeps run-time files (bundles, sockets).
	Root     string
	ExecRoot string
	// Self is the berthd binary, which also serves as the shim.
	Self string
	// Runc is the runc binary; empty means look it up on PATH.
	Runc string
	// CgroupParent is where containers' cgroups go.
	CgroupParent string
	// Removed, when set, is called after a container is removed, however
	// that happened (rm, or --rm when it ended).
	Removed func()
	Log     *slog.Logger
}

// Manager runs containers.
type Manager struct {
	cfg  Config
	runc runc
	log  *slog.Logger

	mu     sync.RWMutex
	byID   map[string]*entry
	byName map[string]string // name → ID; "" while a create is under way
	execs  map[string]*execEntry

	// closed is set when berthd shuts down: no restart is started after it.
	closed atomic.Bool
}

// entry is a container in memory.
type entry struct {
	// mu serialises lifecycle operations on the container.
	mu  sync.Mutex
	rec Container
	// changed is closed and replaced whenever the state changes, for waiters.
	changed chan struct{}
	// removed is closed when the container is gone.
	removed chan struct{}
	// attach are clients attached before start, waiting for the shim.
	pending []*pendingAttach
	// wait is the restart the policy has scheduled, while the container
	// is restarting.
	wait *restartWait
	// backoff is the delay before the last restart by the policy; zero
	// after a start by hand.
	backoff time.Duration
	// exitOnNext is set by a stop or kill: the process's next end is not
	// followed by a restart, whatever the policy. A start by hand clears it.
	exitOnNext bool
}

// New loads the containers and adopts the running ones.
func New(cfg Config) (*Manager, error) {
	if cfg.Runc == "" {
		var err error
		if cfg.Runc, err = lookRunc(); err != nil {
			return nil, err
		}
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "/berth"
	}
	// Processes runc starts detached in containers (execs with a terminal,
	// or without a client) are reparented to berthd when runc leaves, so
	// that their exit codes can be collected.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become a subreaper: %w", err)
	}
	m := &Manager{
		cfg:    cfg,
		runc:   runc{bin: cfg.Runc, root: filepath.Join(cfg.ExecRoot, "runc")},
		log:    cfg.Log,
		byID:   map[string]*entry{},
		byName: map[string]string{},
		execs:  map[string]*execEntry{},
	}
	for _, dir := range []string{m.runc.root, filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.ExecRoot, "containers"), filepath.Join(cfg.ExecRoot, "shim")} {
		if err := os.MkdirAll(dir, 0o710); err != nil {
			return nil, err
		}
	}
	var recs []Container
	if err := cfg.Store.View(func(tx store.Tx) error {
		return store.LoadAll(tx, bucketContainers, func(_ string, c *Container) error { recs = append(recs, *c); return nil })
	}); err != nil {
		return nil, fmt.Errorf("load containers: %w", err)
	}
	for _, rec := range recs {
		e := &entry{rec: rec, changed: make(chan struct{}), removed: make(chan struct{})}
		m.byID[rec.ID] = e
		m.byName[rec.Name] = rec.ID
	}
	for _, e := range m.byID {
		m.restore(e)
	}
	m.startOnBoot()
	return m, nil
}

// Docker's pattern for container names.
var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// find resolves a container by full ID, name (with or without the leading
// slash) or unique ID prefix.
func (m *Manager) find(term string) (*entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e, ok := m.byID[term]; ok {
		return e, nil
	}
	if id := m.byName[strings.TrimPrefix(term, "/")]; id != "" {
		return m.byID[id], nil
	}
	var found *entry
	n := 0
	if term != "" {
		for id, e := range m.byID {
			if strings.HasPrefix(id, term) {
				found, n = e, n+1
			}
		}
	}
	switch {
	case n == 0:
		return nil, errdefs.ErrNotFound.WithMessage("No such container: " + term)
	case n > 1:
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("multiple IDs found with provided prefix: %s", term))
	}
	return found, nil
}

// save writes a container record. Called with e.mu held.
func (m *Manager) save(e *entry) error {
	return m.cfg.Store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketContainers, e.rec.ID, &e.rec) })
}

// setState records a new state and wakes waiters. Called with e.mu held.
func (m *Manager) setState(e *entry, st State) error {
	e.rec.State = st
	close(e.changed)
	e.changed = make(chan struct{})
	return m.save(e)
}

// dir is the container's persistent directory; runDir its run-time one.
func (m *Manager) dir(id string) string    { return filepath.Join(m.cfg.Root, "containers", id) }
func (m *Manager) runDir(id string) string { return filepath.Join(m.cfg.ExecRoot, "containers", id) }

// LogPath is where a container's output is logged.
func (m *Manager) LogPath(id string) string { return filepath.Join(m.dir(id), id+"-json.log") }

// Get returns a container's record.
func (m *Manager) Get(term string) (Container, error) {
	e, err := m.find(term)
	if err != nil {
		return Container{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rec, nil
}

// List returns all containers, newest first.
func (m *Manager) List() []Container {
	m.mu.RLock()
	entries := make([]*entry, 0, len(m.byID))
	for _, e := range m.byID {
		entries = append(entries, e)
	}
	m.mu.RUnlock()
	out := make([]Container, 0, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		out = append(out, e.rec)
		e.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// UsesImage lists the containers made from an image.
func (m *Manager) UsesImage(id string) []string {
	var out []string
	for _, c := range m.List() {
		if c.ImageID == id {
			out = append(out, c.ID)
		}
	}
	return out
}

// Sandbox returns the network details of a running container's sandbox, or
// ok=false when it has none of its own.
func (m *Manager) Sandbox(c Container) (network.SandboxDetail, bool) {
	if !c.State.Running() || !ownsSandbox(c.Host.NetworkMode) {
		return network.SandboxDetail{}, false
	}
	sb, err := m.cfg.Networks.InspectSandbox(c.ID)
	return sb, err == nil
}

// emit tells the event log what happened, when there is one.
func (m *Manager) emit(typ mevents.Type, action mevents.Action, id string, attrs map[string]string) {
	if m.cfg.Events != nil {
		m.cfg.Events.Emit(typ, action, id, attrs)
	}
}

// emitContainer tells the event log what happened to a container: its
// labels, image and name are the event's attributes, with extra.
func (m *Manager) emitContainer(c *Container, action mevents.Action, extra map[string]string) {
	if m.cfg.Events == nil {
		return
	}
	attrs := map[string]string{}
	if c.Config != nil {
		maps.Copy(attrs, c.Config.Labels)
	}
	attrs["image"], attrs["name"] = c.Image, c.Name
	maps.Copy(attrs, extra)
	m.cfg.Events.Emit(mevents.ContainerEventType, action, c.ID, attrs)
}
