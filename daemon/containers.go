package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	ctypes "github.com/moby/moby/api/types/container"
	ntypes "github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/container"
	bnet "github.com/berth-net/berth/network"
)

func (d *Daemon) containerRoutes(mux *http.ServeMux) {
	d.handle(mux, "POST /containers/create", d.createContainer)
	d.handle(mux, "GET /containers/json", d.listContainers)
	d.handle(mux, "GET /containers/{id}/json", d.inspectContainer)
	d.handle(mux, "POST /containers/{id}/start", d.startContainer)
	d.handle(mux, "POST /containers/{id}/stop", d.stopContainer)
	d.handle(mux, "POST /containers/{id}/restart", d.restartContainer)
	d.handle(mux, "POST /containers/{id}/kill", d.killContainer)
	d.handle(mux, "POST /containers/{id}/wait", d.waitContainer)
	d.handle(mux, "DELETE /containers/{id}", d.removeContainer)
	d.handle(mux, "DELETE /containers/{id}/{alias}", d.removeLink)
	d.handle(mux, "POST /containers/{id}/rename", d.renameContainer)
	d.handle(mux, "POST /containers/prune", d.pruneContainers)
	d.handle(mux, "GET /containers/{id}/logs", d.containerLogs)
	d.handle(mux, "POST /containers/{id}/attach", d.attachContainer)
	d.handle(mux, "POST /containers/{id}/resize", d.resizeContainer)
	d.handle(mux, "POST /containers/{id}/exec", d.createExec)
	d.handle(mux, "POST /exec/{id}/start", d.startExec)
	d.handle(mux, "GET /exec/{id}/json", d.inspectExec)
	d.handle(mux, "POST /exec/{id}/resize", d.resizeExec)
	d.handle(mux, "POST /networks/{id}/connect", d.connectContainer)
	d.handle(mux, "POST /networks/{id}/disconnect", d.disconnectContainer)
}

func (d *Daemon) createContainer(w http.ResponseWriter, r *http.Request) error {
	var body json.RawMessage
	if err := readJSON(w, r, &body); err != nil {
		return err
	}
	var req ctypes.CreateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	if legacyNetworking(r) {
		if err := legacyCreate(body, &req); err != nil {
			return err
		}
	}
	c, err := d.containers.Create(container.CreateOptions{
		Name: r.URL.Query().Get("name"), Config: req.Config, Host: req.HostConfig, Networking: req.NetworkingConfig,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ctypes.CreateResponse{ID: c.ID, Warnings: []string{}})
}

func (d *Daemon) startContainer(w http.ResponseWriter, r *http.Request) error {
	if err := d.containers.Start(r.Context(), r.PathValue("id")); err != nil {
		if errdefs.IsNotModified(err) {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// timeoutParam reads the stop timeout (`t`, or `timeout` from old clients).
func timeoutParam(r *http.Request) (*int, error) {
	v := r.URL.Query().Get("t")
	if v == "" {
		v = r.URL.Query().Get("timeout")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid value for t: %s", v))
	}
	return &n, nil
}

func (d *Daemon) stopContainer(w http.ResponseWriter, r *http.Request) error {
	t, err := timeoutParam(r)
	if err != nil {
		return err
	}
	if err := d.containers.Stop(r.Context(), r.PathValue("id"), t, r.URL.Query().Get("signal")); err != nil {
		if errdefs.IsNotModified(err) {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) restartContainer(w http.ResponseWriter, r *http.Request) error {
	t, err := timeoutParam(r)
	if err != nil {
		return err
	}
	if err := d.containers.Restart(r.Context(), r.PathValue("id"), t, r.URL.Query().Get("signal")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) killContainer(w http.ResponseWriter, r *http.Request) error {
	if err := d.containers.Kill(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// waitContainer answers at once with the status line, so the client knows
// it waits, and with the body when the condition is met.
func (d *Daemon) waitContainer(w http.ResponseWriter, r *http.Request) error {
	// The state is taken before the header tells the client the wait has
	// begun: a client that starts the container then (docker run) may see
	// it end before this goroutine runs again.
	wait, err := d.containers.Waiter(r.PathValue("id"), ctypes.WaitCondition(r.URL.Query().Get("condition")))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	code, err := wait(r.Context())
	resp := ctypes.WaitResponse{StatusCode: int64(code)}
	if err != nil {
		resp.Error = &ctypes.WaitExitError{Message: err.Error()}
	}
	return json.NewEncoder(w).Encode(resp)
}

func (d *Daemon) removeContainer(w http.ResponseWriter, r *http.Request) error {
	if boolValue(r, "link") {
		return errdefs.ErrInvalidArgument.WithMessage("Conflict, cannot remove the default link name of the container")
	}
	if err := d.containers.Remove(r.Context(), r.PathValue("id"), boolValue(r, "force"), boolValue(r, "v")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeLink takes back a link, DELETE /containers/{parent}/{alias}?link=1.
func (d *Daemon) removeLink(w http.ResponseWriter, r *http.Request) error {
	if !boolValue(r, "link") {
		return errdefs.ErrNotFound.WithMessage("page not found")
	}
	if err := d.containers.RemoveLink(r.PathValue("id"), r.PathValue("alias")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) renameContainer(w http.ResponseWriter, r *http.Request) error {
	if err := d.containers.Rename(r.PathValue("id"), r.URL.Query().Get("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// terminalSize reads a resize's h and w.
func terminalSize(r *http.Request) (uint16, uint16, error) {
	var size [2]uint16
	for i, key := range []string{"h", "w"} {
		n, err := strconv.ParseUint(r.URL.Query().Get(key), 10, 16)
		if err != nil {
			return 0, 0, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid value for %s: %q", key, r.URL.Query().Get(key)))
		}
		size[i] = uint16(n)
	}
	return size[0], size[1], nil
}

func (d *Daemon) resizeContainer(w http.ResponseWriter, r *http.Request) error {
	h, wd, err := terminalSize(r)
	if err != nil {
		return err
	}
	if err := d.containers.Resize(r.PathValue("id"), h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (d *Daemon) resizeExec(w http.ResponseWriter, r *http.Request) error {
	h, wd, err := terminalSize(r)
	if err != nil {
		return err
	}
	if err := d.containers.ExecResize(r.PathValue("id"), h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// Content types of streams: Docker's multiplexed frames, or, for a
// terminal, its bytes as they are.
const (
	multiplexedStream = "application/vnd.docker.multiplexed-stream"
	rawStream         = "application/vnd.docker.raw-stream"
)

func streamType(tty bool) string {
	if tty {
		return rawStream
	}
	return multiplexedStream
}

var containerFilters = []string{"id", "name", "status", "network", "label", "ancestor", "exited"}

func (d *Daemon) listContainers(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), containerFilters...)
	if err != nil {
		return err
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	// As dockerd: a limit counts stopped containers too.
	all := boolValue(r, "all") || limit > 0
	out := []ctypes.Summary{}
	for _, c := range d.containers.List() {
		// A container waiting for its restart is listed as running, as
		// by dockerd.
		if !all && !c.State.Running() && !c.State.Restarting() && len(f.get("status")) == 0 {
			continue
		}
		if !matchContainer(f, c) {
			continue
		}
		out = append(out, d.summary(c))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func matchContainer(f filters, c container.Container) bool {
	if !f.any("id", func(v string) bool { return strings.HasPrefix(c.ID, v) }) ||
		!f.match("name", c.Name) && !f.match("name", "/"+c.Name) ||
		!f.exact("status", string(c.State.Status)) ||
		!f.exact("exited", strconv.Itoa(c.State.ExitCode)) || (len(f.get("exited")) > 0 && c.State.Status != ctypes.StateExited) ||
		!f.exact("ancestor", c.Image) && !f.exact("ancestor", c.ImageID) ||
		!f.labels("label", c.Config.Labels) {
		return false
	}
	return f.any("network", func(v string) bool {
		for _, n := range c.Networks {
			if n.Network == v {
				return true
			}
		}
		return string(c.Host.NetworkMode) == v
	})
}

func (d *Daemon) summary(c container.Container) ctypes.Summary {
	s := ctypes.Summary{
		ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Image, ImageID: c.ImageID,
		Command: commandLine(c.Path, c.Args), Created: c.Created.Unix(),
		Ports: d.portSummaries(c), Labels: c.Config.Labels, State: c.State.Status,
		Status: statusText(c.State), Mounts: c.MountPoints(),
		NetworkSettings: &ctypes.NetworkSettingsSummary{Networks: d.endpointSettings(c)},
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.HostConfig.NetworkMode = string(c.Host.NetworkMode)
	return s
}

// commandLine is Docker's Command field: path and arguments joined by
// spaces, as dockerd does (clients quote the whole for display).
func commandLine(path string, args []string) string {
	return strings.Join(append([]string{path}, args...), " ")
}

// statusText is Docker's STATUS column.
func statusText(s container.State) string {
	switch s.Status {
	case ctypes.StateRunning:
		return "Up " + units.HumanDuration(time.Since(s.StartedAt))
	case ctypes.StateExited:
		if s.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", s.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, units.HumanDuration(time.Since(s.FinishedAt)))
	case ctypes.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, units.HumanDuration(time.Since(s.FinishedAt)))
	case ctypes.StateCreated:
		return "Created"
	case ctypes.StateRemoving:
		return "Removal In Progress"
	}
	return string(s.Status)
}

// endpointSettings is the NetworkSettings.Networks of a container: the
// live endpoints of a running one, what was asked for otherwise.
func (d *Daemon) endpointSettings(c container.Container) map[string]*ntypes.EndpointSettings {
	out := map[string]*ntypes.EndpointSettings{}
	if strings.HasPrefix(string(c.Host.NetworkMode), "container:") {
		return out
	}
	if string(c.Host.NetworkMode) == bnet.NameHost {
		if n, err := d.ctrl.LookupNetwork(bnet.NameHost); err == nil {
			out[bnet.NameHost] = &ntypes.EndpointSettings{NetworkID: n.ID}
		}
		return out
	}
	live := map[string]bnet.EndpointDetail{}
	if sb, ok := d.containers.Sandbox(c); ok {
		for _, ep := range sb.Endpoints {
			live[ep.NetworkName] = ep
		}
	}
	for _, att := range c.Networks {
		var s *ntypes.EndpointSettings
		if ep, ok := live[att.Network]; ok {
			s = endpointSettings(ep)
		} else {
			s = att.Config.Copy()
			if s == nil {
				s = &ntypes.EndpointSettings{}
			}
			if n, err := d.ctrl.LookupNetwork(att.Network); err == nil {
				s.NetworkID = n.ID
			}
		}
		if att.Config != nil {
			s.IPAMConfig = att.Config.IPAMConfig
			s.Aliases = att.Config.Aliases
			s.Links = att.Config.Links
			s.DriverOpts = att.Config.DriverOpts
		}
		out[att.Network] = s
	}
	return out
}

func dockerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (d *Daemon) inspectContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := d.containers.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	st := c.State
	resp := ctypes.InspectResponse{
		ID: c.ID, Created: dockerTime(c.Created), Path: c.Path, Args: c.Args,
		// dockerd counts a container waiting for its restart as running.
		State: &ctypes.State{
			Status: st.Status, Running: st.Running() || st.Restarting(), Restarting: st.Restarting(), Dead: st.Status == ctypes.StateDead,
			Pid: st.Pid, ExitCode: st.ExitCode, Error: st.Error,
			StartedAt: dockerTime(st.StartedAt), FinishedAt: dockerTime(st.FinishedAt),
		},
		Image: c.ImageID, Name: "/" + c.Name, RestartCount: c.RestartCount,
		Driver: "overlay", Platform: "linux",
		ResolvConfPath: d.containers.FilePath(c, "resolv.conf"),
		HostnamePath:   d.containers.FilePath(c, "hostname"),
		HostsPath:      d.containers.FilePath(c, "hosts"),
		LogPath:        d.containers.LogPath(c.ID),
		ExecIDs:        d.containers.ExecIDs(c.ID),
		HostConfig:     c.Host, Config: c.Config, Mounts: c.MountPoints(),
		NetworkSettings: &ctypes.NetworkSettings{Ports: d.portMap(c), Networks: d.endpointSettings(c)},
	}
	if sb, ok := d.containers.Sandbox(c); ok {
		resp.NetworkSettings.SandboxID, resp.NetworkSettings.SandboxKey = sb.ID, sb.Key
	}
	if legacyNetworking(r) {
		return writeJSON(w, http.StatusOK, withLegacyNetworkSettings(resp))
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (d *Daemon) containerLogs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	opts := container.LogOptions{Stdout: boolValue(r, "stdout"), Stderr: boolValue(r, "stderr"), Follow: boolValue(r, "follow"), Tail: -1}
	if !opts.Stdout && !opts.Stderr {
		return errdefs.ErrInvalidArgument.WithMessage("Bad parameters: you must choose at least one stream")
	}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid value for tail: %s", t))
		}
		opts.Tail = n
	}
	for key, dst := range map[string]*time.Time{"since": &opts.Since, "until": &opts.Until} {
		if v := q.Get(key); v != "" && v != "0" {
			t, err := parseUntil(v, time.Now())
			if err != nil {
				return err
			}
			*dst = t
		}
	}
	c, err := d.containers.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	tty := c.Config.Tty
	timestamps := boolValue(r, "timestamps")
	w.Header().Set("Content-Type", streamType(tty))
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	out := io.Writer(w)
	if flusher != nil {
		out = flushWriter{w: w, f: flusher}
	}
	err = d.containers.Logs(r.Context(), r.PathValue("id"), opts, func(e container.LogEntry) error {
		line := e.Log
		if timestamps {
			line = e.Time.Format(time.RFC3339Nano) + " " + line
		}
		if tty {
			// A terminal's output is one stream, sent as it is.
			_, err := io.WriteString(out, line)
			return err
		}
		stream := byte(1)
		if e.Stream == "stderr" {
			stream = 2
		}
		var hdr [8]byte
		hdr[0] = stream
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(line)))
		if _, err := out.Write(append(hdr[:], line...)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		d.cfg.Log.Debug("logs ended", "err", err)
	}
	return nil
}

func (d *Daemon) attachContainer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := d.containers.Get(id)
	if err != nil {
		return err
	}
	opts := container.AttachOptions{Stdin: boolValue(r, "stdin"), Stdout: boolValue(r, "stdout"), Stderr: boolValue(r, "stderr")}
	if opts.Stdin {
		if opts.DetachKeys, err = container.ParseDetachKeys(r.URL.Query().Get("detachKeys")); err != nil {
			return err
		}
	}
	conn, err := hijack(w, r, streamType(c.Config.Tty))
	if err != nil {
		return err
	}
	defer conn.Close()
	// The request's context ends when the client half-closes its side,
	// which clients do when they send no input; the stream goes on.
	err = d.containers.Attach(context.WithoutCancel(r.Context()), id, conn, opts)
	if err != nil {
		fmt.Fprintf(conn, "Error attaching: %s\n", err)
	}
	return nil
}

func (d *Daemon) createExec(w http.ResponseWriter, r *http.Request) error {
	var req ctypes.ExecCreateRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	id, err := d.containers.ExecCreate(r.PathValue("id"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ctypes.ExecCreateResponse{ID: id})
}

func (d *Daemon) startExec(w http.ResponseWriter, r *http.Request) error {
	var req ctypes.ExecStartRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	x, err := d.containers.ExecInspect(id)
	if err != nil {
		return err
	}
	if req.Detach {
		if err := d.containers.ExecStart(r.Context(), id, nil); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	conn, err := hijack(w, r, streamType(x.ProcessConfig.Tty))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := d.containers.ExecStart(context.WithoutCancel(r.Context()), id, conn); err != nil {
		fmt.Fprintf(conn, "Error: %s\n", err)
	}
	return nil
}

func (d *Daemon) inspectExec(w http.ResponseWriter, r *http.Request) error {
	x, err := d.containers.ExecInspect(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, x)
}

func (d *Daemon) connectContainer(w http.ResponseWriter, r *http.Request) error {
	var req ntypes.ConnectRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return errdefs.ErrInvalidArgument.WithMessage("no container given")
	}
	if err := d.containers.Connect(req.Container, r.PathValue("id"), req.EndpointConfig); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (d *Daemon) disconnectContainer(w http.ResponseWriter, r *http.Request) error {
	var req ntypes.DisconnectRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return errdefs.ErrInvalidArgument.WithMessage("no container given")
	}
	if err := d.containers.Disconnect(req.Container, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// collectImages deletes images removed by force while containers used
// them, once none does.
func (d *Daemon) collectImages() {
	if d.containers == nil {
		// An auto-removal while the containers are restored: New
		// collects once they are.
		return
	}
	if err := d.images.Collect(d.containers.UsesImage); err != nil {
		d.cfg.Log.Warn("delete unused removed images", "err", err)
	}
}

// published lists a running container's published ports as Docker shows
// them: a binding on every address appears as 0.0.0.0 (and :: for an
// endpoint with IPv6), with host port 0 in a routed family, where the
// port is open at the container's address instead.
func (d *Daemon) published(c container.Container) []ctypes.PortSummary {
	var out []ctypes.PortSummary
	sb, ok := d.containers.Sandbox(c)
	if !ok {
		return nil
	}
	for _, ep := range sb.Endpoints {
		for _, b := range ep.Ports {
			ips := []netip.Addr{b.HostIP}
			if !b.HostIP.IsValid() {
				ips = []netip.Addr{netip.IPv4Unspecified()}
				if ep.IPv6.IsValid() {
					ips = append(ips, netip.IPv6Unspecified())
				}
			}
			for _, ip := range ips {
				public := b.HostPort
				if ip.Is4() && ep.Routed4 || ip.Is6() && ep.Routed6 {
					public = 0
				}
				out = append(out, ctypes.PortSummary{IP: ip, PrivatePort: b.Port, PublicPort: public, Type: b.Proto})
			}
		}
	}
	return out
}

func (d *Daemon) portSummaries(c container.Container) []ctypes.PortSummary {
	out := d.published(c)
	if out == nil {
		out = []ctypes.PortSummary{}
	}
	return out
}

// portMap is NetworkSettings.Ports: every exposed or bound port, with its
// host bindings while the container runs.
func (d *Daemon) portMap(c container.Container) ntypes.PortMap {
	m := ntypes.PortMap{}
	for p := range c.Config.ExposedPorts {
		m[p] = nil
	}
	for p := range c.Host.PortBindings {
		m[p] = nil
	}
	for _, s := range d.published(c) {
		p, ok := ntypes.PortFrom(s.PrivatePort, ntypes.IPProtocol(s.Type))
		if !ok {
			continue
		}
		m[p] = append(m[p], ntypes.PortBinding{HostIP: s.IP, HostPort: strconv.Itoa(int(s.PublicPort))})
	}
	return m
}

// pruneContainers removes the containers that do not run, as docker
// container prune (filters until, label, label!).
func (d *Daemon) pruneContainers(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), "until", "label", "label!")
	if err != nil {
		return err
	}
	var until time.Time
	for _, v := range f.get("until") {
		if until, err = parseUntil(v, time.Now()); err != nil {
			return err
		}
	}
	report := ctypes.PruneReport{ContainersDeleted: []string{}}
	for _, c := range d.containers.List() {
		if c.State.Running() || c.State.Restarting() || (!until.IsZero() && !c.Created.Before(until)) || !f.labels("label", c.Config.Labels) ||
			(f.has("label!") && f.labels("label!", c.Config.Labels)) {
			continue
		}
		if err := d.containers.Remove(r.Context(), c.ID, false, false); err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				continue
			}
			return err
		}
		report.ContainersDeleted = append(report.ContainersDeleted, c.ID)
	}
	return writeJSON(w, http.StatusOK, report)
}
