package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/containerd/errdefs"
	mevents "github.com/moby/moby/api/types/events"
	vtypes "github.com/moby/moby/api/types/volume"

	"github.com/berth-net/berth/volume"
)

// anonymousLabel marks, in the API, a volume made for a container without
// a name given, as dockerd labels it; prune takes only those by default.
const anonymousLabel = "com.docker.volume.anonymous"

func (d *Daemon) volumeRoutes(mux *http.ServeMux) {
	d.handle(mux, "POST /volumes/create", d.createVolume)
	d.handle(mux, "GET /volumes", d.listVolumes)
	d.handle(mux, "GET /volumes/{name}", d.inspectVolume)
	d.handle(mux, "DELETE /volumes/{name}", d.removeVolume)
	d.handle(mux, "POST /volumes/prune", d.pruneVolumes)
}

// toVolume is a volume as the API shows it.
func (d *Daemon) toVolume(v volume.Volume, usage bool) vtypes.Volume {
	labels := v.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	if v.Anonymous {
		labels = map[string]string{anonymousLabel: ""}
		for k, val := range v.Labels {
			labels[k] = val
		}
	}
	opts := v.Options
	if opts == nil {
		opts = map[string]string{}
	}
	out := vtypes.Volume{
		Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, Labels: labels, Options: opts,
		Scope: "local", CreatedAt: v.CreatedAt.Local().Format(time.RFC3339),
	}
	if usage {
		out.UsageData = &vtypes.UsageData{Size: d.volumes.Size(v.Name), RefCount: int64(len(d.containers.VolumeUsers(v.Name)))}
	}
	return out
}

func (d *Daemon) createVolume(w http.ResponseWriter, r *http.Request) error {
	var req vtypes.CreateRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.ClusterVolumeSpec != nil {
		return errdefs.ErrUnavailable.WithMessage(errNotSwarmManager)
	}
	if req.Name == "" {
		// Named by the daemon, but not anonymous: dockerd keeps such a
		// volume from a prune without all=true too.
		b := make([]byte, 32)
		rand.Read(b)
		req.Name = hex.EncodeToString(b)
	}
	_, existed := d.volumes.Get(req.Name)
	v, err := d.volumes.Create(req.Name, req.Driver, req.DriverOpts, req.Labels)
	if err != nil {
		return err
	}
	if existed != nil {
		d.events.Emit(mevents.VolumeEventType, mevents.ActionCreate, v.Name, map[string]string{"driver": v.Driver})
	}
	return writeJSON(w, http.StatusCreated, d.toVolume(v, false))
}

func (d *Daemon) listVolumes(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), "name", "label", "label!", "dangling", "driver")
	if err != nil {
		return err
	}
	dangling, err := boolFilter(f, "dangling")
	if err != nil {
		return err
	}
	out := vtypes.ListResponse{Volumes: []vtypes.Volume{}, Warnings: []string{}}
	for _, v := range d.volumes.List() {
		api := d.toVolume(v, false)
		if !f.match("name", v.Name) || !f.exact("driver", v.Driver) || !f.labels("label", api.Labels) {
			continue
		}
		if f.has("label!") && f.labels("label!", api.Labels) {
			continue
		}
		if dangling != nil && *dangling != (len(d.containers.VolumeUsers(v.Name)) == 0) {
			continue
		}
		out.Volumes = append(out.Volumes, api)
	}
	return writeJSON(w, http.StatusOK, out)
}

// boolFilter reads a filter of one boolean value, as dangling is; nil when
// it is absent.
func boolFilter(f filters, key string) (*bool, error) {
	vs := f.get(key)
	if len(vs) == 0 {
		return nil, nil
	}
	var b bool
	for i, v := range vs {
		var this bool
		switch v {
		case "true", "1":
			this = true
		case "false", "0":
		default:
			return nil, errdefs.ErrInvalidArgument.WithMessage("invalid filter '" + key + "=" + v + "'")
		}
		if i > 0 && this != b {
			return nil, errdefs.ErrInvalidArgument.WithMessage("invalid filter '" + key + "': conflicting values")
		}
		b = this
	}
	return &b, nil
}

func (d *Daemon) inspectVolume(w http.ResponseWriter, r *http.Request) error {
	v, err := d.volumes.Get(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d.toVolume(v, false))
}

func (d *Daemon) removeVolume(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	v, err := d.volumes.Get(name)
	if err != nil {
		if boolValue(r, "force") && errdefs.IsNotFound(err) {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return err
	}
	if err := d.volumes.Remove(name, boolValue(r, "force"), d.containers.VolumeUsers(name)); err != nil {
		return err
	}
	d.events.Emit(mevents.VolumeEventType, mevents.ActionDestroy, name, map[string]string{"driver": v.Driver})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) pruneVolumes(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), "label", "label!", "all")
	if err != nil {
		return err
	}
	all, err := boolFilter(f, "all")
	if err != nil {
		return err
	}
	// Since API 1.42 a prune takes only anonymous volumes unless all=true.
	onlyAnonymous := compareVersions(versionOf(r), "1.42") >= 0 && (all == nil || !*all)
	report := vtypes.PruneReport{VolumesDeleted: []string{}}
	for _, v := range d.volumes.List() {
		api := d.toVolume(v, false)
		if onlyAnonymous && !v.Anonymous {
			continue
		}
		if !f.labels("label", api.Labels) || (f.has("label!") && f.labels("label!", api.Labels)) {
			continue
		}
		users := d.containers.VolumeUsers(v.Name)
		if len(users) > 0 {
			continue
		}
		size := d.volumes.Size(v.Name)
		if err := d.volumes.Remove(v.Name, false, users); err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				continue
			}
			return err
		}
		d.events.Emit(mevents.VolumeEventType, mevents.ActionDestroy, v.Name, map[string]string{"driver": v.Driver})
		report.VolumesDeleted = append(report.VolumesDeleted, v.Name)
		report.SpaceReclaimed += uint64(size)
	}
	return writeJSON(w, http.StatusOK, report)
}
