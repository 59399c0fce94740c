package cnitest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// PluginsVersion is the release of github.com/containernetworking/plugins
// the tests run.
const PluginsVersion = "v1.10.0"

const pluginsModule = "github.com/containernetworking/plugins"

// PluginNames are the plugins Plugins builds, by the name a configuration
// gives as "type".
var PluginNames = []string{"bridge", "host-local", "portmap", "macvlan", "loopback", "firewall", "tuning"}

// packages are the plugins' packages inside their module, as PluginNames.
var packages = []string{
	"plugins/main/bridge",
	"plugins/ipam/host-local",
	"plugins/meta/portmap",
	"plugins/main/macvlan",
	"plugins/main/loopback",
	"plugins/meta/firewall",
	"plugins/meta/tuning",
}

// errFetch is a failure to get the module, which skips rather than fails
// a test: the machine has no way to the module proxy.
var errFetch = errors.New("fetch the plugins module")

// Plugins returns the directory holding the plugin binaries of
// PluginsVersion, building them when the cache lacks them. Parallel tests
// and test binaries wait for one build; a build that was cut short leaves
// nothing another one would take for finished. The test is skipped when
// the module cannot be fetched.
func Plugins(t testing.TB) string {
	t.Helper()
	dir, err := plugins()
	if errors.Is(err, errFetch) {
		t.Skipf("CNI plugins %s: %v", PluginsVersion, err)
	}
	if err != nil {
		t.Fatalf("CNI plugins %s: %v", PluginsVersion, err)
	}
	return dir
}

func plugins() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	base := filepath.Join(cache, "berth-test")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(base, "cni-plugins-"+PluginsVersion)
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	// Built beside the final directory, so the rename that publishes it
	// stays on one file system.
	tmp, err := os.MkdirTemp(base, "cni-plugins-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	if err := build(filepath.Join(tmp, "mod"), bin); err != nil {
		return "", err
	}
	if err := os.Rename(bin, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// build makes the plugins in bin from a module of its own at mod, which
// requires the plugins' module: `go build` of another module's packages
// needs a main module to resolve them in.
func build(mod, bin string) error {
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	if err := goCmd(mod, "mod", "init", "berth-cnitest"); err != nil {
		return err
	}
	if err := goCmd(mod, "get", pluginsModule+"@"+PluginsVersion); err != nil {
		return fmt.Errorf("%w: %v", errFetch, err)
	}
	args := []string{"build", "-trimpath", "-o", bin + string(filepath.Separator)}
	for _, p := range packages {
		args = append(args, pluginsModule+"/"+p)
	}
	if err := goCmd(mod, args...); err != nil {
		return err
	}
	for _, name := range PluginNames {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return fmt.Errorf("plugin %s was not built: %w", name, err)
		}
	}
	return nil
}

func goCmd(dir string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
