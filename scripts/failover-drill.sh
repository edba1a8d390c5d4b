#!/usr/bin/env bash
# Failover drill: two sites in network namespaces with an HTTP backend each, gtm serving the
# service name with TTL and HTTP monitors, a client resolving through gtm and fetching at a steady
# rate; one site fails (its link goes down), later recovers. Prints a report ending in
#   drill: total=N failed=N error_window_s=X removal_s=X restore_s=X
# Needs root (network namespaces). Bounded in time; removes its namespaces and links on exit.
#   scripts/failover-drill.sh [--interval-ms 200] [--ttl 1] [--duration 30] [--rate 50] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/failover_drill.py "$@"
