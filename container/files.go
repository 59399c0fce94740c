package container

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The files berth bind-mounts over a container's /etc/hostname, /etc/hosts
// and /etc/resolv.conf live in its run-time directory.
func (m *Manager) hostnamePath(id string) string { return filepath.Join(m.runDir(id), "hostname") }
func (m *Manager) hostsPath(id string) string    { return filepath.Join(m.runDir(id), "hosts") }
func (m *Manager) resolvPath(id string) string   { return filepath.Join(m.runDir(id), "resolv.conf") }

// FilePath is the file berth mounts at /etc/<name> (hosts, hostname,
// resolv.conf) in a container: its own, or that of the container whose
// network it shares.
func (m *Manager) FilePath(c Container, name string) string {
	return filepath.Join(m.runDir(m.filesOf(&c)), name)
}

// writeFile replaces a file's content in place: it is bind-mounted into a
// running container, so it must keep its inode.
//
// It writes over the old content and then cuts the file to its new length,
// rather than opening it truncated: ext4 flushes a file emptied by O_TRUNC
// when it is closed (auto_da_alloc), which costs a rewrite of /etc/hosts on
// every connect a disk write.
func writeFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt([]byte(content), 0)
	if err == nil {
		err = f.Truncate(int64(len(content)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mountRootFS mounts the container's root filesystem: the image read-only
// below, the container's own writable layer above.
func (m *Manager) mountRootFS(c *Container) (string, error) {
	upper, work := filepath.Join(m.dir(c.ID), "upper"), filepath.Join(m.dir(c.ID), "work")
	target := filepath.Join(m.runDir(c.ID), "rootfs")
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if mounted(target) {
		return target, nil
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", m.cfg.Images.RootFS(c.ImageID), upper, work)
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount the root filesystem: %w", err)
	}
	return target, nil
}

func (m *Manager) unmountRootFS(id string) error {
	target := filepath.Join(m.runDir(id), "rootfs")
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount the root filesystem: %w", err)
	}
	return nil
}

// mounted tells whether path is a mount point.
func mounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(path, &st) != nil || unix.Stat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// lookupUser resolves Docker's user[:group] against the image's passwd and
// group files.
func lookupUser(rootfs, spec string) (uid, gid uint32, err error) {
	if spec == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, gid, err = lookupID(filepath.Join(rootfs, "etc/passwd"), user, true)
	if err != nil {
		return 0, 0, err
	}
	if hasGroup {
		if gid, _, err = lookupID(filepath.Join(rootfs, "etc/group"), group, false); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// lookupID finds name (or a number) in a passwd or group file and returns
// its ID and, for passwd, its primary group.
func lookupID(path, name string, passwd bool) (uint32, uint32, error) {
	var n uint32
	if _, err := fmt.Sscanf(name, "%d", &n); err == nil && fmt.Sprint(n) == name {
		return n, n, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		var id, g uint32
		fmt.Sscanf(fields[2], "%d", &id)
		g = id
		if passwd && len(fields) > 3 {
			fmt.Sscanf(fields[3], "%d", &g)
		}
		return id, g, nil
	}
	return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
}
