#!/usr/bin/env bash
# Health publish at scale, end to end: gtm-control and gtm-dataplane serve a configuration with
# the full-scale country database (one region per country), MEMBERS members (default 10,000, all
# probed every second over TCP against a local listener) and STATIC static records (default
# 3,000); the script then flips the health of one member FLIPS times (default 20) and prints, per
# flip, the time from the deciding probe verdict to the dataplane's acknowledgement
# (`last_health_publish_us`) with the breakdown both daemons export in STATUS, then medians:
#   publish_scale: members=N static=S probes=on flips=F ... verdict_to_ack_us_median=X
#   bench/publish-scale.sh [MEMBERS] [STATIC] [FLIPS] [BUILD_DIR] [probes|no-probes]
# The database is ../shared/geo/full/geo-whois-asn-country.mmdb (or $GTM_GEO_FULL_DB).
# For the same stages in one process (and the full rebuild for comparison): gtm-bench-publish.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/publish_scale.py "${1:-10000}" "${2:-3000}" "${3:-20}" "${4:-build}" \
  "${5:-probes}"
