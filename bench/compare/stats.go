package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is one workload measured on one engine: its raw samples, or why
// there are none.
type Result struct {
	Workload string    `json:"workload"`
	Unit     string    `json:"unit"`
	Engine   string    `json:"engine"`
	Samples  []float64 `json:"samples,omitempty"`
	// HigherIsBetter is true for rates (qps, Gbit/s); false for times and
	// sizes.
	HigherIsBetter bool `json:"higher_is_better,omitempty"`
	// Skipped says why there are no samples: the engine lacks the
	// workload, or it failed.
	Skipped string `json:"skipped,omitempty"`
	// Extra holds numbers measured alongside (a p99 latency under load,
	// the ruleset size).
	Extra map[string]float64 `json:"extra,omitempty"`
	// Note says how the engine's rounds differ from the others'.
	Note string `json:"note,omitempty"`
}

// Summary is what the table shows of a result.
type Summary struct {
	N                   int
	Median, P95, P99    float64
	Min, Max            float64
	HigherIsBetter      bool
	measured, hasSample bool
}

// Summarize computes the median and the 95th and 99th percentiles (nearest
// rank; for rates the percentiles are of the low side, the bad tail).
func Summarize(r Result) Summary {
	s := Summary{N: len(r.Samples), HigherIsBetter: r.HigherIsBetter}
	if len(r.Samples) == 0 {
		return s
	}
	v := slices.Clone(r.Samples)
	slices.Sort(v)
	s.hasSample = true
	s.Min, s.Max = v[0], v[len(v)-1]
	s.Median = median(v)
	if r.HigherIsBetter {
		s.P95, s.P99 = nearestRank(v, 5), nearestRank(v, 1)
	} else {
		s.P95, s.P99 = nearestRank(v, 95), nearestRank(v, 99)
	}
	return s
}

// median of sorted values: the middle one, or the mean of the middle two.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// nearestRank is the p-th percentile of sorted values by the nearest-rank
// method: the smallest value with at least p% of the values at or below it.
func nearestRank(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Advantage is how many times better berth's median is than other's: for
// times other/berth, for rates berth/other. Above 1 berth is better.
func Advantage(berth, other Summary) (float64, bool) {
	if !berth.hasSample || !other.hasSample || berth.Median <= 0 || other.Median <= 0 {
		return 0, false
	}
	if berth.HigherIsBetter {
		return berth.Median / other.Median, true
	}
	return other.Median / berth.Median, true
}

// WriteTable prints the results grouped by workload, engines in the given
// order, with berth's advantage over each other engine.
func WriteTable(w io.Writer, results []Result, engines []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tunit\tengine\tn\tmedian\tp95\tp99\tberth vs it\t")
	var workloads []string
	for _, r := range results {
		if !slices.Contains(workloads, r.Workload) {
			workloads = append(workloads, r.Workload)
		}
	}
	for _, wl := range workloads {
		byEngine := map[string]Result{}
		for _, r := range results {
			if r.Workload == wl {
				byEngine[r.Engine] = r
			}
		}
		berth := Summarize(byEngine["berth"])
		first := true
		for _, e := range engines {
			r, ok := byEngine[e]
			if !ok {
				continue
			}
			name, unit := "", ""
			if first {
				name, unit, first = wl, r.Unit, false
			}
			if len(r.Samples) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t%s\t\n", name, unit, e, r.Skipped)
				continue
			}
			s := Summarize(r)
			vs := ""
			if e != "berth" {
				if a, ok := Advantage(berth, s); ok {
					vs = fmt.Sprintf("%.2fx", a)
				}
			}
			if r.Note != "" {
				vs += "  (" + r.Note + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", name, unit, e, s.N, num(s.Median), num(s.P95), num(s.P99), vs)
		}
	}
	return tw.Flush()
}

// num prints a value with three significant digits, at most.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
}
