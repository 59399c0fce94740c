package main

import (
	"strings"
	"testing"
)

func TestParseDNSPerfReadsIntervalsStatisticsAndVerboseLines(t *testing.T) {
	out := `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5399 -d q -l 3 -S 1 -v
[Status] Sending queries (to 127.0.0.1:5399)
[Status] Started at: Sat Nov 28 10:42:45 2026
[Status] Stopping after 3.000000 seconds
> NOERROR x.test A 0.002154
> NXDOMAIN y.test A 0.000967
1795862566.156748: 47678.292691
1795862567.156800: 51000.5
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         99685
  Queries completed:    99680 (100.00%)
  Queries lost:         5 (0.00%)

  Response codes:       NOERROR 99685 (100.00%)
  Average packet size:  request 24, response 46
  Run time (s):         2.002765
  Queries per second:   49773.687877

  Average Latency (s):  0.001573 (min 0.000021, max 0.012231)
  Latency StdDev (s):   0.000964
`
	run, err := parseDNSPerf(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if run.QPS != 49773.687877 || run.Sent != 99685 || run.Completed != 99680 || run.Lost != 5 || run.AvgLatency != 0.001573 || run.MaxLatency != 0.012231 {
		t.Errorf("statistics: %+v", run)
	}
	if len(run.IntervalQPS) != 2 || run.IntervalQPS[0] != 47678.292691 || run.IntervalQPS[1] != 51000.5 {
		t.Errorf("intervals: %v", run.IntervalQPS)
	}
	if len(run.Latencies) != 2 || run.Latencies[0] != 2.154 || run.Rcodes["NOERROR"] != 1 || run.Rcodes["NXDOMAIN"] != 1 {
		t.Errorf("verbose lines: %v %v", run.Latencies, run.Rcodes)
	}
	if _, err := parseDNSPerf(strings.NewReader("[Status] Command line: dnsperf\nError: could not open x\n")); err == nil {
		t.Errorf("output without statistics was accepted")
	}
}

func TestParseIperfKeepsTheIntervalsNotLeftOut(t *testing.T) {
	out := `{"start": {}, "intervals": [
		{"sum": {"bits_per_second": 1e9, "omitted": true}},
		{"sum": {"bits_per_second": 9.5e9, "omitted": false}},
		{"sum": {"bits_per_second": 10e9, "omitted": false}}
	], "end": {}}`
	rates, err := parseIperf(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rates) != 2 || rates[0] != 9.5 || rates[1] != 10 {
		t.Errorf("rates: %v, want [9.5 10]", rates)
	}
	if _, err := parseIperf(`{"start": {}, "intervals": [], "error": "unable to connect to server: Connection refused"}`); err == nil ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("iperf3's error: %v", err)
	}
	if got := iperfError(`{"error": "busy"}`); got != "iperf3: busy" {
		t.Errorf("iperfError: %q", got)
	}
	if _, err := parseIperf("iperf3: error - unable to connect"); err == nil {
		t.Errorf("non-JSON output was accepted")
	}
}

func TestCountRulesetCountsRulesAndElements(t *testing.T) {
	out := `table inet berth {
	map ports4 {
		type inet_proto . inet_service : ipv4_addr . inet_service
		elements = { tcp . 20000 : 10.101.0.2 . 80, tcp . 20001 : 10.101.0.2 . 80,
			     tcp . 20002 : 10.101.0.2 . 80 }
	}
	set bridges {
		type ifname
		elements = { "br-1" }
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname @bridges accept
		oifname @bridges ct state established,related accept
	}
}
table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		counter packets 0 bytes 0 jump CNI-HOSTPORT-MASQ
	}
	chain CNI-HOSTPORT-MASQ {
		meta mark & 0x00002000 == 0x00002000 counter packets 0 bytes 0 masquerade
	}
}
`
	got := countRuleset(out)
	if got.Rules != 4 || got.Elements != 4 || got.Lines != 25 {
		t.Errorf("countRuleset: %+v, want 4 rules, 4 elements, 25 lines", got)
	}
}

func TestIPAddrsReadsEveryInterfacesAddresses(t *testing.T) {
	out := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \       valid_lft forever preferred_lft forever
5: eth0    inet 172.18.0.2/16 brd 172.18.255.255 scope global eth0\       valid_lft forever preferred_lft forever
7: eth1    inet 10.99.0.3/24 brd 10.99.0.255 scope global eth1\       valid_lft forever preferred_lft forever
7: eth1    inet6 fe80::42:acff:fe12:3/64 scope link \       valid_lft forever preferred_lft forever
`
	got := ipAddrs(out)
	want := []string{"127.0.0.1", "::1", "172.18.0.2", "10.99.0.3", "fe80::42:acff:fe12:3"}
	if len(got) != len(want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].String() != w {
			t.Errorf("address %d: %v, want %s", i, got[i], w)
		}
	}
	if got := ipAddrs("Cannot open netlink socket\n"); len(got) != 0 {
		t.Errorf("addresses from an error: %v", got)
	}
}
