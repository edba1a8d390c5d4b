#!/usr/bin/env bash
# The gtm demo: installs what is missing, builds Release, starts gtm-dataplane and gtm-control on
# 127.0.0.1:5353 and [::1]:5353 (UDP and TCP) with CONFIG (default examples/demo.yaml), shows a few
# live answers, and stays up until Ctrl-C.
#   ./scripts/demo.sh [CONFIG]
# Environment: GTM_DEMO_PORT (default 5353), GTM_DEMO_EXIT=1 (print the answers, then stop: for tests).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
config=$(realpath "${1:-examples/demo.yaml}")
port=${GTM_DEMO_PORT:-5353}
run_dir=$root/run/demo

./scripts/setup.sh
./scripts/build.sh release

mkdir -p "$run_dir"
# A previous run's "ready" lines must not be mistaken for this run's.
rm -f "$run_dir/dataplane.log" "$run_dir/control.log"
dp_pid="" ; cp_pid=""
cleanup() {
  [ -n "$cp_pid" ] && kill "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null
  [ -n "$dp_pid" ] && kill "$dp_pid" 2>/dev/null && wait "$dp_pid" 2>/dev/null
  true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

wait_for_line() {  # FILE TEXT PID
  for _ in $(seq 1 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" >&2; echo "demo: process exited" >&2; exit 1; }
    sleep 0.1
  done
  cat "$1" >&2; echo "demo: timed out waiting for '$2'" >&2; exit 1
}

build/gtm-dataplane --listen "127.0.0.1:$port" --listen "[::1]:$port" \
  --run-dir "$run_dir" --workers 2 2> >(tee "$run_dir/dataplane.log" >&2) &
dp_pid=$!
wait_for_line "$run_dir/dataplane.log" "gtm-dataplane: ready" "$dp_pid"
build/gtm-control --config "$config" --run-dir "$run_dir" \
  2> >(tee "$run_dir/control.log" >&2) &
cp_pid=$!
wait_for_line "$run_dir/control.log" "gtm-control: ready" "$cp_pid"

show() {
  echo "\$ $*"
  "$@" 2>&1 | sed 's/^/    /'
}
echo
echo "gtm is answering on 127.0.0.1:$port and [::1]:$port (config: $config)"
# Ask about the first zone and service of the config so the demo works for every example.
zone=$(awk '/^zones:/{z=1} z && /- name:/{print $3; exit}' "$config")
service=$(awk '/^services:/{s=1} s && /- name:/{print $3; exit}' "$config")
# A config may say what is worth showing: "# demo-dig: NAME TYPE [SUBNET]" queries with that ECS
# subnet, "# demo-explain: NAME TYPE [SUBNET]" explains the decision for a client in it.
if grep -q '^# demo-' "$config"; then
  while read -r _ kind name type subnet; do
    case "$kind" in
      demo-dig:)
        if [ -n "$subnet" ]; then
          show dig @127.0.0.1 -p "$port" +norec +noall +answer +comments "+subnet=$subnet" "$name" "$type"
        else
          show dig @127.0.0.1 -p "$port" +norec +noall +answer "$name" "$type"
        fi ;;
      demo-explain:)
        if [ -n "$subnet" ] && [ "${subnet%/*}" != "$subnet" ]; then
          show build/gtmctl --run-dir "$run_dir" query "$name" "$type" --client 127.0.0.1 --ecs "$subnet"
        else
          show build/gtmctl --run-dir "$run_dir" query "$name" "$type" --client "${subnet:-127.0.0.1}"
        fi ;;
    esac
  done < <(grep '^# demo-' "$config")
else
  show dig @127.0.0.1 -p "$port" +norec +noall +answer "$service" A
  show dig @127.0.0.1 -p "$port" +norec +noall +answer "$service" AAAA
  show dig @::1 -p "$port" +norec +tcp +noall +answer "$service" A
  show dig @127.0.0.1 -p "$port" +norec +noall +answer "$zone" SOA
  show dig @127.0.0.1 -p "$port" +norec +noall +comments +authority "nope.$zone" A
  show build/gtmctl --run-dir "$run_dir" query "$service" A --client 192.0.2.1
fi
echo
echo "Try: dig @127.0.0.1 -p $port $service A    |  build/gtmctl --run-dir $run_dir status"
echo "     edit $config, then: build/gtmctl --run-dir $run_dir reload"
[ "${GTM_DEMO_EXIT:-0}" = 1 ] && exit 0
echo "Ctrl-C to stop."
wait "$dp_pid"
