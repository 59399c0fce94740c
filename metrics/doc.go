// Package metrics holds berthd's Prometheus instruments: the histograms
// and counters the daemon's layers report to as things happen, and the
// registry /metrics is served from. What is counted at scrape time (the
// networks, endpoints and pools that exist) is collected by the daemon,
// which knows where it lives; this package owns the names, so that every
// series is named in one place and prefixed berth_.
package metrics
