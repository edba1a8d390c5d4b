#!/usr/bin/env bash
# Mqps per lcore of the full DPDK lcore loop with no NIC cost (gtm-bench-dataplane, the real loop
# on lcore 1), per case, median of REPS runs: static A, weighted GSLB, topology+ECS (ECS subnets of
# several countries, geo LPM tables compiled as gtm-control does). Each case with software
# checksums, then as for a NIC that offloads them. Then the stage breakdown of each case, and a
# snapshot-swap-under-load run (open loop at RATE qps, 200 publishes, against the same run without).
# Then topology+ECS with the geo tables of the full-scale country database (FULL_DB, default
# ../shared/geo/full/geo-whois-asn-country.mmdb; skipped when absent): 1024 ECS subnets drawn from
# its networks (bench/db_networks.h), bench/configs/topology_ecs_full.yaml.
# Ends with one line (software checksums, the default configuration of the virtual ports):
#   dataplane: static_a_mqps=X gslb_weighted_mqps=X topology_ecs_mqps=X
#   bench/dataplane-bench.sh [BUILD_DIR]
#   environment: REPS=5 SECONDS_PER_RUN=3 RATE=1000000 HARNESS=loopback (loopback|pcap|ring, see
#   bench/dataplane_bench.cc)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
reps=${REPS:-5}
secs=${SECONDS_PER_RUN:-3}
rate=${RATE:-1000000}
harness=${HARNESS:-loopback}
bin=$build/gtm-bench-dataplane
[ -x "$bin" ] || { echo "dataplane-bench: $bin is not built (./scripts/build.sh release)" >&2; exit 1; }

static_a=(--config bench/configs/dataplane.yaml --qname static.gtm.example)
gslb=(--config bench/configs/dataplane.yaml --qname www.gtm.example)
topo=(--config bench/configs/topology_ecs.yaml --qname geo.gtm.example
  --ecs-file bench/configs/topology_ecs_clients.txt --clients 256)
full_db=${FULL_DB:-../shared/geo/full/geo-whois-asn-country.mmdb}
topo_full=(--config bench/configs/topology_ecs_full.yaml --qname geo.gtm.example
  --ecs-db "$full_db" --ecs-count 1024 --clients 1024)

run() {  # LABEL ARGS... -> prints the run's lines on stderr, its mqps on stdout
  local label=$1
  shift
  local out status=0
  out=$("$bin" --label "$label" --seconds "$secs" "$@" -- --no-huge -m 1024 --no-shconf \
    --file-prefix "gtmbench$$" 2>&1) || status=$?
  rm -rf "/var/run/dpdk/gtmbench$$"
  if [ "$status" -ne 0 ] || echo "$out" | grep -q "NOT ALL ANSWERED"; then
    echo "$out" >&2
    echo "dataplane-bench: run $label failed" >&2
    return 1
  fi
  echo "$out" | grep -E "^$label[: ]" | grep -v mqps_per_lcore= >&2
  echo "$out" | sed -n "s/^$label mqps_per_lcore=\([0-9.]*\).*/\1/p"
}

median_of() {  # LABEL ARGS... -> the median Mqps of REPS runs; the spread on stderr
  local label=$1 values=() v
  for _ in $(seq "$reps"); do
    v=$(run "$@") || exit 1
    values+=("$v")
  done
  local sorted
  sorted=$(printf '%s\n' "${values[@]}" | sort -n)
  echo "$label: median of $reps runs $(echo "$sorted" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')" \
    "Mqps per lcore (runs: $(echo "$sorted" | tr '\n' ' '))" >&2
  echo "$sorted" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

echo "== $reps runs per case, $secs s each, harness $harness, software checksums" >&2
m_static=$(median_of static_a static_a --harness "$harness" "${static_a[@]}")
m_gslb=$(median_of gslb_weighted gslb_weighted --harness "$harness" "${gslb[@]}")
m_topo=$(median_of topology_ecs topology_ecs --harness "$harness" "${topo[@]}")
echo "== the same with checksums offloaded (as on ixgbe, i40e, ice, mlx5)" >&2
o_static=$(median_of static_a_offload static_a --harness "$harness" --checksums offload "${static_a[@]}")
o_gslb=$(median_of gslb_weighted_offload gslb_weighted --harness "$harness" --checksums offload \
  "${gslb[@]}")
o_topo=$(median_of topology_ecs_offload topology_ecs --harness "$harness" --checksums offload \
  "${topo[@]}")
echo "== stage breakdown (instrumented loop; medians over bursts)" >&2
run static_a --harness "$harness" --stages "${static_a[@]}" >/dev/null
run gslb_weighted --harness "$harness" --stages "${gslb[@]}" >/dev/null
run topology_ecs --harness "$harness" --stages "${topo[@]}" >/dev/null
full_line=""
if [ -f "$full_db" ]; then
  echo "== topology+ECS on the full-scale database $full_db" >&2
  m_full=$(median_of topology_ecs_full topology_ecs_full --harness "$harness" "${topo_full[@]}")
  run topology_ecs_full --harness "$harness" --stages "${topo_full[@]}" >/dev/null
  full_line="dataplane, full-scale database: topology_ecs_full_mqps=$m_full"
else
  echo "== $full_db not found: no full-database case" >&2
fi
echo "== snapshot swaps under a steady load of $rate qps (ring harness: generator on the main lcore)" >&2
run no_swaps --harness ring "${gslb[@]}" --rate "$rate" --swaps 0 >/dev/null
run swaps --harness ring "${gslb[@]}" --rate "$rate" --swaps 200 >/dev/null
echo "dataplane, checksums offloaded: static_a_mqps=$o_static gslb_weighted_mqps=$o_gslb" \
  "topology_ecs_mqps=$o_topo" >&2
[ -z "$full_line" ] || echo "$full_line"
echo "dataplane: static_a_mqps=$m_static gslb_weighted_mqps=$m_gslb topology_ecs_mqps=$m_topo"
