#!/usr/bin/env bash
# Installs what `make bench-compare` needs when it is missing: the other
# engines from Debian's packages (CNI reference plugins, netavark,
# aardvark-dns), iptables (which they drive), dnsperf and iperf3; with
# BENCH_DOCKER=1 also docker.io with its containerd and runc.
#
# Installing docker.io would start dockerd on the machine's own network
# (its package starts the service). The harness runs dockerd only inside its
# test host namespace, so the install runs with a policy-rc.d that forbids
# starting services, removed afterwards.
set -euo pipefail

# file that must exist → Debian package
declare -A want=(
	[/usr/lib/cni/bridge]=containernetworking-plugins
	[/usr/lib/podman/netavark]=netavark
	[/usr/lib/podman/aardvark-dns]=aardvark-dns
	[/usr/sbin/iptables]=iptables
	[/usr/sbin/nft]=nftables
	[/usr/bin/dnsperf]=dnsperf
	[/usr/bin/iperf3]=iperf3
	[/usr/bin/nsenter]=util-linux
	[/bin/busybox]=busybox-static
)
if [[ ${BENCH_DOCKER:-0} == 1 ]]; then
	want[/usr/sbin/dockerd]=docker.io
	want[/usr/bin/containerd]=containerd
	want[/usr/sbin/runc]=runc
fi
missing=()
for f in "${!want[@]}"; do
	[[ -e $f ]] || missing+=("${want[$f]}")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
	echo "bench deps: missing ${missing[*]}; run as root to install them" >&2
	exit 1
fi
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\n# berth bench: no services started by package installs\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	made_policy=1
	trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
if ((made_policy)); then
	rm -f "$policy"
	trap - EXIT
fi
