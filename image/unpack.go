package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

// layer is what unpacking a tar stream learnt of it.
type layer struct {
	// diffID is the digest of the uncompressed tar.
	diffID string
	// created is the newest modification time in it.
	created time.Time
}

// unpack unpacks the tar stream r into the new directory dir. Every file
// system call goes through an os.Root on dir, so no name, hard link or
// symlink in the archive reaches outside it.
func unpack(ctx context.Context, r io.Reader, dir string) (layer, error) {
	in, err := decompress(ctx, r)
	if err != nil {
		return layer{}, err
	}
	defer in.Close()
	sum := sha256.New()
	stream := io.TeeReader(in, sum)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return layer{}, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return layer{}, err
	}
	defer root.Close()
	x := extractor{root: root, chown: os.Geteuid() == 0, dirTimes: map[string]time.Time{}}
	var newest time.Time
	tr := tar.NewReader(stream)
	for {
		if err := ctx.Err(); err != nil {
			return layer{}, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errdefs.IsInvalidArgument(err) {
				return layer{}, err
			}
			return layer{}, invalid("read tar archive: %v", err)
		}
		if hdr.ModTime.After(newest) {
			newest = hdr.ModTime
		}
		if err := x.extract(tr, hdr); err != nil {
			return layer{}, archiveError(hdr.Name, err)
		}
	}
	// The diff ID is of the whole stream, padding after the archive's end
	// included.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return layer{}, invalid("read tar archive: %v", err)
	}
	// Last, as creating entries changed them.
	for name, t := range x.dirTimes {
		if err := root.Chtimes(name, time.Time{}, t); err != nil {
			return layer{}, archiveError(name, err)
		}
	}
	if newest.IsZero() {
		newest = time.Unix(0, 0)
	}
	return layer{diffID: fmt.Sprintf("sha256:%x", sum.Sum(nil)), created: newest.UTC()}, nil
}

// archiveError classes an unpacking error: a disk that is full or failing
// is the host's trouble, anything else (a path escaping the root, a hard
// link to a directory, a file where a directory must be) the archive's.
func archiveError(name string, err error) error {
	for _, host := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.ENOMEM} {
		if errors.Is(err, host) {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
	}
	if errdefs.IsInvalidArgument(err) {
		return err
	}
	return invalid("unpack %s: %v", name, err)
}

// inside is an archive path made relative to the root: a leading "/" is
// dropped, as tar does; a path climbing out with ".." is refused.
func inside(name string) (string, error) {
	clean := path.Clean(strings.TrimLeft(name, "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", invalid("unpack %s: the path leads out of the image", name)
	}
	return clean, nil
}

type extractor struct {
	root  *os.Root
	chown bool
	// dirTimes are the directories' modification times, set at the end.
	dirTimes map[string]time.Time
}

func (x *extractor) extract(r io.Reader, hdr *tar.Header) error {
	name, err := inside(hdr.Name)
	if err != nil {
		return err
	}
	perm := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeXGlobalHeader:
		// runc makes the devices a container gets in its own /dev.
		return nil
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return invalid("unpack %s: the root of an image must be a directory", hdr.Name)
		}
		x.dirTimes[name] = hdr.ModTime
		return x.attrs(name, hdr, perm)
	}
	if err := x.root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	// A later entry replaces an earlier one rather than writing through it:
	// a symlink left in place would redirect the write.
	if fi, err := x.root.Lstat(name); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
		if err := x.root.RemoveAll(name); err != nil {
			return err
		}
		for d := range x.dirTimes {
			if d == name || strings.HasPrefix(d, name+"/") {
				delete(x.dirTimes, d)
			}
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		x.dirTimes[name] = hdr.ModTime
		return x.attrs(name, hdr, perm)
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(name, r, hdr, perm)
	case tar.TypeSymlink:
		// The target is not checked: a symlink is never followed out of the
		// root here, and a container resolves it inside its own.
		if err := x.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		if x.chown {
			return x.root.Lchown(name, hdr.Uid, hdr.Gid)
		}
		return nil
	case tar.TypeLink:
		target, err := inside(hdr.Linkname)
		if err != nil {
			return err
		}
		return x.root.Link(target, name)
	}
	return invalid("unpack %s: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
}

func (x *extractor) file(name string, r io.Reader, hdr *tar.Header, perm fs.FileMode) error {
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil && x.chown {
		err = f.Chown(hdr.Uid, hdr.Gid)
	}
	// After Chown, which clears the set-user-ID and set-group-ID bits.
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return x.root.Chtimes(name, time.Time{}, hdr.ModTime)
}

// attrs gives a directory its owner and mode.
func (x *extractor) attrs(name string, hdr *tar.Header, perm fs.FileMode) error {
	if x.chown {
		if err := x.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	return x.root.Chmod(name, perm)
}

// diskUsage is what the files under dir take, as Docker counts an image's
// size: the sizes of all but directories, hard links once.
func diskUsage(dir string) (int64, error) {
	var size int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		size += fi.Size()
		return nil
	})
	return size, err
}
