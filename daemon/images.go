package daemon

import (
	"fmt"
	"net/http"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	mevents "github.com/moby/moby/api/types/events"
	itypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"

	"github.com/berth-net/berth/image"
)

func (d *Daemon) imageRoutes(mux *http.ServeMux) {
	d.handle(mux, "POST /images/create", d.createImage)
	d.handle(mux, "GET /images/json", d.listImages)
	d.handle(mux, "POST /images/prune", d.pruneImages)
	// Names have slashes ("library/busybox"): the route takes the rest of
	// the path.
	d.handle(mux, "GET /images/{name...}", d.inspectImage)
	d.handle(mux, "DELETE /images/{name...}", d.removeImage)
}

// createImage is `docker import`: the tar is the request body. Nothing is
// written before the import ends, so its errors get their own status, as
// with dockerd for fromSrc=-.
func (d *Daemon) createImage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if from := q.Get("fromImage"); from != "" {
		if tag := q.Get("tag"); tag != "" {
			from += ":" + tag
		}
		if named, err := reference.ParseNormalizedNamed(from); err == nil {
			from = reference.FamiliarString(named)
		}
		return errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf(
			"cannot pull %s: berth has no registry; import a root filesystem tar instead (docker import FILE NAME, or berth image import FILE NAME)", from))
	}
	switch src := q.Get("fromSrc"); src {
	case "-":
	case "":
		return errdefs.ErrInvalidArgument.WithMessage("fromSrc=- (the tar in the request body) or fromImage is required")
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cannot import from %s: berth imports only the request body (fromSrc=-)", src))
	}
	if p := q.Get("platform"); p != "" && p != "linux" && p != "linux/"+runtime.GOARCH {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cannot import for platform %s: berth runs linux/%s images", p, runtime.GOARCH))
	}
	ref := q.Get("repo")
	if tag := q.Get("tag"); ref != "" && tag != "" {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
		tagged, err := reference.WithTag(reference.TrimNamed(named), tag)
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
		ref = reference.FamiliarString(tagged)
	}
	comment := q.Get("message")
	if comment == "" {
		comment = "Imported from -"
	}
	img, err := d.images.Import(r.Context(), r.Body, ref, comment, q["changes"])
	if err != nil {
		return err
	}
	d.events.Emit(mevents.ImageEventType, mevents.ActionImport, img.ID, map[string]string{"name": ref})
	return writeJSON(w, http.StatusOK, jsonstream.Message{Status: img.ID})
}

func (d *Daemon) listImages(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), "before", "dangling", "label", "reference", "since", "until")
	if err != nil {
		return err
	}
	var dangling *bool
	for _, v := range f.get("dangling") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter 'dangling=%s'", v))
		}
		dangling = &b
	}
	for _, pattern := range f.get("reference") {
		if _, err := path.Match(pattern, ""); err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter 'reference=%s': %v", pattern, err))
		}
	}
	// Created must fall in (after, before).
	var after, before time.Time
	for _, v := range f.get("since") {
		img, err := d.images.Get(v)
		if err != nil {
			return err
		}
		after = img.Created
	}
	for _, v := range f.get("before") {
		img, err := d.images.Get(v)
		if err != nil {
			return err
		}
		before = img.Created
	}
	for _, v := range f.get("until") {
		if before, err = parseUntil(v, time.Now()); err != nil {
			return err
		}
	}
	oldAPI := compareVersions(versionOf(r), "1.43") < 0
	out := []itypes.Summary{}
	for _, img := range d.images.List() {
		tags := img.RepoTags
		if patterns := f.get("reference"); f.has("reference") {
			tags = matchingTags(tags, patterns)
			if len(tags) == 0 {
				continue
			}
		}
		if dangling != nil && (len(img.RepoTags) == 0) != *dangling ||
			!f.labels("label", img.Config.Labels) ||
			!after.IsZero() && !img.Created.After(after) || !before.IsZero() && !img.Created.Before(before) {
			continue
		}
		s := itypes.Summary{
			ID: img.ID, RepoTags: tags, RepoDigests: []string{}, Created: img.Created.Unix(),
			Size: img.Size, SharedSize: -1, Labels: img.Config.Labels,
			Containers: int64(len(d.containers.UsesImage(img.ID))),
		}
		if oldAPI && len(tags) == 0 {
			s.RepoTags, s.RepoDigests = []string{"<none>:<none>"}, []string{"<none>@<none>"}
		}
		out = append(out, s)
	}
	return writeJSON(w, http.StatusOK, out)
}

// matchingTags are the tags that a `reference` pattern matches, whole
// ("busybox:1.*") or by name ("busy*").
func matchingTags(tags, patterns []string) []string {
	out := []string{}
	for _, t := range tags {
		name := t[:strings.LastIndex(t, ":")]
		for _, p := range patterns {
			whole, _ := path.Match(p, t)
			byName, _ := path.Match(p, name)
			if whole || byName {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

func (d *Daemon) inspectImage(w http.ResponseWriter, r *http.Request) error {
	name, ok := strings.CutSuffix(r.PathValue("name"), "/json")
	if !ok {
		return errdefs.ErrNotFound.WithMessage("page not found")
	}
	img, err := d.images.Get(name)
	if err != nil {
		return err
	}
	c := img.Config
	cfg := &dockerspec.DockerOCIImageConfig{}
	cfg.User, cfg.Env, cfg.Entrypoint, cfg.Cmd = c.User, c.Env, c.Entrypoint, c.Cmd
	cfg.Volumes, cfg.WorkingDir, cfg.Labels, cfg.StopSignal = c.Volumes, c.WorkingDir, c.Labels, c.StopSignal
	cfg.OnBuild, cfg.Shell = c.OnBuild, c.Shell
	for p := range c.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p.String()] = struct{}{}
	}
	return writeJSON(w, http.StatusOK, itypes.InspectResponse{
		ID: img.ID, RepoTags: img.RepoTags, RepoDigests: []string{}, Comment: img.Comment,
		Created: img.Created.Format(time.RFC3339Nano), Config: cfg,
		Architecture: img.Architecture, Os: img.OS, Size: img.Size,
		RootFS:   itypes.RootFS{Type: "layers", Layers: img.DiffIDs},
		Metadata: itypes.Metadata{LastTagTime: img.LastTagTime},
	})
}

func (d *Daemon) removeImage(w http.ResponseWriter, r *http.Request) error {
	removed, err := d.images.Remove(r.PathValue("name"), boolValue(r, "force"), d.containers.UsesImage)
	if err != nil {
		return err
	}
	out := make([]itypes.DeleteResponse, len(removed))
	for i, rm := range removed {
		out[i] = itypes.DeleteResponse{Untagged: rm.Untagged, Deleted: rm.Deleted}
		if rm.Untagged != "" {
			d.events.Emit(mevents.ImageEventType, mevents.ActionUnTag, rm.Untagged, map[string]string{"name": rm.Untagged})
		}
		if rm.Deleted != "" {
			d.events.Emit(mevents.ImageEventType, mevents.ActionDelete, rm.Deleted, map[string]string{"name": rm.Deleted})
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// pruneImages removes the images no container uses: the untagged ones
// (dangling), or with dangling=false every one, as dockerd does.
func (d *Daemon) pruneImages(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), "dangling", "until", "label", "label!")
	if err != nil {
		return err
	}
	dangling, err := boolFilter(f, "dangling")
	if err != nil {
		return err
	}
	onlyDangling := dangling == nil || *dangling
	var until time.Time
	for _, v := range f.get("until") {
		if until, err = parseUntil(v, time.Now()); err != nil {
			return err
		}
	}
	report := itypes.PruneReport{ImagesDeleted: []itypes.DeleteResponse{}}
	for _, img := range d.images.List() {
		switch {
		case onlyDangling && len(img.RepoTags) > 0,
			!until.IsZero() && !img.Created.Before(until),
			!f.labels("label", img.Config.Labels),
			f.has("label!") && f.labels("label!", img.Config.Labels),
			len(d.containers.UsesImage(img.ID)) > 0:
			continue
		}
		// Tag by tag, without force: the last tag takes the image, and a
		// container that began to use it meanwhile keeps it.
		refs := img.RepoTags
		if len(refs) == 0 {
			refs = []string{img.ID}
		}
		var removed []image.Removal
		for _, ref := range refs {
			rms, err := d.images.Remove(ref, false, d.containers.UsesImage)
			if err != nil {
				if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
					break // gone or taken meanwhile
				}
				return err
			}
			removed = append(removed, rms...)
		}
		for _, rm := range removed {
			report.ImagesDeleted = append(report.ImagesDeleted, itypes.DeleteResponse{Untagged: rm.Untagged, Deleted: rm.Deleted})
			if rm.Untagged != "" {
				d.events.Emit(mevents.ImageEventType, mevents.ActionUnTag, rm.Untagged, map[string]string{"name": rm.Untagged})
			}
			if rm.Deleted != "" {
				d.events.Emit(mevents.ImageEventType, mevents.ActionDelete, rm.Deleted, map[string]string{"name": rm.Deleted})
				report.SpaceReclaimed += uint64(img.Size)
			}
		}
	}
	d.events.Emit(mevents.ImageEventType, mevents.ActionPrune, "", map[string]string{"reclaimed": strconv.FormatUint(report.SpaceReclaimed, 10)})
	return writeJSON(w, http.StatusOK, report)
}
