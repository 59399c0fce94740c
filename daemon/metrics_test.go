package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// scrape fetches /metrics from the API socket.
func scrape(t *testing.T, d *nettest.Daemon) string {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://berthd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want Prometheus' text format", ct)
	}
	return string(b)
}

type families map[string]*dto.MetricFamily

func parseMetrics(t *testing.T, text string) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse the metrics: %v\n%s", err, text)
	}
	return mfs
}

// value is the value of the series of name with the given labels (a
// histogram's count), and whether there is one.
func (f families) value(name string, labels ...string) (float64, bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range mf.Metric {
		match := 0
		for _, l := range m.Label {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsDescribeTheNetworksAndWhatTheDaemonDid(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t, "--metrics-addr", "127.0.0.1:9323")
	create(t, d, "shop", client.NetworkCreateOptions{})
	runContainer(t, d, spec{name: "db", network: "shop", cmd: []string{"sleep", "100000"}})
	web := runContainer(t, d, spec{name: "web", network: "shop", cmd: []string{"sleep", "100000"}})
	ns := netnsOf(t, d, web)
	for range 3 {
		if m := dnsAsk(t, ns, "db", dns.TypeA); len(m.Answer) != 1 {
			t.Fatalf("db: %v", m)
		}
	}

	text := scrape(t, d)
	m := parseMetrics(t, text)
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
		max    float64
	}{
		{"berth_networks", []string{"driver", "bridge"}, 2, 2}, // bridge and shop
		{"berth_network_endpoints", []string{"network", "shop", "driver", "bridge"}, 2, 2},
		{"berth_network_containers", []string{"network", "shop"}, 2, 2},
		{"berth_ipam_pool_addresses", []string{"network", "shop"}, 65534, 65534},
		{"berth_ipam_pool_addresses_used", []string{"network", "shop"}, 3, 3}, // the gateway and two containers
		{"berth_network_operation_duration_seconds", []string{"operation", "attach", "driver", "bridge"}, 2, 2},
		{"berth_network_operation_duration_seconds", []string{"operation", "create", "driver", "bridge"}, 1, 1},
		{"berth_driver_call_duration_seconds", []string{"call", "join", "driver", "bridge"}, 2, 2},
		{"berth_api_request_duration_seconds", []string{"route", "/networks/create", "method", "POST", "code", "201"}, 1, 1},
		{"berth_dns_queries_total", nil, 3, 3},
		{"berth_dns_local_answers_total", nil, 3, 3},
		{"berth_dns_responses_total", []string{"rcode", "NOERROR"}, 3, 3},
		{"berth_nftables_elements", []string{"set", "bridges"}, 2, 2},
		{"berth_nftables_transaction_duration_seconds", []string{"operation", "rebuild"}, 1, 1},
		{"berth_store_transaction_duration_seconds", []string{"store", "bolt", "kind", "update"}, 3, 1e9},
		{"berth_spoofed_frames_dropped_total", nil, 0, 0},
		{"berth_reaper_backlog", nil, 0, 1e9},
	} {
		v, ok := m.value(c.name, c.labels...)
		if !ok || v < c.min || v > c.max {
			t.Errorf("%s%v = %v (present %v), want within [%v, %v]", c.name, c.labels, v, ok, c.min, c.max)
		}
	}

	// What promtool check metrics checks, through the same linter.
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}

	// The same series on --metrics-addr, inside the test host.
	body, err := httpGet(h.Namespace, "http://127.0.0.1:9323/metrics")
	if err != nil || !strings.Contains(body, "berth_network_endpoints{driver=\"bridge\",network=\"shop\"} 2") {
		t.Errorf("--metrics-addr: %v\n%.2000s", err, body)
	}
}

func TestDaemonLogsJSONWhenAsked(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon("--log-format", "json")
	create(t, d, "logged", client.NetworkCreateOptions{})
	lines := strings.Split(strings.TrimSpace(d.Log()), "\n")
	var ready bool
	for _, l := range lines {
		if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
			t.Fatalf("a log line is not a JSON object: %q", l)
		}
		ready = ready || strings.Contains(l, `"msg":"berthd ready"`)
	}
	if !ready {
		t.Errorf("no berthd ready line in\n%s", d.Log())
	}
}
