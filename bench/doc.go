// Package bench holds berth's benchmarks: the costs the issues set targets
// for, measured end to end through berthd's API inside throw-away test
// hosts (internal/nettest). Each benchmark reports percentiles of the
// per-operation latency besides Go's mean ns/op.
package bench
