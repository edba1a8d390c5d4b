#!/usr/bin/env bash
# Health-probe scale: N members (default 10,000), each probed every second by one gtm-control,
# against local targets (an accept-and-close listener for tcp and tcp-half-open; the kernel itself
# for icmp). Prints the probe rate and gtm-control's CPU use (of one core) over a measurement
# window, ending with one line:
#   health_scale: mode=M monitor=T members=N interval_ms=I probes_per_s=X control_cpu_pct=Y
#   bench/health-scale.sh [MEMBERS] [SECONDS] [BUILD_DIR] [loopback|netns] [tcp|tcp-half-open|icmp] [ICMP_COUNT]
# netns mode (root) puts the targets in a network namespace of their own behind a veth pair;
# tcp-half-open and icmp need root (raw sockets).
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-10000}
seconds=${2:-10}
build=${3:-build}
mode=${4:-loopback}
monitor=${5:-tcp}
count=${6:-3}
exec /usr/bin/python3 bench/health_scale.py "$members" "$seconds" "$build" "$mode" "$monitor" "$count"
