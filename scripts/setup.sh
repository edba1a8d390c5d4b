#!/usr/bin/env bash
# Installs everything gtm needs to build, test and benchmark, from Debian packages. Idempotent:
# installs only what is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  dpdk dpdk-dev libdpdk-dev libpcap-dev
  libldns-dev libmaxminddb-dev mmdb-bin
  libtbb-dev libbenchmark-dev libgtest-dev libgmock-dev googletest
  libyaml-cpp-dev libssl-dev libcurl4-openssl-dev nlohmann-json3-dev
  dnsutils knot-dnsutils dnsperf
  python3 python3-dnspython python3-scapy python3-yaml
  iproute2 procps
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
