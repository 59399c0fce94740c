#!/usr/bin/env bash
# make cover: what the integration tests exercise. berthd is built with
# -cover for every package of berth, the tests run against it (its shims
# are the same binary) with GOCOVERDIR set, and the counters the daemons
# write when they exit are summed per package. Daemons a test kills with
# SIGKILL write nothing, so crash tests count only for the daemon that
# comes after. Unit tests' own coverage: go test -cover ./...
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=${COVER_DIR:-build/cover}
rm -rf "$out"
mkdir -p "$out/integration" bin
$GO build -cover -coverpkg=github.com/berth-net/berth/... -o bin/berthd-cover ./cmd/berthd
GOCOVERDIR=$(realpath "$out/integration") BERTHD=$(realpath bin/berthd-cover) \
	$GO test -count=1 -timeout 20m ./... ${COVER_TESTS:+-run "$COVER_TESTS"}
echo
echo "Statement coverage of berthd under the integration tests:"
$GO tool covdata percent -i="$out/integration" | sed 's/^\s*//' | sort
$GO tool covdata textfmt -i="$out/integration" -o "$out/integration.cov"
echo
echo "Profile: $out/integration.cov (go tool cover -html=$out/integration.cov)"
