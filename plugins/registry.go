package plugins

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	driverremote "github.com/berth-net/berth/driver/remote"
	"github.com/berth-net/berth/ipam"
	ipamremote "github.com/berth-net/berth/ipam/remote"
)

// What a plugin says it implements, in its answer to Plugin.Activate.
const (
	NetworkDriverKind = "NetworkDriver"
	IPAMDriverKind    = "IpamDriver"
)

// Registry finds plugins in directories by name, activates them once and
// keeps them, with the drivers made of them.
type Registry struct {
	// Retry bounds how long a plugin that is found but does not answer
	// (nobody listening on its socket, or its socket gone while it
	// restarts) is tried again before a call fails. Docker tries for
	// 15 s.
	Retry time.Duration
	// CallTimeout bounds one call to a plugin.
	CallTimeout time.Duration

	dirs []string
	log  *slog.Logger

	mu      sync.Mutex
	plugins map[string]*Plugin
	names   map[string]*sync.Mutex
	drivers map[string]*driverremote.Driver
	ipams   map[string]*ipamremote.Plugin
}

// New returns a registry that looks for plugins in dirs, or in Docker's
// directories (DefaultDirs) when dirs is empty. Nothing is looked at
// until a plugin is asked for.
func New(dirs []string, log *slog.Logger) *Registry {
	if len(dirs) == 0 {
		dirs = DefaultDirs
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registry{
		Retry: 15 * time.Second, CallTimeout: 2 * time.Minute,
		dirs: slices.Clone(dirs), log: log,
		plugins: map[string]*Plugin{}, names: map[string]*sync.Mutex{},
		drivers: map[string]*driverremote.Driver{}, ipams: map[string]*ipamremote.Plugin{},
	}
}

// lockName serializes the activation of one plugin and the making of its
// drivers, leaving other plugins free meanwhile.
func (r *Registry) lockName(name string) func() {
	r.mu.Lock()
	l, ok := r.names[name]
	if !ok {
		l = &sync.Mutex{}
		r.names[name] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Get returns the plugin name, found and activated on first use. A name
// found in no directory gives an error errdefs reports as NotFound, at
// once; a plugin that is found but does not answer is tried again for
// Retry, then gives an error naming it.
func (r *Registry) Get(name string) (*Plugin, error) {
	r.mu.Lock()
	p, ok := r.plugins[name]
	r.mu.Unlock()
	if ok {
		return p, nil
	}
	unlock := r.lockName(name)
	defer unlock()
	return r.get(name)
}

// get is Get with the name locked.
func (r *Registry) get(name string) (*Plugin, error) {
	r.mu.Lock()
	p, ok := r.plugins[name]
	r.mu.Unlock()
	if ok {
		return p, nil
	}
	a, err := r.activate(name, true)
	if err != nil {
		return nil, err
	}
	p = &Plugin{reg: r, name: name, act: a}
	r.mu.Lock()
	r.plugins[name] = p
	r.mu.Unlock()
	r.log.Info("plugin activated", "plugin", name, "addr", a.spec.Addr, "implements", a.implements)
	return p, nil
}

// NetworkDriver returns the network driver of plugin name: the same one
// every time.
func (r *Registry) NetworkDriver(name string) (driver.Driver, error) {
	unlock := r.lockName(name)
	defer unlock()
	r.mu.Lock()
	d, ok := r.drivers[name]
	r.mu.Unlock()
	if ok {
		return d, nil
	}
	p, err := r.kind(name, NetworkDriverKind)
	if err != nil {
		return nil, err
	}
	d, err = driverremote.New(name, p, r.log)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.drivers[name] = d
	r.mu.Unlock()
	return d, nil
}

// IPAMDriver returns the address manager of plugin name: the same one
// every time.
func (r *Registry) IPAMDriver(name string) (ipam.Plugin, error) {
	unlock := r.lockName(name)
	defer unlock()
	r.mu.Lock()
	d, ok := r.ipams[name]
	r.mu.Unlock()
	if ok {
		return d, nil
	}
	p, err := r.kind(name, IPAMDriverKind)
	if err != nil {
		return nil, err
	}
	d, err = ipamremote.New(name, p)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.ipams[name] = d
	r.mu.Unlock()
	return d, nil
}

// kind returns the plugin, which must implement kind. Called with the
// name locked.
func (r *Registry) kind(name, kind string) (*Plugin, error) {
	p, err := r.get(name)
	if err != nil {
		return nil, err
	}
	if !p.Implements(kind) {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("plugin %s does not implement %s (it implements %v)", name, kind, p.activation().implements))
	}
	return p, nil
}

// Info is a plugin as `docker plugin ls` shows one.
type Info struct {
	Name string
	// Addr is where the plugin is reached; empty for one found but never
	// activated.
	Addr string
	// Implements is what the plugin said it implements when activated.
	Implements []string
	// Active: the plugin has been activated.
	Active bool
}

// List returns the plugins activated and those found in the
// directories, by name. Listing activates nothing.
func (r *Registry) List() []Info {
	r.mu.Lock()
	active := slices.Collect(maps.Values(r.plugins))
	r.mu.Unlock()
	byName := map[string]Info{}
	for _, p := range active {
		a := p.activation()
		byName[p.name] = Info{Name: p.name, Addr: a.spec.Addr, Implements: slices.Clone(a.implements), Active: true}
	}
	for _, name := range scan(r.dirs) {
		if _, ok := byName[name]; !ok {
			byName[name] = Info{Name: name}
		}
	}
	out := make([]Info, 0, len(byName))
	for _, info := range byName {
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}
