package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// soakSample is what a churn soak watches of berthd.
type soakSample struct {
	at         time.Duration
	rounds     int
	rssKiB     int
	heapKiB    int
	goroutines int
	fds        int
}

func (s soakSample) String() string {
	return fmt.Sprintf("%8s %7d %9d %9d %10d %5d", s.at.Round(time.Second), s.rounds, s.rssKiB, s.heapKiB, s.goroutines, s.fds)
}

var (
	vmRSS      = regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`)
	heapInuse  = regexp.MustCompile(`(?m)^# HeapInuse = (\d+)`)
	goroutines = regexp.MustCompile(`goroutine profile: total (\d+)`)
)

// sample reads berthd's resident memory and open files from /proc, its
// heap and goroutines from its profiles.
func sample(t *testing.T, d *nettest.Daemon) soakSample {
	t.Helper()
	pid := d.PID()
	var s soakSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	s.rssKiB = atoiMatch(t, vmRSS, string(status))
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	s.fds = len(fds)
	_, heap := raw(t, d, "GET", "/debug/pprof/heap?debug=1&gc=1", "", "")
	s.heapKiB = atoiMatch(t, heapInuse, heap) / 1024
	_, g := raw(t, d, "GET", "/debug/pprof/goroutine?debug=1", "", "")
	s.goroutines = atoiMatch(t, goroutines, g)
	return s
}

// saveHeap writes berthd's heap profile, after a collection, to
// $BERTH_SOAK_HEAP/heap-<name>.pb.gz when that is set, for
// go tool pprof -base heap-warm.pb.gz bin/berthd heap-end.pb.gz.
func saveHeap(t *testing.T, d *nettest.Daemon, name string) {
	t.Helper()
	dir := os.Getenv("BERTH_SOAK_HEAP")
	if dir == "" {
		return
	}
	code, profile := raw(t, d, "GET", "/debug/pprof/heap?gc=1", "", "")
	if code != 200 {
		t.Fatalf("heap profile: %d %s", code, profile)
	}
	if err := os.WriteFile(filepath.Join(dir, "heap-"+name+".pb.gz"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
}

func atoiMatch(t *testing.T, re *regexp.Regexp, s string) int {
	t.Helper()
	m := re.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%.500s", re, s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestSoakChurn churns networks, containers, connects, lookups, published
// ports, volumes and event streams and requires berthd's goroutines, open
// files and memory to stay flat once warm. make test runs 15 rounds, which
// shows a leak of one goroutine or file a round; make soak sets BERTH_SOAK
// to a duration and reports the figures.
func TestSoakChurn(t *testing.T) {
	t.Parallel()
	limit, err := time.ParseDuration(os.Getenv("BERTH_SOAK"))
	long := err == nil && limit > 0
	const shortRounds, shortWarm = 15, 5
	h, d := containerHost(t)
	baseline := kernelView(t, h)
	anchor := runContainer(t, d, spec{name: "anchor", cmd: []string{"sleep", "100000"}})
	start := time.Now()
	every := max(limit/60, 10*time.Second)
	warm := limit / 10
	var samples []soakSample
	var warmSample *soakSample
	next := start
	rounds := 0
	more := func() bool {
		if long {
			return time.Since(start) < limit
		}
		return rounds < shortRounds
	}
	for more() && !t.Failed() {
		if due := long && time.Now().After(next) || !long && (rounds == 0 || rounds == shortWarm); due {
			s := sample(t, d)
			s.at, s.rounds = time.Since(start), rounds
			samples = append(samples, s)
			if warmSample == nil && (long && s.at >= warm || !long && rounds == shortWarm) {
				warmSample = &samples[len(samples)-1]
				saveHeap(t, d, "warm")
			}
			next = next.Add(every)
		}
		churnRound(t, d, anchor, rounds)
		rounds++
	}
	if t.Failed() {
		return
	}
	end := sample(t, d)
	saveHeap(t, d, "end")
	end.at, end.rounds = time.Since(start), rounds
	samples = append(samples, end)
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %7s %9s %9s %10s %5s\n", "time", "rounds", "rss KiB", "heap KiB", "goroutines", "fds")
	for _, s := range samples {
		fmt.Fprintln(&b, s)
	}
	t.Logf("churn soak, %v, %d rounds:\n%s", time.Since(start).Round(time.Second), rounds, b.String())
	if report := os.Getenv("BERTH_SOAK_REPORT"); report != "" {
		os.WriteFile(report, []byte(b.String()), 0o644)
	}
	if warmSample == nil {
		t.Fatalf("no sample after the warm-up")
	}
	// Flat: what a round leaves behind must not add up. Goroutines and
	// files are counted between rounds, when nothing is in flight; the
	// heap is measured after a collection.
	w := *warmSample
	slack := 3
	if long {
		slack = 10
	}
	if end.goroutines > w.goroutines+slack {
		_, profile := raw(t, d, "GET", "/debug/pprof/goroutine?debug=1", "", "")
		t.Errorf("goroutines grew from %d to %d:\n%s", w.goroutines, end.goroutines, profile)
	}
	if end.fds > w.fds+slack {
		t.Errorf("open files grew from %d to %d", w.fds, end.fds)
	}
	if end.heapKiB > w.heapKiB+max(w.heapKiB/2, 8<<10) {
		t.Errorf("heap grew from %d KiB to %d KiB", w.heapKiB, end.heapKiB)
	}
	if end.rssKiB > w.rssKiB+max(w.rssKiB/2, 32<<10) {
		t.Errorf("resident memory grew from %d KiB to %d KiB", w.rssKiB, end.rssKiB)
	}
	if _, err := d.Client.ContainerRemove(ctxT(t), anchor, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		if got := kernelView(t, h); got != baseline {
			return fmt.Errorf("after the soak the host has\n%s\nwant\n%s", got, baseline)
		}
		return nil
	})
}

// churnRound makes and unmakes what a user does: a network, three
// containers on it (one publishing a port, one with a volume), the anchor
// connected and looking a peer up, an event stream, then all of it removed.
func churnRound(t *testing.T, d *nettest.Daemon, anchor string, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	net := fmt.Sprintf("soak%d", round%3)
	if _, err := d.Client.NetworkCreate(ctx, net, client.NetworkCreateOptions{}); err != nil {
		t.Fatalf("round %d: network create: %v", round, err)
	}
	events := d.Client.Events(ctx, client.EventsListOptions{})
	var ids []string
	for i := range 3 {
		hc := &ctypes.HostConfig{NetworkMode: ctypes.NetworkMode(net)}
		switch i {
		case 1:
			hc.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{}}}
		case 2:
			hc.Binds = []string{fmt.Sprintf("soakvol%d:/data", round%3)}
		}
		res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: fmt.Sprintf("s%d", i),
			Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "1000"},
				ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}},
			HostConfig: hc})
		if err != nil {
			t.Fatalf("round %d: create: %v", round, err)
		}
		if _, err := d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatalf("round %d: start: %v", round, err)
		}
		ids = append(ids, res.ID)
	}
	if _, err := d.Client.NetworkConnect(ctx, net, client.NetworkConnectOptions{Container: anchor}); err != nil {
		t.Fatalf("round %d: connect: %v", round, err)
	}
	if out, _, code := execIn(t, d, anchor, "nslookup", "s0"); code != 0 {
		t.Errorf("round %d: the anchor cannot look s0 up:\n%s", round, out)
	}
	if _, err := d.Client.NetworkDisconnect(ctx, net, client.NetworkDisconnectOptions{Container: anchor}); err != nil {
		t.Fatalf("round %d: disconnect: %v", round, err)
	}
	select {
	case <-events.Messages:
	case err := <-events.Err:
		t.Fatalf("round %d: events: %v", round, err)
	case <-ctx.Done():
		t.Fatalf("round %d: no event", round)
	}
	for _, id := range ids {
		if _, err := d.Client.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Fatalf("round %d: rm: %v", round, err)
		}
	}
	if _, err := d.Client.VolumeRemove(ctx, fmt.Sprintf("soakvol%d", round%3), client.VolumeRemoveOptions{}); err != nil {
		t.Fatalf("round %d: volume rm: %v", round, err)
	}
	if _, err := d.Client.NetworkRemove(ctx, net, client.NetworkRemoveOptions{}); err != nil {
		t.Fatalf("round %d: network rm: %v", round, err)
	}
}
