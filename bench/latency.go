package bench

import (
	"slices"
	"time"
)

// Latencies collects per-operation durations.
type Latencies []time.Duration

// Percentile returns the p-th percentile (0 < p ≤ 100), nearest rank.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Reporter is what testing.B offers for custom metrics.
type Reporter interface {
	ReportMetric(n float64, unit string)
}

// Report adds p50, p90 and p99 in milliseconds to a benchmark's output.
func (l Latencies) Report(r Reporter) { l.ReportAs(r, "", 50, 90, 99) }

// ReportAs adds the percentiles in milliseconds, their names prefixed, to
// tell several series of one benchmark apart.
func (l Latencies) ReportAs(r Reporter, prefix string, percentiles ...float64) {
	for _, p := range percentiles {
		r.ReportMetric(float64(l.Percentile(p).Microseconds())/1000, prefix+"p"+itoa(int(p))+"-ms")
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
