package main

import (
	"fmt"
	"slices"
)

// evaluateTargets checks the targets against a run's results and
// says, for each, whether berth met it and by how much.
func evaluateTargets(results []Result, scale Scale) []string {
	get := func(workload, engine string) (Summary, bool) {
		for _, r := range results {
			if r.Workload == workload && r.Engine == engine && len(r.Samples) > 0 {
				return Summarize(r), true
			}
		}
		return Summary{}, false
	}
	others := func(workload string) []string {
		var out []string
		for _, r := range results {
			if r.Workload == workload && r.Engine != "berth" && len(r.Samples) > 0 && !slices.Contains(out, r.Engine) {
				out = append(out, r.Engine)
			}
		}
		return out
	}
	// best is the other engine with the best median on a workload.
	best := func(workload string) (string, Summary, bool) {
		var name string
		var bs Summary
		for _, e := range others(workload) {
			s, _ := get(workload, e)
			if name == "" || (s.HigherIsBetter && s.Median > bs.Median) || (!s.HigherIsBetter && s.Median < bs.Median) {
				name, bs = e, s
			}
		}
		return name, bs, name != ""
	}
	var out []string
	verdict := func(ok bool, format string, args ...any) {
		mark := "MISSED"
		if ok {
			mark = "met   "
		}
		out = append(out, mark+"  "+fmt.Sprintf(format, args...))
	}
	skip := func(format string, args ...any) {
		out = append(out, "n/a     "+fmt.Sprintf(format, args...))
	}

	for _, n := range scale.Endpoints {
		wl := fmt.Sprintf("attach+detach, %d endpoints", n)
		b, okB := get(wl, "berth")
		name, o, okO := best(wl)
		if !okB {
			continue
		}
		if !okO {
			skip("attach+detach at %d endpoints ≥5x the fastest other engine: no other engine measured", n)
			continue
		}
		a, _ := Advantage(b, o)
		verdict(a >= 5, "attach+detach at %d endpoints: berth %s ms vs fastest other (%s) %s ms at p50: %.1fx (target ≥ 5x)", n, num(b.Median), name, num(o.Median), a)
	}
	if slices.Contains(scale.Endpoints, 1) {
		if b, ok := get("attach+detach, 1 endpoints", "berth"); ok {
			verdict(b.Median <= 4, "berth attach+detach p50 at 1 endpoint: %s ms (target ≤ 4 ms)", num(b.Median))
		}
	}
	if len(scale.Endpoints) > 1 {
		lo, hi := scale.Endpoints[0], scale.Endpoints[len(scale.Endpoints)-1]
		b1, ok1 := get(fmt.Sprintf("attach+detach, %d endpoints", lo), "berth")
		bn, okn := get(fmt.Sprintf("attach+detach, %d endpoints", hi), "berth")
		if ok1 && okn {
			r := bn.Median / b1.Median
			verdict(r <= 1.15, "berth attach+detach p50 at %d endpoints is %.2fx its p50 at %d (target ≤ 1.15x)", hi, r, lo)
		}
	}
	// Against Docker in the same run, the figures the issue states.
	for _, t := range []struct {
		workload string
		times    float64
	}{
		{containerConnect, 20},
		{"network create+remove", 60},
	} {
		b, ok := get(t.workload, "berth")
		if !ok {
			continue
		}
		d, ok := get(t.workload, "docker")
		if !ok {
			skip("%s ≥%gx docker: docker not measured (BENCH_DOCKER=1)", t.workload, t.times)
			continue
		}
		a, _ := Advantage(b, d)
		verdict(a >= t.times, "%s: berth %s ms vs docker %s ms at p50: %.1fx (target ≥ %gx)", t.workload, num(b.Median), num(d.Median), a, t.times)
	}
	first, okF := get(fmt.Sprintf("publish port 1 of %d", scale.Ports), "berth")
	last, okL := get(fmt.Sprintf("publish port %d of %d", scale.Ports, scale.Ports), "berth")
	if okF && okL {
		r := last.Median / first.Median
		verdict(r <= 1.5, "berth's port %d costs %.2fx its first (%s vs %s ms; target ≤ 1.5x)", scale.Ports, r, num(last.Median), num(first.Median))
	}
	for _, wl := range []string{"published/direct, from the host", "published/direct, from another namespace"} {
		b, ok := get(wl, "berth")
		if !ok {
			continue
		}
		name, o, okO := best(wl)
		msg := fmt.Sprintf("throughput %s: berth %.3f (%.3f–%.3f over %d turns; target ≥ 0.95", wl, b.Median, b.Min, b.Max, b.N)
		better := false
		if okO {
			better = o.Median > b.Median
			msg += fmt.Sprintf(", and no other better; best other %s %.3f (%.3f–%.3f))", name, o.Median, o.Min, o.Max)
			if better && o.Min <= b.Max {
				msg += "; the turns' ranges overlap: the difference is within this machine's run-to-run spread"
			}
		} else {
			msg += ")"
		}
		verdict(b.Median >= 0.95 && !better, "%s", msg)
	}
	for _, wl := range []string{"dns local name", "dns forwarded name (cached)"} {
		b, okB := get(wl, "berth")
		name, o, okO := best(wl)
		if !okB {
			continue
		}
		if !okO {
			skip("%s ≥2x the best other resolver: no other resolver measured", wl)
			continue
		}
		a, _ := Advantage(b, o)
		bp, op := extra(results, wl, "berth", "latency_p99_ms"), extra(results, wl, name, "latency_p99_ms")
		verdict(a >= 2 && bp <= op, "%s: berth %s qps vs best other (%s) %s qps: %.2fx, p99 %s vs %s ms (target ≥ 2x at equal or lower p99)",
			wl, num(b.Median), name, num(o.Median), a, num(bp), num(op))
	}
	// The local name against Docker's embedded resolver, with an absolute
	// bound on berth's tail under that load.
	if b, ok := get("dns local name", "berth"); ok {
		bl, okL := get("dns local name, latency under load", "berth")
		d, okD := get("dns local name", "docker")
		switch {
		case !okL:
			skip("dns local name ≥3x docker's qps, berth p99 < 1 ms: berth's latency under load not measured")
		case !okD:
			skip("dns local name ≥3x docker's qps, berth p99 < 1 ms: docker not measured (BENCH_DOCKER=1); berth p99 %s ms", num(bl.P99))
		default:
			a, _ := Advantage(b, d)
			verdict(a >= 3 && bl.P99 < 1, "dns local name: berth %s qps vs docker %s qps: %.2fx, berth p99 %s ms (target ≥ 3x, p99 < 1 ms)",
				num(b.Median), num(d.Median), a, num(bl.P99))
		}
	}
	// The same against Docker in what the resolver itself spends per
	// answer, which dnsperf's own CPU does not bound.
	if b, ok := get("dns local name"+resolverCPU, "berth"); ok {
		if d, ok := get("dns local name"+resolverCPU, "docker"); ok {
			a, _ := Advantage(b, d)
			verdict(a >= 3, "dns local name: berth's resolver CPU per query %s µs vs docker's %s µs: %.2fx less (target ≤ 1/3 of docker's)",
				num(b.Median), num(d.Median), a)
		} else {
			skip("dns local name: berth's resolver CPU per query ≤ 1/3 of docker's: docker not measured (BENCH_DOCKER=1); berth %s µs", num(b.Median))
		}
	}
	return out
}

func extra(results []Result, workload, engine, key string) float64 {
	for _, r := range results {
		if r.Workload == workload && r.Engine == engine {
			return r.Extra[key]
		}
	}
	return 0
}
