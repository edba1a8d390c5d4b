#!/usr/bin/env bash
# dnsperf through a veth pair in network namespaces: socket backend vs DPDK (af_packet, af_xdp),
# and DPDK again while the snapshot is republished under the load. Needs root.
#   bench/dnsperf-veth.sh [--seconds 10] [--swaps 100] [--modes socket,af_packet,af_xdp]
# (GTM_BUILD_DIR selects the build, default build/.)
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/dnsperf_veth.py "$@"
