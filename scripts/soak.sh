#!/usr/bin/env bash
# make soak (as root): the long runs that make test keeps short.
#
#   1. the chaos campaign at full length: BERTH_CHAOS_OPS operations
#      (default 5000) of network and container churn with berthd stopped
#      and killed at random points, store and kernel checked after every
#      restart; BERTH_CHAOS_SEED replays a failed run;
#   2. the churn soak: networks, containers, connects, lookups, ports,
#      volumes and event streams for BERTH_SOAK (default 1h), berthd's
#      memory, goroutines and open files sampled and required flat.
#
#   SOAK_ONLY=chaos|churn   run one of the two
#   BERTH_SOAK_REPORT=file  where the churn soak's figures go
#                           (default soak-report.txt in the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-go}
export BERTHD=${BERTHD:-$PWD/bin/berthd}
export BERTH_CHAOS_OPS=${BERTH_CHAOS_OPS:-5000}
export BERTH_SOAK=${BERTH_SOAK:-1h}
export BERTH_SOAK_REPORT=${BERTH_SOAK_REPORT:-$PWD/soak-report.txt}
only=${SOAK_ONLY:-}

if [ "$(id -u)" != 0 ]; then
	echo "soak: needs root (network namespaces, runc)" >&2
	exit 1
fi
status=0
if [ -z "$only" ] || [ "$only" = chaos ]; then
	echo "soak: chaos, $BERTH_CHAOS_OPS operations" >&2
	if ! $GO test -count=1 -timeout 6h -run '^TestChaosOfOperationsAndCrashes$' -v ./daemon/ |
		grep -E '^(=== RUN|--- |PASS|FAIL|ok )|chaos_test.go'; then
		status=1
	fi
fi
if [ -z "$only" ] || [ "$only" = churn ]; then
	echo "soak: churn for $BERTH_SOAK" >&2
	if ! $GO test -count=1 -timeout 6h -run '^TestSoakChurn$' -v ./daemon/ |
		grep -vE 'level=(DEBUG|INFO)'; then
		status=1
	fi
	echo "soak: figures in $BERTH_SOAK_REPORT" >&2
fi
exit $status
