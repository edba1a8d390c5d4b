#!/usr/bin/env bash
# Reserves hugepages for gtm-dataplane --io dpdk and mounts hugetlbfs (/dev/hugepages), with
# dpdk-hugepages.py from the dpdk package. Run as root, before starting the dataplane.
#   scripts/hugepages.sh [SIZE]        e.g. 2G (default), as 2 MiB pages, spread over NUMA nodes
#   scripts/hugepages.sh --show
# For 1 GiB pages (fewer TLB misses; reserve them at boot, they rarely come free later) add to
# the kernel command line: default_hugepagesz=1G hugepagesz=1G hugepages=4
# A NIC config sized as in nic_configs/*.yaml needs well under 1 GiB per port; the EAL takes what it
# needs (-m / --socket-mem in eal.args limits it).
set -euo pipefail
command -v dpdk-hugepages.py >/dev/null || { echo "hugepages: install the dpdk package (scripts/setup.sh)" >&2; exit 1; }
if [ "${1:-}" = "--show" ]; then
  exec dpdk-hugepages.py --show
fi
size=${1:-2G}
dpdk-hugepages.py --pagesize 2M --setup "$size"
dpdk-hugepages.py --show
