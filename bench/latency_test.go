package bench

import (
	"testing"
	"time"
)

type metrics map[string]float64

func (m metrics) ReportMetric(n float64, unit string) { m[unit] = n }

func TestPercentilesUseNearestRank(t *testing.T) {
	var l Latencies
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 90: 90 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := l.Percentile(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	m := metrics{}
	l.Report(m)
	if m["p50-ms"] != 50 || m["p99-ms"] != 99 {
		t.Errorf("reported %v", m)
	}
	m = metrics{}
	l.ReportAs(m, "plugin-", 90)
	if len(m) != 1 || m["plugin-p90-ms"] != 90 {
		t.Errorf("reported with a prefix: %v", m)
	}
	if (Latencies{}).Percentile(50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}
