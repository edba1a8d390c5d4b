#!/usr/bin/env bash
# Health-probe scale: N members (default 10,000), each probed by TCP every second by one
# gtm-control, against a local accept-and-close listener. Prints the probe rate and gtm-control's
# CPU use (of one core) over a measurement window, ending with one line:
#   health_scale: mode=M members=N interval_ms=I probes_per_s=X control_cpu_pct=Y
#   bench/health-scale.sh [MEMBERS] [SECONDS] [BUILD_DIR] [loopback|netns]
# netns mode (root) puts the targets in a network namespace of their own behind a veth pair.
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-10000}
seconds=${2:-10}
build=${3:-build}
mode=${4:-loopback}
exec /usr/bin/python3 bench/health_scale.py "$members" "$seconds" "$build" "$mode"
