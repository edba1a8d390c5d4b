#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: first the Release build (unit, fuzz smoke,
# end-to-end), then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# Exits non-zero on any failure. Run one kind with e.g. `ctest --test-dir build -L e2e`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

status=0
run_suite() {
  local flavour=$1 dir=$2
  echo "== test.sh: building $flavour"
  ./scripts/build.sh "$flavour"
  echo "== test.sh: running tests ($flavour)"
  if ! ctest --test-dir "$dir" --output-on-failure --timeout 600; then
    status=1
  fi
}

run_suite release build
# Sanitizers: leaks are errors too; UBSan aborts on the first finding (-fno-sanitize-recover).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1
run_suite asan build-asan

if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED"
else
  echo "test.sh: all suites passed"
fi
exit "$status"
