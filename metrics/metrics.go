package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Latency buckets, in seconds. Operations berth does in the kernel take
// from tens of microseconds (an nftables transaction) to a few hundred
// milliseconds (a CNI chain that runs iptables); the API's requests as
// much again for those that start containers.
var (
	fastBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}
	opBuckets   = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// Metrics are berthd's instruments in a registry of their own, so that
// daemons side by side in one process (tests) never share a series.
type Metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.HistogramVec
	operations *prometheus.HistogramVec
	failures   *prometheus.CounterVec
	driver     *prometheus.HistogramVec
	nftables   *prometheus.HistogramVec
	nftFailed  *prometheus.CounterVec
	store      *prometheus.HistogramVec
	dnsForward prometheus.Histogram
}

// New makes the instruments, with Go's runtime and the process's own
// series beside them.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_api_request_duration_seconds",
			Help:    "Time berthd took to answer API requests, by route, method and status code; streams count until they end.",
			Buckets: opBuckets,
		}, []string{"route", "method", "code"}),
		operations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_network_operation_duration_seconds",
			Help:    "Time the network controller took for create, remove, attach and detach, by driver.",
			Buckets: opBuckets,
		}, []string{"operation", "driver"}),
		driver: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_driver_call_duration_seconds",
			Help:    "Time of the driver's join and leave within attaches and detaches, by driver: for a plugin, the plugin's own time; the rest of berth_network_operation_duration_seconds is berth's.",
			Buckets: opBuckets,
		}, []string{"call", "driver"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_network_operation_failures_total",
			Help: "Network operations that failed and were rolled back, by operation and driver.",
		}, []string{"operation", "driver"}),
		nftables: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_nftables_transaction_duration_seconds",
			Help:    "Time of the nftables transactions berth's firewall made: rebuilds of its tables and element changes.",
			Buckets: fastBuckets,
		}, []string{"operation"}),
		nftFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_nftables_transaction_failures_total",
			Help: "nftables transactions the kernel refused.",
		}, []string{"operation"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_store_transaction_duration_seconds",
			Help:    "Time of the state store's transactions, by store and kind (view or update, which includes its fsync).",
			Buckets: fastBuckets,
		}, []string{"store", "kind"}),
		dnsForward: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_dns_forward_duration_seconds",
			Help:    "Time the embedded resolver waited for upstream servers to answer forwarded queries.",
			Buckets: opBuckets,
		}),
	}
	m.reg.MustRegister(m.requests, m.operations, m.driver, m.failures, m.nftables, m.nftFailed, m.store, m.dnsForward,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds collectors of what exists at scrape time.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Handler serves the registry in Prometheus' text format (or what the
// scraper negotiates).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Request records an API request's answer. The route is the pattern that
// served it, so that IDs in paths make no series of their own.
func (m *Metrics) Request(route, method string, code int, took time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Observe(took.Seconds())
}

// Operation records a network operation of the controller, or a driver's
// call within one ("join", "leave"; failed ones are counted by the
// operation they fail).
func (m *Metrics) Operation(op, driver string, took time.Duration, failed bool) {
	if op == "join" || op == "leave" {
		if !failed {
			m.driver.WithLabelValues(op, driver).Observe(took.Seconds())
		}
		return
	}
	if failed {
		m.failures.WithLabelValues(op, driver).Inc()
		return
	}
	m.operations.WithLabelValues(op, driver).Observe(took.Seconds())
}

// Firewall records an nftables transaction.
func (m *Metrics) Firewall(op string, took time.Duration, failed bool) {
	if failed {
		m.nftFailed.WithLabelValues(op).Inc()
	}
	m.nftables.WithLabelValues(op).Observe(took.Seconds())
}

// Store records a store transaction that began at start.
func (m *Metrics) Store(store, kind string, start time.Time) {
	m.store.WithLabelValues(store, kind).Observe(time.Since(start).Seconds())
}

// Forwarded records how long upstream servers took to answer a query.
func (m *Metrics) Forwarded(took time.Duration) { m.dnsForward.Observe(took.Seconds()) }
