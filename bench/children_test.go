package bench

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/berth-net/berth/internal/nettest"
)

func TestChildTimesAddsUpChildrenFromForkToExit(t *testing.T) {
	nettest.RequireRoot(t)
	// The first exec of a Go process forks once more, to probe the
	// kernel for pidfds.
	if err := exec.Command("true").Run(); err != nil {
		t.Fatal(err)
	}
	c, err := WatchChildren(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for range 3 {
		if err := exec.Command("sleep", "0.02").Run(); err != nil {
			t.Fatal(err)
		}
	}
	wall := time.Since(start)
	spent, runs, err := c.Take(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if runs != 3 || spent < 60*time.Millisecond || spent > wall {
		t.Errorf("3 children of 20 ms in %v: %d children, %v", wall, runs, spent)
	}
	if spent, runs, err := c.Take(os.Getpid()); err != nil || runs != 0 || spent != 0 {
		t.Errorf("a second take: %d children, %v, %v", runs, spent, err)
	}
	if _, _, err := c.Take(1); err != nil {
		t.Errorf("take for another process: %v", err)
	}
}
