#!/usr/bin/env bash
# Configures and builds one flavour of gtm.
#   scripts/build.sh release   -> build/        (Release, benchmarks included)
#   scripts/build.sh asan      -> build-asan/   (Debug + AddressSanitizer + UndefinedBehaviorSanitizer)
#   scripts/build.sh callgrind -> build-callgrind/ (Release without -march=native: valgrind 3.19
#                                 cannot run AVX-512 code, which -march=native emits on such CPUs)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
jobs=${GTM_JOBS:-$(nproc)}
case "$flavour" in
  release) dir=build; args=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; args=(-DCMAKE_BUILD_TYPE=Debug -DGTM_SANITIZE=ON -DGTM_BUILD_BENCH=OFF) ;;
  callgrind) dir=build-callgrind; args=(-DCMAKE_BUILD_TYPE=Release -DGTM_NATIVE=OFF -DCMAKE_CXX_FLAGS=-g) ;;
  *) echo "usage: $0 release|asan|callgrind" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
ninja -C "$dir" -j "$jobs"
