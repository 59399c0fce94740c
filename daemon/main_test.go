package daemon_test

import (
	"os"
	"testing"

	"github.com/berth-net/berth/internal/nettest"
)

func TestMain(m *testing.M) { nettest.Main(m) }

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
