package nettest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var busybox struct {
	once sync.Once
	path string
	err  error
}

// BusyboxImage returns the path of a busybox image tarball, built once per
// test binary with scripts/mkimage.sh from Debian's busybox-static. Tests
// skip, saying why, where it cannot be built.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (Debian package busybox-static) for the test image")
	}
	busybox.once.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(self), "..", "..", "scripts", "mkimage.sh")
		dir, err := tempDir("berth-image-")
		if err != nil {
			busybox.err = err
			return
		}
		busybox.path = filepath.Join(dir, "busybox.tar")
		if out, err := exec.Command(script, busybox.path).CombinedOutput(); err != nil {
			busybox.err = &buildError{err: err, out: string(out)}
		}
	})
	if busybox.err != nil {
		t.Fatalf("build the busybox image: %v", busybox.err)
	}
	return busybox.path
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// removeBusyboxImage removes the image BusyboxImage built, if any.
func removeBusyboxImage() {
	if busybox.path != "" {
		os.RemoveAll(filepath.Dir(busybox.path))
	}
}
