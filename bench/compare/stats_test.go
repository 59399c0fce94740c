package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestSummarizeUsesNearestRankAndTheMiddleForTheMedian(t *testing.T) {
	var v []float64
	for i := 100; i >= 1; i-- { // 1..100, given in reverse
		v = append(v, float64(i))
	}
	s := Summarize(Result{Samples: v})
	if s.N != 100 || s.Median != 50.5 || s.P95 != 95 || s.P99 != 99 || s.Min != 1 || s.Max != 100 {
		t.Errorf("1..100: %+v, want n 100, median 50.5, p95 95, p99 99", s)
	}
	if v[0] != 100 {
		t.Errorf("Summarize sorted the caller's samples")
	}
	s = Summarize(Result{Samples: []float64{3, 1, 2}})
	if s.Median != 2 || s.P95 != 3 || s.P99 != 3 {
		t.Errorf("3 samples: %+v", s)
	}
	// For rates the tail that matters is the low one.
	s = Summarize(Result{Samples: v, HigherIsBetter: true})
	if s.P95 != 5 || s.P99 != 1 {
		t.Errorf("rates 1..100: p95 %v p99 %v, want 5 and 1", s.P95, s.P99)
	}
	if s := Summarize(Result{}); s.N != 0 || s.hasSample {
		t.Errorf("no samples: %+v", s)
	}
}

func TestAdvantageIsRelativeToWhatIsBetter(t *testing.T) {
	fast := Summarize(Result{Samples: []float64{2}})
	slow := Summarize(Result{Samples: []float64{10}})
	if a, ok := Advantage(fast, slow); !ok || a != 5 {
		t.Errorf("2 ms vs 10 ms: %v %v, want 5", a, ok)
	}
	hi := Summarize(Result{Samples: []float64{300}, HigherIsBetter: true})
	lo := Summarize(Result{Samples: []float64{100}, HigherIsBetter: true})
	if a, ok := Advantage(hi, lo); !ok || a != 3 {
		t.Errorf("300 qps vs 100 qps: %v %v, want 3", a, ok)
	}
	if _, ok := Advantage(fast, Summarize(Result{})); ok {
		t.Errorf("advantage over an engine without samples")
	}
}

func TestTableShowsEveryEngineAndWhyOneHasNoNumbers(t *testing.T) {
	results := []Result{
		{Workload: "attach", Unit: "ms", Engine: "berth", Samples: []float64{2, 2, 2}},
		{Workload: "attach", Unit: "ms", Engine: "cni", Samples: []float64{30, 30, 30}},
		{Workload: "attach", Unit: "ms", Engine: "netavark", Skipped: "n/a: no daemon"},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, results, []string{"berth", "cni", "netavark"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", buf.String())
	}
	if f := strings.Fields(lines[2]); len(f) != 6 || f[0] != "cni" || f[2] != "30.0" || f[5] != "15.00x" {
		t.Errorf("cni's row: %q, want berth 15.00x better", lines[2])
	}
	if !strings.Contains(lines[3], "netavark") || !strings.Contains(lines[3], "n/a: no daemon") {
		t.Errorf("netavark's row: %q", lines[3])
	}
}

func TestNumKeepsThreeSignificantDigits(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.0123: "0.012", 0.5: "0.5", 2.345: "2.35", 12.34: "12.3", 1234.5: "1234", math.Inf(1): "+Inf"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTargetsSayMetOrMissedWithTheNumbers(t *testing.T) {
	scale := Scale{Endpoints: []int{1, 500}, Ports: 1000}
	results := []Result{
		{Workload: "attach+detach, 1 endpoints", Engine: "berth", Samples: []float64{3}},
		{Workload: "attach+detach, 1 endpoints", Engine: "cni", Samples: []float64{90}},
		{Workload: "attach+detach, 1 endpoints", Engine: "netavark", Samples: []float64{12}},
		{Workload: "attach+detach, 500 endpoints", Engine: "berth", Samples: []float64{6}},
		{Workload: "attach+detach, 500 endpoints", Engine: "cni", Samples: []float64{100}},
		{Workload: "publish port 1 of 1000", Engine: "berth", Samples: []float64{2}},
		{Workload: "publish port 1000 of 1000", Engine: "berth", Samples: []float64{2.5}},
	}
	got := strings.Join(evaluateTargets(results, scale), "\n")
	for _, want := range []string{
		"MISSED  attach+detach at 1 endpoints: berth 3.00 ms vs fastest other (netavark) 12.0 ms at p50: 4.0x",
		"met     attach+detach at 500 endpoints: berth 6.00 ms vs fastest other (cni) 100 ms at p50: 16.7x",
		"MISSED  berth attach+detach p50 at 500 endpoints is 2.00x its p50 at 1",
		"met     berth's port 1000 costs 1.25x its first",
		"met     berth attach+detach p50 at 1 endpoint: 3.00 ms (target ≤ 4 ms)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
}

func TestTargetsAgainstDockerAreTheIssuesFigures(t *testing.T) {
	scale := Scale{Endpoints: []int{1, 500}}
	results := []Result{
		{Workload: "attach+detach, 1 endpoints", Engine: "berth", Samples: []float64{5}},
		{Workload: "attach+detach, 500 endpoints", Engine: "berth", Samples: []float64{5.5}},
		{Workload: "container connect+disconnect", Engine: "berth", Samples: []float64{2, 2, 3}},
		{Workload: "container connect+disconnect", Engine: "cni", Skipped: "n/a: cni has no containers"},
		{Workload: "container connect+disconnect", Engine: "docker", Samples: []float64{50, 50, 60}},
		{Workload: "network create+remove", Engine: "berth", Samples: []float64{1}},
		{Workload: "network create+remove", Engine: "docker", Samples: []float64{40}},
		{Workload: "dns local name", Engine: "berth", HigherIsBetter: true, Samples: []float64{90000}},
		{Workload: "dns local name, latency under load", Engine: "berth", Samples: []float64{0.2, 0.3, 0.8}},
		{Workload: "dns local name", Engine: "docker", HigherIsBetter: true, Samples: []float64{20000}},
		{Workload: "dns local name, resolver CPU per query", Engine: "berth", Samples: []float64{2.5}},
		{Workload: "dns local name, resolver CPU per query", Engine: "docker", Samples: []float64{7}},
	}
	got := strings.Join(evaluateTargets(results, scale), "\n")
	for _, want := range []string{
		"MISSED  berth attach+detach p50 at 1 endpoint: 5.00 ms (target ≤ 4 ms)",
		"met     berth attach+detach p50 at 500 endpoints is 1.10x its p50 at 1 (target ≤ 1.15x)",
		"met     container connect+disconnect: berth 2.00 ms vs docker 50.0 ms at p50: 25.0x (target ≥ 20x)",
		"MISSED  network create+remove: berth 1.00 ms vs docker 40.0 ms at p50: 40.0x (target ≥ 60x)",
		"met     dns local name: berth 90000 qps vs docker 20000 qps: 4.50x, berth p99 0.8 ms (target ≥ 3x, p99 < 1 ms)",
		"MISSED  dns local name: berth's resolver CPU per query 2.50 µs vs docker's 7.00 µs: 2.80x less (target ≤ 1/3 of docker's)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}

	// A resolver 3x faster misses when its tail is 1 ms or more.
	results[8].Samples = []float64{0.2, 0.3, 1}
	got = strings.Join(evaluateTargets(results, scale), "\n")
	if want := "MISSED  dns local name: berth 90000 qps vs docker 20000 qps: 4.50x, berth p99 1.00 ms"; !strings.Contains(got, want) {
		t.Errorf("targets lack %q:\n%s", want, got)
	}
}

func TestTargetsAgainstDockerAreNotApplicableWithoutIt(t *testing.T) {
	results := []Result{
		{Workload: "container connect+disconnect", Engine: "berth", Samples: []float64{2}},
		{Workload: "network create+remove", Engine: "berth", Samples: []float64{1}},
		{Workload: "dns local name", Engine: "berth", HigherIsBetter: true, Samples: []float64{90000}},
		{Workload: "dns local name, latency under load", Engine: "berth", Samples: []float64{0.4}},
		{Workload: "dns local name", Engine: "netavark", HigherIsBetter: true, Samples: []float64{30000}},
		{Workload: "dns local name, latency under load", Engine: "netavark", Samples: []float64{0.5}},
		{Workload: "dns local name, resolver CPU per query", Engine: "berth", Samples: []float64{2}},
	}
	got := strings.Join(evaluateTargets(results, Scale{}), "\n")
	for _, want := range []string{
		"n/a     container connect+disconnect ≥20x docker: docker not measured (BENCH_DOCKER=1)",
		"n/a     network create+remove ≥60x docker: docker not measured (BENCH_DOCKER=1)",
		"n/a     dns local name ≥3x docker's qps, berth p99 < 1 ms: docker not measured (BENCH_DOCKER=1); berth p99 0.4 ms",
		"n/a     dns local name: berth's resolver CPU per query ≤ 1/3 of docker's: docker not measured (BENCH_DOCKER=1); berth 2.00 µs",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "attach+detach p50 at 1 endpoint") {
		t.Errorf("a target for a workload that did not run:\n%s", got)
	}
}

func TestSlugMakesWorkloadNamesFileNames(t *testing.T) {
	for in, want := range map[string]string{
		"attach+detach, 500 endpoints":       "attach-detach-500-endpoints",
		"network create+remove":              "network-create-remove",
		"dns forwarded name (cached)":        "dns-forwarded-name-cached",
		"publish port 1000 of 1000":          "publish-port-1000-of-1000",
		"  Restart to working rules, 1000 …": "restart-to-working-rules-1000",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
