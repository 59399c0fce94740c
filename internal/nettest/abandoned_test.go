package nettest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSweepRemovesWhatDeadTestsLeftAndNothingElse(t *testing.T) {
	RequireRoot(t)
	mine, err := tempDir("berth-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(mine)
	// A dead owner: this PID with another start time (a PID used again).
	dead, err := os.MkdirTemp("", "berth-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dead)
	if err := os.WriteFile(filepath.Join(dead, ownerFile), fmt.Appendf(nil, "%d 1", os.Getpid()), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dead, "d1", "run", "netns", "x")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	// Unmarked: not a test's, never touched.
	unmarked, err := os.MkdirTemp("", "berth-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(unmarked)

	sweepAbandoned()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead test's directory is still there: %v", err)
	}
	for _, dir := range []string{mine, unmarked} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s was swept: %v", dir, err)
		}
	}
}
