package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	mevents "github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/sys/signal"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/store"
)

// Start wires the container's networks and runs its process.
func (m *Manager) Start(ctx context.Context, term string) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	err = m.startLocked(ctx, e)
	// As dockerd, a container to be removed when it stops is removed when
	// it cannot start (docker run --rm leaves nothing behind).
	if err != nil && e.rec.Host.AutoRemove && !errdefs.IsNotModified(err) && !errdefs.IsConflict(err) {
		if rerr := m.Remove(context.Background(), e.rec.ID, true, true); rerr != nil && !errdefs.IsNotFound(rerr) {
			m.log.Warn("auto-remove after a failed start", "id", e.rec.ID, "err", rerr)
		}
	}
	return err
}

func (m *Manager) startLocked(ctx context.Context, e *entry) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.rec.State.Status {
	case ctypes.StateRunning, ctypes.StateRestarting:
		return errdefs.ErrNotModified.WithMessage("container already started")
	case ctypes.StateRemoving, ctypes.StateDead:
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s is marked for removal and cannot be started", e.rec.ID))
	}
	// dockerd checks the settings again at a start: records made before
	// the policy was checked may hold one it refuses.
	if err := validateRestartPolicy(e.rec.Host); err != nil {
		return err
	}
	return m.startAfresh(ctx, e)
}

// start runs the container; on failure it leaves nothing behind: no
// namespace, no interface, no address, no mount, no runc state. Called with
// e.mu held.
func (m *Manager) start(ctx context.Context, e *entry) (err error) {
	c := &e.rec
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := os.MkdirAll(m.runDir(c.ID), 0o710); err != nil {
		return err
	}
	netns, files, err := m.attachNetworks(c)
	if err != nil {
		return err
	}
	if ownsSandbox(c.Host.NetworkMode) {
		undo = append(undo, func() { m.releaseNetworks(c.ID) })
	}
	if err := m.writeFiles(c, files); err != nil {
		return err
	}
	rootfs, err := m.mountRootFS(c)
	if err != nil {
		return err
	}
	undo = append(undo, func() { m.unmountRootFS(c.ID) })
	mounts, err := m.mountVolumes(c)
	if err != nil {
		return err
	}
	undo = append(undo, func() { m.unmountVolumes(c.ID, c.Mounts) })
	if err := m.writeBundle(c, rootfs, netns, mounts); err != nil {
		return err
	}
	if err := m.spawnShim(c); err != nil {
		return err
	}
	undo = append(undo, func() {
		m.runc.kill(context.Background(), c.ID, syscall.SIGKILL, true)
		m.runc.delete(context.Background(), c.ID)
	})
	// Clients attached before the start get everything from the first byte.
	for _, p := range e.pending {
		m.connectAttach(c.ID, p)
	}
	e.pending = nil
	pid, err := shimClient{m.shimSocket(c.ID)}.start(ctx)
	if err != nil {
		return err
	}
	if err := m.setState(e, State{Status: ctypes.StateRunning, Pid: pid, StartedAt: time.Now().UTC()}); err != nil {
		return err
	}
	m.log.Info("container started", "id", c.ID, "name", c.Name, "pid", pid)
	m.emitContainer(c, mevents.ActionStart, nil)
	go m.monitor(e)
	return nil
}

// attachNetworks gives the container its network namespace: its own
// sandbox connected to its networks, the one of the container it shares, or
// none (host mode). It returns the namespace path and, for a sandbox of its
// own, the /etc files the controller made for it.
func (m *Manager) attachNetworks(c *Container) (string, *network.Files, error) {
	mode := string(c.Host.NetworkMode)
	switch {
	case mode == modeHost:
		c.LinkEnv, c.LinkHosts = nil, nil
		return "", nil, nil
	case strings.HasPrefix(mode, modeContainer):
		target, err := m.find(strings.TrimPrefix(mode, modeContainer))
		if err != nil {
			return "", nil, err
		}
		// Reading the target without its lock: its start and stop hold
		// their own, and a stale answer only fails this start.
		t := target.rec
		if !t.State.Running() {
			return "", nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("cannot join network of a non running container: %s", t.ID))
		}
		// As Docker: the container takes the name of the one whose network
		// it shares, as well as its /etc files.
		c.Config.Hostname, c.Config.Domainname = t.Config.Hostname, t.Config.Domainname
		if !ownsSandbox(t.Host.NetworkMode) {
			return "", nil, nil
		}
		sb, err := m.cfg.Networks.InspectSandbox(t.ID)
		if err != nil {
			return "", nil, err
		}
		return sb.Key, nil, nil
	}
	ports, err := portSpecs(c)
	if err != nil {
		return "", nil, err
	}
	dns, err := m.dnsConfig(c)
	if err != nil {
		return "", nil, err
	}
	opts := network.SandboxOptions{ID: c.ID, Name: c.Name, DNS: dns, Ports: ports}
	for _, att := range c.Networks {
		opts.Networks = append(opts.Networks, network.Attachment{Network: att.Network, Endpoint: endpointOptions(att.Config)})
	}
	sb, err := m.cfg.Networks.CreateSandbox(opts)
	if err != nil {
		return "", nil, err
	}
	return sb.Key, sb.Files, nil
}

// dnsConfig is what the controller makes the container's names, /etc
// files and name service from. Legacy links on the default bridge are
// resolved here, into hosts lines and environment variables.
func (m *Manager) dnsConfig(c *Container) (*network.DNSConfig, error) {
	c.LinkEnv, c.LinkHosts = nil, nil
	if string(c.Host.NetworkMode) == modeBridge && len(c.Host.Links) > 0 {
		if err := m.legacyLinks(c); err != nil {
			return nil, err
		}
	}
	cfg := &network.DNSConfig{
		Hostname: c.Config.Hostname, Domainname: c.Config.Domainname,
		ExtraHosts: c.Host.ExtraHosts, LinkHosts: c.LinkHosts,
		Servers: c.Host.DNS, Search: c.Host.DNSSearch, Options: c.Host.DNSOptions,
	}
	// As Docker's embedded DNS: for containers on a user-defined network.
	for _, att := range c.Networks {
		if !network.IsPredefined(att.Network) {
			cfg.Resolver = true
		}
	}
	cfg.Links = resolverLinks(c)
	return cfg, nil
}

// releaseNetworks gives back the container's sandbox: its interfaces go,
// its addresses return to the pools.
func (m *Manager) releaseNetworks(id string) {
	// Static addresses stay reserved for the container's next start.
	if err := m.cfg.Networks.DeleteSandbox(id, true); err != nil && !errdefs.IsNotFound(err) {
		m.log.Warn("release the container's networks", "id", id, "err", err)
	}
}

// writeFiles writes the container's hostname, hosts and resolv.conf: those
// the controller made for its sandbox, or, in host mode, the host's.
func (m *Manager) writeFiles(c *Container, files *network.Files) error {
	mode := string(c.Host.NetworkMode)
	if strings.HasPrefix(mode, modeContainer) {
		// The files are the shared container's own.
		return nil
	}
	hostname := c.Config.Hostname
	if mode == modeHost {
		hostname, _ = os.Hostname()
		b, _ := os.ReadFile("/etc/hosts")
		files = &network.Files{
			Hosts:      string(b),
			ResolvConf: m.cfg.Networks.ResolvConf(&network.DNSConfig{Servers: c.Host.DNS, Search: c.Host.DNSSearch, Options: c.Host.DNSOptions}),
		}
	}
	for path, content := range map[string]string{
		m.hostnamePath(c.ID): hostname + "\n", m.hostsPath(c.ID): files.Hosts, m.resolvPath(c.ID): files.ResolvConf,
	} {
		if err := writeFile(path, content); err != nil {
			return err
		}
	}
	return nil
}

// legacyLinks resolves the container's --link targets on the default
// bridge into /etc/hosts lines and environment variables.
func (m *Manager) legacyLinks(c *Container) error {
	links, err := m.links(c, true)
	if err != nil {
		return err
	}
	for _, l := range links {
		t := l.target.rec
		sb, err := m.cfg.Networks.InspectSandbox(t.ID)
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("Cannot link to /%s, as it does not belong to the default network", t.Name))
		}
		var ip netip.Addr
		for _, ep := range sb.Endpoints {
			if ep.NetworkName == modeBridge && ep.IPv4.IsValid() {
				ip = ep.IPv4.Addr()
			}
		}
		if !ip.IsValid() {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("Cannot link to /%s, as it does not belong to the default network", t.Name))
		}
		c.LinkHosts = append(c.LinkHosts, fmt.Sprintf("%s\t%s %s %s", ip, l.alias, t.Config.Hostname, t.Name))
		c.LinkEnv = append(c.LinkEnv, linkEnv(c.Name, l.alias, t, ip)...)
	}
	return nil
}

// filesOf is where a container's /etc files come from: its own, or those of
// the container whose network it shares.
func (m *Manager) filesOf(c *Container) string {
	mode := string(c.Host.NetworkMode)
	if strings.HasPrefix(mode, modeContainer) {
		return strings.TrimPrefix(mode, modeContainer)
	}
	return c.ID
}

// writeBundle writes the OCI bundle's config.json.
func (m *Manager) writeBundle(c *Container, rootfs, netns string, mounts []specs.Mount) error {
	uid, gid, err := lookupUser(rootfs, c.Config.User)
	if err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	env := append(slices.Clone(c.Config.Env), c.LinkEnv...)
	if !hasEnv(env, "PATH") {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !hasEnv(env, "HOSTNAME") && c.Config.Hostname != "" {
		env = append(env, "HOSTNAME="+c.Config.Hostname)
	}
	cwd := c.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	filesID := m.filesOf(c)
	spec := buildSpec(specInput{
		Args: append([]string{c.Path}, c.Args...), Env: env, Cwd: cwd,
		Hostname: c.Config.Hostname, RootFS: rootfs, NetNS: netns,
		CgroupsPath: filepath.Join(m.cfg.CgroupParent, c.ID),
		Files: map[string]string{
			"/etc/hosts": m.hostsPath(filesID), "/etc/resolv.conf": m.resolvPath(filesID), "/etc/hostname": m.hostnamePath(filesID),
		},
	})
	spec.Process.User = specs.User{UID: uid, GID: gid}
	spec.Mounts = append(spec.Mounts, mounts...)
	if c.Config.Tty {
		spec.Process.Terminal = true
		if h, w := c.Host.ConsoleSize[0], c.Host.ConsoleSize[1]; h > 0 && w > 0 {
			spec.Process.ConsoleSize = &specs.Box{Height: h, Width: w}
		}
		if !hasEnv(spec.Process.Env, "TERM") {
			spec.Process.Env = append(spec.Process.Env, "TERM=xterm")
		}
	}
	if string(c.Host.NetworkMode) == modeHost {
		// Host mode shares the host's UTS namespace, so no hostname.
		spec.Hostname = ""
		spec.Linux.Namespaces = withoutNamespace(spec.Linux.Namespaces, specs.UTSNamespace)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(m.runDir(c.ID), "config.json"), b, 0o600)
}

func withoutNamespace(nss []specs.LinuxNamespace, t specs.LinuxNamespaceType) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	for _, ns := range nss {
		if ns.Type != t {
			out = append(out, ns)
		}
	}
	return out
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// Paths of the shim's files in the container's run-time directory.
// The shim's socket sits apart from the run-time directory, whose path,
// long with the full ID, would outgrow what a unix socket address holds.
func (m *Manager) shimSocket(id string) string {
	return filepath.Join(m.cfg.ExecRoot, "shim", id[:16]+".sock")
}
func (m *Manager) exitFile(id string) string { return filepath.Join(m.runDir(id), "exit.json") }

// consoleSocket is where runc hands a container's terminal to its shim;
// short like the shim's socket.
func (m *Manager) consoleSocket(id string) string {
	return filepath.Join(m.cfg.ExecRoot, "shim", id[:16]+".console")
}
func (m *Manager) pidFile(id string) string { return filepath.Join(m.runDir(id), "init.pid") }

// spawnShim starts the container's shim and returns once it listens.
func (m *Manager) spawnShim(c *Container) error {
	os.Remove(m.exitFile(c.ID))
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	args := []string{"shim", "--id", c.ID, "--bundle", m.runDir(c.ID), "--runc", m.runc.bin, "--runc-root", m.runc.root,
		"--log", m.LogPath(c.ID), "--socket", m.shimSocket(c.ID), "--exit-file", m.exitFile(c.ID), "--pid-file", m.pidFile(c.ID)}
	if c.Config.OpenStdin {
		args = append(args, "--stdin")
		if c.Config.StdinOnce {
			args = append(args, "--stdin-once")
		}
	}
	if c.Config.Tty {
		args = append(args, "--tty", "--console-socket", m.consoleSocket(c.ID))
	}
	cmd := exec.Command(m.cfg.Self, args...)
	cmd.ExtraFiles = []*os.File{readyW}
	// A session of its own: the shim must not die with berthd or get
	// berthd's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return fmt.Errorf("start the shim: %w", err)
	}
	readyW.Close()
	go cmd.Wait()
	var ready shimReady
	if err := json.NewDecoder(readyR).Decode(&ready); err != nil {
		return fmt.Errorf("the shim ended before it was ready: %w", err)
	}
	if ready.Error != "" {
		return errors.New(ready.Error)
	}
	return nil
}

// monitor waits for the container to end and records it.
func (m *Manager) monitor(e *entry) {
	id := e.rec.ID
	st, err := shimClient{m.shimSocket(id)}.wait(context.Background())
	if err != nil {
		var ok bool
		if st, ok = readExitFile(m.exitFile(id)); !ok {
			st = ExitStatus{ExitCode: 255, FinishedAt: time.Now().UTC()}
			m.log.Error("lost the container's shim", "id", id, "err", err)
		}
	}
	m.exited(e, st)
}

// exited records the end of a container's process and releases what it
// held while running. Like Docker, its endpoints go: addresses return to
// the pools and come back (static ones as asked) on the next start. When
// its restart policy wants it back, the container is restarting until its
// backoff is over, then started again.
func (m *Manager) exited(e *entry, st ExitStatus) {
	e.mu.Lock()
	if e.rec.State.Status != ctypes.StateRunning {
		e.mu.Unlock()
		return
	}
	c := &e.rec
	// As dockerd: die, then what the end releases (network disconnect,
	// volume unmount), then the state that wakes Stop and Wait.
	m.emitContainer(c, mevents.ActionDie, map[string]string{"exitCode": strconv.Itoa(st.ExitCode)})
	m.cleanupRuntime(c)
	next := State{Status: ctypes.StateExited, ExitCode: st.ExitCode, StartedAt: c.State.StartedAt, FinishedAt: st.FinishedAt}
	// Not while berthd shuts down: the next one starts what the policy
	// wants (startOnBoot).
	restart := !e.exitOnNext && !m.closed.Load() && shouldRestart(c.Host.RestartPolicy, st.ExitCode, c.ManuallyStopped, c.RestartCount)
	if restart {
		c.RestartCount++
		e.backoff = restartDelay(e.backoff, st.FinishedAt.Sub(c.State.StartedAt))
		next.Status = ctypes.StateRestarting
	}
	if err := m.setState(e, next); err != nil {
		m.log.Error("record the container's exit", "id", c.ID, "name", c.Name, "err", err)
	}
	if restart {
		m.log.Info("container exited; its restart policy starts it again", "id", c.ID, "name", c.Name, "code", st.ExitCode,
			"policy", c.Host.RestartPolicy.Name, "restarts", c.RestartCount, "after", e.backoff)
		m.scheduleRestart(e)
		e.mu.Unlock()
		return
	}
	m.log.Info("container exited", "id", c.ID, "name", c.Name, "code", st.ExitCode)
	autoRemove := c.Host.AutoRemove
	e.mu.Unlock()
	if autoRemove {
		if err := m.Remove(context.Background(), e.rec.ID, true, true); err != nil && !errdefs.IsNotFound(err) {
			m.log.Warn("auto-remove", "id", e.rec.ID, "err", err)
		}
	}
}

// cleanupRuntime removes a stopped container's runc state, mount and
// sandbox.
func (m *Manager) cleanupRuntime(c *Container) {
	if err := m.runc.delete(context.Background(), c.ID); err != nil {
		m.log.Warn("runc delete", "id", c.ID, "err", err)
	}
	if err := m.unmountRootFS(c.ID); err != nil {
		m.log.Warn("unmount", "id", c.ID, "err", err)
	}
	m.unmountVolumes(c.ID, c.Mounts)
	if ownsSandbox(c.Host.NetworkMode) {
		m.releaseNetworks(c.ID)
	}
}

// Kill sends a signal to the container's processes.
func (m *Manager) Kill(ctx context.Context, term, sig string) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	s := syscall.SIGKILL
	if sig != "" {
		if s, err = signal.ParseSignal(sig); err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.rec.State.Running() && !e.rec.State.Restarting() {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("Container %s is not running", e.rec.ID))
	}
	// As dockerd: a kill is a stop by hand, and most signals call off the
	// restart policy for the process's end.
	if stopsRestarts(e.rec.Config.StopSignal, s) {
		e.exitOnNext = true
	}
	m.stoppedByHand(e)
	if e.rec.State.Restarting() {
		// Nothing runs to get the signal; the restart is what is called
		// off, if the signal does that.
		if e.exitOnNext {
			m.cancelRestart(e)
		}
		return nil
	}
	// Told before the signal goes, so that the event comes before the
	// die it may cause.
	m.emitKill(&e.rec, s)
	return m.runc.kill(ctx, e.rec.ID, s, false)
}

// stoppedByHand records that the container was stopped or killed through
// the API. Called with e.mu held.
func (m *Manager) stoppedByHand(e *entry) {
	if e.rec.ManuallyStopped {
		return
	}
	e.rec.ManuallyStopped = true
	if err := m.save(e); err != nil {
		m.log.Warn("record the stop by hand", "id", e.rec.ID, "err", err)
	}
}

// emitKill tells the event log a signal went to the container, with its
// number as dockerd gives it.
func (m *Manager) emitKill(c *Container, s syscall.Signal) {
	m.emitContainer(c, mevents.ActionKill, map[string]string{"signal": strconv.Itoa(int(s))})
}

// Stop sends the stop signal, waits up to timeout seconds (nil: the
// container's own or 10) and then kills the container.
func (m *Manager) Stop(ctx context.Context, term string, timeout *int, sig string) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if !e.rec.State.Running() && !e.rec.State.Restarting() {
		e.mu.Unlock()
		return errdefs.ErrNotModified.WithMessage("container already stopped")
	}
	if sig == "" {
		sig = e.rec.Config.StopSignal
	}
	s := syscall.SIGTERM
	if sig != "" {
		if s, err = signal.ParseSignal(sig); err != nil {
			e.mu.Unlock()
			return errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
	}
	// The process's end that follows is not one the policy restarts.
	e.exitOnNext = true
	m.stoppedByHand(e)
	if m.cancelRestart(e) {
		// It was waiting for its restart: nothing runs to signal.
		c := e.rec
		e.mu.Unlock()
		m.emitContainer(&c, mevents.ActionStop, nil)
		return nil
	}
	c := e.rec
	changed := e.changed
	e.mu.Unlock()
	wait := 10
	if c.Config.StopTimeout != nil {
		wait = *c.Config.StopTimeout
	}
	if timeout != nil {
		wait = *timeout
	}
	if wait != 0 {
		m.emitKill(&c, s)
		m.runc.kill(ctx, c.ID, s, false)
	}
	if wait < 0 || m.waitChange(ctx, changed, time.Duration(wait)*time.Second) {
		if wait < 0 {
			m.waitChange(ctx, changed, -1)
		}
		m.emitContainer(&c, mevents.ActionStop, nil)
		return nil
	}
	m.emitKill(&c, syscall.SIGKILL)
	m.runc.kill(ctx, c.ID, syscall.SIGKILL, true)
	if !m.waitChange(ctx, changed, 30*time.Second) {
		return fmt.Errorf("container %s did not end after SIGKILL", c.ID)
	}
	m.emitContainer(&c, mevents.ActionStop, nil)
	return nil
}

// waitChange waits for changed to close, for at most d (d < 0: no limit).
func (m *Manager) waitChange(ctx context.Context, changed chan struct{}, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-changed:
		return true
	case <-timeout:
		return false
	case <-ctx.Done():
		return false
	}
}

// Restart stops the container if it runs and starts it again.
func (m *Manager) Restart(ctx context.Context, term string, timeout *int, sig string) error {
	if err := m.Stop(ctx, term, timeout, sig); err != nil && !errdefs.IsNotModified(err) {
		return err
	}
	return m.Start(ctx, term)
}

// Wait blocks until the container meets the condition and returns its
// exit code: not-running (the default), next-exit or removed.
func (m *Manager) Wait(ctx context.Context, term string, cond ctypes.WaitCondition) (int, error) {
	wait, err := m.Waiter(term, cond)
	if err != nil {
		return 0, err
	}
	return wait(ctx)
}

// Waiter takes the container's state now and returns what waits from it
// for the condition: a caller that tells its client the wait has begun
// (the API's header) before it blocks misses no exit in between.
func (m *Manager) Waiter(term string, cond ctypes.WaitCondition) (func(context.Context) (int, error), error) {
	e, err := m.find(term)
	if err != nil {
		return nil, err
	}
	switch cond {
	case "", ctypes.WaitConditionNotRunning, ctypes.WaitConditionNextExit, ctypes.WaitConditionRemoved:
	default:
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid condition: %q", cond))
	}
	e.mu.Lock()
	// A restarting container counts as running, as in dockerd: its next
	// end is what is waited for.
	running := e.rec.State.Running() || e.rec.State.Restarting()
	changed := e.changed
	e.mu.Unlock()
	return func(ctx context.Context) (int, error) { return m.waitFrom(ctx, e, cond, running, changed) }, nil
}

// waitFrom waits for cond from a state taken earlier: whether the
// container ran then, and the channel closed at its next change.
func (m *Manager) waitFrom(ctx context.Context, e *entry, cond ctypes.WaitCondition, running bool, changed chan struct{}) (int, error) {
	switch cond {
	case "", ctypes.WaitConditionNotRunning:
		if !running {
			break
		}
		fallthrough
	case ctypes.WaitConditionNextExit:
		for {
			select {
			case <-changed:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			e.mu.Lock()
			// An end the policy restarts is an exit too, as in dockerd.
			done := e.rec.State.Status == ctypes.StateExited || e.rec.State.Restarting()
			changed = e.changed
			e.mu.Unlock()
			if done {
				break
			}
		}
	case ctypes.WaitConditionRemoved:
		select {
		case <-e.removed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	default:
		return 0, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid condition: %q", cond))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rec.State.ExitCode, nil
}

// Remove deletes a stopped container; force kills a running one first,
// volumes removes its anonymous volumes no other container refers to.
func (m *Manager) Remove(ctx context.Context, term string, force, volumes bool) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	status := e.rec.State.Status
	if (status == ctypes.StateRunning || status == ctypes.StateRestarting) && !force {
		e.mu.Unlock()
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf(
			"You cannot remove a %s container %s. Stop the container before attempting removal or force remove", status, e.rec.ID))
	}
	if status == ctypes.StateRestarting {
		// As dockerd's kill of it: the restart waiting for its delay is
		// called off, so nothing starts the container once it is gone.
		e.exitOnNext = true
		m.cancelRestart(e)
	}
	e.mu.Unlock()
	if status == ctypes.StateRunning {
		zero := 0
		if err := m.Stop(ctx, e.rec.ID, &zero, "KILL"); err != nil && !errdefs.IsNotModified(err) {
			return err
		}
	}
	gone := false
	// After the container's lock is released: the callback looks at the
	// other containers.
	defer func() {
		if gone && m.cfg.Removed != nil {
			m.cfg.Removed()
		}
	}()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rec.State.Status == ctypes.StateRemoving {
		return nil
	}
	if e.rec.State.Running() || e.rec.State.Restarting() {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s started again while it was being removed", e.rec.ID))
	}
	was := e.rec.State.Status
	e.rec.State.Status = ctypes.StateRemoving
	if err := m.cfg.Store.Update(func(tx store.Tx) error { return tx.Delete(bucketContainers, e.rec.ID) }); err != nil {
		e.rec.State.Status = was
		return fmt.Errorf("remove container %s: %w", e.rec.ID, err)
	}
	m.runc.delete(ctx, e.rec.ID)
	m.unmountRootFS(e.rec.ID)
	if err := m.cfg.Networks.ReleaseReservations(e.rec.ID); err != nil {
		m.log.Warn("release reserved addresses", "id", e.rec.ID, "err", err)
	}
	os.RemoveAll(m.runDir(e.rec.ID))
	os.RemoveAll(m.dir(e.rec.ID))
	m.mu.Lock()
	delete(m.byID, e.rec.ID)
	delete(m.byName, e.rec.Name)
	m.forgetExecs(time.Now())
	m.mu.Unlock()
	close(e.removed)
	close(e.changed)
	e.changed = make(chan struct{})
	for _, p := range e.pending {
		p.conn.Close()
		close(p.done)
	}
	e.pending = nil
	m.log.Info("container removed", "id", e.rec.ID, "name", e.rec.Name)
	m.emitContainer(&e.rec, mevents.ActionDestroy, nil)
	if volumes {
		m.removeVolumes(&e.rec)
	}
	gone = true
	return nil
}

// restore adopts a container after berthd (re)starts: a live shim means the
// container runs on, or was being started when the daemon died; an exit
// file means it ended while berthd was away.
func (m *Manager) restore(e *entry) {
	c := &e.rec
	shim := shimClient{m.shimSocket(c.ID)}
	ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
	defer cancel()
	st, err := shim.settledState(ctx)
	switch {
	case err == nil && st.Phase == phaseWaiting:
		// The daemon died between making the shim and asking it to start:
		// nothing ran. The start is rolled back as a failed one is, and
		// the container keeps the state it had before it.
		if err := shim.abort(ctx); err != nil {
			m.log.Warn("give up an interrupted start", "id", c.ID, "err", err)
		}
		m.cleanupRuntime(c)
		m.log.Warn("a start interrupted by a crash was rolled back", "id", c.ID, "name", c.Name, "state", c.State.Status)
		return
	case err == nil && (st.Phase == phaseRunning || st.Phase == phaseExited):
		if !c.State.Running() {
			// Started, but the daemon died before it recorded so.
			c.State = State{Status: ctypes.StateRunning, Pid: st.Pid, StartedAt: time.Now().UTC()}
			m.save(e)
			m.log.Info("a start interrupted by a crash had finished", "id", c.ID, "name", c.Name, "pid", st.Pid)
		}
		for _, mt := range c.Mounts {
			if mt.Type == mount.TypeVolume {
				m.cfg.Volumes.Adopt(mt.Name, c.ID)
			}
		}
		if st.Phase == phaseExited {
			// It ended while berthd was away: recorded before berthd
			// serves, from the status its shim kept.
			m.monitor(e)
			return
		}
		m.log.Info("adopted running container", "id", c.ID, "name", c.Name, "pid", c.State.Pid)
		go m.monitor(e)
		return
	case err == nil:
		m.log.Warn("the shim is still starting the container", "id", c.ID, "phase", st.Phase)
	}
	if c.State.Running() {
		st, ok := readExitFile(m.exitFile(c.ID))
		if !ok {
			// Neither shim nor exit status: the host rebooted, or the shim
			// was killed. Whatever runs of the container is beyond control.
			m.runc.kill(context.Background(), c.ID, syscall.SIGKILL, true)
			st = ExitStatus{ExitCode: 255, FinishedAt: time.Now().UTC()}
		}
		// Before berthd serves: it must not show running, even for a
		// moment, a container whose process is gone.
		m.exited(e, st)
		return
	}
	// Not running: make sure nothing of a run is left.
	m.cleanupRuntime(c)
}

// restoreTimeout bounds how long a restart waits for one shim: runc's own
// start of a container takes well under it.
const restoreTimeout = 30 * time.Second

// pendingAttach is a client attached before the container started.
type pendingAttach struct {
	conn                  io.ReadWriteCloser
	stdin, stdout, stderr bool
	// detach ends the attach when the client types it.
	detach []byte
	done   chan struct{}
}

// AttachOptions are what a client attaches to.
type AttachOptions struct {
	Stdin, Stdout, Stderr bool
	// DetachKeys end the attach, not the container, when they come on
	// stdin (ParseDetachKeys); nil for none.
	DetachKeys []byte
}

// Attach connects a client's stream to the container: output as Docker's
// multiplexed stream (raw with a terminal), input to its stdin. Attaching
// to a created container waits for its start. It returns when the stream
// ends or the client detaches.
func (m *Manager) Attach(ctx context.Context, term string, conn io.ReadWriteCloser, o AttachOptions) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	p := &pendingAttach{conn: conn, stdin: o.Stdin, stdout: o.Stdout, stderr: o.Stderr, detach: o.DetachKeys, done: make(chan struct{})}
	e.mu.Lock()
	switch e.rec.State.Status {
	case ctypes.StateRunning:
		e.mu.Unlock()
		m.connectAttach(e.rec.ID, p)
	case ctypes.StateCreated, ctypes.StateExited:
		e.pending = append(e.pending, p)
		e.mu.Unlock()
	case ctypes.StateRestarting:
		e.mu.Unlock()
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s is restarting, wait until the container is running", term))
	default:
		e.mu.Unlock()
		return errdefs.ErrConflict.WithMessage("You cannot attach to a stopped container, start it first")
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	case <-e.removed:
		// A removal comes after the process's end (--rm), maybe before
		// the last of its output got through to the client.
		t := time.NewTimer(attachDrain)
		defer t.Stop()
		select {
		case <-p.done:
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return nil
}

// attachDrain bounds how long an attached client's stream may go on after
// the container was removed: the shim's end closes it well before.
const attachDrain = 5 * time.Second

// connectAttach joins a client's stream to the shim's.
func (m *Manager) connectAttach(id string, p *pendingAttach) {
	sc, err := shimClient{m.shimSocket(id)}.dial(context.Background(), shimRequest{Op: "attach", Stdin: p.stdin, Stdout: p.stdout, Stderr: p.stderr})
	if err != nil {
		close(p.done)
		return
	}
	go func() {
		if copyUntilDetach(sc, p.conn, p.detach) {
			// The client is gone from the container, which goes on.
			sc.Close()
			return
		}
		if cw, ok := sc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	go func() {
		io.Copy(p.conn, sc)
		sc.Close()
		close(p.done)
	}()
}

// Resize sets the size of a running container's terminal; a container
// without one has nothing to resize.
func (m *Manager) Resize(term string, height, width uint16) error {
	e, err := m.find(term)
	if err != nil {
		return err
	}
	e.mu.Lock()
	c := e.rec
	e.mu.Unlock()
	if !c.State.Running() {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("Container %s is not running", c.ID))
	}
	if !c.Config.Tty {
		return nil
	}
	var answer shimReady
	if err := (shimClient{m.shimSocket(c.ID)}).ask(context.Background(), shimRequest{Op: "resize", Height: height, Width: width}, &answer); err != nil {
		return err
	}
	if answer.Error != "" {
		return errors.New(answer.Error)
	}
	return nil
}
