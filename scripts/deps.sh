#!/usr/bin/env bash
# Installs what berth needs to build, run and test, when it is missing.
# Debian packages come through apt-get; Go must already be installed (the
# machine's /usr/local/go is used when go is not on PATH).
set -euo pipefail

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
	echo "deps: Go is not installed (expected on PATH or in /usr/local/go)" >&2
	exit 1
fi

# command → Debian package
declare -A want=(
	[make]=make
	[gcc]=gcc
	[ip]=iproute2
	[nsenter]=util-linux
	[runc]=runc
)
missing=()
for cmd in "${!want[@]}"; do
	command -v "$cmd" >/dev/null || missing+=("${want[$cmd]}")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
