package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/metrics"
	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/store"
)

// timedStore reports the time of every transaction of the state store.
type timedStore struct {
	store.Store
	m *metrics.Metrics
}

func (s timedStore) View(fn func(store.Tx) error) error {
	defer s.m.Store("bolt", "view", time.Now())
	return s.Store.View(fn)
}

func (s timedStore) Update(fn func(store.Tx) error) error {
	defer s.m.Store("bolt", "update", time.Now())
	return s.Store.Update(fn)
}

// timedFirewall reports the time of every nftables transaction.
type timedFirewall struct {
	*firewall.Firewall
	m *metrics.Metrics
}

func (f timedFirewall) Rebuild(nets []firewall.Network, binds []firewall.Binding, guards []firewall.Guard) error {
	start := time.Now()
	err := f.Firewall.Rebuild(nets, binds, guards)
	f.m.Firewall("rebuild", time.Since(start), err != nil)
	return err
}

func (f timedFirewall) Apply(c firewall.Change) error {
	start := time.Now()
	err := f.Firewall.Apply(c)
	f.m.Firewall("apply", time.Since(start), err != nil)
	return err
}

// The series counted at scrape time, from what exists.
var (
	descNetworks = prometheus.NewDesc("berth_networks",
		"Networks, by driver.", []string{"driver"}, nil)
	descEndpoints = prometheus.NewDesc("berth_network_endpoints",
		"Endpoints on this host, per network.", []string{"network", "driver"}, nil)
	descContainers = prometheus.NewDesc("berth_network_containers",
		"Running containers attached, per network.", []string{"network"}, nil)
	descPoolSize = prometheus.NewDesc("berth_ipam_pool_addresses",
		"Addresses of a network's subnet that can be allocated.", []string{"network", "subnet"}, nil)
	descPoolUsed = prometheus.NewDesc("berth_ipam_pool_addresses_used",
		"Addresses of a network's subnet allocated, gateway and aux-addresses included.", []string{"network", "subnet"}, nil)
	descExhausted = prometheus.NewDesc("berth_ipam_pool_exhausted_total",
		"Endpoints refused because a network's pools had no free address.", []string{"network"}, nil)
	descDNSQueries = prometheus.NewDesc("berth_dns_queries_total",
		"Queries the embedded resolver read.", nil, nil)
	descDNSLocal = prometheus.NewDesc("berth_dns_local_answers_total",
		"Queries answered from the containers' names and aliases.", nil, nil)
	descDNSCached = prometheus.NewDesc("berth_dns_cache_hits_total",
		"Queries answered from the cache of upstream answers.", nil, nil)
	descDNSForwarded = prometheus.NewDesc("berth_dns_forwarded_total",
		"Queries forwarded to upstream servers.", nil, nil)
	descDNSResponses = prometheus.NewDesc("berth_dns_responses_total",
		"Answers the resolver sent, by response code (NXDOMAIN among them).", []string{"rcode"}, nil)
	descElements = prometheus.NewDesc("berth_nftables_elements",
		"Elements of berth's nftables sets and maps, as the kernel holds them.", []string{"set"}, nil)
	descSpoofed = prometheus.NewDesc("berth_spoofed_frames_dropped_total",
		"Frames containers sent as another MAC or address, dropped by the anti-spoofing rules.", nil, nil)
	descBacklog = prometheus.NewDesc("berth_reaper_backlog",
		"Retired network devices waiting to be deleted in the background.", nil, nil)
)

// stateCollector counts, at each scrape, what the daemon has.
type stateCollector struct{ d *Daemon }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNetworks, descEndpoints, descContainers, descPoolSize, descPoolUsed,
		descExhausted, descDNSQueries, descDNSLocal, descDNSCached, descDNSForwarded, descDNSResponses,
		descElements, descSpoofed, descBacklog} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}

	perDriver := map[string]int{}
	for _, nw := range d.ctrl.Networks() {
		perDriver[nw.Driver]++
		gauge(descEndpoints, float64(d.ctrl.EndpointCount(nw.ID)), nw.Name, nw.Driver)
	}
	for drv, n := range perDriver {
		gauge(descNetworks, float64(n), drv)
	}
	for name, n := range d.containersPerNetwork() {
		gauge(descContainers, float64(n), name)
	}

	pools, exhausted := d.ctrl.Usage()
	for _, p := range pools {
		gauge(descPoolSize, p.Capacity, p.Network, p.Subnet.String())
		gauge(descPoolUsed, float64(p.Used), p.Network, p.Subnet.String())
	}
	for name, n := range exhausted {
		counter(descExhausted, n, name)
	}

	s := d.resolver.Stats()
	counter(descDNSQueries, s.Queries)
	counter(descDNSLocal, s.Local)
	counter(descDNSCached, s.Cached)
	counter(descDNSForwarded, s.Forwarded)
	for code, n := range s.Responses {
		if n > 0 {
			counter(descDNSResponses, n, rcodeName(code))
		}
	}

	if counts, err := d.fw.Counts(); err != nil {
		ch <- prometheus.NewInvalidMetric(descElements, err)
	} else {
		for set, n := range counts.Elements {
			gauge(descElements, float64(n), set)
		}
		counter(descSpoofed, counts.SpoofDropped)
	}
	gauge(descBacklog, float64(d.reaper.Backlog()))
}

// containersPerNetwork counts the running containers on each network:
// the sandboxes that are containers'.
func (d *Daemon) containersPerNetwork() map[string]int {
	isContainer := map[string]bool{}
	for _, ct := range d.containers.List() {
		isContainer[ct.ID] = true
	}
	out := map[string]int{}
	for _, sb := range d.ctrl.Sandboxes() {
		if !isContainer[sb.ID] {
			continue
		}
		for _, ep := range sb.Endpoints {
			out[ep.NetworkName]++
		}
	}
	return out
}

func rcodeName(code int) string {
	if s, ok := dns.RcodeToString[code]; ok {
		return s
	}
	return fmt.Sprint(code)
}

// observeOperation is the controller's report of an operation, into the
// metrics.
func observeOperation(m *metrics.Metrics) network.Observe {
	return func(op, driver string, took time.Duration, failed bool) { m.Operation(op, driver, took, failed) }
}

// routeLabels splits a mux pattern ("GET /networks/{id}") into the route
// and method of the request metrics.
func routeLabels(pattern string) (route, method string) {
	method, route, ok := strings.Cut(pattern, " ")
	if !ok {
		return pattern, ""
	}
	return route, method
}

// serveMetrics serves /metrics alone on --metrics-addr, as dockerd's
// --metrics-addr does: plain HTTP, for a scraper.
func (d *Daemon) listenMetrics(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.metrics.Handler())
	d.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.metricsListener = l
	d.cfg.Log.Info("metrics on TCP", "addr", l.Addr().String())
	return nil
}

func (d *Daemon) serveMetrics() {
	if d.metricsServer == nil {
		return
	}
	if err := d.metricsServer.Serve(d.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.cfg.Log.Warn("metrics server stopped", "err", err)
	}
}

func (d *Daemon) stopMetrics(ctx context.Context) {
	if d.metricsServer != nil {
		d.metricsServer.Shutdown(ctx)
	} else if d.metricsListener != nil {
		d.metricsListener.Close()
	}
}
