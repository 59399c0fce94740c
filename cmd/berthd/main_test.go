package main

import (
	"io"
	"strings"
	"testing"
)

// The cluster flags are checked before anything runs: no root, no daemon.
// A bad --dns, checked after them, keeps a daemon from starting should a
// case pass.
func TestClusterFlagsRefusedWithClearMessages(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--cluster-store", "etcd://127.0.0.1:2379"}, "--cluster-store needs --cluster-advertise IP"},
		{[]string{"--cluster-store", "embedded"}, "--cluster-store needs --cluster-advertise IP"},
		{[]string{"--cluster-advertise", "10.1.0.7"}, "--cluster-advertise needs --cluster-store"},
		{[]string{"--cluster-store-opt", "cacert=/ca.pem"}, "--cluster-store-opt needs --cluster-store"},
		{[]string{"--cluster-store", "consul://127.0.0.1:8500", "--cluster-advertise", "10.1.0.7"},
			`invalid --cluster-store "consul://127.0.0.1:8500": etcd://IP:PORT[,IP:PORT…] or embedded`},
		{[]string{"--cluster-store", "etcd://127.0.0.1", "--cluster-advertise", "10.1.0.7"},
			`invalid --cluster-store "etcd://127.0.0.1": "127.0.0.1": an etcd address is HOST:PORT`},
		{[]string{"--cluster-store", "embedded", "--cluster-advertise", "eth0"}, `invalid --cluster-advertise "eth0": not an IP address`},
		{[]string{"--cluster-store", "embedded", "--cluster-advertise", "10.1.0.7", "--cluster-store-opt", "cafile=/ca.pem"},
			`invalid --cluster-store-opt "cafile=/ca.pem": unknown option "cafile"`},
		{[]string{"--fixed-cidr", "fd00::/64"}, `invalid --fixed-cidr "fd00::/64": an IPv4 subnet`},
		{[]string{"--fixed-cidr-v6", "10.1.0.0/16", "--ipv6"}, `invalid --fixed-cidr-v6 "10.1.0.0/16": an IPv6 subnet`},
		{[]string{"--fixed-cidr-v6", "fd00:1::/64"}, "--fixed-cidr-v6 needs --ipv6"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := newCommand()
			cmd.SetArgs(append(tc.args, "--dns", "not-an-address"))
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("berthd %s: %v, want an error saying %q", strings.Join(tc.args, " "), err, tc.err)
			}
		})
	}
}
