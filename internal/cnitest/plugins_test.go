package cnitest_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-net/berth/internal/cnitest"
)

// A built plugin answers the CNI VERSION command with the spec versions it
// speaks, which needs no namespace and no root.
func TestPluginsAnswerVersion(t *testing.T) {
	dir := cnitest.Plugins(t)
	for _, name := range cnitest.PluginNames {
		cmd := exec.Command(filepath.Join(dir, name))
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s VERSION: %v", name, err)
		}
		if !strings.Contains(string(out), `"1.1.0"`) {
			t.Errorf("%s speaks %s, want 1.1.0 among its versions", name, out)
		}
	}
}

// A second call finds the cached build: it returns the same directory at
// once.
func TestPluginsCached(t *testing.T) {
	if a, b := cnitest.Plugins(t), cnitest.Plugins(t); a != b {
		t.Fatalf("two calls gave %s and %s", a, b)
	}
}
