// Package volume is berth's volumes, as Docker's "local" driver keeps them:
// a directory per volume under <root>/volumes/<name>/_data, records in the
// store, and, for volumes made with mount options (type, device, o), a
// mount there while a container uses the volume. It knows containers only
// as the IDs that mount a volume; which containers refer to a volume is
// the caller's to say.
package volume

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/store"
)

const bucket = "volumes"

// Driver is the only volume driver berth has.
const Driver = "local"

// Local driver options: mount the volume's data from device, of type,
// with options o, as mount(8) would.
const (
	OptType   = "type"
	OptDevice = "device"
	OptO      = "o"
)

// Volume is a volume as stored and reported.
type Volume struct {
	Name      string
	Driver    string
	CreatedAt time.Time
	Labels    map[string]string `json:",omitempty"`
	// Options are the driver options it was made with.
	Options map[string]string `json:",omitempty"`
	// Anonymous volumes were made for a container without a name given:
	// prune takes them by default.
	Anonymous bool `json:",omitempty"`
	// Mountpoint is where its data is (not stored: it follows from root).
	Mountpoint string `json:"-"`
}

// Store keeps the volumes of one daemon.
type Store struct {
	dir   string
	store store.Store

	mu   sync.Mutex
	vols map[string]*Volume
	// users are the containers that have a volume mounted now.
	users map[string]map[string]bool
}

// New loads the volumes recorded in st, with their data under root.
func New(root string, st store.Store) (*Store, error) {
	s := &Store{dir: filepath.Join(root, "volumes"), store: st, vols: map[string]*Volume{}, users: map[string]map[string]bool{}}
	if err := os.MkdirAll(s.dir, 0o701); err != nil {
		return nil, err
	}
	if err := st.View(func(tx store.Tx) error {
		return store.LoadAll(tx, bucket, func(_ string, v *Volume) error {
			v.Mountpoint = s.mountpoint(v.Name)
			s.vols[v.Name] = v
			return nil
		})
	}); err != nil {
		return nil, fmt.Errorf("load volumes: %w", err)
	}
	// Mounts of volumes with options do not outlive a crash of their
	// users' bookkeeping: the containers that still run mount them again.
	for _, v := range s.vols {
		if needsMount(v) {
			unix.Unmount(v.Mountpoint, unix.MNT_DETACH)
		}
	}
	return s, nil
}

func (s *Store) mountpoint(name string) string { return filepath.Join(s.dir, name, "_data") }

// Docker's rule for local volume names.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName checks a volume name as Docker's local driver does.
func ValidName(name string) error {
	switch {
	case len(name) == 1:
		return errdefs.ErrInvalidArgument.WithMessage("volume name is too short, names should be at least two alphanumeric characters")
	case !nameRE.MatchString(name):
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(
			"%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name))
	}
	return nil
}

// Create makes a volume, or returns the one of that name: as Docker, a
// create of an existing volume is no error. An empty name makes an
// anonymous volume with a random one.
func (s *Store) Create(name, driver string, opts, labels map[string]string) (Volume, error) {
	if driver == "" {
		driver = Driver
	}
	if driver != Driver {
		return Volume{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("error looking up volume plugin %s: plugin %q not found", driver, driver))
	}
	anonymous := name == ""
	if anonymous {
		b := make([]byte, 32)
		rand.Read(b)
		name = hex.EncodeToString(b)
	}
	if err := ValidName(name); err != nil {
		return Volume{}, err
	}
	if err := validOptions(opts); err != nil {
		return Volume{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.vols[name]; ok {
		return *v, nil
	}
	v := &Volume{Name: name, Driver: driver, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: maps.Clone(labels), Options: maps.Clone(opts), Anonymous: anonymous, Mountpoint: s.mountpoint(name)}
	if err := os.MkdirAll(v.Mountpoint, 0o755); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := s.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucket, name, v) }); err != nil {
		os.RemoveAll(filepath.Dir(v.Mountpoint))
		return Volume{}, fmt.Errorf("record volume %s: %w", name, err)
	}
	s.vols[name] = v
	return *v, nil
}

func validOptions(opts map[string]string) error {
	for k := range opts {
		switch k {
		case OptType, OptDevice, OptO:
		default:
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid option: %q", k))
		}
	}
	if opts[OptType] != "" && opts[OptDevice] == "" || opts[OptType] == "" && opts[OptDevice] != "" {
		return errdefs.ErrInvalidArgument.WithMessage("missing required option: \"type\" and \"device\" go together")
	}
	return nil
}

func needsMount(v *Volume) bool { return v.Options[OptType] != "" }

// Get returns a volume.
func (s *Store) Get(name string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return Volume{}, errNoSuchVolume("get", name)
	}
	return *v, nil
}

func errNoSuchVolume(op, name string) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("%s %s: no such volume", op, name))
}

// List returns every volume, by name.
func (s *Store) List() []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Volume, 0, len(s.vols))
	for _, v := range s.vols {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove deletes a volume and its data. users are the containers that
// refer to it: with any, the removal is refused, as Docker's, even with
// force. force makes a missing volume no error.
func (s *Store) Remove(name string, force bool, users []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		if force {
			return nil
		}
		return errNoSuchVolume("get", name)
	}
	if len(users) > 0 {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("remove %s: volume is in use - [%s]", name, strings.Join(users, ", ")))
	}
	if err := s.store.Update(func(tx store.Tx) error { return tx.Delete(bucket, name) }); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	delete(s.vols, name)
	if needsMount(v) {
		unix.Unmount(v.Mountpoint, unix.MNT_DETACH)
	}
	if err := os.RemoveAll(filepath.Dir(v.Mountpoint)); err != nil {
		return fmt.Errorf("remove the data of volume %s: %w", name, err)
	}
	return nil
}

// Mount makes a volume's data ready for container user and returns where
// it is. A volume with mount options is mounted for its first user.
func (s *Store) Mount(name, user string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return "", errNoSuchVolume("get", name)
	}
	if s.users[name] == nil {
		s.users[name] = map[string]bool{}
	}
	if len(s.users[name]) == 0 && needsMount(v) {
		if err := mountOptions(v); err != nil {
			return "", err
		}
	}
	s.users[name][user] = true
	return v.Mountpoint, nil
}

// Adopt records that user, a container that ran on while berthd was
// away, still uses the volume: its mount, if it has one, is still there.
func (s *Store) Adopt(name, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vols[name]; !ok {
		return
	}
	if s.users[name] == nil {
		s.users[name] = map[string]bool{}
	}
	s.users[name][user] = true
}

// Unmount tells that user no longer uses the volume; the last user's
// leaving unmounts a volume with mount options.
func (s *Store) Unmount(name, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	users := s.users[name]
	if !users[user] {
		return nil
	}
	delete(users, user)
	v, ok := s.vols[name]
	if len(users) > 0 || !ok || !needsMount(v) {
		return nil
	}
	if err := unix.Unmount(v.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount volume %s: %w", name, err)
	}
	return nil
}

// mountOptions mounts a volume's device as its options say: o holds
// mount(8)'s options, flags and data alike.
func mountOptions(v *Volume) error {
	flags, data := mountFlags(v.Options[OptO])
	if err := unix.Mount(v.Options[OptDevice], v.Mountpoint, v.Options[OptType], flags, data); err != nil {
		return fmt.Errorf("mount volume %s (%s %s): %w", v.Name, v.Options[OptType], v.Options[OptDevice], err)
	}
	return nil
}

// mountFlags splits mount(8) options into flags and the data passed to
// the filesystem.
func mountFlags(o string) (uintptr, string) {
	known := map[string]uintptr{
		"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
		"sync": unix.MS_SYNCHRONOUS, "noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME,
	}
	var flags uintptr
	var data []string
	for _, opt := range strings.Split(o, ",") {
		if opt == "" || opt == "rw" {
			continue
		}
		if f, ok := known[opt]; ok {
			flags |= f
			continue
		}
		data = append(data, opt)
	}
	return flags, strings.Join(data, ",")
}

// InUse tells which containers have a volume mounted now.
func (s *Store) InUse(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.users[name]))
}

// Size is the space a volume's data takes, in bytes.
func (s *Store) Size(name string) int64 {
	v, err := s.Get(name)
	if err != nil {
		return 0
	}
	var size int64
	filepath.WalkDir(v.Mountpoint, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	return size
}
