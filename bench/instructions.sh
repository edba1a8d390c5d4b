#!/usr/bin/env bash
# Instructions per query of each engine benchmark, counted by callgrind. Unlike nanoseconds, the
# count does not move with the machine's load: use it to compare versions.
#   bench/instructions.sh [BUILD_DIR] [BENCHMARK...]
# The default build dir is build-callgrind (scripts/build.sh callgrind): valgrind cannot run the
# AVX-512 code that -march=native emits on recent CPUs ("Illegal instruction").
# Method: the whole program runs twice with a fixed number of iterations (GTM_BENCH_ITERATIONS),
# and the difference of the two totals over the difference of the iterations is the cost of one
# query (the benchmark loop's own ~18 instructions included). Collecting inside answer_query
# with --toggle-collect was not reliable: callgrind's call tracking lost the toggle inside the
# fully inlined fast path and counted only part of it.
# Other benchmarks and functions: GTM_BENCH_BIN=gtm-bench-packet GTM_COLLECT=gtm::packet::classify
# counts the instructions inside that function per call of it (the toggle method).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-callgrind}
[ "$build" != build-callgrind ] || [ -x "build-callgrind/${GTM_BENCH_BIN:-gtm-bench-engine}" ] ||
  ./scripts/build.sh callgrind >/dev/null
shift || true
bin=$build/${GTM_BENCH_BIN:-gtm-bench-engine}
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(static_a static_a_ecs gslb_weighted gslb_round_robin nxdomain)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
total() {  # CALLGRIND_FILE -> the program's total instructions
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$1"
}
for b in "${benches[@]}"; do
  if [ -z "${GTM_COLLECT:-}" ]; then
    small=2000
    large=12000
    for n in $small $large; do
      GTM_BENCH_ITERATIONS=$n valgrind --tool=callgrind --callgrind-out-file="$out/$b.$n.cg" "$bin" \
        --benchmark_filter="BM_${b}/iterations:$n\$" >/dev/null 2>&1
    done
    echo "$b instructions/query: $((($(total "$out/$b.$large.cg") - $(total "$out/$b.$small.cg")) / (large - small)))"
    continue
  fi
  collect=$GTM_COLLECT
  valgrind --tool=callgrind --toggle-collect="${collect}*" \
    --callgrind-out-file="$out/$b.cg" "$bin" \
    --benchmark_filter="BM_${b}\$" --benchmark_min_time=0.02 >/dev/null 2>&1
  # Total instructions collected / number of calls of the collected function.
  /usr/bin/python3 - "$b" "$out/$b.cg" "${collect##*::}" <<'PY'
import re, sys
name, path, fn = sys.argv[1], sys.argv[2], sys.argv[3]
names, calls, total, pending = {}, 0, 0, False
for line in open(path):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3).strip()
        pending = m.group(1) == "cfn" and fn in names.get(m.group(2), "")
        continue
    if line.startswith("calls=") and pending:
        calls += int(line.split("=")[1].split()[0])
    pending = False
    if line.startswith(("totals:", "summary:")):
        total = int(line.split()[1])
print(f"{name} instructions/call of {fn}: {round(total / calls) if calls else 'n/a'}")
PY
done
