package daemon

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"
)

func (d *Daemon) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Ostype", runtime.GOOS)
	h.Set("Docker-Experimental", "false")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		return nil
	}
	_, err := w.Write([]byte("OK"))
	return err
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func machine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func (d *Daemon) version(w http.ResponseWriter, r *http.Request) error {
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "berth"},
		Version:       Version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		GoVersion:     runtime.Version(),
		KernelVersion: kernelVersion(),
		GitCommit:     GitCommit,
		Components: []system.ComponentVersion{{
			Name: "Engine", Version: Version,
			Details: map[string]string{
				"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": runtime.GOOS,
				"Arch": runtime.GOARCH, "GoVersion": runtime.Version(), "KernelVersion": kernelVersion(),
				"GitCommit": GitCommit,
			},
		}},
	}
	return writeJSON(w, http.StatusOK, v)
}

func (d *Daemon) info(w http.ResponseWriter, r *http.Request) error {
	hostname, _ := os.Hostname()
	info := system.Info{
		ID:              d.id,
		Name:            hostname,
		ServerVersion:   Version,
		KernelVersion:   kernelVersion(),
		OperatingSystem: osName(),
		OSType:          runtime.GOOS,
		Architecture:    machine(),
		NCPU:            runtime.NumCPU(),
		MemTotal:        memTotal(),
		DockerRootDir:   d.cfg.Root,
		IPv4Forwarding:  forwarding(),
		NGoroutines:     runtime.NumGoroutine(),
		SystemTime:      time.Now().Format(time.RFC3339Nano),
		LoggingDriver:   "json-file",
		Debug:           false,
		Plugins:         system.PluginsInfo{Network: d.ctrl.DriverNames()},
	}
	for _, p := range d.cfg.Pools {
		info.DefaultAddressPools = append(info.DefaultAddressPools, system.NetworkAddressPool{Base: p.Base, Size: p.Size})
	}
	info.Warnings = slices.Concat(d.apiWarnings, d.forwardWarnings())
	return writeJSON(w, http.StatusOK, info)
}

func osName() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func memTotal() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

func forwarding() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// forwardWarnings explains, for every other table that drops forwarded
// packets by policy, why containers' traffic through the host stops there
// and what the host's administrator can do about it.
func (d *Daemon) forwardWarnings() []string {
	drops, err := d.fw.ForwardDrops()
	if err != nil {
		return []string{"WARNING: cannot read the host's firewall: " + err.Error()}
	}
	var out []string
	for _, c := range drops {
		out = append(out, fmt.Sprintf("WARNING: %s drops forwarded packets by policy: traffic between containers and other machines "+
			"(published ports, connections out) is dropped there whatever berth's table accepts; berth does not edit other tables. "+
			"Accept berth's bridges in that chain, e.g. nft insert rule %s iifname \"berth0\" accept; nft insert rule %s oifname \"berth0\" accept "+
			"(berth's own table still decides what passes), and likewise for each network's bridge: berth doctor prints the rules for every one", c, c, c))
	}
	return out
}
