package nettest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// ComposeVersion is the Docker Compose the tests drive berthd with.
const ComposeVersion = "v5.6.0"

// Compose returns the path of a docker-compose binary built from Compose's
// Go module, cached under the user's cache directory. It is built when
// missing: Compose's go.mod has exclude directives, so `go install` refuses
// it; the module is downloaded and built from a copy. Parallel tests and
// packages wait for one build.
func Compose(t testing.TB) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no cache directory for the compose binary: %v", err)
	}
	dir := filepath.Join(cache, "berth-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "docker-compose-"+ComposeVersion)
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := buildCompose(bin); err != nil {
		t.Fatalf("build docker compose %s from its Go module: %v", ComposeVersion, err)
	}
	return bin
}

func buildCompose(bin string) error {
	const module = "github.com/docker/compose/v5@" + ComposeVersion
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		return fmt.Errorf("go mod download %s: %w", module, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download %s: %s %v", module, mod.Error, err)
	}
	src, err := os.MkdirTemp("", "compose-src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if out, err := exec.Command("cp", "-r", mod.Dir+"/.", src).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the module: %v: %s", err, out)
	}
	if out, err := exec.Command("chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		return fmt.Errorf("chmod the copy: %v: %s", err, out)
	}
	tmp := bin + ".tmp"
	build := exec.Command("go", "build", "-trimpath", "-o", tmp, "./cmd")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	return os.Rename(tmp, bin)
}
