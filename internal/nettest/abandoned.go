package nettest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A test binary killed with SIGKILL (a session or CI job ended under it)
// runs no cleanup: its hosts' directories stay, with the namespaces and
// container root filesystems its daemons mounted there. Each directory a
// test makes under the temporary directory carries an owner mark, the
// test binary's PID and start time; the next test binary removes the
// directories whose owner is gone, unless a process still works in them.

const ownerFile = ".berth-test-owner"

// tempDir makes a directory under the temporary directory marked as this
// process's.
func tempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	mark, err := processMark(os.Getpid())
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(mark), 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// processMark is a PID with its start time, so that a PID used again by
// another process does not pass for the owner.
func processMark(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after it; the start time is field 22 of the whole line.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) < 20 {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return fmt.Sprintf("%d %s", pid, fields[19]), nil
}

// sweepAbandoned removes what dead test binaries left under the temporary
// directory, and says what it removed or could not.
func sweepAbandoned() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "berth-*"))
	for _, dir := range dirs {
		mark, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not a test's, or one from before the marks
		}
		var pid int
		if _, err := fmt.Sscanf(string(mark), "%d", &pid); err != nil {
			continue
		}
		if now, err := processMark(pid); err == nil && now == string(mark) {
			continue // its owner runs
		}
		if users := processesIn(dir); len(users) > 0 {
			fmt.Fprintf(os.Stderr, "nettest: %s is left from a test that died, but processes %v still use it; left alone\n", dir, users)
			continue
		}
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "nettest: remove %s, left from a test that died: %v\n", dir, err)
			continue
		}
		fmt.Fprintf(os.Stderr, "nettest: removed %s, left from a test that died\n", dir)
	}
}

// processesIn lists the processes whose command line, root or working
// directory lies under dir: a dead test's shims or containers.
func processesIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		root, _ := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.Contains(string(cmdline), dir) || strings.HasPrefix(root, dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, pid)
		}
	}
	return out
}
