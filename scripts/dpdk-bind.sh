#!/usr/bin/env bash
# Binds NICs to vfio-pci for gtm-dataplane --io dpdk (dpdk-devbind.py from the dpdk package), or
# gives them back to their kernel driver. Run as root.
#   scripts/dpdk-bind.sh 0000:03:00.0 [0000:03:00.1 ...]     bind to vfio-pci
#   scripts/dpdk-bind.sh --unbind DRIVER 0000:03:00.0 ...     back to e.g. ixgbe, i40e, ice
#   scripts/dpdk-bind.sh --status                             what is bound where
# Mellanox ConnectX (mlx5) ports are not bound: they stay on mlx5_core (bifurcated driver).
# dpdk-devbind.py refuses an interface that is up and routed: take it down first, it is about to
# vanish from the kernel. Without an IOMMU (VMs) vfio needs
#   echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode
set -euo pipefail
command -v dpdk-devbind.py >/dev/null || { echo "dpdk-bind: install the dpdk package (scripts/setup.sh)" >&2; exit 1; }
case "${1:-}" in
  ""|-h|--help) sed -n '2,10p' "$0"; exit 2 ;;
  --status) exec dpdk-devbind.py --status-dev net ;;
  --unbind)
    driver=${2:?--unbind DRIVER PCI...}
    shift 2
    exec dpdk-devbind.py -b "$driver" "$@" ;;
esac
modprobe vfio-pci
dpdk-devbind.py -b vfio-pci "$@"
dpdk-devbind.py --status-dev net
