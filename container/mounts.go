package container

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	mevents "github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/volume"
)

// Mount is one of a container's mounts, as settled at create from
// HostConfig.Binds, HostConfig.Mounts, HostConfig.Tmpfs, Config.Volumes
// and VolumesFrom.
type Mount struct {
	Type mount.Type
	// Name is the volume's, for a volume mount.
	Name string `json:",omitempty"`
	// Source is the host path of a bind mount or of a volume's data.
	Source      string
	Destination string
	Driver      string `json:",omitempty"`
	// Mode is as given in a bind specification ("ro", "z", …).
	Mode        string
	RW          bool
	Propagation mount.Propagation `json:",omitempty"`
	// Anonymous volumes were made for this container: rm -v takes them.
	Anonymous bool `json:",omitempty"`
	// Subpath is the part of a volume mounted.
	Subpath string `json:",omitempty"`
	// Create makes a missing bind source at start, as -v does; --mount
	// refuses one instead.
	Create bool `json:",omitempty"`
	// NoCopy keeps the image's files at the destination out of a new
	// volume.
	NoCopy bool `json:",omitempty"`
	// Tmpfs holds a tmpfs mount's options (size=…, mode=…).
	Tmpfs []string `json:",omitempty"`
	// VolumeOptions and Labels make a named volume missing at create.
	VolumeOptions map[string]string `json:"-"`
	VolumeLabels  map[string]string `json:"-"`
	VolumeDriver  string            `json:"-"`
}

// MountPoint is a mount as Docker's inspect and list show it.
func (mt Mount) MountPoint() ctypes.MountPoint {
	return ctypes.MountPoint{
		Type: mt.Type, Name: mt.Name, Source: mt.Source, Destination: mt.Destination,
		Driver: mt.Driver, Mode: mt.Mode, RW: mt.RW, Propagation: mt.Propagation,
	}
}

// MountPoints are a container's mounts as Docker shows them.
func (c Container) MountPoints() []ctypes.MountPoint {
	out := make([]ctypes.MountPoint, 0, len(c.Mounts))
	for _, mt := range c.Mounts {
		out = append(out, mt.MountPoint())
	}
	return out
}

func invalidSpec(spec, why string) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid volume specification: '%s': %s", spec, why))
}

func invalidMount(t mount.Type, why string) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid mount config for type %q: %s", t, why))
}

// checkTarget checks a mount's destination as Docker does.
func checkTarget(t mount.Type, dst string) error {
	switch {
	case dst == "":
		return invalidMount(t, "field Target must not be empty")
	case !path.IsAbs(dst):
		return invalidMount(t, fmt.Sprintf("invalid mount path: '%s' mount path must be absolute", dst))
	case path.Clean(dst) == "/":
		return invalidMount(t, "invalid specification: destination can't be '/'")
	}
	return nil
}

// bindModes are the modes a -v specification may carry, by kind.
var bindModes = map[string]string{
	"rw": "access", "ro": "access",
	"z": "label", "Z": "label",
	"nocopy":  "copy",
	"private": "propagation", "rprivate": "propagation", "shared": "propagation", "rshared": "propagation", "slave": "propagation", "rslave": "propagation",
	"consistent": "consistency", "cached": "consistency", "delegated": "consistency",
}

// parseBind reads one HostConfig.Binds entry: [source:]destination[:mode].
// A source that is an absolute path is a bind mount, any other a volume's
// name; none makes an anonymous volume.
func parseBind(spec string) (Mount, error) {
	parts := strings.Split(spec, ":")
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return Mount{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid volume specification: '%s'", spec))
	}
	if src == "" && len(parts) > 1 || dst == "" {
		return Mount{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid volume specification: '%s'", spec))
	}
	mt := Mount{Destination: path.Clean(dst), Mode: mode, RW: true}
	seen := map[string]bool{}
	for _, m := range strings.Split(mode, ",") {
		if mode == "" {
			break
		}
		kind, ok := bindModes[m]
		if !ok || seen[kind] {
			return Mount{}, invalidSpec(spec, "invalid mode: "+mode)
		}
		seen[kind] = true
		switch {
		case m == "ro":
			mt.RW = false
		case m == "nocopy":
			mt.NoCopy = true
		case kind == "propagation":
			mt.Propagation = mount.Propagation(m)
		}
	}
	switch {
	case src == "":
		mt.Type, mt.Anonymous, mt.Driver = mount.TypeVolume, true, volume.Driver
	case path.IsAbs(src):
		mt.Type, mt.Source, mt.Create = mount.TypeBind, path.Clean(src), true
		if mt.Propagation == "" {
			mt.Propagation = mount.PropagationRPrivate
		}
		if mt.NoCopy {
			return Mount{}, invalidSpec(spec, "invalid mode: "+mode)
		}
	default:
		if err := volume.ValidName(src); err != nil {
			return Mount{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("create %s: %s", src, err.Error()))
		}
		if mt.Propagation != "" {
			return Mount{}, invalidSpec(spec, "invalid mode: "+mode)
		}
		mt.Type, mt.Name, mt.Driver = mount.TypeVolume, src, volume.Driver
		if mode == "" {
			mt.Mode = "z"
		}
	}
	if err := checkTarget(mt.Type, dst); err != nil {
		return Mount{}, invalidSpec(spec, strings.TrimPrefix(err.Error(), fmt.Sprintf("invalid mount config for type %q: ", mt.Type)))
	}
	return mt, nil
}

// parseMountSpec reads one HostConfig.Mounts entry (--mount).
func parseMountSpec(spec mount.Mount) (Mount, error) {
	t := spec.Type
	if err := checkTarget(t, spec.Target); err != nil {
		return Mount{}, err
	}
	mt := Mount{Type: t, Destination: path.Clean(spec.Target), RW: !spec.ReadOnly}
	if spec.ImageOptions != nil || spec.ClusterOptions != nil {
		return Mount{}, invalidMount(t, "image and cluster options are not supported")
	}
	switch t {
	case mount.TypeBind:
		switch {
		case spec.VolumeOptions != nil:
			return Mount{}, invalidMount(t, "field VolumeOptions must not be specified")
		case spec.TmpfsOptions != nil:
			return Mount{}, invalidMount(t, "field TmpfsOptions must not be specified")
		case spec.Source == "":
			return Mount{}, invalidMount(t, "field Source must not be empty")
		case !path.IsAbs(spec.Source):
			return Mount{}, invalidMount(t, fmt.Sprintf("invalid mount path: '%s' mount path must be absolute", spec.Source))
		}
		mt.Source, mt.Propagation = path.Clean(spec.Source), mount.PropagationRPrivate
		if o := spec.BindOptions; o != nil {
			if o.Propagation != "" {
				if !slices.Contains(mount.Propagations, o.Propagation) {
					return Mount{}, invalidMount(t, fmt.Sprintf("invalid propagation mode: %s", o.Propagation))
				}
				mt.Propagation = o.Propagation
			}
			mt.Create = o.CreateMountpoint
		}
		if !mt.Create {
			if _, err := os.Stat(mt.Source); err != nil {
				return Mount{}, invalidMount(t, "bind source path does not exist: "+mt.Source)
			}
		}
	case mount.TypeVolume:
		switch {
		case spec.BindOptions != nil:
			return Mount{}, invalidMount(t, "field BindOptions must not be specified")
		case spec.TmpfsOptions != nil:
			return Mount{}, invalidMount(t, "field TmpfsOptions must not be specified")
		}
		mt.Name, mt.Driver, mt.Mode = spec.Source, volume.Driver, "z"
		if mt.Name == "" {
			mt.Anonymous, mt.Mode = true, ""
		} else if err := volume.ValidName(mt.Name); err != nil {
			return Mount{}, invalidMount(t, err.Error())
		}
		if o := spec.VolumeOptions; o != nil {
			mt.NoCopy, mt.VolumeLabels = o.NoCopy, o.Labels
			if o.Subpath != "" {
				sub := path.Clean(o.Subpath)
				if path.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
					return Mount{}, invalidMount(t, "subpath must be a relative path within the volume")
				}
				mt.Subpath = sub
			}
			if d := o.DriverConfig; d != nil {
				mt.VolumeDriver, mt.VolumeOptions = d.Name, d.Options
				if d.Name != "" {
					mt.Driver = d.Name
				}
			}
		}
	case mount.TypeTmpfs:
		switch {
		case spec.Source != "":
			return Mount{}, invalidMount(t, "field Source must not be specified")
		case spec.BindOptions != nil:
			return Mount{}, invalidMount(t, "field BindOptions must not be specified")
		case spec.VolumeOptions != nil:
			return Mount{}, invalidMount(t, "field VolumeOptions must not be specified")
		}
		mt.Tmpfs = []string{"nosuid", "nodev", "noexec"}
		if o := spec.TmpfsOptions; o != nil {
			if o.SizeBytes < 0 {
				return Mount{}, invalidMount(t, "invalid tmpfs size: must not be negative")
			}
			if o.SizeBytes > 0 {
				mt.Tmpfs = append(mt.Tmpfs, "size="+strconv.FormatInt(o.SizeBytes, 10))
			}
			if o.Mode != 0 {
				// Docker takes the mode as the octal number given.
				mt.Tmpfs = append(mt.Tmpfs, "mode="+strconv.FormatUint(uint64(o.Mode), 8))
			}
			for _, kv := range o.Options {
				mt.Tmpfs = append(mt.Tmpfs, strings.Join(kv, "="))
			}
		}
	default:
		return Mount{}, invalidMount(t, "mount type unknown")
	}
	return mt, nil
}

// tmpfsMount reads one HostConfig.Tmpfs entry (--tmpfs dst:opts).
func tmpfsMount(dst, opts string) (Mount, error) {
	if err := checkTarget(mount.TypeTmpfs, dst); err != nil {
		return Mount{}, err
	}
	mt := Mount{Type: mount.TypeTmpfs, Destination: path.Clean(dst), RW: true, Tmpfs: []string{"nosuid", "nodev", "noexec"}}
	for _, o := range strings.Split(opts, ",") {
		switch {
		case o == "":
		case o == "ro":
			mt.RW = false
		case o == "rw":
		default:
			mt.Tmpfs = append(mt.Tmpfs, o)
		}
	}
	return mt, nil
}

// planMounts settles a container's mounts from its configuration, as
// Docker does: mounts from VolumesFrom first, then Binds, Mounts and
// Tmpfs, which may not share a destination, then the anonymous volumes of
// Config.Volumes that nothing else covers.
func (m *Manager) planMounts(rec *Container) ([]Mount, error) {
	byDst := map[string]int{}
	var out []Mount
	add := func(mt Mount, replace bool) error {
		if i, dup := byDst[mt.Destination]; dup {
			if !replace {
				return errdefs.ErrInvalidArgument.WithMessage("Duplicate mount point: " + mt.Destination)
			}
			out[i] = mt
			return nil
		}
		byDst[mt.Destination] = len(out)
		out = append(out, mt)
		return nil
	}
	for _, from := range rec.Host.VolumesFrom {
		mts, err := m.volumesFrom(from)
		if err != nil {
			return nil, err
		}
		for _, mt := range mts {
			add(mt, true)
		}
	}
	fromOthers := len(out)
	own := func(mt Mount) error {
		if i, dup := byDst[mt.Destination]; dup && i < fromOthers {
			out[i] = mt
			byDst[mt.Destination] = len(out) + 1<<30 // taken by this container's own now
			return nil
		}
		return add(mt, false)
	}
	for _, spec := range rec.Host.Binds {
		mt, err := parseBind(spec)
		if err != nil {
			return nil, err
		}
		if err := own(mt); err != nil {
			return nil, err
		}
	}
	for _, spec := range rec.Host.Mounts {
		mt, err := parseMountSpec(spec)
		if err != nil {
			return nil, err
		}
		if err := own(mt); err != nil {
			return nil, err
		}
	}
	for _, dst := range sortedKeys(rec.Host.Tmpfs) {
		mt, err := tmpfsMount(dst, rec.Host.Tmpfs[dst])
		if err != nil {
			return nil, err
		}
		if err := own(mt); err != nil {
			return nil, err
		}
	}
	for _, dst := range sortedKeys(rec.Config.Volumes) {
		mt := Mount{Type: mount.TypeVolume, Destination: path.Clean(dst), Driver: volume.Driver, RW: true, Anonymous: true}
		if err := checkTarget(mt.Type, dst); err != nil {
			return nil, err
		}
		if _, covered := byDst[mt.Destination]; !covered {
			add(mt, false)
		}
	}
	// Parents are mounted before what is mounted inside them.
	slices.SortStableFunc(out, func(a, b Mount) int {
		return strings.Count(a.Destination, "/") - strings.Count(b.Destination, "/")
	})
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// volumesFrom is the bind and volume mounts of another container, for
// VolumesFrom's "container[:ro|:rw]".
func (m *Manager) volumesFrom(spec string) ([]Mount, error) {
	name, mode, _ := strings.Cut(spec, ":")
	if mode != "" && mode != "ro" && mode != "rw" {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid mode for volumes-from: %s", mode))
	}
	e, err := m.find(name)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Mount
	for _, mt := range e.rec.Mounts {
		if mt.Type == mount.TypeTmpfs {
			continue
		}
		mt.Anonymous = false // the other container's to remove
		mt.Create = false
		switch mode {
		case "ro":
			mt.RW = false
		case "rw":
			mt.RW = true
		}
		out = append(out, mt)
	}
	return out, nil
}

// makeVolumes creates the volumes a new container's mounts name and that
// do not exist yet, and its anonymous ones, and fills each from the image
// as Docker does when the volume is empty. It returns an undo that removes
// the volumes it made.
func (m *Manager) makeVolumes(rec *Container) (func(), error) {
	var made []string
	undo := func() {
		for _, name := range made {
			if err := m.cfg.Volumes.Remove(name, true, nil); err != nil {
				m.log.Warn("remove a volume made for a failed create", "volume", name, "err", err)
			}
		}
	}
	for i := range rec.Mounts {
		mt := &rec.Mounts[i]
		if mt.Type != mount.TypeVolume {
			continue
		}
		var v volume.Volume
		var err error
		if mt.Name != "" {
			v, err = m.cfg.Volumes.Get(mt.Name)
		}
		if mt.Name == "" || errdefs.IsNotFound(err) {
			v, err = m.cfg.Volumes.Create(mt.Name, mt.VolumeDriver, mt.VolumeOptions, mt.VolumeLabels)
			if err == nil {
				made = append(made, v.Name)
				m.emit(mevents.VolumeEventType, mevents.ActionCreate, v.Name, map[string]string{"driver": v.Driver})
			}
		}
		if err != nil {
			undo()
			return nil, err
		}
		mt.Name, mt.Driver, mt.Source = v.Name, v.Driver, v.Mountpoint
		if !mt.NoCopy && mt.Subpath == "" && len(v.Options) == 0 {
			if err := fillVolume(v.Mountpoint, m.cfg.Images.RootFS(rec.ImageID), mt.Destination); err != nil {
				undo()
				return nil, fmt.Errorf("copy the image's %s into volume %s: %w", mt.Destination, v.Name, err)
			}
		}
	}
	return undo, nil
}

// VolumeUsers are the containers, in any state, whose mounts name a
// volume: Docker refuses to remove a volume while any refers to it.
func (m *Manager) VolumeUsers(name string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var ids []string
	for id, e := range m.byID {
		for _, mt := range e.rec.Mounts {
			if mt.Type == mount.TypeVolume && mt.Name == name {
				ids = append(ids, id)
				break
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// mountVolumes makes the container's volumes ready and its missing bind
// sources, and returns the OCI mounts, in order. On failure it undoes what
// it did.
func (m *Manager) mountVolumes(c *Container) (_ []specs.Mount, err error) {
	var mounted []Mount
	defer func() {
		if err != nil {
			m.unmountVolumes(c.ID, mounted)
		}
	}()
	out := make([]specs.Mount, 0, len(c.Mounts))
	for _, mt := range c.Mounts {
		src := mt.Source
		switch mt.Type {
		case mount.TypeVolume:
			dir, err := m.cfg.Volumes.Mount(mt.Name, c.ID)
			if err != nil {
				return nil, err
			}
			mounted = append(mounted, mt)
			src = dir
			if mt.Subpath != "" {
				src = filepath.Join(dir, mt.Subpath)
				if _, err := os.Stat(src); err != nil {
					return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cannot access path %s in volume %s: %v", mt.Subpath, mt.Name, err))
				}
			}
			m.emit(mevents.VolumeEventType, mevents.ActionMount, mt.Name, map[string]string{
				"container": c.ID, "destination": mt.Destination, "driver": mt.Driver,
				"propagation": string(mt.Propagation), "read/write": strconv.FormatBool(mt.RW),
			})
		case mount.TypeBind:
			if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) && mt.Create {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, fmt.Errorf("make the bind source %s: %w", src, err)
				}
			} else if err != nil {
				return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid mount config for type \"bind\": bind source path does not exist: %s", src))
			}
		case mount.TypeTmpfs:
			opts := slices.Clone(mt.Tmpfs)
			if !mt.RW {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: mt.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
			continue
		}
		opts := []string{"rbind"}
		if !mt.RW {
			opts = append(opts, "ro")
		}
		prop := mt.Propagation
		if prop == "" {
			prop = mount.PropagationRPrivate
		}
		out = append(out, specs.Mount{Destination: mt.Destination, Type: "bind", Source: src, Options: append(opts, string(prop))})
	}
	return out, nil
}

// unmountVolumes tells the volume store that the container no longer uses
// its volumes.
func (m *Manager) unmountVolumes(id string, mts []Mount) {
	for _, mt := range mts {
		if mt.Type != mount.TypeVolume {
			continue
		}
		if !slices.Contains(m.cfg.Volumes.InUse(mt.Name), id) {
			continue
		}
		if err := m.cfg.Volumes.Unmount(mt.Name, id); err != nil {
			m.log.Warn("unmount a volume", "volume", mt.Name, "id", id, "err", err)
		}
		m.emit(mevents.VolumeEventType, mevents.ActionUnmount, mt.Name, map[string]string{"container": id, "driver": mt.Driver})
	}
}

// removeVolumes removes a removed container's anonymous volumes that no
// other container refers to, as rm -v and --rm do.
func (m *Manager) removeVolumes(c *Container) {
	for _, mt := range c.Mounts {
		if mt.Type != mount.TypeVolume || !mt.Anonymous {
			continue
		}
		users := m.VolumeUsers(mt.Name)
		if len(users) > 0 {
			continue
		}
		if err := m.cfg.Volumes.Remove(mt.Name, true, users); err != nil {
			m.log.Warn("remove an anonymous volume", "volume", mt.Name, "err", err)
			continue
		}
		m.emit(mevents.VolumeEventType, mevents.ActionDestroy, mt.Name, map[string]string{"driver": mt.Driver})
	}
}

// fillVolume copies what the image has at dst into an empty volume, with
// modes and owners, as Docker does for a new volume.
func fillVolume(data, rootfs, dst string) error {
	src, err := resolveIn(rootfs, dst)
	if err != nil {
		return nil // nothing there in the image to copy
	}
	fi, err := os.Lstat(src)
	if err != nil || !fi.IsDir() {
		return nil
	}
	entries, err := os.ReadDir(data)
	if err != nil || len(entries) > 0 {
		return err
	}
	if err := chownLike(data, fi); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		target := filepath.Join(data, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // devices, fifos and sockets are not copied
		}
		return chownLike(target, info)
	})
}

// resolveIn resolves dst inside rootfs, following no symlink out of it.
func resolveIn(rootfs, dst string) (string, error) {
	cur := rootfs
	for _, part := range strings.Split(strings.Trim(path.Clean(dst), "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("%s is a symbolic link", cur)
		}
	}
	return cur, nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// chownLike gives path the owner and mode of info.
func chownLike(p string, info fs.FileInfo) error {
	st, ok := info.Sys().(*unix.Stat_t)
	if !ok {
		return nil
	}
	if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	return os.Chmod(p, info.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid))
}
