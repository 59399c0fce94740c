#!/usr/bin/env bash
# make soak: the long runs. Filled in by the reliability campaign.
set -euo pipefail
echo "soak: nothing yet" >&2
exit 1
