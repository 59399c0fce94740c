package main

import (
	"math"
	"os"
	"testing"
	"time"
)

func TestParseStatCPUAddsUtimeAndStime(t *testing.T) {
	// A stat line as the kernel writes it, with a command name holding a
	// space and parentheses of its own; utime 4711, stime 289.
	stat := "4242 (berth d) (x)) S 1 4242 4242 0 -1 4194560 12345 0 3 0 4711 289 7 9 20 0 12 0 8765 1234567 890 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	ticks, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if ticks != 5000 {
		t.Errorf("ticks %d, want utime + stime = 5000 (not the children's 7 + 9)", ticks)
	}
	for _, bad := range []string{"", "4242 berthd S 1", "4242 (berthd) S 1 2 3", "4242 (berthd) S 1 4242 4242 0 -1 4194560 12345 0 3 0 x 289"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestCPUPerQueryIsMicrosecondsPerAnsweredQuery(t *testing.T) {
	// 18 s of CPU at 100 ticks a second over 3 million answers: 6 µs each.
	us, err := cpuPerQuery(1800, 100, 3_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(us-6) > 1e-9 {
		t.Errorf("%v µs/q, want 6", us)
	}
	if us, err := cpuPerQuery(0, 100, 1000); err != nil || us != 0 {
		t.Errorf("an idle resolver: %v µs/q, %v", us, err)
	}
	if _, err := cpuPerQuery(1800, 100, 0); err == nil {
		t.Errorf("no answers gave a figure")
	}
	if _, err := cpuPerQuery(-5, 100, 1000); err == nil {
		t.Errorf("CPU time that went back gave a figure")
	}
}

func TestResolverCPUResultDividesByTheAnsweredQueries(t *testing.T) {
	run := DNSRun{Sent: 2_000_100, Completed: 2_000_000, Lost: 100, ResolverTicks: 1300, ClientCPU: 19 * time.Second}
	res, err := resolverCPUResult(Result{Workload: "dns local name" + resolverCPU, Unit: "µs/q", Engine: "berth"}, run, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Samples) != 1 || math.Abs(res.Samples[0]-6.5) > 1e-9 {
		t.Errorf("samples %v, want 13 s over 2,000,000 answered = 6.5 µs", res.Samples)
	}
	if res.Extra["resolver_cpu_s"] != 13 || res.Extra["answered"] != 2_000_000 || math.Abs(res.Extra["client_cpu_us_per_q"]-9.5) > 1e-9 {
		t.Errorf("extra %v", res.Extra)
	}
}

func TestProcessCPUReadsALiveProcess(t *testing.T) {
	self := []int{os.Getpid()}
	before, err := processCPU(self)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has counted a tick more, for at most 5 s.
	after, x := before, 0
	for deadline := time.Now().Add(5 * time.Second); after == before && time.Now().Before(deadline); {
		for i := range 1_000_000 {
			x += i
		}
		if after, err = processCPU(self); err != nil {
			t.Fatal(err)
		}
	}
	if after <= before {
		t.Errorf("CPU time %d ticks after 5 s of spinning, %d before (%d)", after, before, x)
	}
	if _, err := processCPU(nil); err == nil {
		t.Errorf("no process gave a CPU time")
	}
}
