#!/usr/bin/env bash
# Instructions per query of each engine benchmark, counted by callgrind inside answer_query only.
# Unlike nanoseconds, the count does not move with the machine's load: use it to compare versions.
#   bench/instructions.sh [BUILD_DIR] [BENCHMARK...]
# The default build dir is build-callgrind (scripts/build.sh callgrind): valgrind cannot run the
# AVX-512 code that -march=native emits on recent CPUs ("Illegal instruction").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-callgrind}
[ "$build" != build-callgrind ] || [ -x build-callgrind/gtm-bench-engine ] || ./scripts/build.sh callgrind >/dev/null
shift || true
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(static_a static_a_ecs gslb_weighted gslb_round_robin nxdomain)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in "${benches[@]}"; do
  valgrind --tool=callgrind --toggle-collect='gtm::engine::answer_query*' \
    --callgrind-out-file="$out/$b.cg" "$build/gtm-bench-engine" \
    --benchmark_filter="BM_${b}\$" --benchmark_min_time=0.02 >/dev/null 2>&1
  # Total instructions collected / number of answer_query calls.
  /usr/bin/python3 - "$b" "$out/$b.cg" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
names, calls, total, pending = {}, 0, 0, False
for line in open(path):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3).strip()
        pending = m.group(1) == "cfn" and "answer_query" in names.get(m.group(2), "")
        continue
    if line.startswith("calls=") and pending:
        calls += int(line.split("=")[1].split()[0])
    pending = False
    if line.startswith(("totals:", "summary:")):
        total = int(line.split()[1])
print(f"{name} instructions/query {round(total / calls) if calls else 'n/a'}")
PY
done
