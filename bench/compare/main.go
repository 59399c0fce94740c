// Command berth-compare runs the same networking workloads on berth,
// the CNI reference plugins, netavark/aardvark-dns and (when asked) Docker,
// one engine after another on this machine, and prints one table of
// medians, 95th and 99th percentiles with berth's advantage over each
// engine. Raw samples go to a JSON file. Everything runs in a network and
// mount namespace of the harness's own. `make bench-compare` installs what
// it needs and runs it; see bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// engines in the order they run and appear.
var engines = []struct {
	name string
	make func() Engine
}{
	{"berth", func() Engine { return &berthEngine{} }},
	{"cni", func() Engine { return &cniEngine{} }},
	{"netavark", func() Engine { return &netavarkEngine{} }},
	{"docker", func() Engine { return &dockerEngine{} }},
}

func main() {
	if code, done := enterTestHost(); done {
		os.Exit(code)
	}
	os.Exit(run())
}

func run() int {
	var (
		only    = flag.String("engines", "berth,cni,netavark", "engines to run, comma-separated (berth, cni, netavark, docker)")
		samples = flag.Int("samples", 30, "measured rounds per workload")
		warmup  = flag.Int("warmup", 5, "warm-up rounds per workload")
		out     = flag.String("out", "bench/results", "directory for the JSON of raw samples")
		berthd  = flag.String("berthd", "bin/berthd", "berthd to measure")
		image   = flag.String("image", "build/busybox.tar", "busybox root filesystem for containers")
		quick   = flag.Bool("quick", false, "small workloads, to try the harness (numbers not comparable)")
		filter  = flag.String("run", "", "only workloads matching this regular expression")
		profile = flag.String("profile", "", "directory for CPU profiles of berthd, one per workload, each of further rounds after the measured ones")
	)
	flag.Parse()
	var re *regexp.Regexp
	if *filter != "" {
		var err error
		if re, err = regexp.Compile(*filter); err != nil {
			fmt.Fprintln(os.Stderr, "berth-compare: -run:", err)
			return 2
		}
	}
	tools := Tools{Berthd: abs(*berthd), Busybox: abs(*image)}
	work, err := os.MkdirTemp("", "berth-compare-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-compare:", err)
		return 1
	}
	defer os.RemoveAll(work)
	remote, stopUpstream, err := setUpTestHost(work)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-compare: set up the test host:", err)
		return 1
	}
	defer stopUpstream()

	scale := fullScale
	if *quick {
		scale = Scale{Endpoints: []int{1, 20}, Ports: 50, Containers: 10, DNSSeconds: 3, ThroughputSeconds: 2}
	}
	runner := &Runner{Samples: *samples, Warmup: *warmup, Scale: scale, Filter: re, ProfileDir: *profile}
	var names []string
	versions := map[string]string{}
	for _, e := range engines {
		if !strings.Contains(","+*only+",", ","+e.name+",") {
			continue
		}
		names = append(names, e.name)
		eng := e.make()
		env := &Env{
			Dir: filepath.Join(work, e.name), Tools: tools, Remote: remote,
			HostAddr:   netip.MustParsePrefix(hostUplinkAddr).Addr(),
			RemoteAddr: netip.MustParsePrefix(remoteAddr).Addr(),
			Upstream:   netip.AddrPortFrom(netip.MustParsePrefix(remoteAddr).Addr(), 53),
			Log:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}
		if err := os.MkdirAll(env.Dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "berth-compare:", err)
			return 1
		}
		runner.Env = env
		before, _ := Ruleset(context.Background())
		progress("%-10s starting", e.name)
		if err := eng.Start(env); err != nil {
			progress("%-10s could not start: %v", e.name, err)
			runner.add(Result{Workload: "start", Engine: e.name}, err)
			eng.Stop()
			env.DeleteNamespaces()
			continue
		}
		versions[e.name] = eng.Version()
		runner.Run(eng)
		if err := eng.Stop(); err != nil {
			progress("%-10s stop: %v", e.name, err)
		}
		if err := env.DeleteNamespaces(); err != nil {
			progress("%-10s remove namespaces: %v", e.name, err)
		}
		if after, err := Ruleset(context.Background()); err == nil && after.Rules != before.Rules {
			progress("%-10s left %d firewall rules behind (%d before it started); flushing them", e.name, after.Rules, before.Rules)
			exec.Command("nft", "flush", "ruleset").Run()
		}
	}

	fmt.Printf("\nberth-compare %s on %s, %d CPUs; %d samples after %d warm-up rounds per workload\n",
		time.Now().UTC().Format(time.RFC3339), kernel(), runtime.NumCPU(), *samples, *warmup)
	for _, n := range names {
		if v, ok := versions[n]; ok {
			fmt.Printf("  %-9s %s\n", n, v)
		}
	}
	fmt.Println("\"berth vs it\": how many times better berth's median is (its time / berth's, or berth's rate / its).")
	fmt.Println()
	WriteTable(os.Stdout, runner.Results, names)
	fmt.Println()
	for _, t := range evaluateTargets(runner.Results, scale) {
		fmt.Println(t)
	}
	path, err := writeResults(*out, runner.Results, versions, scale, *samples, *warmup)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-compare: write results:", err)
		return 1
	}
	fmt.Printf("\nraw samples: %s\n", path)
	return 0
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

// writeResults saves the raw samples with what they were measured on.
func writeResults(dir string, results []Result, versions map[string]string, scale Scale, samples, warmup int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	now := time.Now().UTC()
	doc := struct {
		Time     time.Time         `json:"time"`
		Kernel   string            `json:"kernel"`
		CPUs     int               `json:"cpus"`
		Samples  int               `json:"samples"`
		Warmup   int               `json:"warmup"`
		Scale    Scale             `json:"scale"`
		Versions map[string]string `json:"versions"`
		Results  []Result          `json:"results"`
	}{now, kernel(), runtime.NumCPU(), samples, warmup, scale, versions, results}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "compare-"+now.Format("20060102-150405")+".json")
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}
