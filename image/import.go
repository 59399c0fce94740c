package image

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// defaultEnv is the environment of an imported image, Docker's.
var defaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

func invalid(format string, args ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, args...))
}

// Import makes an image of the tar stream r (plain or compressed with gzip,
// bzip2, xz or zstd) and tags it ref ("name[:tag]", "busybox" meaning
// "busybox:latest"; "" leaves it untagged), moving the tag from any image
// that had it. comment and changes (Dockerfile instructions: CMD,
// ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL) go into
// its config.
//
// Unlike Docker, which stamps the import's time, the image's creation time
// is the newest modification time in the archive: the same archive imported
// twice is the same image.
func (s *Store) Import(ctx context.Context, r io.Reader, ref, comment string, changes []string) (Image, error) {
	tag, err := tagOf(ref)
	if err != nil {
		return Image{}, err
	}
	cfg := container.Config{Env: slices.Clone(defaultEnv)}
	for _, c := range changes {
		if err := applyChange(&cfg, c); err != nil {
			return Image{}, err
		}
	}
	tmp, err := os.MkdirTemp(s.dir, tmpPrefix)
	if err != nil {
		return Image{}, err
	}
	// Gone already when the image was renamed into place.
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "rootfs")
	l, err := unpack(ctx, r, rootfs)
	if err != nil {
		return Image{}, err
	}
	size, err := diskUsage(rootfs)
	if err != nil {
		return Image{}, err
	}
	doc, err := json.Marshal(configDoc{
		Architecture: runtime.GOARCH, OS: "linux", Comment: comment, Config: cfg, Created: l.created,
		History: []history{{Created: l.created, Comment: comment}},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{l.diffID}},
	})
	if err != nil {
		return Image{}, err
	}
	sum := sha256.Sum256(doc)
	if err := syncFS(tmp); err != nil {
		return Image{}, err
	}
	return s.add(fmt.Sprintf("%x", sum), doc, size, tag, tmp)
}

// tagOf is the tag ref asks for, as Docker shows it.
func tagOf(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	if _, ok := named.(reference.Digested); ok {
		return "", invalid("cannot import digest reference")
	}
	return reference.FamiliarString(reference.TagNameOnly(named)), nil
}

// syncFS flushes the file system holding dir, so that an image renamed into
// place is complete even after a power loss.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// add puts the image unpacked in tmp into place and records it with tag.
func (s *Store) add(hex string, doc []byte, size int64, tag, tmp string) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	final := filepath.Join(s.dir, hex)
	placed := false
	// An existing directory holds this very image (recorded, or removed but
	// still used by containers): the new copy is not needed.
	if _, err := os.Lstat(final); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, final); err != nil {
			return Image{}, err
		}
		placed = true
	} else if err != nil {
		return Image{}, err
	}
	rec := record{Config: doc, Size: size}
	if e := s.images[hex]; e != nil {
		rec = e.rec
		rec.Removed = false
	}
	put := map[string]record{}
	if tag != "" {
		if old, ok := s.tags[tag]; ok && old != hex {
			o := s.images[old].rec
			o.Tags = slices.DeleteFunc(slices.Clone(o.Tags), func(t string) bool { return t == tag })
			put[old] = o
		}
		if !slices.Contains(rec.Tags, tag) {
			rec.Tags = append(slices.Clone(rec.Tags), tag)
			slices.Sort(rec.Tags)
		}
		rec.LastTagTime = time.Now().UTC()
	}
	put[hex] = rec
	if err := s.commit(put, nil); err != nil {
		if placed {
			// Back where the deferred removal finds it.
			os.Rename(final, tmp)
		}
		return Image{}, err
	}
	return s.images[hex].img.clone(), nil
}

// decompress detects the compression of r by its first bytes, as Docker
// does.
func decompress(ctx context.Context, r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(6)
	if len(magic) == 0 {
		if err == io.EOF {
			return nil, invalid("the input is empty: expected a tar archive")
		}
		return nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, invalid("read gzip input: %v", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return filter(ctx, br, "xz", "-d", "-c", "-q")
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return filter(ctx, br, "zstd", "-d", "-c", "-q")
	}
	return io.NopCloser(br), nil
}

// filter decompresses r through a command, as Docker does for xz and zstd.
func filter(ctx context.Context, r io.Reader, name string, args ...string) (io.ReadCloser, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = r
	f := &filterReader{cmd: cmd}
	cmd.Stderr = &f.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("decompress %s input: %w", name, err)
	}
	f.out = out
	return f, nil
}

// filterReader reads a filter's output; at its end, the filter's failure.
type filterReader struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr bytes.Buffer
	waited bool
}

func (f *filterReader) Read(p []byte) (int, error) {
	n, err := f.out.Read(p)
	if err == io.EOF && !f.waited {
		f.waited = true
		if werr := f.cmd.Wait(); werr != nil {
			return n, invalid("%s: %s", filepath.Base(f.cmd.Path), strings.TrimSpace(f.stderr.String()))
		}
	}
	return n, err
}

func (f *filterReader) Close() error {
	if !f.waited {
		f.waited = true
		// Closing the pipe first ends a filter blocked on writing to it.
		f.out.Close()
		f.cmd.Wait()
	}
	return nil
}
