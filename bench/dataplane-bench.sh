#!/usr/bin/env bash
# Mqps per lcore of the full DPDK lcore loop with no NIC cost (gtm-bench-dataplane: a net_ring
# port fed by a generator on lcore 0, the real loop on lcore 1), per case, median of REPS runs:
# static A, weighted GSLB, topology+ECS. Then the stage breakdown, and a snapshot-swap-under-load
# run (open loop at RATE qps, 200 publishes, against the same run without publishes).
# Ends with one line:
#   dataplane: static_a_mqps=X gslb_weighted_mqps=X topology_ecs_mqps=X
#   bench/dataplane-bench.sh [BUILD_DIR]    (environment: REPS=5 SECONDS_PER_RUN=3 RATE=1000000)
# topology_ecs runs once bench/configs/topology_ecs.yaml exists (it needs the steering config of
# issue 3); until then its figure is "pending".
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
reps=${REPS:-5}
secs=${SECONDS_PER_RUN:-3}
rate=${RATE:-1000000}
bin=$build/gtm-bench-dataplane
[ -x "$bin" ] || { echo "dataplane-bench: $bin is not built (./scripts/build.sh release)" >&2; exit 1; }

run() {  # LABEL ARGS... -> prints the run's lines, returns its mqps on fd 3
  local label=$1
  shift
  local out
  out=$("$bin" --label "$label" --seconds "$secs" "$@" -- --no-huge -m 1024 --no-shconf \
    --file-prefix "gtmbench$$" 2>&1 | grep -E "^$label[: ]") || { echo "$out" >&2; return 1; }
  rm -rf "/var/run/dpdk/gtmbench$$"
  echo "$out" | grep -v mqps_per_lcore= >&2
  echo "$out" | sed -n "s/^$label mqps_per_lcore=//p"
}

median_of() {  # LABEL ARGS...
  local values=()
  for _ in $(seq "$reps"); do values+=("$(run "$@")"); done
  printf '%s\n' "${values[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

static_a=$(median_of static_a --config bench/configs/dataplane.yaml --qname static.gtm.example)
gslb=$(median_of gslb_weighted --config bench/configs/dataplane.yaml --qname www.gtm.example)
if [ -f bench/configs/topology_ecs.yaml ]; then
  topo=$(median_of topology_ecs --config bench/configs/topology_ecs.yaml --qname geo.gtm.example \
    --ecs --clients 256)
else
  echo "topology_ecs: pending (bench/configs/topology_ecs.yaml needs the steering config of issue 3)" >&2
  topo=pending
fi
echo "== stage breakdown (instrumented loop; medians over bursts)" >&2
run static_a --config bench/configs/dataplane.yaml --qname static.gtm.example --stages >/dev/null
run gslb_weighted --config bench/configs/dataplane.yaml --qname www.gtm.example --stages >/dev/null
echo "== snapshot swaps under a steady load of $rate qps" >&2
run no_swaps --config bench/configs/dataplane.yaml --qname www.gtm.example --rate "$rate" \
  --swaps 0 >/dev/null
run swaps --config bench/configs/dataplane.yaml --qname www.gtm.example --rate "$rate" \
  --swaps 200 >/dev/null
echo "dataplane: static_a_mqps=$static_a gslb_weighted_mqps=$gslb topology_ecs_mqps=$topo"
