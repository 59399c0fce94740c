package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// iperf3 -J output, the parts the harness reads.
type iperfReport struct {
	Intervals []struct {
		Sum struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Omitted       bool    `json:"omitted"`
		} `json:"sum"`
	} `json:"intervals"`
	Error string `json:"error"`
}

// parseIperf returns the rate of each interval iperf3 did not leave out,
// in Gbit/s.
func parseIperf(out string) ([]float64, error) {
	var rep iperfReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return nil, fmt.Errorf("read iperf3's report: %w", err)
	}
	if rep.Error != "" {
		return nil, errors.New("iperf3: " + rep.Error)
	}
	var rates []float64
	for _, iv := range rep.Intervals {
		if !iv.Sum.Omitted {
			rates = append(rates, iv.Sum.BitsPerSecond/1e9)
		}
	}
	if len(rates) == 0 {
		return nil, errors.New("iperf3 reported no intervals")
	}
	return rates, nil
}

// iperfError is the error iperf3 reported in its JSON, if any.
func iperfError(out string) string {
	var rep iperfReport
	if json.Unmarshal([]byte(out), &rep) != nil || rep.Error == "" {
		return ""
	}
	return "iperf3: " + rep.Error
}

// DNSRun is what one dnsperf run measured.
type DNSRun struct {
	QPS                    float64
	IntervalQPS            []float64 // one per -S interval
	AvgLatency, MaxLatency float64   // seconds
	Sent, Completed, Lost  int       // Completed: answered
	Latencies              []float64 // per query, ms (verbose runs)
	Rcodes                 map[string]int
	// ResolverTicks is the CPU time, in clock ticks, the resolver's
	// processes used over the rate run; ClientCPU is dnsperf's own.
	ResolverTicks int64
	ClientCPU     time.Duration
}

// parseDNSPerf reads dnsperf's output: interval lines ("<time>: <qps>"),
// per-query lines of -v ("> NOERROR name A 0.000123"), and the statistics.
func parseDNSPerf(r io.Reader) (DNSRun, error) {
	run := DNSRun{Rcodes: map[string]int{}}
	var stats bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "> "):
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			run.Rcodes[f[1]]++
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				run.Latencies = append(run.Latencies, v*1000)
			}
		case line == "Statistics:":
			stats = true
		case stats:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "Queries sent":
				run.Sent, _ = strconv.Atoi(firstField(v))
			case "Queries completed":
				run.Completed, _ = strconv.Atoi(firstField(v))
			case "Queries lost":
				run.Lost, _ = strconv.Atoi(firstField(v))
			case "Queries per second":
				run.QPS, _ = strconv.ParseFloat(firstField(v), 64)
			case "Average Latency (s)":
				// "0.001573 (min 0.000021, max 0.012231)"
				run.AvgLatency, _ = strconv.ParseFloat(firstField(v), 64)
				if _, mx, ok := strings.Cut(v, "max "); ok {
					run.MaxLatency, _ = strconv.ParseFloat(strings.TrimSuffix(mx, ")"), 64)
				}
			}
		default:
			// An interval line: "1795862566.156748: 47678.292691".
			ts, q, ok := strings.Cut(line, ": ")
			if !ok || strings.HasPrefix(line, "[") {
				continue
			}
			if _, err := strconv.ParseFloat(ts, 64); err != nil {
				continue
			}
			if v, err := strconv.ParseFloat(q, 64); err == nil {
				run.IntervalQPS = append(run.IntervalQPS, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return run, err
	}
	if run.QPS == 0 {
		return run, errors.New("dnsperf printed no statistics")
	}
	return run, nil
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// dnsperf settings, the same for every engine: one thread with 4 clients
// and up to 100 queries outstanding saturates the resolvers here.
var dnsperfLoad = []string{"-T", "1", "-c", "4", "-q", "100"}

// dnsperf loads a resolver with one name from a namespace: a run of
// Scale.DNSSeconds with per-second rates, with the CPU time of the
// resolver's processes read right before and right after it, then a
// 5-second verbose run at the same load for per-query latencies.
func (r *Runner) dnsperf(ns string, server netip.AddrPort, name string, resolver []int) (DNSRun, error) {
	file := filepath.Join(r.Env.Dir, "dnsperf-queries")
	if err := os.WriteFile(file, []byte(name+" A\n"), 0o644); err != nil {
		return DNSRun{}, err
	}
	args := append([]string{"-s", server.Addr().String(), "-p", strconv.Itoa(int(server.Port())), "-d", file}, dnsperfLoad...)
	before, err := processCPU(resolver)
	if err != nil {
		return DNSRun{}, err
	}
	run, err := runDNSPerf(ns, append(args, "-l", strconv.Itoa(r.Scale.DNSSeconds+1), "-S", "1"))
	if err != nil {
		return run, err
	}
	after, err := processCPU(resolver)
	if err != nil {
		return run, fmt.Errorf("after dnsperf: %w", err)
	}
	run.ResolverTicks = after - before
	lat, err := runDNSPerf(ns, append(args, "-l", "5", "-v"))
	if err != nil {
		return run, err
	}
	if bad := len(lat.Latencies) - lat.Rcodes["NOERROR"]; bad > 0 {
		return run, fmt.Errorf("%d of %d answers were not NOERROR: %v", bad, len(lat.Latencies), lat.Rcodes)
	}
	run.Latencies = lat.Latencies
	return run, nil
}

func runDNSPerf(ns string, args []string) (DNSRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := Command(ctx, ns, "dnsperf", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return DNSRun{}, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return DNSRun{}, err
	}
	run, perr := parseDNSPerf(out)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return run, fmt.Errorf("dnsperf: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	// nsenter execs dnsperf in its own process: the usage is dnsperf's.
	run.ClientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return run, perr
}

// checkAnswer asks server from the namespace for name's A record and
// checks the answer holds want.
func checkAnswer(ns string, server netip.AddrPort, name, want string) error {
	var in *dns.Msg
	err := inNamespace(ns, func() error {
		c := &dns.Client{Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		var err error
		in, _, err = c.Exchange(m, server.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("ask %s for %s: %w", server, name, err)
	}
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok && a.A.String() == want {
			return nil
		}
	}
	return fmt.Errorf("%s answered %s with %v, want %s", server, name, in.Answer, want)
}
