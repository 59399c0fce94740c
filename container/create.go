package container

import (
	"crypto/rand"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	mevents "github.com/moby/moby/api/types/events"
	ntypes "github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/internal/stringid"
	"github.com/berth-net/berth/network"
)

// CreateOptions is a request for a new container: Docker's create request.
type CreateOptions struct {
	Name       string
	Config     *ctypes.Config
	Host       *ctypes.HostConfig
	Networking *ntypes.NetworkingConfig
}

// Network modes other than a network's name.
const (
	modeHost      = "host"
	modeBridge    = "bridge"
	modeDefault   = "default"
	modeContainer = "container:"
	// logDriver is the one log format berth keeps, dockerd's default.
	logDriver = "json-file"
)

// ownsSandbox tells whether a container of this network mode has a network
// namespace of its own.
func ownsSandbox(mode ctypes.NetworkMode) bool {
	return mode != modeHost && !strings.HasPrefix(string(mode), modeContainer)
}

// Create records a new container; nothing runs until Start.
func (m *Manager) Create(opts CreateOptions) (Container, error) {
	cfg := opts.Config
	if cfg == nil || cfg.Image == "" {
		return Container{}, errdefs.ErrInvalidArgument.WithMessage("no image given: a container needs an image")
	}
	host := opts.Host
	if host == nil {
		host = &ctypes.HostConfig{}
	}
	if host.RestartPolicy.Name == "" {
		// As dockerd: no policy given is the policy "no".
		host.RestartPolicy.Name = ctypes.RestartPolicyDisabled
	}
	if err := validateRestartPolicy(host); err != nil {
		return Container{}, err
	}
	switch host.LogConfig.Type {
	case "":
		// What the container's output is kept as, as dockerd's default
		// says: clients (the Python SDK) read logs only from these.
		host.LogConfig.Type = logDriver
	case logDriver:
	default:
		return Container{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(
			"logging driver %q is not supported: berth keeps a container's output as %s", host.LogConfig.Type, logDriver))
	}
	imageID, imgCfg, err := m.cfg.Images.Resolve(cfg.Image)
	if err != nil {
		return Container{}, err
	}
	rec := Container{
		ID: stringid.New(), Created: time.Now().UTC(), Image: cfg.Image, ImageID: imageID,
		Config: mergeConfig(cfg, imgCfg), Host: host,
		State: State{Status: ctypes.StateCreated},
	}
	if len(rec.Config.Entrypoint)+len(rec.Config.Cmd) == 0 {
		return Container{}, errdefs.ErrInvalidArgument.WithMessage("no command specified")
	}
	argv := append(slices.Clone(rec.Config.Entrypoint), rec.Config.Cmd...)
	rec.Path, rec.Args = argv[0], argv[1:]
	if err := m.checkNetworking(&rec, opts.Networking); err != nil {
		return Container{}, err
	}
	if rec.Config.Hostname == "" && ownsSandbox(host.NetworkMode) {
		rec.Config.Hostname = rec.ID[:12]
	}
	if rec.Mounts, err = m.planMounts(&rec); err != nil {
		return Container{}, err
	}

	name := strings.TrimPrefix(opts.Name, "/")
	if name != "" && !validName.MatchString(name) {
		return Container{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", opts.Name))
	}
	m.mu.Lock()
	if name == "" {
		name = m.freeName()
	}
	if id, taken := m.byName[name]; taken {
		m.mu.Unlock()
		return Container{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf(
			"Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, id))
	}
	m.byName[name] = ""
	m.mu.Unlock()
	rec.Name = name

	unmake, err := m.makeVolumes(&rec)
	if err != nil {
		m.mu.Lock()
		delete(m.byName, name)
		m.mu.Unlock()
		return Container{}, err
	}
	e := &entry{rec: rec, changed: make(chan struct{}), removed: make(chan struct{})}
	err = os.MkdirAll(m.dir(rec.ID), 0o710)
	if err == nil {
		err = m.save(e)
	}
	m.mu.Lock()
	if err != nil {
		delete(m.byName, name)
		m.mu.Unlock()
		os.RemoveAll(m.dir(rec.ID))
		unmake()
		return Container{}, fmt.Errorf("record container: %w", err)
	}
	m.byID[rec.ID] = e
	m.byName[name] = rec.ID
	m.mu.Unlock()
	m.log.Info("container created", "id", rec.ID, "name", name, "image", rec.Image)
	m.emitContainer(&rec, mevents.ActionCreate, nil)
	return rec, nil
}

// mergeConfig applies the image's defaults under the user's configuration.
func mergeConfig(cfg, img *ctypes.Config) *ctypes.Config {
	out := *cfg
	out.Labels = maps.Clone(cfg.Labels)
	if img == nil {
		return &out
	}
	env := slices.Clone(img.Env)
	for _, kv := range cfg.Env {
		key, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { k, _, _ := strings.Cut(e, "="); return k == key })
		env = append(env, kv)
	}
	out.Env = env
	if len(cfg.Entrypoint) == 0 {
		out.Entrypoint = img.Entrypoint
		if len(cfg.Cmd) == 0 {
			out.Cmd = img.Cmd
		}
	}
	if out.WorkingDir == "" {
		out.WorkingDir = img.WorkingDir
	}
	if out.User == "" {
		out.User = img.User
	}
	if out.StopSignal == "" {
		out.StopSignal = img.StopSignal
	}
	if len(img.ExposedPorts) > 0 {
		ports := maps.Clone(img.ExposedPorts)
		maps.Copy(ports, cfg.ExposedPorts)
		out.ExposedPorts = ports
	}
	return &out
}

// checkNetworking validates the network mode and endpoint settings as
// Docker does at create, and fills rec.Networks.
func (m *Manager) checkNetworking(rec *Container, nc *ntypes.NetworkingConfig) error {
	mode := rec.Host.NetworkMode
	asked := string(mode)
	if mode == "" || mode == modeDefault {
		mode = modeBridge
	}
	rec.Host.NetworkMode = mode
	var eps map[string]*ntypes.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	conflict := func(what string) error {
		return errdefs.ErrInvalidArgument.WithMessage("conflicting options: " + what)
	}
	switch {
	case strings.HasPrefix(string(mode), modeContainer):
		target := strings.TrimPrefix(string(mode), modeContainer)
		if target == "" {
			return errdefs.ErrInvalidArgument.WithMessage("invalid network mode: container: needs a container name or ID")
		}
		t, err := m.find(target)
		if err != nil {
			return err
		}
		rec.Host.NetworkMode = ctypes.NetworkMode(modeContainer + t.rec.ID)
		switch {
		case rec.Config.Hostname != "":
			return conflict("hostname and the network mode")
		case len(rec.Host.DNS) > 0:
			return conflict("dns and the network mode")
		case len(rec.Host.PortBindings) > 0 || rec.Host.PublishAllPorts:
			return conflict("port publishing and the container type network mode")
		case len(rec.Host.ExtraHosts) > 0:
			return conflict("custom host-to-IP mapping and the network mode")
		case len(eps) > 0:
			return network.ErrSharedNamespace
		}
		return nil
	case mode == modeHost:
		if len(eps) > 1 {
			return network.ErrHostNetwork
		}
		return nil
	}
	// Networks are recorded by name; the primary one, from the network
	// mode, first.
	primary, err := lookupLater(m.cfg.Networks, string(mode))
	if err != nil {
		return err
	}
	rec.Host.NetworkMode = ctypes.NetworkMode(primary.Name)
	if primary.HostNamespace() {
		rec.Host.NetworkMode = modeHost
		return nil
	}
	order := []string{primary.Name}
	settings := map[string]*ntypes.EndpointSettings{primary.Name: eps[asked]}
	for _, term := range slices.Sorted(maps.Keys(eps)) {
		if term == asked || term == modeDefault && asked == "" {
			settings[primary.Name] = eps[term]
			continue
		}
		n, err := lookupLater(m.cfg.Networks, term)
		if err != nil {
			return err
		}
		if _, dup := settings[n.Name]; !dup {
			order = append(order, n.Name)
		}
		if eps[term] != nil {
			settings[n.Name] = eps[term]
		}
	}
	if primary.Alone() && len(order) > 1 {
		return network.ErrNoneNetwork
	}
	for _, name := range order {
		ep := settings[name]
		if ep == nil {
			ep = &ntypes.EndpointSettings{}
		}
		rec.Networks = append(rec.Networks, NetworkAttachment{Network: name, Config: ep.Copy()})
	}
	return nil
}

// lookupLater finds a network for a create. One that does not exist is
// recorded by the name given: as with dockerd, the create stands and the
// start fails with "network … not found" (docker run then shows that,
// rather than taking a 404 at create for a missing image).
func lookupLater(nets *network.Controller, term string) (network.NetworkRef, error) {
	n, err := nets.LookupNetwork(term)
	if errdefs.IsNotFound(err) {
		return network.NetworkRef{Name: term}, nil
	}
	return n, err
}

// endpointOptions turns Docker's endpoint settings into what the controller
// takes.
func endpointOptions(ep *ntypes.EndpointSettings) network.EndpointOptions {
	var o network.EndpointOptions
	if ep == nil {
		return o
	}
	o.Aliases = ep.Aliases
	if len(ep.MacAddress) > 0 {
		o.MAC = ep.MacAddress.String()
	}
	if ep.IPAMConfig != nil {
		o.IPv4, o.IPv6 = ep.IPAMConfig.IPv4Address, ep.IPAMConfig.IPv6Address
	}
	return o
}

var names = struct{ adjectives, nouns []string }{
	adjectives: []string{"amber", "brave", "calm", "deft", "eager", "fair", "gentle", "hardy", "keen", "lucid", "merry", "nimble", "proud", "quiet", "rapid", "steady", "tidy", "vivid", "wise", "young"},
	nouns:      []string{"anchor", "bollard", "buoy", "cleat", "dock", "ferry", "galley", "harbor", "jetty", "keel", "lighthouse", "mooring", "pier", "quay", "rudder", "schooner", "tug", "wharf", "yawl", "hull"},
}

// freeName makes a Docker-style adjective_noun name that is not taken.
// Called with m.mu held.
func (m *Manager) freeName() string {
	for i := 0; ; i++ {
		b := make([]byte, 2)
		rand.Read(b)
		name := names.adjectives[int(b[0])%len(names.adjectives)] + "_" + names.nouns[int(b[1])%len(names.nouns)]
		if i > 10 {
			name += fmt.Sprint(i)
		}
		if _, taken := m.byName[name]; !taken {
			return name
		}
	}
}
