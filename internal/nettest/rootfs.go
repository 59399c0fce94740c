package nettest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a tmpfs of size bytes on a new directory of the host's, for
// a daemon's --root on a disk that can fill up. It is unmounted when the
// test ends, after the daemons started later have stopped.
func (h *Host) Tmpfs(name string, size int64) string {
	h.t.Helper()
	dir := filepath.Join(h.Dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		h.t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	h.t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// StartDaemonOn starts berthd with its --root at root, a directory of the
// test's (a Tmpfs), rather than a fresh one.
func (h *Host) StartDaemonOn(root string, args ...string) *Daemon {
	h.t.Helper()
	// berthd takes the last --root it is given.
	d := h.StartDaemon(append(slices.Clone(args), "--root", root)...)
	d.Root = root
	return d
}

// Fill writes the file path until its file system is full and returns how
// much it wrote; removing the file gives the space back.
func Fill(t testing.TB, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	// A tmpfs of the tests' size fills in a few thousand chunks; the
	// bound only stops a file system that never fills.
	for range 1 << 16 {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			// The last pages too, a byte at a time.
			for range len(chunk) {
				if _, err := f.Write(chunk[:1]); err != nil {
					return n
				}
				n++
			}
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("%s: still not full after %d bytes", path, n)
	return n
}
