#!/usr/bin/env bash
# make fuzz: runs every fuzz target of the module for FUZZTIME each, one
# after the other. `go test` (and make test) runs only their seeds and
# testdata/fuzz corpora.
#
#   FUZZTIME=1m      how long each target runs (go test -fuzztime: 1m, 30s, 10000x)
#   FUZZ=regexp      only the targets whose name matches
#   FUZZPARALLEL=n   fuzzing processes per target (default: GOMAXPROCS)
#
# A failing input is written by go test to <package>/testdata/fuzz/<Target>/
# and from then on is a seed that go test runs: fix the bug and keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-1m}
FUZZ=${FUZZ:-.}
# The daemon's TestMain builds berthd for integration tests unless BERTHD
# names one; fuzzing runs none of them.
export BERTHD=${BERTHD:-$PWD/bin/berthd}
parallel=()
if [ -n "${FUZZPARALLEL:-}" ]; then
	parallel=(-parallel "$FUZZPARALLEL")
fi

# Each target gets go test's own limit plus ten minutes to build, start
# the workers and minimise a failing input; a count (10000x) gets 30m.
seconds() {
	local d=$1 total=0
	while [[ $d =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
		case ${BASH_REMATCH[2]} in
		h) total=$((total + BASH_REMATCH[1] * 3600)) ;;
		m) total=$((total + BASH_REMATCH[1] * 60)) ;;
		s) total=$((total + BASH_REMATCH[1])) ;;
		esac
		d=${BASH_REMATCH[3]}
	done
	[ -z "$d" ] || { echo "fuzz: FUZZTIME=$1: use h, m and s, or a count such as 10000x" >&2; exit 2; }
	echo "$total"
}
case "$FUZZTIME" in
*x) limit=1800 ;;
*) limit=$(( $(seconds "$FUZZTIME") + 600 )) ;;
esac

targets=()
while read -r pkg; do
	while read -r name; do
		case "$name" in
		Fuzz*) [[ "$name" =~ $FUZZ ]] && targets+=("$pkg $name") ;;
		esac
	done < <($GO test -list '^Fuzz' "$pkg" 2>/dev/null)
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no target matches $FUZZ" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"
failed=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "== $name ($pkg)"
	if ! timeout --kill-after=30s "${limit}s" $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "${parallel[@]}" "$pkg"; then
		failed+=("$name ($pkg)")
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
