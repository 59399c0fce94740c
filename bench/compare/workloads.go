package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Runner measures the workloads on one engine after another.
type Runner struct {
	Env     *Env
	Samples int // measured rounds per workload, at least 30 in a real run
	Warmup  int // rounds run first and thrown away
	// Scale sizes the workloads: endpoints already attached, ports
	// published, containers for the memory figure.
	Scale   Scale
	Filter  *regexp.Regexp // workloads to run, by name
	Results []Result
	// ProfileDir, when set, receives CPU profiles of the engines that
	// can profile themselves, one per workload.
	ProfileDir string
	engine     Engine // the engine Run measures
}

// Scale is how big the workloads are.
type Scale struct {
	Endpoints  []int
	Ports      int
	Containers int
	// DNSSeconds is how long each dnsperf run lasts; ThroughputSeconds
	// each iperf3 run.
	DNSSeconds, ThroughputSeconds int
}

var fullScale = Scale{Endpoints: []int{1, 100, 500}, Ports: 1000, Containers: 500, DNSSeconds: 30, ThroughputSeconds: 5}

func (r *Runner) wants(workload string) bool {
	return r.Filter == nil || r.Filter.MatchString(workload)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// add records a result, or why there is none.
func (r *Runner) add(res Result, err error) {
	if err != nil {
		if why, ok := notApplicable(err); ok {
			res.Skipped = "n/a: " + why
		} else {
			res.Skipped = "failed: " + err.Error()
		}
		res.Samples = nil
		progress("%-10s %s: %s", res.Engine, res.Workload, res.Skipped)
	} else {
		if n, ok := r.engine.(Noter); ok {
			res.Note = n.Note(res.Workload)
		}
		s := Summarize(res)
		progress("%-10s %s: median %s %s (n=%d)", res.Engine, res.Workload, num(s.Median), res.Unit, s.N)
	}
	r.Results = append(r.Results, res)
}

// rounds runs warm-up rounds and then the measured ones.
func (r *Runner) rounds(round Round) ([]float64, error) {
	var samples []float64
	for i := 0; i < r.Warmup+r.Samples; i++ {
		d, err := round()
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", i, err)
		}
		if i >= r.Warmup {
			samples = append(samples, ms(d))
		}
	}
	return samples, nil
}

// profile runs further rounds while the engine profiles itself, when
// -profile asked for it and the engine can, and saves the profile as
// <ProfileDir>/<engine>-<workload>.pprof.
func (r *Runner) profile(workload string, round Round) error {
	p, ok := r.engine.(Profiler)
	if r.ProfileDir == "" || !ok {
		return nil
	}
	if err := os.MkdirAll(r.ProfileDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(r.ProfileDir, r.engine.Name()+"-"+slug(workload)+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	done := make(chan error, 1)
	go func() { done <- p.CPUProfile(profileSeconds, f) }()
	// Bounded by count as well as by the profile's end.
	for i := 0; i < 100000; i++ {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("profile: %w", err)
			}
			progress("%-10s %s: CPU profile of %d s of rounds in %s", r.engine.Name(), workload, profileSeconds, path)
			return nil
		default:
		}
		if _, err := round(); err != nil {
			<-done
			return fmt.Errorf("round while profiling: %w", err)
		}
	}
	return fmt.Errorf("profile: %w", <-done)
}

// profileSeconds is how long a profile of rounds lasts.
const profileSeconds = 10

// slug makes a workload's name a file name: "attach+detach, 500
// endpoints" → "attach-detach-500-endpoints".
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// measure prepares a workload, runs its rounds and cleans up.
func (r *Runner) measure(res Result, prepare func() (Round, Cleanup, error)) {
	if !r.wants(res.Workload) {
		return
	}
	progress("%-10s %s …", res.Engine, res.Workload)
	round, cleanup, err := prepare()
	if err == nil {
		res.Samples, err = r.rounds(round)
		if err == nil {
			err = r.profile(res.Workload, round)
		}
		if cerr := cleanup(); cerr != nil && err == nil {
			err = fmt.Errorf("clean up: %w", cerr)
		}
	}
	r.add(res, err)
}

// containerConnect is the workload of ContainerConnector.
const containerConnect = "container connect+disconnect"

// Run measures every workload the engine has.
func (r *Runner) Run(e Engine) {
	r.engine = e
	defer func() { r.engine = nil }()
	name := e.Name()
	if a, ok := e.(Attacher); ok {
		for _, n := range r.Scale.Endpoints {
			r.measure(Result{Workload: fmt.Sprintf("attach+detach, %d endpoints", n), Unit: "ms", Engine: name},
				func() (Round, Cleanup, error) { return a.PrepareAttach(n) })
		}
	}
	if c, ok := e.(ContainerConnector); ok {
		r.measure(Result{Workload: containerConnect, Unit: "ms", Engine: name}, c.PrepareContainerConnect)
	} else if r.wants(containerConnect) {
		r.add(Result{Workload: containerConnect, Unit: "ms", Engine: name},
			NotApplicable{Why: name + " has no containers and no API to connect them through"})
	}
	if c, ok := e.(Creator); ok {
		r.measure(Result{Workload: "network create+remove", Unit: "ms", Engine: name}, c.PrepareCreate)
	} else {
		r.addNotApplicable(Result{Workload: "network create+remove", Unit: "ms", Engine: name}, e, "network create")
	}
	if p, ok := e.(Publisher); ok {
		r.ports(name, p)
	}
	if t, ok := e.(Throughputer); ok {
		r.throughput(name, t)
	}
	if d, ok := e.(Resolver); ok {
		r.dns(name, d)
	} else {
		r.addNotApplicable(Result{Workload: "dns local name", Unit: "qps", Engine: name, HigherIsBetter: true}, e, "resolver")
		r.addNotApplicable(Result{Workload: "dns local name" + resolverCPU, Unit: "µs/q", Engine: name}, e, "resolver")
	}
	if m, ok := e.(Memory); ok {
		r.memory(name, m)
	} else {
		r.addNotApplicable(Result{Workload: "memory idle", Unit: "MiB", Engine: name}, e, "long-running process")
	}
}

// addNotApplicable records a workload the engine does not have, unless
// -run leaves the workload out.
func (r *Runner) addNotApplicable(res Result, e Engine, what string) {
	if r.wants(res.Workload) {
		r.add(res, notApplicableFor(e, what))
	}
}

func notApplicableFor(e Engine, what string) error {
	return NotApplicable{Why: e.Name() + " has no " + what}
}

// ports: the first and the last of Scale.Ports published ports, the
// ruleset then, and a restart with them all.
func (r *Runner) ports(name string, p Publisher) {
	n := r.Scale.Ports
	first := fmt.Sprintf("publish port 1 of %d", n)
	last := fmt.Sprintf("publish port %d of %d", n, n)
	rules := fmt.Sprintf("ruleset with %d ports", n)
	restart := fmt.Sprintf("restart to working rules, %d ports", n)
	if !r.wants(first) && !r.wants(last) && !r.wants(rules) && !r.wants(restart) {
		return
	}
	for _, existing := range []int{0, n - 1} {
		res := Result{Workload: first, Unit: "ms", Engine: name}
		if existing > 0 {
			res.Workload = last
		}
		progress("%-10s %s …", name, res.Workload)
		round, cleanup, err := p.PreparePorts(existing)
		if err != nil {
			r.add(res, err)
			continue
		}
		var size RulesetSize
		res.Samples, err = r.rounds(func() (time.Duration, error) {
			d, undo, err := round()
			if err != nil {
				return 0, err
			}
			if existing > 0 && size.Lines == 0 {
				if size, err = Ruleset(context.Background()); err != nil {
					return 0, err
				}
			}
			return d, undo()
		})
		r.add(res, err)
		if existing > 0 {
			rs := Result{Workload: rules, Unit: "rules", Engine: name, Samples: []float64{float64(size.Rules)},
				Extra: map[string]float64{"lines": float64(size.Lines), "elements": float64(size.Elements)}}
			if err != nil || size.Lines == 0 {
				rs.Samples = nil
			}
			r.add(rs, err)
			if r.wants(restart) {
				rr := Result{Workload: restart, Unit: "ms", Engine: name}
				progress("%-10s %s …", name, rr.Workload)
				round, err := p.RestartRound()
				if err == nil {
					rr.Samples, err = r.rounds(round)
				}
				r.add(rr, err)
			}
		}
		if err := cleanup(); err != nil {
			progress("%-10s clean up after %s: %v", name, res.Workload, err)
		}
	}
}

// throughput: iperf3 to the container directly, through the published port
// from the host (127.0.0.1) and from the remote namespace.
func (r *Runner) throughput(name string, t Throughputer) {
	const port = 5201
	if !r.wants("throughput") {
		return
	}
	progress("%-10s throughput …", name)
	target, cleanup, err := t.PrepareThroughput(port)
	if err != nil {
		r.add(Result{Workload: "throughput direct", Unit: "Gbit/s", Engine: name, HigherIsBetter: true}, err)
		return
	}
	defer func() {
		if err := cleanup(); err != nil {
			progress("%-10s clean up after throughput: %v", name, err)
		}
	}()
	server := Command(context.Background(), target.NS, "iperf3", "-s", "-p", strconv.Itoa(int(target.ContainerPort)))
	if err := server.Start(); err != nil {
		r.add(Result{Workload: "throughput direct", Unit: "Gbit/s", Engine: name, HigherIsBetter: true}, err)
		return
	}
	defer func() {
		server.Process.Kill()
		server.Wait()
	}()
	direct := netip.AddrPortFrom(target.Addr, target.ContainerPort)
	if err := WaitReachable("", direct, 5*time.Second); err != nil {
		r.add(Result{Workload: "throughput direct", Unit: "Gbit/s", Engine: name, HigherIsBetter: true}, err)
		return
	}
	paths := []struct {
		workload, from string
		to             netip.AddrPort
	}{
		{"throughput direct", "", direct},
		{"throughput published, from the host", "", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), target.HostPort)},
		{"throughput published, from another namespace", r.Env.Remote, netip.AddrPortFrom(r.Env.HostAddr, target.HostPort)},
	}
	// The paths take turns, a few times over, so that the machine's drift
	// weighs on all of them alike; each turn gives one ratio of published
	// to direct, measured minutes apart from the next.
	samples := make([][]float64, len(paths))
	turns := make([][]float64, len(paths)) // the mean rate of each turn
	errs := make([]error, len(paths))
	for range throughputTurns {
		for i, p := range paths {
			if errs[i] != nil {
				continue
			}
			var v []float64
			if v, errs[i] = r.iperf(p.from, p.to); errs[i] == nil && len(v) > 0 {
				samples[i] = append(samples[i], v...)
				turns[i] = append(turns[i], mean(v))
			}
		}
	}
	for i, p := range paths {
		r.add(Result{Workload: p.workload, Unit: "Gbit/s", Engine: name, HigherIsBetter: true, Samples: samples[i]}, errs[i])
	}
	for i, w := range []string{"published/direct, from the host", "published/direct, from another namespace"} {
		res := Result{Workload: w, Unit: "ratio", Engine: name, HigherIsBetter: true}
		for t := range min(len(turns[0]), len(turns[i+1])) {
			res.Samples = append(res.Samples, turns[i+1][t]/turns[0][t])
		}
		if len(res.Samples) == 0 {
			r.add(res, errors.New("no throughput measured"))
			continue
		}
		r.add(res, nil)
	}
}

func mean(v []float64) float64 {
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// throughputTurns is how often each path is measured.
const throughputTurns = 5

// iperf runs iperf3's client once and returns the rate of each tenth of a
// second, after a first second left out.
func (r *Runner) iperf(from string, to netip.AddrPort) ([]float64, error) {
	out, err := Output(context.Background(), from, "iperf3", "-J", "-c", to.Addr().String(), "-p", strconv.Itoa(int(to.Port())),
		"-t", strconv.Itoa(r.Scale.ThroughputSeconds), "-O", "1", "-i", "0.1")
	if err != nil {
		if msg := iperfError(out); msg != "" {
			return nil, errors.New(msg)
		}
		return nil, err
	}
	return parseIperf(out)
}

// resolverCPU names the rows of the resolver's CPU time per answered
// query, after the workload's name.
const resolverCPU = ", resolver CPU per query"

// dns: dnsperf from a container's namespace against its resolver, for a
// name of another container and for a name the upstream answers: the
// rate, the resolver's CPU time per answered query over the same run,
// and the latency under that load.
func (r *Runner) dns(name string, d Resolver) {
	if !r.wants("dns") {
		return
	}
	progress("%-10s dns …", name)
	target, cleanup, err := d.PrepareDNS()
	if err != nil {
		r.add(Result{Workload: "dns local name", Unit: "qps", Engine: name, HigherIsBetter: true}, err)
		return
	}
	defer func() {
		if err := cleanup(); err != nil {
			progress("%-10s clean up after dns: %v", name, err)
		}
	}()
	for _, q := range []struct{ workload, name, want string }{
		{"dns local name", target.LocalName, target.LocalAddr.String()},
		{"dns forwarded name (cached)", upstreamName, upstreamA},
	} {
		res := Result{Workload: q.workload, Unit: "qps", Engine: name, HigherIsBetter: true}
		if err := checkAnswer(target.ClientNS, target.Server, q.name, q.want); err != nil {
			r.add(res, err)
			continue
		}
		run, err := r.dnsperf(target.ClientNS, target.Server, q.name, target.Resolver)
		cpu := Result{Workload: q.workload + resolverCPU, Unit: "µs/q", Engine: name}
		lat := Result{Workload: q.workload + ", latency under load", Unit: "ms", Engine: name}
		cerr := err
		if err == nil {
			res.Samples = run.IntervalQPS
			res.Extra = map[string]float64{"qps": run.QPS, "lost": float64(run.Lost)}
			lat.Samples = run.Latencies
			s := Summarize(lat)
			res.Extra["latency_p50_ms"], res.Extra["latency_p99_ms"] = s.Median, s.P99
			cpu, cerr = resolverCPUResult(cpu, run, clockTicks())
		}
		r.add(res, err)
		r.add(cpu, cerr)
		r.add(lat, err)
	}
}

// resolverCPUResult fills in the resolver's CPU time per answered query of
// a dnsperf rate run, one sample, with the totals it comes from and
// dnsperf's own CPU time per query beside it.
func resolverCPUResult(res Result, run DNSRun, hz int64) (Result, error) {
	us, err := cpuPerQuery(run.ResolverTicks, hz, run.Completed)
	if err != nil {
		return res, err
	}
	res.Samples = []float64{us}
	res.Extra = map[string]float64{
		"resolver_cpu_s":      float64(run.ResolverTicks) / float64(hz),
		"answered":            float64(run.Completed),
		"client_cpu_us_per_q": float64(run.ClientCPU.Microseconds()) / float64(run.Completed),
	}
	return res, nil
}

// memory: the engine's processes' resident memory idle and with
// Scale.Containers containers.
func (r *Runner) memory(name string, m Memory) {
	n := r.Scale.Containers
	idle, loaded := "memory idle", fmt.Sprintf("memory with %d containers", n)
	if !r.wants(idle) && !r.wants(loaded) {
		return
	}
	rss := func() (float64, error) {
		pids, err := m.PIDs()
		if err != nil {
			return 0, err
		}
		if len(pids) == 0 {
			return 0, NotApplicable{Why: name + " runs no process now"}
		}
		var sum int64
		for _, pid := range pids {
			b, err := RSS(pid)
			if err != nil {
				return 0, err
			}
			sum += b
		}
		return float64(sum) / (1 << 20), nil
	}
	res := Result{Workload: idle, Unit: "MiB", Engine: name}
	v, err := rss()
	if err == nil {
		res.Samples = []float64{v}
	}
	r.add(res, err)
	progress("%-10s %s …", name, loaded)
	res = Result{Workload: loaded, Unit: "MiB", Engine: name}
	cleanup, err := m.AddContainers(n)
	if err == nil {
		v, err = rss()
		if err == nil {
			res.Samples = []float64{v}
		}
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}
	r.add(res, err)
}

// lookPath reports the first of the commands that is missing.
func lookPath(names ...string) error {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("%s is not installed (make bench-compare installs it)", n)
		}
	}
	return nil
}
