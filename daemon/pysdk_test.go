package daemon_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pythonDocker is the Python with Docker's SDK (Debian's python3-docker,
// which .ci/run installs).
const pythonDocker = "/usr/bin/python3"

func TestDockerPythonSDK(t *testing.T) {
	t.Parallel()
	if err := exec.Command(pythonDocker, "-c", "import docker").Run(); err != nil {
		t.Skipf("needs Docker's Python SDK for %s (Debian package python3-docker): %v", pythonDocker, err)
	}
	_, d := containerHost(t)
	script, err := filepath.Abs(filepath.Join("testdata", "pysdk", "sdk.py"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code, err := d.Run(ctxT(t), "", pythonDocker, script)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.HasSuffix(out, "ok\n") {
		t.Errorf("the SDK's session failed (exit %d):\n%s\n%s", code, out, errOut)
	}
}
