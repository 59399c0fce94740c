package container

import (
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// specVersion is the OCI runtime spec version the bundles claim; runc 1.1
// knows it.
const specVersion = "1.0.2"

// defaultCaps is Docker's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// specInput is what a bundle's config.json is made from.
type specInput struct {
	Args     []string
	Env      []string
	Cwd      string
	Hostname string
	RootFS   string
	// NetNS is the path of the network namespace to join; empty means the
	// daemon's own (host mode).
	NetNS string
	// Files are bind-mounted over /etc/hosts, /etc/resolv.conf and
	// /etc/hostname: target → source.
	Files map[string]string
	// CgroupsPath places the container under berth's cgroup.
	CgroupsPath string
}

// buildSpec is the OCI configuration of a container: new pid, ipc, uts and
// mount namespaces, the given network namespace, Docker's default mounts,
// capabilities and masked paths.
func buildSpec(in specInput) *specs.Spec {
	caps := &specs.LinuxCapabilities{Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps}
	s := &specs.Spec{
		Version: specVersion,
		Process: &specs.Process{
			Args:         in.Args,
			Env:          in.Env,
			Cwd:          in.Cwd,
			Capabilities: caps,
		},
		Root:     &specs.Root{Path: in.RootFS},
		Hostname: in.Hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			CgroupsPath: in.CgroupsPath,
			MaskedPaths: []string{
				"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Sysctl:        map[string]string{},
		},
	}
	if in.NetNS != "" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNS})
		// Docker lets processes in the container bind low ports.
		s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
		s.Linux.Sysctl["net.ipv4.ping_group_range"] = "0 2147483647"
	}
	for _, target := range []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
		if src, ok := in.Files[target]; ok {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: target, Type: "bind", Source: filepath.Clean(src), Options: []string{"rbind", "rprivate"}})
		}
	}
	return s
}
