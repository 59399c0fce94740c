package image

import (
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/store"
)

const bucket = "images"

// tmpPrefix names the directories of imports and removals in progress; any
// found at start were left by a crash.
const tmpPrefix = "tmp-"

// Image is an imported root filesystem and the configuration containers made
// from it start with.
type Image struct {
	// ID is "sha256:" and the hex digest of the image's config document.
	ID string
	// RepoTags are the image's tags as Docker shows them ("busybox:latest"),
	// sorted.
	RepoTags []string
	Created  time.Time
	// Size is what the unpacked files take, hard links counted once.
	Size         int64
	Comment      string
	Architecture string
	OS           string
	Config       container.Config
	// DiffIDs are the digests of the uncompressed layer tars: one, for an
	// import.
	DiffIDs     []string
	LastTagTime time.Time
}

// Removal is one step of a Remove, as Docker reports it: a tag removed or an
// image deleted.
type Removal struct {
	Untagged string
	Deleted  string
}

// configDoc is the image config document in the shape Docker writes for an
// imported image. Its digest is the image ID.
type configDoc struct {
	Architecture string           `json:"architecture"`
	Comment      string           `json:"comment,omitempty"`
	Config       container.Config `json:"config"`
	Created      time.Time        `json:"created"`
	History      []history        `json:"history"`
	OS           string           `json:"os"`
	RootFS       rootFS           `json:"rootfs"`
}

type history struct {
	Created time.Time `json:"created"`
	Comment string    `json:"comment,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// record is what the store keeps of an image, under its hex ID.
type record struct {
	// Config is the config document as it was hashed.
	Config      json.RawMessage
	Tags        []string `json:",omitempty"`
	Size        int64
	LastTagTime time.Time `json:",omitzero"`
	// Removed: removed by force while containers used it. The image is
	// hidden; its files stay, as those containers' lower layer, until
	// Collect finds it unused.
	Removed bool `json:",omitempty"`
}

// entry is a record with its config decoded.
type entry struct {
	rec record
	img Image
}

func newEntry(hex string, rec record) (*entry, error) {
	var doc configDoc
	if err := json.Unmarshal(rec.Config, &doc); err != nil {
		return nil, fmt.Errorf("config of image %s: %w", hex, err)
	}
	return &entry{rec: rec, img: Image{
		ID: "sha256:" + hex, RepoTags: rec.Tags, Created: doc.Created, Size: rec.Size,
		Comment: doc.Comment, Architecture: doc.Architecture, OS: doc.OS, Config: doc.Config,
		DiffIDs: doc.RootFS.DiffIDs, LastTagTime: rec.LastTagTime,
	}}, nil
}

// clone is a copy sharing nothing with the store's own.
func (img Image) clone() Image {
	img.RepoTags = append([]string{}, img.RepoTags...)
	img.DiffIDs = slices.Clone(img.DiffIDs)
	c := &img.Config
	c.Env, c.Cmd, c.Entrypoint = slices.Clone(c.Env), slices.Clone(c.Cmd), slices.Clone(c.Entrypoint)
	c.Shell, c.OnBuild = slices.Clone(c.Shell), slices.Clone(c.OnBuild)
	c.Labels, c.Volumes, c.ExposedPorts = maps.Clone(c.Labels), maps.Clone(c.Volumes), maps.Clone(c.ExposedPorts)
	return img
}

// Store is the set of images of one daemon: records in the store, root
// filesystems under dir.
type Store struct {
	dir string
	st  store.Store

	mu     sync.RWMutex
	images map[string]*entry // by hex ID
	tags   map[string]string // "name:tag" → hex ID
}

// NewStore loads the images recorded in st, whose files are under dir, and
// removes what an interrupted import or removal left there.
func NewStore(dir string, st store.Store) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create image directory: %w", err)
	}
	s := &Store{dir: dir, st: st, images: map[string]*entry{}, tags: map[string]string{}}
	err := st.View(func(tx store.Tx) error {
		return store.LoadAll(tx, bucket, func(hex string, rec *record) error {
			e, err := newEntry(hex, *rec)
			if err != nil {
				return err
			}
			s.images[hex] = e
			for _, t := range rec.Tags {
				s.tags[t] = hex
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load images: %w", err)
	}
	dirs, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		name := d.Name()
		_, known := s.images[name]
		// An image directory without a record was renamed into place by an
		// import that crashed before recording it.
		if strings.HasPrefix(name, tmpPrefix) || fullID.MatchString(name) && !known {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("remove what a crash left in %s: %w", dir, err)
			}
		}
	}
	return s, nil
}

var (
	fullID   = regexp.MustCompile(`^(?:sha256:)?([0-9a-f]{64})$`)
	idPrefix = regexp.MustCompile(`^(?:sha256:)?([0-9a-f]+)$`)
)

func notFound(ref string) error {
	return errdefs.ErrNotFound.WithMessage("No such image: " + ref)
}

func conflict(format string, args ...any) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf(format, args...))
}

// short is an ID as Docker abbreviates it.
func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// lookup resolves ref by Docker's rules: a full ID, then a tag ("busybox"
// means "busybox:latest"), then a unique ID prefix. tag is set when ref
// named a tag.
func (s *Store) lookup(ref string) (hex, tag string, err error) {
	if m := fullID.FindStringSubmatch(ref); m != nil {
		if e := s.images[m[1]]; e != nil && !e.rec.Removed {
			return m[1], "", nil
		}
		return "", "", notFound("sha256:" + m[1])
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	if _, ok := named.(reference.Digested); ok {
		// Imported images have no registry digests.
		return "", "", notFound(reference.FamiliarString(named))
	}
	tag = reference.FamiliarString(reference.TagNameOnly(named))
	if hex, ok := s.tags[tag]; ok {
		return hex, tag, nil
	}
	if m := idPrefix.FindStringSubmatch(ref); m != nil {
		n := 0
		for h, e := range s.images {
			if strings.HasPrefix(h, m[1]) && !e.rec.Removed {
				hex = h
				n++
			}
		}
		// An ambiguous prefix finds nothing, as in Docker.
		if n == 1 {
			return hex, "", nil
		}
	}
	return "", "", notFound(tag)
}

// Get finds an image by name[:tag], full ID (with or without "sha256:") or
// unique ID prefix.
func (s *Store) Get(ref string) (Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	hex, _, err := s.lookup(ref)
	if err != nil {
		return Image{}, err
	}
	return s.images[hex].img.clone(), nil
}

// Resolve finds an image as Get does and returns its ID and the config
// containers made from it start with.
func (s *Store) Resolve(ref string) (string, *container.Config, error) {
	img, err := s.Get(ref)
	if err != nil {
		return "", nil, err
	}
	return img.ID, &img.Config, nil
}

// List returns the images, newest first.
func (s *Store) List() []Image {
	s.mu.RLock()
	out := make([]Image, 0, len(s.images))
	for _, e := range s.images {
		if !e.rec.Removed {
			out = append(out, e.img.clone())
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// RootFS is the unpacked root filesystem of the image with ID id
// ("sha256:<hex>" or "<hex>"), "" for anything that is not an ID. It is
// shared by every container made from the image and must not be written to:
// mount it as a read-only lower layer.
func (s *Store) RootFS(id string) string {
	m := fullID.FindStringSubmatch(id)
	if m == nil {
		return ""
	}
	return filepath.Join(s.dir, m[1], "rootfs")
}

// Remove removes the tag or image ref names, by Docker's rules: removing a
// tag untags, and the image goes with its last tag; removing by ID removes
// all its tags, which takes force when there are several. An image some
// container uses (inUse names them; nil means none) is removed only by
// force, and its files stay for those containers until Collect.
//
// inUse is called without the store's lock held, so it may use the Store.
func (s *Store) Remove(ref string, force bool, inUse func(id string) []string) ([]Removal, error) {
	for {
		img, err := s.Get(ref)
		if err != nil {
			return nil, err
		}
		var users []string
		if inUse != nil {
			users = inUse(img.ID)
		}
		out, trash, err := s.remove(ref, strings.TrimPrefix(img.ID, "sha256:"), force, users)
		if err == errChanged {
			continue
		}
		// What cannot be removed now is swept at the next start.
		os.RemoveAll(trash)
		return out, err
	}
}

// errChanged: what ref names changed between asking for its users and
// removing it.
var errChanged = errors.New("image changed")

// remove does Remove's work on image hex, which ref named when users were
// asked for. It returns the directory the image's files were moved to.
func (s *Store) remove(ref, hex string, force bool, users []string) ([]Removal, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, tag, err := s.lookup(ref)
	if err != nil || h != hex {
		return nil, "", errChanged
	}
	rec := s.images[hex].rec
	var out []Removal
	if !isIDPrefix(hex, ref) {
		if !force && len(rec.Tags) == 1 && len(users) > 0 {
			return nil, "", conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s",
				ref, short(users[0]), short(hex))
		}
		out = append(out, Removal{Untagged: tag})
		if len(rec.Tags) > 1 {
			rec.Tags = slices.DeleteFunc(slices.Clone(rec.Tags), func(t string) bool { return t == tag })
			if err := s.commit(map[string]record{hex: rec}, nil); err != nil {
				return nil, "", err
			}
			return out, "", nil
		}
	} else {
		switch {
		case !force && len(rec.Tags) > 1:
			return nil, "", conflict("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", short(hex))
		case !force && len(users) > 0:
			return nil, "", conflict("conflict: unable to delete %s (must be forced) - image is being used by container %s", short(hex), short(users[0]))
		}
		for _, t := range rec.Tags {
			out = append(out, Removal{Untagged: t})
		}
	}
	out = append(out, Removal{Deleted: "sha256:" + hex})
	if len(users) > 0 {
		rec.Tags, rec.Removed = nil, true
		if err := s.commit(map[string]record{hex: rec}, nil); err != nil {
			return nil, "", err
		}
		return out, "", nil
	}
	trash, err := s.delete(hex)
	if err != nil {
		return nil, "", err
	}
	return out, trash, nil
}

// isIDPrefix is Docker's test for "ref names the image by ID".
func isIDPrefix(hex, ref string) bool {
	return strings.HasPrefix(hex, ref) || strings.HasPrefix("sha256:"+hex, ref)
}

// Collect deletes the images that were removed by force while containers
// used them, now that none does. The container runtime calls it after it
// deletes a container, and at start once it knows its containers.
func (s *Store) Collect(inUse func(id string) []string) error {
	s.mu.RLock()
	var removed []string
	for hex, e := range s.images {
		if e.rec.Removed {
			removed = append(removed, hex)
		}
	}
	s.mu.RUnlock()
	for _, hex := range removed {
		if inUse != nil && len(inUse("sha256:"+hex)) > 0 {
			continue
		}
		s.mu.Lock()
		var trash string
		var err error
		// A re-import may have brought the image back meanwhile.
		if e := s.images[hex]; e != nil && e.rec.Removed {
			trash, err = s.delete(hex)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		os.RemoveAll(trash)
	}
	return nil
}

// delete forgets image hex and moves its files to a temporary directory,
// returned for the caller to remove outside the lock. The record goes
// first: files without a record are swept at the next start, a record
// without files would be a broken image.
func (s *Store) delete(hex string) (string, error) {
	if err := s.commit(nil, []string{hex}); err != nil {
		return "", err
	}
	trash, err := os.MkdirTemp(s.dir, tmpPrefix)
	if err == nil {
		// rename(2) replaces an empty directory; os.Rename refuses to.
		err = unix.Rename(filepath.Join(s.dir, hex), trash)
	}
	if err != nil {
		return "", fmt.Errorf("image %s removed, but not its files (they go at the next start): %w", short(hex), err)
	}
	return trash, nil
}

// commit writes put and deletes del in one transaction, then updates the
// maps to match.
func (s *Store) commit(put map[string]record, del []string) error {
	entries := map[string]*entry{}
	for hex, rec := range put {
		e, err := newEntry(hex, rec)
		if err != nil {
			return err
		}
		entries[hex] = e
	}
	err := s.st.Update(func(tx store.Tx) error {
		for hex, rec := range put {
			if err := store.PutJSON(tx, bucket, hex, rec); err != nil {
				return err
			}
		}
		for _, hex := range del {
			if err := tx.Delete(bucket, hex); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store images: %w", err)
	}
	for _, hex := range del {
		s.untagAll(hex)
		delete(s.images, hex)
	}
	for hex, e := range entries {
		s.untagAll(hex)
		s.images[hex] = e
		for _, t := range e.rec.Tags {
			s.tags[t] = hex
		}
	}
	return nil
}

// untagAll drops the tags image hex had, unless another image took them.
func (s *Store) untagAll(hex string) {
	if old := s.images[hex]; old != nil {
		for _, t := range old.rec.Tags {
			if s.tags[t] == hex {
				delete(s.tags, t)
			}
		}
	}
}
